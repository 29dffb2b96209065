"""data/torch_builds.json: valid against its schema, and the vendor builds it says are a nightly's code are
read that way by the selector (a wheel built against that nightly is "this exact torch" for them)."""

from __future__ import annotations

from flashdoctor.decide.wheels.torchbuild import EXACT, build_class, torch_build
from flashdoctor.knowledge.data import load_data
from flashdoctor.knowledge.schemas import schema_validator
from flashdoctor.knowledge.torch_builds import vendor_builds


def test_the_data_fits_its_schema() -> None:
    errors = list(schema_validator("torch-builds.schema.json").iter_errors(load_data("torch_builds")))
    assert not errors, [e.message for e in errors]


def test_a_vendor_build_and_its_nightly_are_one_build() -> None:
    builds = vendor_builds()
    assert builds["2.3.0a0+ebedce2"].nightly == "2.3.0.dev20240105"  # NGC 24.02 (flash-attention 6e2fa307)
    for vendor, build in builds.items():
        nightly = build.nightly
        t = torch_build(vendor)
        assert t is not None and not t.is_release
        assert build_class(nightly, t) == EXACT
        # another nightly of the same minor still does not fit the vendor build
        other = nightly[:-2] + ("01" if not nightly.endswith("01") else "02")
        assert build_class(other, t) is None


def test_a_vendor_build_not_in_the_data_stays_its_own_cell() -> None:
    t = torch_build("2.1.0a0+32f93b1")  # NGC 23.xx: the maintainers said build from source (#836)
    assert t is not None
    assert build_class("2.1.0", t) is None
    assert build_class("2.1.0a0+32f93b1", t) == EXACT


def test_the_plan_says_which_container_a_vendor_build_is() -> None:
    from flashdoctor.decide.wheels import load_index, make_plan
    from flashdoctor.model.target import environment_from_target
    from tests.support.paths import ROOT

    env = environment_from_target(
        {
            "python": "3.10",
            "platform": "linux_x86_64",
            "glibc": "2.35",
            "torch": "2.3.0a0+ebedce2",
            "torch_cuda": "12.3",
            "cxx11abi": True,
            "installed": {},
        }
    )
    plan = make_plan(env, "fa2", load_index(ROOT / "wheels_index.json"))
    assert plan.action == "wheel", plan.reasons
    assert plan.wheel is not None and "torch2.3cxx11abiTRUE" in plan.wheel.filename
    assert any("NGC PyTorch 24.02" in r for r in plan.reasons), plan.reasons


def test_the_minors_a_wheel_loads_on_are_later_measured_ones_and_none_is_also_a_break() -> None:
    """fit_class trusts abi_across_minors as it stands: a hand edit listing an earlier minor, a minor never
    measured, or a pair that is also a recorded break would be taken silently."""
    from flashdoctor.knowledge.torch_builds import across_minors
    from flashdoctor.knowledge.versions import major_minor

    block = load_data("torch_builds")["abi_across_minors"]
    measured = {major_minor(v) for v in block["measured"]["torch"]}
    across = across_minors()
    for built, on in across.loads_on.items():
        assert built in measured and on <= measured, (built, on)
        assert all(o > built for o in on), (built, on)
        assert not any((built, o) in across.breaks for o in on), (built, on)
    for built, on in across.breaks:
        assert built in measured and on in measured and on > built, (built, on)
