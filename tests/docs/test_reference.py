"""The generated reference (functions.md, rule tables) and the CLI usage in cli.md are current.

Runs ``scripts/docs_reference.py`` as people do: ``--check`` on the checkout
must pass, and on a copy of docs/ with a stale row it must fail and then
repair the copy when run without ``--check``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "docs_reference.py"
TIMEOUT = 120


def generator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@pytest.fixture
def docs_copy(tmp_path: Path) -> Path:
    target = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", target)
    return target


def test_the_checked_in_reference_is_current() -> None:
    done = generator("--check")
    assert done.returncode == 0, f"{done.stderr}\nrun `python scripts/docs_reference.py`"


def test_every_builtin_and_library_rule_is_in_the_policy_reference() -> None:
    text = (ROOT / "docs" / "policy-reference.md").read_text(encoding="utf-8")
    for path in sorted((ROOT / "policies" / "builtin").glob("*.yaml")):
        assert f"[`kuberik/{path.stem}`](../policies/builtin/{path.name})" in text
    for path in sorted((ROOT / "policies" / "common").glob("*.yaml")):
        assert f"(../policies/common/{path.name})" in text


def test_a_stale_rule_row_fails_the_check_and_is_regenerated(docs_copy: Path) -> None:
    page = docs_copy / "policy-reference.md"
    original = page.read_text(encoding="utf-8")
    page.write_text(original.replace("`OutsideWindow`", "`Closed`", 1), encoding="utf-8")
    stale = generator("--check", "--docs", str(docs_copy))
    assert stale.returncode == 1
    assert "policy-reference.md" in stale.stderr
    assert generator("--docs", str(docs_copy)).returncode == 0
    assert page.read_text(encoding="utf-8") == original


def test_a_stale_function_page_fails_the_check(docs_copy: Path) -> None:
    page = docs_copy / "functions.md"
    page.write_text(page.read_text(encoding="utf-8") + "\nextra\n", encoding="utf-8")
    stale = generator("--check", "--docs", str(docs_copy))
    assert stale.returncode == 1
    assert "functions.md" in stale.stderr


def test_a_missing_region_is_reported_by_name(docs_copy: Path) -> None:
    page = docs_copy / "policy-reference.md"
    text = page.read_text(encoding="utf-8").replace("GENERATED: common-gates", "X", 2)
    page.write_text(text, encoding="utf-8")
    done = generator("--check", "--docs", str(docs_copy))
    assert done.returncode == 1
    assert "common-gates" in done.stderr


VERBS = ("eval", "test", "check", "functions", "replay", "bench", "run", "record", "demo")


@pytest.mark.parametrize("verb", VERBS)
def test_the_cli_page_shows_each_verbs_current_usage(verb: str) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "tidegate"), verb, "--help"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    usage = " ".join(done.stdout.split("\n\n", 1)[0].split())
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    shown = {
        " ".join(block.split()) for block in re.findall(r"```text\n(usage: .*?)```", page, re.S)
    }
    assert usage in shown, f"docs/cli.md lacks the usage of `tidegate {verb} --help`:\n{usage}"
