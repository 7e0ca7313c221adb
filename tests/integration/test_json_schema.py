"""`eval -o json` output validates against the documented, versioned schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "docs/schemas/evaluation-report.schema.json").read_text())
TIDEGATE = str(Path(sys.executable).parent / "tidegate")
SNAPSHOT = "examples/snapshots/checkout-prod.facts.yaml"


def evaluate(*args: str) -> dict[str, object]:
    result = subprocess.run(
        [TIDEGATE, "eval", "-p", "examples/policies", "--facts", SNAPSHOT, "-o", "json", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    document: dict[str, object] = json.loads(result.stdout)
    return document


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("--explain",),
        ("--explain=all", "--at", "2026-03-07T11:00:00+01:00"),
        ("--release", "2.0.0", "--explain"),
        ("--set", "history[0].bakeStatus=Failed", "--explain"),
        ("--set", "environments.staging=null", "--explain", "--cel-backend", "celpy"),
    ],
    ids=["plain", "explained", "saturday-all", "hypothetical", "failed-bake", "celpy-missing"],
)
def test_eval_json_matches_the_documented_schema(args: tuple[str, ...]) -> None:
    jsonschema.validate(evaluate(*args), SCHEMA)


def test_the_schema_rejects_a_report_without_a_decision_field() -> None:
    report = evaluate()
    del report["decision"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(report, SCHEMA)
