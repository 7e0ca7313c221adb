"""One program per rule: ``when``, ``pendingWhen`` and the body (or checks) in a single call.

Callers: ``compiling`` builds the fused source once per rule from the parts'
compiled (rewritten) sources; ``evaluation.rules`` reads the fused result.
Fusion is only a shortcut: an error or any value of an unexpected shape
means "evaluate part by part", so no result may depend on it. Never
evaluates anything itself.

A rule that reads ``release`` also gets a batched program, the fused
expression mapped over every candidate (``RELEASES``), so one call serves
all candidates of an evaluation.

Expression bodies fuse to an outcome code (``!(when) ? 0 : (pendingWhen) ?
1 : (body) ? 2 : 3``); CEL's conditional rejects a non-bool condition, so a
code is only ever returned when every part that ran gave a bool. Checks fuse
to ``[]`` (skipped) or ``[pendingWhen, check₁, …]``, whose elements the
caller must still test for bool (a list literal accepts any value).
"""

from __future__ import annotations

from collections.abc import Sequence

SKIPPED = 0
PENDING = 1
PASSED = 2
FAILED = 3
#: the variable holding every candidate of an evaluation, for batched programs; not a
#: fact root, so policy expressions cannot name it
RELEASES = "__releases"


def fused_source(
    when: str | None, pending: str | None, body: str | None, checks: Sequence[str]
) -> str:
    """The fused expression over the parts' sources (``body`` None means checks)."""
    if body is not None:
        core = f"({body}) ? {PASSED} : {FAILED}"
        if pending is not None:
            core = f"({pending}) ? {PENDING} : ({core})"
        skipped = str(SKIPPED)
    else:
        first = f"({pending})" if pending is not None else "false"
        core = "[" + ", ".join([first, *(f"({c})" for c in checks)]) + "]"
        skipped = "[]"
    if when is None:
        return core
    return f"!({when}) ? {skipped} : ({core})"


def batched_source(fused: str) -> str:
    """The fused expression for every candidate at once: one result per candidate, in order."""
    return f"{RELEASES}.map(release, {fused})"
