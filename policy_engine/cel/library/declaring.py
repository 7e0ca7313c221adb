"""How library functions are declared: name, overloads, implementation, docs, examples.

Callers: each ``cel/library/<family>.py`` declares its functions with these
types; backends register them; ``tidegate functions`` renders them; tests run
every example on every backend. Declarations do no work at import.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from policy_engine.cel.types import CelType


class LibraryError(Exception):
    """Raised by a function implementation for a bad argument.

    Backends turn it into an ``eval.function`` error value whose message is
    ``str(exc)``; it never escapes an evaluation.
    """


@dataclass(frozen=True, slots=True)
class Overload:
    """One signature: ``params`` are CEL types; ``member`` means receiver-style call."""

    id: str
    params: tuple[CelType, ...]
    result: CelType
    impl: Callable[..., Any]
    member: bool = False

    def signature(self, name: str) -> str:
        args = [p.value for p in self.params]
        if self.member:
            return f"{args[0]}.{name}({', '.join(args[1:])}) -> {self.result.value}"
        return f"{name}({', '.join(args)}) -> {self.result.value}"


@dataclass(frozen=True, slots=True)
class Example:
    """An expression and its expected result; every example is also a test.

    ``result`` is a plain Python value, or ``error`` names the expected error
    code (``eval.function``) when the example demonstrates a failure.
    """

    expression: str
    result: Any = None
    error: str | None = None
    now: str = "2026-03-04T10:30:00Z"


@dataclass(frozen=True, slots=True)
class LiteralCheck:
    """A load-time check of a literal argument at ``position`` (0-based, receiver is 0)."""

    position: int
    check: Callable[[Any], str | None]


@dataclass(frozen=True, slots=True)
class FunctionDecl:
    """A library function declared once: signatures, summary, examples, literal checks.

    ``needs_now``: the implementation takes the evaluation's ``now`` as a
    hidden first argument (``since``). ``needs_windows``: it takes the policy's
    window table as a hidden argument after ``now`` (``inWindow`` by name).
    """

    name: str
    overloads: tuple[Overload, ...]
    summary: str
    examples: tuple[Example, ...] = ()
    family: str = ""
    literal_checks: tuple[LiteralCheck, ...] = field(default=())
    time_edges: bool = False

    def signatures(self) -> Sequence[str]:
        return [o.signature(self.name) for o in self.overloads]
