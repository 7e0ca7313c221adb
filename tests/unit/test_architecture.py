"""Architecture rules that are behaviour: the public surface, lazy verbs, no clock below the CLI."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import policy_engine

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "policy_engine"


def test_the_public_api_is_exactly_this_sorted_list() -> None:
    assert policy_engine.__all__ == sorted(policy_engine.__all__)
    assert policy_engine.__all__ == [
        "CompiledPolicy",
        "Decision",
        "EvalError",
        "Evaluation",
        "Explainer",
        "FactSet",
        "InputErrors",
        "Options",
        "Outcome",
        "PolicyErrors",
        "RuleResult",
        "UsageError",
        "Verdict",
        "__version__",
        "compile_policies",
        "evaluate",
        "load_builtin_policies",
        "load_policy_paths",
        "load_policy_text",
        "load_snapshot_path",
        "load_snapshot_text",
        "replay",
        "select_backend",
    ]


def test_importing_the_cli_loads_no_cluster_or_http_libraries() -> None:
    code = (
        "import sys, policy_engine.cli; "
        "print(sorted(m for m in ('kopf', 'kubernetes', 'httpx', 'oras', 'pytest') "
        "if m in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert output == "[]"


def test_no_module_below_the_cli_reads_the_wall_clock() -> None:
    clock = re.compile(r"datetime\.now\(|\.utcnow\(|time\.time\(|date\.today\(")
    offenders = [
        str(path.relative_to(ROOT))
        for path in ENGINE.rglob("*.py")
        if "cli" not in path.relative_to(ENGINE).parts and clock.search(path.read_text())
    ]
    assert offenders == []


def test_modules_stay_small() -> None:
    too_big = [
        str(p.relative_to(ROOT))
        for p in ENGINE.rglob("*.py")
        if len(p.read_text().splitlines()) > 600
    ]
    assert too_big == []
