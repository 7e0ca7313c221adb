"""The shell blocks of a Markdown page: what to run, the exit status and output it shows.

Callers: tests/docs/test_getting_started.py. Parses only; never runs anything.

Conventions (docs/getting-started.md states them for readers):

- A ```bash block is one script, run with ``bash -e -o pipefail``. A ```text
  block that follows it directly (only blank lines between) is its output.
- A ```console block is a terminal session: each line starting with ``$ ``
  is a command (a trailing ``\\`` continues it on the next line), every other
  line is output. The commands run in one ``bash -o pipefail`` without ``-e``,
  as typed into a terminal, so ``$ echo $?`` shows the status of the line
  before; the block's status is the last command's.
- ``<!-- expect-exit: N -->`` right before a block gives its expected exit
  status; without it the block must exit 0.
- Shown output must appear in order (stdout and stderr each keep their order;
  lines may be left out). In a shown line ``…`` matches any text (versions,
  timings); a line that is only ``…`` stands for left-out lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FENCE = re.compile(r"^```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
EXIT = re.compile(r"<!--\s*expect-exit:\s*(?P<code>\d+)\s*-->\s*$")
ELLIPSIS = "…"


@dataclass(frozen=True, slots=True)
class ShellBlock:
    """One runnable block: where it is, what to run, and what it must show."""

    line: int
    language: str
    script: str
    expected_exit: int
    shown: tuple[str, ...]

    @property
    def shell_options(self) -> tuple[str, ...]:
        return ("-e", "-o", "pipefail") if self.language == "bash" else ("-o", "pipefail")


def fences(text: str) -> list[tuple[str, re.Match[str]]]:
    """Every fenced block as (language, match), in page order."""
    return [(m.group("lang"), m) for m in FENCE.finditer(text)]


def shell_blocks(text: str) -> list[ShellBlock]:
    """The ```bash and ```console blocks of a page, in order."""
    found = fences(text)
    blocks = []
    for index, (language, match) in enumerate(found):
        if language not in ("bash", "console"):
            continue
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = EXIT.search(before)
        line = text.count("\n", 0, match.start()) + 1
        expected = int(marker.group("code")) if marker else 0
        body = match.group("body")
        if language == "console":
            script, shown = _session(body)
        else:
            script, shown = body, _following_text(text, match, found[index + 1 :])
        blocks.append(ShellBlock(line, language, script, expected, shown))
    return blocks


def _session(body: str) -> tuple[str, tuple[str, ...]]:
    commands: list[str] = []
    shown: list[str] = []
    continued = False
    for raw in body.splitlines():
        if continued:
            commands[-1] += "\n" + raw
        elif raw.startswith("$ "):
            commands.append(raw[2:])
        else:
            shown.append(raw)
            continue
        continued = raw.endswith("\\")
    return "\n".join(commands) + "\n", tuple(shown)


def _following_text(
    text: str, match: re.Match[str], rest: list[tuple[str, re.Match[str]]]
) -> tuple[str, ...]:
    if not rest:
        return ()
    language, following = rest[0]
    if language != "text" or text[match.end() : following.start()].strip():
        return ()
    return tuple(following.group("body").splitlines())


def _pattern(shown: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in shown.split(ELLIPSIS)))


def missing_lines(shown: tuple[str, ...], stdout: str, stderr: str) -> list[str]:
    """Shown lines that do not appear, in order, in stdout or stderr."""
    streams = [stdout.splitlines(), stderr.splitlines()]
    cursors = [0, 0]
    missing = []
    for line in (s.rstrip() for s in shown):
        if not line.strip() or line.strip() == ELLIPSIS:
            continue
        pattern = _pattern(line)
        for number, lines in enumerate(streams):
            hit = next(
                (
                    i
                    for i in range(cursors[number], len(lines))
                    if pattern.fullmatch(lines[i].rstrip())
                ),
                None,
            )
            if hit is not None:
                cursors[number] = hit + 1
                break
        else:
            missing.append(line)
    return missing
