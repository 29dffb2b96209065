"""Lines a terminal (hard wrap) or uv (soft wrap, indented) broke in two are read whole."""

from __future__ import annotations

import pytest

from flashdoctor.decide.explain import explain_text
from flashdoctor.decide.explain.scan import WRAP_MIN, joined

HEAD = "ImportError: /home/me/env/lib/python3.10/site-packages/flash_attn_2_cuda.cpython-310-x86_64-linux-gnu.so: "


def test_a_torch_symbol_split_by_the_terminal_is_read_whole():
    log = HEAD + "undefined symbol: _ZN3c104cuda29c10_cuda_check_impl\nementationEiPKcS2_ib\n"
    d = explain_text(log)[0]
    assert d.code == "torch-abi-mismatch" and d.line == 1
    assert "_ZN3c104cuda29c10_cuda_check_implementationEiPKcS2_ib" in d.message
    assert d.evidence.endswith("implementationEiPKcS2_ib")


def test_a_cxx11_symbol_split_before_its_abi_tag_is_the_abi_mismatch():
    # Cut before "__cxx11", the first piece reads like any torch symbol; whole, it names the new C++ ABI.
    log = (
        HEAD
        + "undefined symbol: _ZN3c105ErrorC2ENS_14SourceLoca\ntionENSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE"
    )
    assert [d.code for d in explain_text(log)] == ["cxx11-abi-mismatch"]


def test_a_message_uv_wrapped_with_indentation_is_read_whole():
    log = (
        "  ╰─▶ Extra build requirement `torch` was declared with `match-runtime\n"
        "      = true`, but `flash-attn` does not declare static metadata, making\n"
        "      runtime-matching impossible\n"
    )
    d = explain_text(log)[0]
    assert d.code == "uv-build-config" and "static metadata" in d.evidence


# A wrap that cuts the keyword itself (the log read with its wrapped lines joined again finds it), a value
# cut by a terminal, and messages a browser, a blog or a mail client reflowed at word boundaries (the next
# piece starts at column 0).
WRAPPED = {
    "keyword cut": (
        "Discarding file:///w/flash_attn-2.6.3%2Bcu123torch2.4cxx11abiFALSE-cp310-cp310-linux_x86_64.whl: has incons\n"
        "istent version: expected '2.6.3+cu123torch2.4cxx11abifalse', but metadata has '2.6.3'\n",
        "wheel-metadata-mismatch",
    ),
    "value cut": (
        "Requested flash-attn from file:///w/flash_attn.whl has inconsistent version: expected '2.6.3+cu123torch2\n"
        ".4cxx11abifalse', but metadata has '2.6.3'\n",
        "wheel-metadata-mismatch",
    ),
    "word wrap": (
        "ImportError: This modeling file requires the following packages that were not\n"
        "found in your environment: flash_attn. Run `pip install flash_attn`\n",
        "flash-attn-missing",
    ),
    "word wrap, traceback": (
        "    from flash_attn.flash_attn_interface import\n"
        "flash_attn_unpadded_qkvpacked_func\n"
        "ImportError: cannot import name 'flash_attn_unpadded_qkvpacked_func' from\n"
        "'flash_attn.flash_attn_interface' (/home/u/env/lib/python3.10/\n"
        "site-packages/flash_attn/flash_attn_interface.py)\n",
        "flash-attn-api-mismatch",
    ),
}


@pytest.mark.parametrize("case", sorted(WRAPPED))
def test_a_wrapped_message_is_read_whole(case: str) -> None:
    log, first = WRAPPED[case]
    assert [d.code for d in explain_text(log)][:1] == [first]


def test_what_is_not_a_wrap():
    long = "x" * WRAP_MIN
    assert joined("short line", ["continues"]) is None
    assert joined(long + " ", ["continues"]) is None  # a line ending in a space was not cut
    assert joined(long, ["", "after a blank line"]) is None
    assert joined(long, ["rest"]) == long + "rest"  # hard wrap: the rest at column 0
    assert joined("  " + long, ["      rest"]) == "  " + long + " rest"  # soft wrap: deeper indent
    assert joined("      " + long, ["  shallower"]) is None
    # A traceback frame and its code line are two lines, however long the frame.
    frame = (
        '  File "/home/me/venv/lib/python3.12/site-packages/torch/utils/cpp_extension.py", line 2281, in f'
    )
    assert joined(frame, ['    raise RuntimeError("Ninja is required")']) is None


def test_a_match_not_cut_by_the_line_end_keeps_its_line():
    # "Killed" ends a long line and the next starts at column 0: no value is cut, no join is needed.
    log = (
        "#12 498.7 "
        + "[14/73] nvcc -c csrc/flash_attn/src/flash_bwd_hdim192_fp16_sm80.cu Killed\nninja: build stopped"
    )
    d = explain_text(log)[0]
    assert d.code == "build-oom" and d.evidence.endswith("Killed")


def test_the_joined_views_of_a_log():
    from flashdoctor.decide.explain.scan import unwrap

    text = b"a" * WRAP_MIN + b"\nrest\n  indented\n" + b"b" * WRAP_MIN + b" \nafter a space\n"
    soft, none = unwrap(text, hard=False)
    assert soft == text.replace(b"a\nrest", b"a rest") and none == ()
    hard, removed = unwrap(text, hard=True)
    assert hard == text.replace(b"a\nrest", b"arest") and removed == (WRAP_MIN,)


def test_a_match_that_starts_on_the_next_line_is_that_lines():
    # Qwen's remote code prints its long warnings in a row; read with its continuation, the first line
    # also "holds" the second's message. The second is the cause (flash_attn does not import), on line 2.
    log = (
        "Warning: import flash_attn rotary fail, please install FlashAttention rotary to get higher efficiency "
        "https://github.com/Dao-AILab/flash-attention/tree/main/csrc/rotary\n"
        "Warning: import flash_attn fail, please install FlashAttention to get higher efficiency "
        "https://github.com/Dao-AILab/flash-attention\n"
    )
    ds = explain_text(log)
    assert [(d.code, d.line) for d in ds] == [("flash-attn-missing", 2), ("extension-not-built", 1)]
    assert ds[1].consequence_of == "flash-attn-missing"
