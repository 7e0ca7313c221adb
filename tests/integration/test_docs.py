"""The documentation stays true: runnable getting-started, generated reference, live links.

Runs every ```bash block of docs/getting-started.md, in order, in a temporary
copy of the repository's data folders, and checks each block's exit status
against its ``<!-- expect-exit: N -->`` comment (default 0). Also checks that
docs/functions.md is the current ``tidegate functions -o markdown`` output and
that every relative link in README.md and docs/*.md points to a file (and heading).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
GETTING_STARTED = DOCS / "getting-started.md"
COPIED = ("examples", "policies", "docs", "tests/policy_cases")
TIMEOUT = 120
BLOCK = re.compile(
    r"(?:<!--\s*expect-exit:\s*(?P<code>\d+)\s*-->\s*\n)?^```bash\n(?P<body>.*?)^```\s*$",
    re.MULTILINE | re.DOTALL,
)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def bash_blocks(text: str) -> list[tuple[int, str]]:
    """(expected exit status, script) for each ```bash block, in order."""
    return [(int(m.group("code") or 0), m.group("body")) for m in BLOCK.finditer(text)]


def tidegate_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("GITHUB_STEP_SUMMARY", None)
    env["NO_COLOR"] = "1"
    return env


def repository_copy(target: Path) -> Path:
    for name in COPIED:
        shutil.copytree(ROOT / name, target / name)
    return target


def test_getting_started_has_runnable_bash_blocks() -> None:
    blocks = bash_blocks(GETTING_STARTED.read_text(encoding="utf-8"))
    assert len(blocks) >= 10
    assert any(code != 0 for code, _ in blocks)


def test_every_getting_started_bash_block_runs_with_its_expected_exit_status(
    tmp_path: Path,
) -> None:
    workdir = repository_copy(tmp_path / "repo")
    env = tidegate_env()
    for number, (expected, script) in enumerate(
        bash_blocks(GETTING_STARTED.read_text(encoding="utf-8")), start=1
    ):
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        shown = f"block {number}:\n{script}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        assert done.returncode == expected, shown
        assert "Traceback" not in done.stdout + done.stderr, shown


def test_functions_page_is_the_current_generated_reference() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "tidegate"), "functions", "-o", "markdown"],
        cwd=ROOT,
        env=tidegate_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (DOCS / "functions.md").read_text(encoding="utf-8") == done.stdout, (
        "docs/functions.md is stale: run `tidegate functions -o markdown > docs/functions.md`"
    )


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def without_code(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+\s+(.*?)\s*$", without_code(page.read_text(encoding="utf-8")), re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_an_existing_file_and_heading(page: Path) -> None:
    broken = []
    for target in LINK.findall(without_code(page.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path) if path else page
        missing_heading = bool(anchor) and file.suffix == ".md" and file.exists()
        if not file.exists() or (missing_heading and anchor not in anchors(file)):
            broken.append(target)
    assert not broken, f"{page.name}: broken links {broken}"
