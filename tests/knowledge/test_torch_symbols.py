"""data/torch_symbols.json (which PyTorch releases export a C++ symbol, measured on PyTorch's wheels by
scripts/measure_torch_symbols.py): valid against its schema, read the way explain uses it, and agreeing with
what the selector's torch-build data says about the same symbols."""

from __future__ import annotations

from flashdoctor.decide.explain import explain_bytes
from flashdoctor.knowledge.data import load_data
from flashdoctor.knowledge.schemas import schema_validator
from flashdoctor.knowledge.torch_builds import nightly_breaks
from flashdoctor.knowledge.torch_symbols import exporting_releases, measured_span


def test_the_data_fits_its_schema() -> None:
    errors = list(schema_validator("torch-symbols.schema.json").iter_errors(load_data("torch_symbols")))
    assert not errors, [e.message for e in errors]


def test_the_set_device_symbols_of_three_eras() -> None:
    # c10::cuda::SetDevice(int) in 2.1-2.2, SetDevice(DeviceIndex) in 2.3-2.7, SetDevice(DeviceIndex, bool) from 2.8
    assert exporting_releases("_ZN3c104cuda9SetDeviceEi") == "2.1.0–2.2.2"
    assert exporting_releases("_ZN3c104cuda9SetDeviceEa") == "2.3.0–2.7.1"
    assert exporting_releases(
        "_ZN3c104cuda9SetDeviceEab",
    ).startswith("2.8.0–")
    # not measured, or exported by every measured release: nothing to say
    assert exporting_releases("_ZN3c10nothing") is None
    assert measured_span().startswith("2.0.0–")


def test_the_nightly_break_names_a_symbol_the_releases_of_its_minor_lack() -> None:
    for brk in nightly_breaks():
        runs = exporting_releases(brk.symbol) or ""
        assert f"{brk.minor[0]}.{brk.minor[1]}." not in runs, (brk.symbol, runs)


def test_explain_says_which_torch_exports_the_missing_symbol() -> None:
    log = (
        "ImportError: /home/u/venv/lib/python3.10/site-packages/flash_attn_2_cuda.cpython-310-x86_64-linux-gnu.so: "
        "undefined symbol: _ZN3c104cuda9SetDeviceEi\n"
    )
    fix = explain_bytes(log.encode(), None).diagnoses[0].fix
    assert "_ZN3c104cuda9SetDeviceEi is exported only by torch 2.1.0–2.2.2" in fix, fix
    # a symbol the table does not hold keeps the general advice
    other = log.replace("_ZN3c104cuda9SetDeviceEi", "_ZN3c1011NotASymbolEv")
    assert "exported only by" not in explain_bytes(other.encode(), None).diagnoses[0].fix
