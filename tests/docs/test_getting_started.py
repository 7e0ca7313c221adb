"""docs/getting-started.md and the README tour run as written, from the repository root.

Callers: pytest. Extracts each ```bash and ```console block of the page and
the ```console blocks of README.md (conventions in ``shellblocks.py`` beside
this file), runs each with this environment's ``tidegate`` first on PATH and
the repository root as working directory, and checks the exit status its
``<!-- expect-exit: N -->`` comment gives (default 0) and that the output it
shows appears, in order. Nothing is skipped: a command that cannot run here
must not be in a shell block, and the page may use only the fence languages
in ``ALLOWED_FENCES``. The blocks must not write into the checkout (they use
``mktemp``), which each test checks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from shellblocks import ShellBlock, fences, missing_lines, shell_blocks

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "getting-started.md"
README = ROOT / "README.md"
ALLOWED_FENCES = {"bash", "console", "text", "yaml"}
TIMEOUT = 120


def page_blocks() -> list[ShellBlock]:
    return shell_blocks(PAGE.read_text(encoding="utf-8"))


def readme_sessions() -> list[ShellBlock]:
    """The README's ```console blocks (its ```bash block installs and runs the whole suite)."""
    blocks = shell_blocks(README.read_text(encoding="utf-8"))
    return [block for block in blocks if block.language == "console"]


def tidegate_env() -> dict[str, str]:
    """The user's shell after `pip install -e .`: this venv's scripts first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["NO_COLOR"] = "1"
    env.pop("GITHUB_STEP_SUMMARY", None)
    env.pop("TIDEGATE_CEL_BACKEND", None)
    return env


def checkout_files() -> set[Path]:
    """Files under the folders the page's commands read; none may appear or vanish."""
    return {p for folder in ("examples", "docs", "policies") for p in (ROOT / folder).rglob("*")}


def run(block: ShellBlock) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", *block.shell_options, "-c", block.script],
        cwd=ROOT,
        env=tidegate_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_the_page_has_shell_blocks_with_output_and_a_nonzero_exit() -> None:
    blocks = page_blocks()
    assert len(blocks) >= 10
    assert any(block.expected_exit != 0 for block in blocks)
    assert sum(1 for block in blocks if block.shown) >= 8


def test_the_page_uses_only_fences_the_test_understands() -> None:
    used = {language for language, _ in fences(PAGE.read_text(encoding="utf-8"))}
    assert used <= ALLOWED_FENCES, (
        f"fences {sorted(used - ALLOWED_FENCES)} are neither run nor allowed: "
        "make a command a ```bash or ```console block, or show it as ```text"
    )


def test_the_readme_tour_is_a_session() -> None:
    assert readme_sessions(), "README.md has no ```console block"


@pytest.mark.parametrize(
    ("page", "block"),
    [*(("docs/getting-started.md", b) for b in page_blocks())]
    + [("README.md", b) for b in readme_sessions()],
    ids=lambda v: v if isinstance(v, str) else f"line{v.line}",
)
def test_the_block_runs_as_written(page: str, block: ShellBlock) -> None:
    before = checkout_files()
    done = run(block)
    shown = (
        f"{page}:{block.line}\n{block.script}\n"
        f"--- exit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )
    assert done.returncode == block.expected_exit, shown
    assert "Traceback" not in done.stdout + done.stderr, shown
    missing = missing_lines(block.shown, done.stdout, done.stderr)
    assert not missing, f"shown output not produced: {missing}\n{shown}"
    assert checkout_files() == before, f"the block changed files in the checkout\n{shown}"
