"""The primary backend: cel-expr-python (Google's cel-cpp), type-checked and fast.

Callers: ``cel.environment`` only. Hides the pitfalls listed in
ARCHITECTURE.md §6: datetimes nested in ``dyn`` values become protobuf
Timestamps, errors returned as values (and exceptions of custom functions,
which arrive as ``OUT_OF_RANGE``) become ``EvalError``. Never raises from
``evaluate``.

cel-expr-python 0.1.3 returns ``None`` for every CEL ``null`` in a result
without taking a reference (CPython < 3.12 then frees ``None`` and aborts);
``_restore_none`` restores exactly one reference per ``None`` it receives. A test
evaluates null-bearing results thousands of times to keep this honest.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from importlib.metadata import version as dist_version
from typing import Any

from cel_expr_python import cel
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    message_factory,
    timestamp_pb2,
)

from policy_engine.cel.backend import CelCompileError, CelEnv, classify_message
from policy_engine.cel.library.semver import parse_semver
from policy_engine.cel.types import CelType, FunctionDecl, LibraryError, Overload, Semver
from policy_engine.errors import EvalError, cap

SEMVER_MESSAGE = "tidegate.lib.Semver"
_PLAIN = frozenset({str, int, float, bool, type(None), bytes})
_SCALAR = frozenset({str, bytes})
_PASSED_BACK = frozenset({str, int, float, bool, type(None), bytes, datetime, timedelta})
_ERROR = cel.Type.ERROR
_FUNCTION_ERROR = "tidegate.function: "


@dataclass(frozen=True, slots=True)
class CppProgram:
    source: str
    result_type: CelType
    expression: Any
    env: Any


@dataclass(slots=True)
class CppBound:
    data: dict[str, Any]
    activation: Any = None


class CppBackend:
    """cel-expr-python behind the CelBackend protocol."""

    name = "cel-expr-python"

    def __init__(self) -> None:
        self.version = dist_version("cel-expr-python")
        self._pool = descriptor_pool.DescriptorPool()
        self._pool.Add(_semver_file())
        self._semver_class = message_factory.GetMessageClass(
            self._pool.FindMessageTypeByName(SEMVER_MESSAGE)
        )
        self._envs: dict[int, tuple[CelEnv, Any]] = {}

    # -- compile ---------------------------------------------------------------
    def compile(self, expr: str, env: CelEnv) -> CppProgram:
        native = self._native_env(env)
        try:
            expression = native.compile(expr)
        except RuntimeError as exc:
            raise _compile_error(str(exc)) from exc
        return CppProgram(expr, _cel_type_of(expression.return_type()), expression, native)

    def _native_env(self, env: CelEnv) -> Any:
        cached = self._envs.get(id(env))
        if cached is not None and cached[0] is env:
            return cached[1]
        variables = {name: self._type(t) for name, t in env.variables.items()}
        functions = [self._function(decl) for decl in env.functions if decl.compiled_as is None]
        native = cel.NewEnv(self._pool, variables=variables, functions=functions)
        self._envs[id(env)] = (env, native)
        return native

    def _function(self, decl: FunctionDecl) -> Any:
        return cel.FunctionDecl(decl.name, [self._overload(o) for o in decl.overloads])

    def _overload(self, overload: Overload) -> Any:
        return cel.Overload(
            overload.id,
            self._type(overload.result),
            [self._type(p) for p in overload.params],
            is_member=overload.member,
            impl=self._adapt(overload.impl),
        )

    def _adapt(self, impl: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            try:
                result = impl(*(self._from_native(a) for a in args))
            except LibraryError as exc:
                raise ValueError(_FUNCTION_ERROR + str(exc)) from exc
            return self._to_native(result)

        return call

    def _type(self, cel_type: CelType) -> Any:
        if cel_type is CelType.SEMVER:
            return cel.Type(SEMVER_MESSAGE)
        return _TYPES[cel_type]

    # -- bind and evaluate -----------------------------------------------------
    def bind(self, variables: Mapping[str, object], *, base: CppBound | None = None) -> CppBound:
        data = dict(base.data) if base is not None else {}
        for name, value in variables.items():
            # a top-level aware datetime converts natively (only nested ones need a Timestamp)
            aware = isinstance(value, datetime) and value.utcoffset() is not None
            data[name] = value if aware else self._to_native(value)
        return CppBound(data)

    def evaluate(self, program: CppProgram, bound: CppBound) -> object | EvalError:
        # one activation per binding, whatever environment compiled the program: an
        # activation holds only the data (converted lazily, once per activation), and
        # library functions are bound to programs at compile time
        activation = bound.activation
        if activation is None:
            activation = bound.activation = program.env.Activation(bound.data)
        try:
            value = program.expression.eval(activation)
        except RuntimeError as exc:  # missing variables surface as exceptions
            return _eval_error(str(exc))
        plain: object = value.plain_value()  # an error's plain value is its message
        kind = type(plain)
        if kind is bool or kind is int or kind is float:
            return plain  # the common case: never an error, no None inside
        if value.type() == _ERROR:
            return _eval_error(str(value.value()))
        if kind in _SCALAR:
            return plain
        converted: object = self._from_native(_restore_none(plain))
        return converted

    # -- value conversion ------------------------------------------------------
    def _to_native(self, value: Any) -> Any:
        kind = type(value)
        if kind in _PLAIN:
            return value
        # copy on write: facts are mostly plain, and a plain dict or list is passed as it is
        if kind is dict:
            changed: dict[Any, Any] | None = None
            for key, item in value.items():
                if type(item) not in _PLAIN:
                    converted = self._to_native(item)
                    if converted is not item:
                        changed = changed or dict(value)
                        changed[key] = converted
            return value if changed is None else changed
        if kind is list or kind is tuple:
            items: list[Any] | None = None if kind is list else list(value)
            for index, item in enumerate(value):
                if type(item) not in _PLAIN:
                    converted = self._to_native(item)
                    if converted is not item:
                        items = items or list(value)
                        items[index] = converted
            return value if items is None else items
        if isinstance(value, datetime):
            stamp = timestamp_pb2.Timestamp()
            stamp.FromDatetime(value)
            return stamp
        if isinstance(value, timedelta):
            span = duration_pb2.Duration()
            span.FromTimedelta(value)
            return span
        if isinstance(value, Semver):
            # build metadata never takes part in equality or precedence
            return self._semver_class(text=str(replace(value, build=())))
        if isinstance(value, dict):
            return {k: self._to_native(v) for k, v in value.items()}
        return value

    def _from_native(self, value: Any) -> Any:
        if type(value) in _PASSED_BACK:
            return value
        passed = _PASSED_BACK
        if isinstance(value, dict):
            return {k: v if type(v) in passed else self._from_native(v) for k, v in value.items()}
        if isinstance(value, list):
            return [v if type(v) in passed else self._from_native(v) for v in value]
        if isinstance(value, timestamp_pb2.Timestamp):
            return value.ToDatetime(tzinfo=UTC)
        if isinstance(value, duration_pb2.Duration):
            return value.ToTimedelta()
        if isinstance(value, self._semver_class):
            return parse_semver(value.text)
        return value


_TYPES: dict[CelType, Any] = {
    CelType.BOOL: cel.Type.BOOL,
    CelType.INT: cel.Type.INT,
    CelType.UINT: cel.Type.UINT,
    CelType.DOUBLE: cel.Type.DOUBLE,
    CelType.STRING: cel.Type.STRING,
    CelType.BYTES: cel.Type.BYTES,
    CelType.TIMESTAMP: cel.Type.TIMESTAMP,
    CelType.DURATION: cel.Type.DURATION,
    CelType.LIST: cel.Type.List(cel.Type.DYN),
    CelType.MAP: cel.Type.Map(cel.Type.STRING, cel.Type.DYN),
    CelType.DOUBLE_MAP: cel.Type.Map(cel.Type.STRING, cel.Type.DOUBLE),
    CelType.DYN: cel.Type.DYN,
    CelType.NULL: cel.Type.NULL,
}


def _restore_none(plain: Any) -> Any:
    """Restores the reference to ``None`` that ``Value.plain_value()`` forgets, once per None."""
    for _ in range(_count_none(plain)):
        _INCREF(None)
    return plain


def _count_none(value: Any) -> int:
    if value is None:
        return 1
    if isinstance(value, dict):
        items: Any = value.values()
    elif isinstance(value, list):
        items = value
    else:
        return 0
    count = 0
    for item in items:
        if item is None:
            count += 1
        elif isinstance(item, dict | list):
            count += _count_none(item)
    return count


_INCREF = ctypes.pythonapi.Py_IncRef
_INCREF.argtypes = [ctypes.py_object]
_INCREF.restype = None


def _cel_type_of(native: Any) -> CelType:
    name = str(native.name()).lower()
    for cel_type in CelType:
        if name == cel_type.value.lower():
            return cel_type
    if name.startswith("list"):
        return CelType.LIST
    if name.startswith("map"):
        return CelType.MAP
    if name == SEMVER_MESSAGE.lower():
        return CelType.SEMVER
    return CelType.DYN


def _semver_file() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(
        name="tidegate/lib/semver.proto", package="tidegate.lib", syntax="proto3"
    )
    message = proto.message_type.add(name="Semver")
    message.field.add(
        name="text", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING, label=1
    )
    return proto


def _compile_error(text: str) -> CelCompileError:
    """Turns cel-cpp's ``ERROR: <input>:L:C: msg`` text into a located error."""
    match = re.search(r"<input>:(\d+):(\d+): (.*?)(?:\n|$)", text)
    if match is None:
        return CelCompileError("cel.check", cap(text))
    line, column, message = int(match.group(1)), int(match.group(2)), match.group(3)
    code = "cel.parse" if "Syntax error" in message else "cel.check"
    if "undeclared reference to '" in message and "(in container" in message:
        code = "cel.unknown_function" if "function" in message else "cel.check"
    return CelCompileError(code, cap(message), line=line, column=column)


def _eval_error(text: str) -> EvalError:
    message = text.split(": ", 1)[1] if text[:2].isupper() and ": " in text else text
    message = message.replace(" [OUT_OF_RANGE]", "").replace(" [INVALID_ARGUMENT]", "")
    if _FUNCTION_ERROR in message:
        detail = message.split(_FUNCTION_ERROR, 1)[1]
        return EvalError("eval.function", cap(detail.strip()))
    return EvalError(classify_message(message), cap(message.strip()))
