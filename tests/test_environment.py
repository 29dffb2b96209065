"""Target specs: parsing, validation messages, derivations, round trip."""

from __future__ import annotations

import json

import pytest

from flashdoctor.knowledge.schemas import schema_validator
from flashdoctor.model.target import TargetSpecError, environment_from_target, load_target
from tests.conftest import TARGETS


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
    ],
)
def test_bad_specs_name_the_key(spec, key):  # type: ignore[no-untyped-def]
    with pytest.raises(TargetSpecError) as exc:
        environment_from_target(spec)
    assert key in str(exc.value)


def test_load_target_errors(tmp_path):  # type: ignore[no-untyped-def]
    with pytest.raises(TargetSpecError, match="cannot read"):
        load_target(str(tmp_path / "nope.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TargetSpecError, match="not valid JSON"):
        load_target(str(bad))
    lst = tmp_path / "list.json"
    lst.write_text("[]")
    with pytest.raises(TargetSpecError, match="JSON object"):
        load_target(str(lst))


@pytest.mark.parametrize("path", sorted(TARGETS.glob("*.json")), ids=lambda p: p.stem)
def test_round_trip_and_schema(path):  # type: ignore[no-untyped-def]
    spec = json.loads(path.read_text())
    schema_validator("target.schema.json").validate(spec)
    env = environment_from_target(spec)
    again = environment_from_target(env.to_target())
    assert again == env
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
