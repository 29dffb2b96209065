"""The JSON samples in the docs against the shipped JSON Schemas: each sample names every field its schema
requires (the result envelope aside: docs/json.md says the samples leave it out), and every field a sample
names is one a schema knows, so a renamed or dropped field cannot stay documented."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from flashdoctor.model.envelope import ENVELOPE_FIELDS
from tests.support.paths import ROOT

SCHEMAS = ROOT / "flashdoctor" / "schemas"

# (page, the text the sample follows, the JSON Schema that describes it)
SAMPLES = [
    ("docs/json.md", "## JSON report (`check --json`)", "check-report.schema.json"),
    ("docs/json.md", "## Install plan (`install --dry-run --json`)", "plan.schema.json"),
    ("docs/json.md", "## Smoke and bench JSON", "smoke-report.schema.json"),
    ("docs/json.md", "## Cluster report JSON", "cluster-report.schema.json"),
    ("docs/install.md", "`--json` prints the result:", "install-result.schema.json"),
    ("docs/explain.md", "JSON (`--json`, schema", "explain-report.schema.json"),
    ("docs/target-spec.md", "# Target spec", "target.schema.json"),
]

# Keys that are data, not field names: a variant (the keys of `verdicts`), a distribution in a target
# spec's `installed`, the smoke report's per-phase timings (`phases`: "<phase>_s").
DATA_KEYS = re.compile(r"fa[234]|flash-attn(-[34])?|[a-z0-9-]+_s")


def sample(page: str, after: str) -> str:
    text = (ROOT / page).read_text(encoding="utf-8")
    start = text.index(after)
    m = re.compile(r"```(?:jsonc|json)\n(.*?)```", re.S).search(text, start)
    assert m is not None, f"{page}: no JSON sample after {after!r}"
    # jsonc comments start after whitespace or punctuation ("https://" inside a string is kept).
    return re.sub(r"(?<=[\s,{\[])//[^\n]*", "", m.group(1))


def keys(text: str) -> set[str]:
    return set(re.findall(r'"([A-Za-z_0-9-]+)"\s*:', text))


def property_names(node: Any, acc: set[str]) -> set[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "properties" and isinstance(v, dict):
                acc.update(v)
            elif k == "required" and isinstance(v, list):
                acc.update(n for n in v if isinstance(n, str))
            property_names(v, acc)
    elif isinstance(node, list):
        for v in node:
            property_names(v, acc)
    return acc


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize(("page", "after", "schema"), SAMPLES, ids=[s[2] for s in SAMPLES])
def test_a_sample_names_every_field_its_schema_requires(page: str, after: str, schema: str) -> None:
    required = set(load(schema).get("required", ())) - set(ENVELOPE_FIELDS)
    missing = required - keys(sample(page, after))
    assert not missing, f"{page}: the sample after {after!r} lacks {sorted(missing)} ({schema} requires them)"


@pytest.mark.parametrize(("page", "after", "schema"), SAMPLES, ids=[s[2] for s in SAMPLES])
def test_every_field_a_sample_names_is_in_a_schema(page: str, after: str, schema: str) -> None:
    known: set[str] = set()
    for path in SCHEMAS.glob("*.json"):
        property_names(json.loads(path.read_text(encoding="utf-8")), known)
    unknown = {k for k in keys(sample(page, after)) - known if not DATA_KEYS.fullmatch(k)}
    assert not unknown, f"{page}: the sample after {after!r} names fields no schema has: {sorted(unknown)}"
