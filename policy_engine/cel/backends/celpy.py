"""The fallback backend: cel-python (celpy), pure Python, no type checker.

Callers: ``cel.environment`` only. Hides celpy's pitfalls (ARCHITECTURE.md
§6): typed fields get their declared CEL type, numbers inside raw objects
compare across int/double like cel-cpp, function errors and celpy's
exceptions become ``EvalError`` values, and the process recursion limit that
``celpy.Environment()`` raises is restored. Never raises from ``evaluate``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version as dist_version
from typing import Any

import celpy
from celpy import celtypes
from celpy.evaluation import CELEvalError

from policy_engine.cel.backend import CelCompileError, CelEnv, classify_message
from policy_engine.cel.types import CelType, FunctionDecl, LibraryError, Semver
from policy_engine.errors import EvalError, cap


class CelpySemver:
    """Semver as a celpy value: opaque, equal by precedence-relevant parts."""

    __slots__ = ("value",)

    def __init__(self, value: Semver) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CelpySemver):
            return NotImplemented
        a, b = self.value, other.value
        return (a.major, a.minor, a.patch, a.prerelease) == (
            b.major,
            b.minor,
            b.patch,
            b.prerelease,
        )

    def __hash__(self) -> int:
        return hash(str(self.value))


class PortableInt(celtypes.IntType):
    """An int fact value; compares with doubles like cel-cpp does (heterogeneous numbers)."""

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, float):
            return float(self) == float(other)
        return bool(super().__eq__(other))

    def __ne__(self, other: Any) -> bool:
        return not self.__eq__(other)

    def __lt__(self, other: Any) -> bool:
        return (
            float(self) < float(other) if isinstance(other, float) else bool(super().__lt__(other))
        )

    def __le__(self, other: Any) -> bool:
        return (
            float(self) <= float(other) if isinstance(other, float) else bool(super().__le__(other))
        )

    def __gt__(self, other: Any) -> bool:
        return (
            float(self) > float(other) if isinstance(other, float) else bool(super().__gt__(other))
        )

    def __ge__(self, other: Any) -> bool:
        return (
            float(self) >= float(other) if isinstance(other, float) else bool(super().__ge__(other))
        )

    def __hash__(self) -> int:
        return super().__hash__()


class PortableDouble(celtypes.DoubleType):
    """A double fact value; compares with ints like cel-cpp does."""

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, int) and not isinstance(other, bool):
            return float(self) == float(other)
        return bool(super().__eq__(other))

    def __ne__(self, other: Any) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return super().__hash__()


@dataclass(frozen=True, slots=True)
class CelpyProgram:
    source: str
    result_type: CelType
    ast: Any
    functions: Mapping[str, Callable[..., Any]]
    env: Any


@dataclass(frozen=True, slots=True)
class CelpyBound:
    data: Mapping[str, Any]


class CelpyBackend:
    """celpy behind the CelBackend protocol."""

    name = "celpy"

    def __init__(self) -> None:
        self.version = dist_version("cel-python")
        limit = sys.getrecursionlimit()
        try:
            self._env = celpy.Environment()
        finally:
            sys.setrecursionlimit(limit)
        self._functions: dict[int, tuple[CelEnv, Mapping[str, Callable[..., Any]]]] = {}

    def compile(self, expr: str, env: CelEnv) -> CelpyProgram:
        try:
            ast = self._env.compile(expr)
        except Exception as exc:  # celpy and lark raise several unrelated classes
            line = int(getattr(exc, "line", 0) or 0)
            column = int(getattr(exc, "column", 0) or 0)
            first = str(exc.args[0] if exc.args else exc).strip().splitlines()
            message = "syntax error" + (f" near {first[0].strip()}" if first else "")
            raise CelCompileError("cel.parse", cap(message), line=line, column=column) from exc
        return CelpyProgram(expr, CelType.DYN, ast, self._function_table(env), self._env)

    def _function_table(self, env: CelEnv) -> Mapping[str, Callable[..., Any]]:
        cached = self._functions.get(id(env))
        if cached is not None and cached[0] is env:
            return cached[1]
        table = {d.name: self._dispatch(d) for d in env.functions if d.compiled_as is None}
        self._functions[id(env)] = (env, table)
        return table

    def _dispatch(self, decl: FunctionDecl) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            plain = [to_plain(a) for a in args]
            for overload in decl.overloads:
                if len(overload.params) == len(plain) and all(
                    _accepts(p, a) for p, a in zip(overload.params, plain, strict=True)
                ):
                    try:
                        return to_celpy(overload.impl(*plain))
                    except LibraryError as exc:
                        return CELEvalError(str(exc), LibraryError, (str(exc),))
            kinds = ", ".join(type(a).__name__ for a in plain)
            message = f"found no matching overload for '{decl.name}' applied to ({kinds})"
            return CELEvalError(message, TypeError, (message,))

        return call

    def bind(
        self, variables: Mapping[str, object], *, base: CelpyBound | None = None
    ) -> CelpyBound:
        data = dict(base.data) if base is not None else {}
        for name, value in variables.items():
            data[name] = to_celpy(value)
        return CelpyBound(data)

    def evaluate(self, program: CelpyProgram, bound: CelpyBound) -> object | EvalError:
        runner = celpy.InterpretedRunner(program.env, program.ast, dict(program.functions))
        try:
            value = runner.evaluate(dict(bound.data))
        except CELEvalError as exc:
            return _error(exc)
        except (
            TypeError,
            ValueError,
            KeyError,
            IndexError,
            ZeroDivisionError,
            OverflowError,
            AttributeError,
            RecursionError,
        ) as exc:
            return EvalError(_code_of_exception(exc), cap(f"{type(exc).__name__}: {exc}"))
        if isinstance(value, CELEvalError):
            return _error(value)
        plain: object = to_plain(value)
        return plain


def _accepts(param: CelType, value: Any) -> bool:
    checks: dict[CelType, Callable[[Any], bool]] = {
        CelType.STRING: lambda v: isinstance(v, str),
        CelType.BOOL: lambda v: isinstance(v, bool),
        CelType.INT: lambda v: isinstance(v, int) and not isinstance(v, bool),
        CelType.DOUBLE: lambda v: isinstance(v, float),
        CelType.TIMESTAMP: lambda v: isinstance(v, datetime),
        CelType.DURATION: lambda v: isinstance(v, timedelta),
        CelType.SEMVER: lambda v: isinstance(v, Semver),
        CelType.MAP: lambda v: isinstance(v, dict),
        CelType.LIST: lambda v: isinstance(v, list),
    }
    check = checks.get(param)
    return True if check is None else check(value)


_INNER = re.compile(r"CELEvalError\(\*\([\"'](?P<message>.*?)[\"'], <class '(?P<kind>\w+)'>")
_KINDS = {
    "KeyError": KeyError,
    "IndexError": IndexError,
    "ZeroDivisionError": ZeroDivisionError,
    "OverflowError": OverflowError,
    "TypeError": TypeError,
}


def _error(exc: CELEvalError) -> EvalError:
    args = exc.args
    message = str(args[0]) if args else str(exc)
    kind = args[1] if len(args) > 1 else None
    if (
        message.startswith(
            ("found no matching overload for _&&_", "found no matching overload for _||_")
        )
        and len(args) > 2
    ):
        # celpy reports "error && error" as an overload error; cel-cpp keeps the first error
        detail = args[2][0] if isinstance(args[2], tuple) and args[2] else args[2]
        inner = _INNER.search(str(detail))
        if inner is not None:
            message, kind = inner["message"], _KINDS.get(inner["kind"], TypeError)
    if kind is LibraryError:
        return EvalError("eval.function", cap(message))
    if kind is ZeroDivisionError:
        return EvalError("eval.division_by_zero", cap(message))
    if kind in (KeyError, IndexError):
        return EvalError("eval.no_such_key", cap(_short(message)))
    if kind is OverflowError:
        return EvalError("eval.overflow", cap(message))
    return EvalError(classify_message(message), cap(message))


def _short(message: str) -> str:
    """celpy appends the whole activation to unknown-name errors; keep the name only."""
    head, marker, _ = message.partition(" (in activation")
    return head if marker else message


def _code_of_exception(exc: BaseException) -> str:
    if isinstance(exc, ZeroDivisionError):
        return "eval.division_by_zero"
    if isinstance(exc, KeyError | IndexError):
        return "eval.no_such_key"
    if isinstance(exc, OverflowError):
        return "eval.overflow"
    return "eval.type_error"


def to_celpy(value: Any, *, raw: bool = True) -> Any:
    """Converts a plain Python value to celpy's types."""
    if value is None:
        return None
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        return PortableInt(value) if raw else celtypes.IntType(value)
    if isinstance(value, float):
        return PortableDouble(value) if raw else celtypes.DoubleType(value)
    if isinstance(value, str):
        return celtypes.StringType(value)
    if isinstance(value, bytes):
        return celtypes.BytesType(value)
    if isinstance(value, datetime):
        return celtypes.TimestampType(value.astimezone(UTC))
    if isinstance(value, timedelta):
        return celtypes.DurationType(value)
    if isinstance(value, Semver):
        return CelpySemver(value)
    if isinstance(value, Mapping):
        return celtypes.MapType(
            {celtypes.StringType(k): to_celpy(v, raw=raw) for k, v in value.items()}
        )
    if isinstance(value, list | tuple):
        return celtypes.ListType([to_celpy(v, raw=raw) for v in value])
    raise TypeError(f"cannot convert {type(value).__name__} to a CEL value")


def to_plain(value: Any) -> Any:
    """Converts celpy values back to plain Python values."""
    if value is None or isinstance(value, celtypes.NullType):
        return None
    if isinstance(value, CelpySemver):
        return value.value
    if isinstance(value, celtypes.BoolType | bool):
        return bool(value)
    if isinstance(value, celtypes.TimestampType):
        return datetime.fromtimestamp(value.timestamp(), tz=UTC).replace(
            microsecond=value.microsecond
        )
    if isinstance(value, celtypes.DurationType):
        return timedelta(seconds=value.total_seconds())
    if isinstance(value, celtypes.DoubleType | float):
        return float(value)
    if isinstance(value, celtypes.IntType | celtypes.UintType | int):
        return int(value)
    if isinstance(value, celtypes.StringType | str):
        return str(value)
    if isinstance(value, celtypes.BytesType | bytes):
        return bytes(value)
    if isinstance(value, Mapping):
        return {to_plain(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return value
