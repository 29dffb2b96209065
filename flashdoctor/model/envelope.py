"""The result envelope: what every JSON document flashdoctor prints carries, whatever the command.

Four fields, added to a command's own document (never replacing one of its fields):

- ``schema``    the document's versioned id ("flashdoctor/<kind>/<n>"); it says which JSON Schema in
                flashdoctor/schemas/ describes the rest (``SCHEMA_FILES``);
- ``command``   the flashdoctor command that wrote it ("check", "install", ...);
- ``status``    one word: the document's own status where it has one (smoke, bench, build, install),
                else "ok" / "failed" from the exit code (explain: "recognised" / "unrecognised");
- ``exit_code`` the exit code of the process that printed it.

A document that already has a field of that name keeps its own (the build document's ``command`` is the
build's command line, older than the envelope): fields are only ever added.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flashdoctor.errors import EXIT_OK

# Ids of the documents that had none before the envelope; the others keep theirs (check/1, cluster/1,
# smoke/1, bench/1, build/1), defined where those documents are built.
PLAN_SCHEMA_ID = "flashdoctor/plan/1"
INSTALL_SCHEMA_ID = "flashdoctor/install/1"
LOCK_SCHEMA_ID = "flashdoctor/lock/1"
WHEELS_SCHEMA_ID = "flashdoctor/wheels/1"
COVERAGE_SCHEMA_ID = "flashdoctor/coverage/1"
REFRESH_SCHEMA_ID = "flashdoctor/wheels-refresh/1"
EXPLAIN_SCHEMA_ID = "flashdoctor/explain/1"

# schema id -> the JSON Schema (flashdoctor/schemas/<file>) that describes the document.
SCHEMA_FILES: Mapping[str, str] = {
    "flashdoctor/check/1": "check-report.schema.json",
    "flashdoctor/cluster/1": "cluster-report.schema.json",
    "flashdoctor/smoke/1": "smoke-report.schema.json",
    "flashdoctor/bench/1": "bench-report.schema.json",
    "flashdoctor/build/1": "build-report.schema.json",
    PLAN_SCHEMA_ID: "plan.schema.json",
    INSTALL_SCHEMA_ID: "install-result.schema.json",
    LOCK_SCHEMA_ID: "lock.schema.json",
    WHEELS_SCHEMA_ID: "wheels.schema.json",
    COVERAGE_SCHEMA_ID: "coverage.schema.json",
    REFRESH_SCHEMA_ID: "wheels-refresh.schema.json",
    EXPLAIN_SCHEMA_ID: "explain-report.schema.json",
}
ENVELOPE_FIELDS = ("schema", "command", "status", "exit_code")


def status_for(exit_code: int) -> str:
    """The envelope's status for a document without one of its own."""
    return "ok" if exit_code == EXIT_OK else "failed"


def envelope(
    body: Mapping[str, Any],
    *,
    command: str,
    exit_code: int,
    schema: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """``body`` with the envelope's fields: first (schema, command, status) unless ``body`` has its own,
    ``exit_code`` always (the process's). ``schema`` is required when ``body`` has none."""
    schema_id = body.get("schema", schema)
    if not isinstance(schema_id, str) or schema_id not in SCHEMA_FILES:
        raise ValueError(f"no known schema id for a {command!r} document: {schema_id!r}")
    head = {"schema": schema_id, "command": command, "status": status or status_for(exit_code)}
    doc = {**head, **body}
    doc["exit_code"] = exit_code
    return doc
