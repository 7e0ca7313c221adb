"""CEL type names, the opaque Semver value, and how library functions are declared.

Callers: ``cel.library`` declares functions with ``FunctionDecl``; each
backend maps these types to its own and registers the declarations;
``tidegate functions`` renders them. No CEL implementation is imported here
and nothing registers at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class CelType(StrEnum):
    """Types used in function signatures and variable declarations."""

    BOOL = "bool"
    INT = "int"
    UINT = "uint"
    DOUBLE = "double"
    STRING = "string"
    BYTES = "bytes"
    TIMESTAMP = "timestamp"
    DURATION = "duration"
    LIST = "list"
    MAP = "map"
    DOUBLE_MAP = "map(string, double)"
    DYN = "dyn"
    SEMVER = "Semver"
    NULL = "null_type"


@dataclass(frozen=True, slots=True, order=False)
class Semver:
    """A parsed semantic version (SemVer 2.0.0); opaque to CEL programs.

    ``prerelease`` holds the dot-separated identifiers; ``build`` is kept for
    display only and never affects comparison.
    """

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text


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
    """A load-time check of a literal argument at ``position`` (0-based, receiver is 0).

    ``arity``: apply only to calls with that many arguments (None: any call).
    """

    position: int
    check: Callable[[Any], str | None]
    arity: int | None = None


@dataclass(frozen=True, slots=True)
class FunctionDecl:
    """A library function declared once: signatures, summary, examples, literal checks.

    ``time_edges``: calls reading ``now`` through this function have solvable
    time edges (POLICY-FORMATS.md §5.4). ``compiled_as``: a template over the
    argument text (``now - ({0})``) the environment substitutes before
    compiling; such functions are never registered with a backend.
    """

    name: str
    overloads: tuple[Overload, ...]
    summary: str
    examples: tuple[Example, ...] = ()
    family: str = ""
    literal_checks: tuple[LiteralCheck, ...] = field(default=())
    time_edges: bool = False
    compiled_as: str | None = None

    def signatures(self) -> Sequence[str]:
        return [o.signature(self.name) for o in self.overloads]
