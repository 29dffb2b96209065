"""The honesty measure: fixes that name this machine's facts for a log from another machine.

Every case of the explain evaluation set (tests/data/explain_eval/cases.json, logs from public threads:
none comes from this machine) is explained the way `flashdoctor explain FILE` does it, with a machine at
hand (the probed one, or a --target) and no ``--here``. A diagnosis counts when its message or fix names
a fact of that machine - its torch, Python tag, interpreter, CUDA_HOME, nvcc, gcc, memory, MAX_JOBS,
GPU, driver, the wheel picked for it, or "this machine" - that neither the log nor the same diagnosis
made without a machine contains; and every diagnosis whose basis is the machine counts.

    PYTHONPATH=. python -m tests.decide.explain.foreign            # this machine (probed) and tests/targets/h100.json
    PYTHONPATH=. python -m tests.decide.explain.foreign --show 20  # list what was counted
"""

from __future__ import annotations

import argparse
import functools
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from flashdoctor.decide.explain import explain_bytes
from flashdoctor.decide.explain.engine import LogReading, read_log
from flashdoctor.model.environment import Environment
from tests.support.paths import DATA

CASES = DATA / "explain_eval" / "cases.json"

WheelFinder = Callable[[Environment, str], "str | None"]


def tune_cases() -> list[dict[str, object]]:
    return list(json.loads(CASES.read_text(encoding="utf-8"))["cases"])


def tuning_cases() -> list[dict[str, object]]:
    """The cases of every tuning split (cases.json, dev*.json); never a holdout split."""
    out: list[dict[str, object]] = []
    for path in sorted(CASES.parent.glob("*.json")):
        if not path.name.startswith("holdout"):
            out.extend(json.loads(path.read_text(encoding="utf-8"))["cases"])
    return out


def machine_facts(env: Environment, finder: WheelFinder | None = None) -> set[str]:
    """Strings that, in a fix, can only have come from ``env``."""
    facts = {"this machine"}
    if env.torch:
        release = env.torch.split("+")[0]
        facts |= {env.torch, release, "torch " + ".".join(release.split(".")[:2])}
    for value, fmt in (
        (env.python_abi, "{}"),
        (env.python_executable, "{}"),
        (env.cuda_home, "CUDA_HOME={}"),
        (env.nvcc, "nvcc {}"),
        (env.gcc, "gcc here is {}"),
        (env.glibc, "glibc here is {}"),
        (env.driver, "{}"),
        (env.memory_gb and round(env.memory_gb), "{} GB"),
        (env.cpus, "{} CPUs"),
    ):
        if value:
            facts.add(fmt.format(value))
    if env.memory_gb and env.cpus:
        from flashdoctor.decide.checks import build_jobs

        facts.add(f"MAX_JOBS={max(1, build_jobs(env.memory_gb, env.cpus))} ")
    for gpu in env.gpus:
        if gpu.name:
            facts.add(gpu.name)
        if gpu.sm:
            facts |= {f"sm_{gpu.sm})", f"ARCHS={gpu.sm}"}
    if finder is not None:
        for variant in ("fa2", "fa3", "fa4"):
            try:
                wheel = finder(env, variant)
            except Exception:  # a broken index is not this measure's business
                wheel = None
            if wheel:
                facts.add(wheel)
    return facts


@dataclass(frozen=True)
class Counted:
    case: str
    code: str
    facts: tuple[str, ...]
    fix: str


@functools.lru_cache(maxsize=4096)
def _read(log: str) -> LogReading:
    """The log read once (the keyword scan: most of explain's cost, and the same for every machine), then
    explained per machine by explain_bytes; the slow test runs 17 targets over every tuning log."""
    return read_log(log.encode("utf-8"))


@functools.lru_cache(maxsize=4096)
def _alone(log: str) -> dict[str, str]:
    """What explain says of the log without a machine (the same for every target: computed once a log)."""
    return {d.code: d.message + " " + d.fix for d in explain_bytes(_read(log), None).diagnoses}


def count(
    cases: Iterable[dict[str, object]], env: Environment, finder: WheelFinder | None = None
) -> list[Counted]:
    facts = machine_facts(env, finder)
    out = []
    for case in cases:
        log = str(case["log"])
        alone = _alone(log)
        for d in explain_bytes(_read(log), env, wheel_finder=finder).diagnoses:
            text = d.message + " " + d.fix + " "
            named = [f for f in facts if f in text and f not in log and f not in alone.get(d.code, "")]
            if d.basis == "machine":
                named.append("basis=machine")
            if named:
                out.append(Counted(str(case["id"]), d.code, tuple(sorted(named)), d.fix))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--show", type=int, default=5)
    ap.add_argument("--no-probe", action="store_true", help="only the h100 target")
    args = ap.parse_args()
    from tests.support.targets import bundled_finder, target_env

    finder = bundled_finder()
    envs = {"h100 target": target_env("h100")}
    if not args.no_probe:
        from flashdoctor.probe import probe_environment

        envs["this machine (probed)"] = probe_environment(python=None, environ=os.environ, import_tests=False)
    cases = tune_cases()
    for name, env in envs.items():
        found = count(cases, env, finder)
        top = sum(
            1
            for c in cases
            if any(
                f.case == c["id"] and f.code == d.code
                for f in found
                for d in explain_bytes(str(c["log"]).encode(), env, wheel_finder=finder).diagnoses[:1]
            )
        )
        print(
            f"{name}: {len(found)} diagnoses ({top} of them first) name this machine for {len(cases)} foreign logs"
        )
        for f in found[: args.show]:
            print(f"   {f.case} [{f.code}] {', '.join(f.facts)}: {f.fix[:160]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
