"""Fact paths: ``history[0].bakeStatus``, ``flux.kustomizations['odd.key']``.

Callers: facts, snapshots, testing (``set``), explanations. Pure parsing and
formatting; must not look at values.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

Segment = str | int
FactPath = tuple[Segment, ...]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_SAFE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class PathSyntaxError(ValueError):
    """A fact path that cannot be parsed."""


def parse_path(text: str) -> FactPath:
    """Parses ``a.b[0]['c.d']`` into ``('a', 'b', 0, 'c.d')``."""
    segments: list[Segment] = []
    pos = 0
    expect_name = True
    while pos < len(text):
        char = text[pos]
        if char == "[":
            pos = _parse_index(text, pos, segments)
            expect_name = False
        elif char == ".":
            if expect_name:
                raise PathSyntaxError(f"unexpected '.' at {pos + 1} in {text!r}")
            pos += 1
            expect_name = True
        else:
            match = _IDENT.match(text, pos)
            if match is None or not expect_name:
                raise PathSyntaxError(f"unexpected {char!r} at {pos + 1} in {text!r}")
            segments.append(match.group())
            pos = match.end()
            expect_name = False
    if not segments or expect_name:
        raise PathSyntaxError(f"incomplete fact path {text!r}")
    return tuple(segments)


def _parse_index(text: str, pos: int, segments: list[Segment]) -> int:
    end = text.find("]", pos)
    if end < 0:
        raise PathSyntaxError(f"unclosed '[' at {pos + 1} in {text!r}")
    inner = text[pos + 1 : end].strip()
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        segments.append(inner[1:-1])
    elif inner.isdigit():
        segments.append(int(inner))
    else:
        raise PathSyntaxError(f"bad index [{inner}] in {text!r}")
    return end + 1


def format_path(path: Sequence[Segment]) -> str:
    """Formats a path back to text; keys that are not identifiers are quoted."""
    out: list[str] = []
    for segment in path:
        if isinstance(segment, int):
            out.append(f"[{segment}]")
        elif _SAFE_KEY.match(segment):
            out.append(("." if out else "") + segment)
        else:
            out.append(f"['{segment}']")
    return "".join(out)


def is_prefix(prefix: Sequence[Segment], path: Sequence[Segment]) -> bool:
    """True when ``prefix`` equals ``path`` or is one of its ancestors."""
    return len(prefix) <= len(path) and tuple(path[: len(prefix)]) == tuple(prefix)


def overlaps(a: Sequence[Segment], b: Sequence[Segment]) -> bool:
    """True when one path is a prefix of the other."""
    return is_prefix(a, b) or is_prefix(b, a)
