"""The CEL backend protocol: compile, bind, evaluate; and the environment it compiles in.

Callers: ``cel.environment`` picks a backend; ``compiling``, ``evaluation`` and
``explaining`` use it only through this protocol. Backends never raise from
``evaluate``: errors come back as ``EvalError`` values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from policy_engine.cel.types import CelType, FunctionDecl
from policy_engine.errors import EvalError


class CelCompileError(Exception):
    """A compile-time problem of an expression; ``code`` is ``cel.*``.

    The position is a 0-based ``offset`` or a 1-based ``line``/``column``
    within the expression text, whichever the backend knows.
    """

    def __init__(
        self, code: str, message: str, offset: int = 0, *, line: int = 0, column: int = 0
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.offset = offset
        self.line = line
        self.column = column

    def offset_in(self, source: str) -> int:
        """The 0-based offset of the problem within ``source``."""
        if not self.line:
            return self.offset
        lines = source.split("\n")
        before = sum(len(text) + 1 for text in lines[: self.line - 1])
        return min(len(source), before + max(self.column - 1, 0))


@dataclass(frozen=True, slots=True, eq=False)
class CelEnv:
    """Declared variables (name → type) and library functions for one policy."""

    variables: Mapping[str, CelType]
    functions: tuple[FunctionDecl, ...]
    name: str = "default"
    extras: Mapping[str, Any] = field(default_factory=dict)


#: A compiled expression; each backend has its own class with ``source`` and
#: ``result_type``. Opaque to callers, hence ``Any`` in the protocol.
Program = Any

#: Variables converted once for a backend; rebinding adds or replaces names.
Bound = Any


class CelBackend(Protocol):
    """One CEL implementation behind a uniform interface."""

    name: str
    version: str

    def compile(self, expr: str, env: CelEnv) -> Program:
        """Parses and (where supported) type-checks; raises CelCompileError."""
        ...

    def bind(self, variables: Mapping[str, object], *, base: Bound | None = None) -> Bound:
        """Converts plain Python values once; ``base`` supplies the names not given.

        A backend may keep the given containers as they are (nothing to convert):
        callers must not change them afterwards.
        """
        ...

    def evaluate(self, program: Program, bound: Bound) -> object | EvalError:
        """Evaluates to a plain Python value, or an EvalError; never raises."""
        ...


def classify_message(message: str) -> str:
    """Maps a backend's error text to a stable ``eval.*`` code."""
    lowered = message.lower()
    table = (
        (
            ("divide by zero", "division by zero", "modulus by zero", "modulo by zero"),
            "eval.division_by_zero",
        ),
        (("overflow", "out of range"), "eval.overflow"),
        (
            (
                "key not found",
                "no such key",
                "no such member",
                "no value with name",
                "undeclared reference",
                "index out of",
                "index error",
                "invalid index",
                "unknown variable",
            ),
            "eval.no_such_key",
        ),
        (
            ("no matching overload", "no overload", "no such overload", "found no matching"),
            "eval.no_matching_overload",
        ),
    )
    for needles, code in table:
        if any(n in lowered for n in needles):
            return code
    return "eval.type_error"
