"""Target specs: parsing, validation messages, derivations, round trip."""

from __future__ import annotations

import json

import pytest

from flashdoctor.knowledge.schemas import schema_validator
from flashdoctor.model.environment import Environment
from flashdoctor.model.target import TargetSpecError, environment_from_target, target_from_bytes
from tests.support.paths import TARGETS


def test_missing_keys_are_unknown_and_null_means_absent():
    env = environment_from_target({"torch": None, "driver": None})
    assert env.torch is None and env.known("torch")
    assert env.known("torch_cuda")  # no torch: nothing about it is unknown
    assert env.gpus == () and env.known("gpus")  # no driver: no GPUs
    assert not env.known("nvcc")


def test_derivations():
    env = environment_from_target({"python": "3.12", "torch": "2.8.0+cu128", "driver": "570.86.15"})
    assert env.python_abi == "cp312"
    assert env.torch_cuda == "12.8"
    assert env.driver_cuda == "12.8"
    assert env.torch_mm == (2, 8)
    cpu = environment_from_target({"torch": "2.13.0+cpu"})
    assert cpu.torch_cuda is None and cpu.known("torch_cuda")


def test_a_rocm_label_derives_torch_hip():
    # torch.version.cuda is None on a ROCm build: a spec naming only "torch" must not read as a CUDA torch
    env = environment_from_target({"torch": "2.5.1+rocm6.2"})
    assert env.torch_hip == "6.2" and env.known("torch_hip")
    assert env.torch_cuda is None and env.known("torch_cuda")
    assert environment_from_target({"torch": "2.6.0+rocm6.2.4"}).torch_hip == "6.2.4"
    explicit = environment_from_target({"torch": "2.5.1+rocm6.2", "torch_hip": "6.2.41133"})
    assert explicit.torch_hip == "6.2.41133"


@pytest.mark.parametrize(
    ("python", "abi"), [("3.12", "cp313t"), ("3.13", "cp312"), (3.1, "cp310"), ("3.10", "cp31")]
)
def test_a_python_abi_of_another_python_is_refused(python: object, abi: str) -> None:
    """ "python": "3.12" with "python_abi": "cp313t" was taken silently, and no wheel fitted either."""
    with pytest.raises(TargetSpecError) as exc:
        environment_from_target({"python": python, "python_abi": abi})
    assert str(exc.value) == (
        f"target spec: 'python_abi' {abi!r} is not an ABI of Python {python}: give the ABI of that Python "
        "(cp312, or cp313t for a free-threaded 3.13) or leave 'python_abi' out to derive it"
    )


@pytest.mark.parametrize(
    ("python", "abi"),
    [("3.13", "cp313t"), ("3.12", "cp312"), ("3.10", "cp310"), ("3.12", "abi3"), (None, "cp313")],
)
def test_a_python_abi_of_its_python_is_taken(python: object, abi: str) -> None:
    assert environment_from_target({"python": python, "python_abi": abi}).python_abi == abi


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        ({"python": "three"}, "python"),
        ({"gpus": [{"capability": "nine"}]}, "gpus[0].capability"),
        ({"gpus": {"name": "x"}}, "gpus"),
        ({"cpus": "16"}, "cpus"),
        ({"cxx11abi": "yes"}, "cxx11abi"),
        ({"installed": {"flash-attention": "2.8.3"}}, "flash-attention"),
        ({"torch": "latest"}, "torch"),
        ({"gpu": []}, "gpu"),
        # rules the schema states and the old hand-written reader did not check
        ({"cpus": 0}, "cpus"),
        ({"env_manager": "poetry"}, "env_manager"),
        ({"gpus": [{"capabilty": "9.0"}]}, "gpus[0]"),
        ({"gpus": [{"uuid": 5}]}, "gpus[0].uuid"),
        ({"nvccs": [{"version": "12.4"}]}, "nvccs[0]"),
        ({"installed": {"flash-attn": {"archz": ["sm_90"]}}}, "installed.flash-attn"),
        ({"installed": {"flash-attn": {"archs": "sm_90"}}}, "installed.flash-attn.archs"),
        ({"installed": {"flash-attn": 2.8}}, "installed.flash-attn"),
        ({"torch_arch_list": ["ampere"]}, "torch_arch_list[0]"),
        ({"memory_gb": -1}, "memory_gb"),
    ],
)
def test_bad_specs_name_the_key(spec, key):  # type: ignore[no-untyped-def]
    with pytest.raises(TargetSpecError) as exc:
        environment_from_target(spec)
    assert key in str(exc.value)


def parse(data: bytes) -> Environment:
    """A target spec file's bytes, parsed (actions.inputs.load_target reads the file)."""
    return target_from_bytes(data, "target spec t.json")


def test_target_spec_errors() -> None:
    with pytest.raises(TargetSpecError, match="not valid JSON"):
        parse(b"{not json")
    with pytest.raises(TargetSpecError, match="JSON object"):
        parse(b"[]")
    with pytest.raises(TargetSpecError, match="not valid JSON: Infinity is not a JSON number"):
        parse(b'{"gpus": [{"memory_gb": Infinity}]}')
    with pytest.raises(TargetSpecError, match="not valid JSON: the key 'torch' appears twice in one object"):
        parse(b'{"torch": "2.8.0+cu128", "torch": "2.5.1+rocm6.2"}')


@pytest.mark.parametrize("path", sorted(TARGETS.glob("*.json")), ids=lambda p: p.stem)
def test_round_trip_and_schema(path):  # type: ignore[no-untyped-def]
    spec = json.loads(path.read_text())
    schema_validator("target.schema.json").validate(spec)
    env = environment_from_target(spec)
    again = environment_from_target(env.to_target())
    # notes say what was inferred from the spec; the written form states it, so only the notes differ
    assert again.replace(notes=()) == env.replace(notes=())
    schema_validator("target.schema.json").validate(env.to_target())


def test_installed_object_form():
    env = environment_from_target(
        {
            "installed": {
                "flash_attn": {"version": "2.8.3+fd.sm90.hd128.bf16", "import_ok": True, "archs": ["sm_90"]}
            }
        }
    )
    inst = env.installed_variant("fa2")
    assert inst is not None and inst.local_label == "fd.sm90.hd128.bf16"
    assert inst.archs == ("sm_90",)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"python": "three"}, "target spec: 'python' must be a version such as \"3.12\""),
        (
            {"gpus": [{"capability": "nine"}]},
            "'gpus[0].capability' must be a compute capability such as \"9.0\"",
        ),
        ({"cpus": "16"}, "target spec: 'cpus' must be an integer ≥ 1"),
        ({"cxx11abi": "yes"}, "target spec: 'cxx11abi' must be true, false or null"),
        (
            {"installed": {"flash-attention": "2.8.3"}},
            "target spec: 'installed' has unknown distribution 'flash-attention' "
            "(known: flash-attn, flash-attn-3, flash-attn-4",
        ),
        ({"gpu": []}, "target spec: unknown key(s) 'gpu'; known keys: python, python_abi,"),
        ({"gpus": [{"capabilty": "9.0"}]}, "target spec: 'gpus[0]' has unknown key(s) 'capabilty'"),
    ],
)
def test_messages_keep_their_style(spec, message):  # type: ignore[no-untyped-def]
    with pytest.raises(TargetSpecError) as exc:
        environment_from_target(spec)
    assert str(exc.value).startswith(message) or message in str(exc.value)


def test_numbers_are_read_as_versions():
    env = environment_from_target({"python": 3.12, "gpus": [{"capability": 9}], "torch": "2.8.0+cu128"})
    assert env.python == "3.12" and env.python_abi == "cp312"
    assert env.gpus[0].capability == "9.0"
    assert environment_from_target({"gpus": [{"capability": 8.6}]}).gpus[0].capability == "8.6"


def test_a_version_written_as_a_number_keeps_its_trailing_zero() -> None:
    # JSON's 3.10 is the float 3.1: read back from the float, Python 3.10 was judged as Python 3.1
    # ("Python 3.1 < 3.9": unsupported), torch 2.10 as torch 2.1 and glibc 2.40 as glibc 2.4.
    env = parse(b'{"python": 3.10, "torch": 2.10, "glibc": 2.40, "gpus": [{"capability": 12.0}]}')
    assert (env.python, env.python_abi, env.torch, env.glibc) == ("3.10", "cp310", "2.10", "2.40")
    assert env.gpus[0].capability == "12.0"


@pytest.mark.parametrize(
    "capability",
    [
        "9.10",  # was sm_100 (9 * 10 + 10): a Hopper typo judged as a Blackwell
        9.05,  # was rounded to 9.0 or 9.1 without a word
        1e300,  # was a 300-digit capability
        "999.0",
    ],
)
def test_a_capability_is_major_dot_one_minor_digit(capability):  # type: ignore[no-untyped-def]
    with pytest.raises(TargetSpecError, match=r"'gpus\[0\]\.capability' must be a compute capability"):
        environment_from_target({"gpus": [{"capability": capability}]})


SPECS = [
    {},
    {"python": "3.12", "torch": None, "driver": None},
    {"cpus": 0},
    {"cpus": 1},
    {"env_manager": "poetry"},
    {"env_manager": "uv"},
    {"gpus": [{"capabilty": "9.0"}]},
    {"gpus": [{"capability": "9.0", "index": 3, "uuid": "GPU-1"}]},
    {"gpus": [{"capability": "9.0", "index": -1}]},
    {"nvccs": [{"version": "12.4"}]},
    {"nvccs": [{"path": "/usr/local/cuda/bin/nvcc", "version": "12.4"}]},
    {"nvccs": None},
    {"installed": {"flash_attn_3": {"version": "3.0.0", "import_ok": True}}},
    {"installed": {"flash-attn": {"archz": []}}},
    {"installed": {"Flash-Attn": "2.8.3"}},
    {"torch": "2.x"},
    {"torch": "latest"},
    {"torch": "2."},
    {"torch": "2.10.0a0+b4e4ee81d3.nv25.12"},
    {"installed": {"flash-attn": "2.x"}},
    {"installed": {"flash-attn": {"version": "latest"}}},
    {"installed": {"flash-attn": None}},
    {"python_abi": "cp313t"},
    {"python_abi": "CP 3.13"},
    {"platform": "Linux x86_64"},
    {"memory_gb": 0},
    {"disk_free_gb": -0.5},
    {"name": "x", "comment": "y", "$schema": "z"},
    {"name": 5},
]


@pytest.mark.parametrize("spec", SPECS, ids=[json.dumps(s)[:40] for s in SPECS])
def test_the_schema_is_the_one_statement_of_the_rules(spec):  # type: ignore[no-untyped-def]
    """The reader accepts a spec exactly when the JSON Schema does (the old reader checked ~190
    hand-written lines and disagreed with its schema: it let env_manager 'poetry', cpus 0 and GPU keys
    with typos through)."""
    schema_ok = schema_validator("target.schema.json").is_valid(spec)
    try:
        environment_from_target(spec)
        reader_ok = True
    except TargetSpecError:
        reader_ok = False
    assert reader_ok == schema_ok


def test_installed_names_are_the_registry_dists():
    from packaging.utils import canonicalize_name

    from flashdoctor.knowledge.data import load_data
    from flashdoctor.knowledge.schemas import load_schema
    from flashdoctor.knowledge.variants import DIST_VARIANT

    ref = load_schema("target.schema.json")["properties"]["installed"]["propertyNames"]["$ref"]
    assert ref == "variants.schema.json#/$defs/dist"
    enum = load_schema("variants.schema.json")["$defs"]["dist"]["enum"]
    registry = {d for v in load_data("variants")["variants"].values() for d in v["dists"]}
    assert set(enum) == registry
    assert {canonicalize_name(d) for d in enum} == set(DIST_VARIANT)


# -- cxx11abi inferred from the torch version (issue 18 "Targets") ----------------------------------------
@pytest.mark.parametrize(
    ("spec", "abi"),
    [
        ({"torch": "2.6.0+cu124"}, False),  # PyPI/PyTorch cu124 builds of 2.6: pre-CXX11
        ({"torch": "2.6.0+cu118"}, False),
        ({"torch": "2.6.0"}, False),  # PyPI's 2.6.0 is the CUDA 12.4 build
        ({"torch": "2.6.0", "torch_cuda": "12.6"}, True),
        ({"torch": "2.6.0+cu126"}, True),  # PyTorch PR #142064
        ({"torch": "2.5.1+cu124"}, False),
        ({"torch": "2.4.0"}, False),
        ({"torch": "2.7.0+cu118"}, True),  # every build from 2.7
        ({"torch": "2.11.0+cu130"}, True),
        ({"torch": "2.5.1+cu124", "platform": "linux_aarch64"}, True),  # aarch64 builds always CXX11
        ({"torch": "2.13.0+cpu"}, True),
        ({"torch": "2.5.1+cpu"}, False),
        ({"torch": "2.6.0+cpu"}, None),  # 2.6's ABI depends on the CUDA: a CPU build does not tell
        ({"torch": "2.1.0a0+32f93b1"}, None),  # NGC: a vendor pre-release build
        ({"torch": "2.10.0.dev20251101+cu130"}, None),  # a nightly
        ({"torch": "2.6.0+rocm6.2.4"}, None),
        ({"torch": "2.6.0+cu124", "platform": "win_amd64"}, None),  # no C++ ABI question on Windows
    ],
)
def test_cxx11abi_is_inferred_from_the_torch_version(spec, abi):  # type: ignore[no-untyped-def]
    env = environment_from_target(spec)
    assert env.cxx11abi is abi
    assert env.known("cxx11abi") is (abi is not None)
    if abi is not None:
        assert env.notes and env.notes[0].startswith("cxx11abi inferred from the torch version")
        assert ("pre-CXX11 build" if abi is False else " CXX11 build") in env.notes[0]
    elif not spec.get("platform", "").startswith("win"):
        assert env.notes and env.notes[0].startswith("cxx11abi unknown")


# -- torch_cuda inferred from a plain torch version: PyPI's own build (its wheel metadata) -------------------
@pytest.mark.parametrize(
    ("spec", "cuda"),
    [
        ({"torch": "2.10.0", "platform": "linux_x86_64"}, "12.8"),  # nvidia-cuda-runtime-cu12==12.8.90
        ({"torch": "2.7.1", "platform": "linux_x86_64"}, "12.6"),
        ({"torch": "2.11.0", "platform": "linux_x86_64"}, "13.0"),  # cuda-toolkit==13.0.2
        ({"torch": "2.10.0+cu130", "platform": "linux_x86_64"}, "13.0"),  # the label says it
        ({"torch": "2.10.0", "platform": "win_amd64"}, None),  # PyPI's Windows torch is a CPU build
        ({"torch": "2.10.0", "platform": "linux_aarch64"}, None),  # CPU on PyPI before 2.11: not in the data
        ({"torch": "2.11.0", "platform": "linux_aarch64"}, "13.0"),  # from 2.11 a CUDA build there too
        ({"torch": "2.10.0"}, None),  # no platform: no telling which build
        ({"torch": "2.10.0.dev20251101", "platform": "linux_x86_64"}, None),  # a nightly is not PyPI's
        ({"torch": "2.5.1", "platform": "linux_x86_64"}, "12.4"),  # the wheel's METADATA: cu12==12.4.127
        ({"torch": "2.4.0", "platform": "linux_x86_64"}, "12.1"),  # nvidia-cuda-runtime-cu12==12.1.105
        ({"torch": "2.1.2", "platform": "linux_x86_64"}, "12.1"),
        ({"torch": "2.0.1", "platform": "linux_x86_64"}, "11.7"),  # nvidia-cuda-runtime-cu11==11.7.99
        ({"torch": "1.12.1", "platform": "linux_x86_64"}, None),  # not read: not in the data
    ],
)
def test_torch_cuda_is_inferred_for_pypis_own_build(spec, cuda):  # type: ignore[no-untyped-def]
    env = environment_from_target(spec)
    assert env.torch_cuda == cuda
    noted = [n for n in env.notes if n.startswith("torch_cuda inferred")]
    assert bool(noted) is (cuda is not None and "+cu" not in spec["torch"])
    if noted:
        assert f"is the CUDA {cuda} build" in noted[0]
    explicit = environment_from_target({**spec, "torch_cuda": "11.8"})
    assert explicit.torch_cuda == "11.8" and not [n for n in explicit.notes if n.startswith("torch_cuda")]


def test_an_explicit_cxx11abi_wins_and_is_not_noted():
    env = environment_from_target({"torch": "2.6.0+cu124", "cxx11abi": True})
    assert env.cxx11abi is True and env.notes == ()
    unknown = environment_from_target({"torch": "2.6.0+cu124", "cxx11abi": None})
    assert unknown.cxx11abi is None and unknown.notes == ()


# -- parsing the file: UTF-8, not too deep (a one-line error, exit 2); its size: tests/cli/test_cli_inputs.py --
def test_target_from_bytes_refuses_hostile_files() -> None:
    with pytest.raises(TargetSpecError, match="nested too deeply"):
        parse(b'{"gpus": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    with pytest.raises(TargetSpecError, match="not UTF-8"):
        parse('{"name": "caf\xe9"}'.encode("latin-1"))
