"""Facts read from compiled files without loading them: CUDA architectures in a fat binary, C++ ABI.

Fat binary layout (what nvcc embeds in the `.nv_fatbin` ELF section / `.nv_fatb` PE section), as
observed in files produced by nvcc 12.x/13.0 and checked in tests against objects nvcc builds:
  container header (16 bytes): magic 0xBA55ED50 (u32), version 1 (u16), header size 16 (u16), size (u64)
  entry header: kind (u16: 1 PTX, 2 ELF/SASS), version (u16), header size (u32), payload size (u64),
                ..., arch (u32 at +28, e.g. 90), flags (u64 at +40; 0x100000 = arch-specific "a",
                0x200000 = family-specific "f")
Entries are walked by their sizes, so a 1 GB libtorch_cuda.so costs a few thousand small reads.
"""

from __future__ import annotations

import mmap
import os
import struct

MAGIC = b"\x50\xed\x55\xba\x01\x00\x10\x00"
KIND_PTX, KIND_ELF = 1, 2
FLAG_ARCH_SPECIFIC = 0x100000
FLAG_FAMILY = 0x200000


def _elf_section(mm: mmap.mmap, names: tuple[bytes, ...]) -> tuple[int, int] | None:
    """(offset, size) of the first section named in ``names`` in a 64-bit little-endian ELF file."""
    if mm[:4] != b"\x7fELF" or mm[4] != 2 or mm[5] != 1:
        return None
    e_shoff = struct.unpack_from("<Q", mm, 0x28)[0]
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", mm, 0x3A)
    if e_shoff == 0 or e_shnum == 0 or e_shoff + e_shnum * e_shentsize > len(mm):
        return None
    str_hdr = e_shoff + e_shstrndx * e_shentsize
    str_off = struct.unpack_from("<Q", mm, str_hdr + 0x18)[0]
    for i in range(e_shnum):
        h = e_shoff + i * e_shentsize
        name_off = struct.unpack_from("<I", mm, h)[0]
        end = mm.find(b"\x00", str_off + name_off)
        name = mm[str_off + name_off : end]
        if name in names:
            off, size = struct.unpack_from("<QQ", mm, h + 0x18)
            return off, size
    return None


def _walk(mm: mmap.mmap, start: int, stop: int) -> set[str]:
    archs: set[str] = set()
    pos = mm.find(MAGIC, start, stop)
    while pos != -1:
        total = struct.unpack_from("<Q", mm, pos + 8)[0]
        p, end = pos + 16, min(pos + 16 + total, stop)
        while p + 48 <= end:
            kind, _ver, hsize = struct.unpack_from("<HHI", mm, p)
            payload = struct.unpack_from("<Q", mm, p + 8)[0]
            arch = struct.unpack_from("<I", mm, p + 28)[0]
            flags = struct.unpack_from("<Q", mm, p + 40)[0]
            if hsize < 48 or kind not in (KIND_PTX, KIND_ELF):
                break  # not an entry we understand: stop this container, keep the others
            suffix = "a" if flags & FLAG_ARCH_SPECIFIC else ("f" if flags & FLAG_FAMILY else "")
            archs.add(f"{'sm' if kind == KIND_ELF else 'compute'}_{arch}{suffix}")
            p += hsize + payload
        nxt = max(end, pos + 16)
        pos = mm.find(MAGIC, nxt, stop)
    return archs


def cuda_archs(path: str) -> tuple[str, ...] | None:
    """The CUDA code in a shared object: ("sm_80", "sm_90a", "compute_90", ...).

    Returns () for a file with no fat binary (a CPU build) and None when the file cannot be read.
    """
    try:
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size == 0:
                return ()
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                sect = _elf_section(mm, (b".nv_fatbin", b"__nv_relfatbin"))
                start, stop = (sect[0], sect[0] + sect[1]) if sect else (0, len(mm))
                found = _walk(mm, start, stop)
    except (OSError, ValueError, struct.error):
        return None
    from flashdoctor.knowledge.archs import sort_archs

    return tuple(sort_archs(found))


def cxx11_abi(path: str) -> bool | None:
    """Whether a C++ library was built with the CXX11 ABI (_GLIBCXX_USE_CXX11_ABI=1).

    libc10 exports and imports std::string functions; with the new ABI their mangled names carry
    ``__cxx11`` (std::__cxx11::basic_string). The names live in .dynstr, so no loading is needed.
    """
    try:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            if mm[:4] != b"\x7fELF":
                return None
            if mm.find(b"__cxx11") != -1:
                return True
            return False if mm.find(b"_ZN3c10") != -1 else None
    except (OSError, ValueError):
        return None
