"""The CEL facade: backend selection, per-policy environments, checked compilation.

Callers: ``compiling`` (every expression of a policy), ``explaining`` (parts
of a rule), ``testing`` (function examples), the CLI (``--cel-backend``).
Owns every environment option; the backends stay interchangeable behind it.
Compilation here = limits → parse → static checks → rewrite → backend compile.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from policy_engine import windows
from policy_engine.cel import parsing
from policy_engine.cel.backend import CelBackend, CelCompileError, CelEnv, Program
from policy_engine.cel.library import standard_library
from policy_engine.cel.parsing import reads as variables
from policy_engine.cel.parsing import timing
from policy_engine.cel.types import CelType, FunctionDecl
from policy_engine.cel.variables import declared_variables
from policy_engine.errors import UsageError
from policy_engine.model.schema import Scalar
from policy_engine.model.times import TimeSyntaxError, parse_duration, parse_timestamp

MAX_LENGTH = 10_000
MAX_MACRO_DEPTH = 2
BACKEND_NAMES = ("cel-expr-python", "celpy")
ZONED_ACCESSORS = timing.ACCESSORS
STANDARD_GLOBALS = frozenset(
    {
        "size",
        "int",
        "uint",
        "double",
        "string",
        "bytes",
        "bool",
        "duration",
        "timestamp",
        "type",
        "dyn",
        "has",
        "matches",
    }
)
STANDARD_MEMBERS = frozenset(
    {
        "size",
        "contains",
        "startsWith",
        "endsWith",
        "matches",
        "all",
        "exists",
        "exists_one",
        "map",
        "filter",
        *ZONED_ACCESSORS,
    }
)
_NOT_PORTABLE = re.compile(r"\.\?|\borValue\(|\bcel\.bind\(|\boptional\.")


@dataclass(frozen=True, slots=True)
class BackendChoice:
    backend: CelBackend
    notice: str | None = None


def select_backend(requested: str | None = None) -> BackendChoice:
    """``auto`` (default, also from ``TIDEGATE_CEL_BACKEND``), ``cel-expr-python`` or ``celpy``."""
    name = requested or os.environ.get("TIDEGATE_CEL_BACKEND") or "auto"
    if name not in ("auto", *BACKEND_NAMES):
        raise UsageError(f"unknown CEL backend {name!r}", hint="use auto, cel-expr-python or celpy")
    if name in ("auto", "cel-expr-python"):
        try:
            from policy_engine.cel.backends.cpp import CppBackend

            return BackendChoice(CppBackend())
        except ImportError as exc:
            if name == "cel-expr-python":
                raise UsageError(
                    f"cel-expr-python cannot be imported: {exc}",
                    hint="pip install cel-expr-python, or use --cel-backend celpy",
                ) from exc
            notice = f"cel-expr-python unavailable ({exc}); using celpy"
    else:
        notice = None
    from policy_engine.cel.backends.celpy import CelpyBackend

    return BackendChoice(CelpyBackend(), notice)


def make_env(
    window_table: Mapping[str, windows.Window] | None = None,
    *,
    name: str = "default",
    extra_roots: Sequence[str] = (),
) -> CelEnv:
    """An environment with the standard library; ``inWindow('name')`` uses ``window_table``."""
    return CelEnv(
        declared_variables(extra_roots),
        standard_library(window_table or {}),
        name=name,
        extras={"windows": dict(window_table or {})},
    )


@dataclass(frozen=True, slots=True)
class Checked:
    """A compiled expression with its parse tree and static analysis."""

    source: str
    program: Program
    node: parsing.Node
    analysis: variables.Analysis
    warnings: tuple[variables.Problem, ...]


def compile_checked(
    backend: CelBackend,
    source: str,
    env: CelEnv,
    scope: variables.Scope,
    *,
    expect: CelType | None = None,
) -> Checked:
    """Compiles with every load-time check; raises CompileProblems listing all problems."""
    if len(source) > MAX_LENGTH:
        raise CompileProblems(
            [
                variables.Problem(
                    "cel.limit",
                    f"expression is {len(source)} characters (limit {MAX_LENGTH})",
                    0,
                    1,
                )
            ]
        )
    try:
        node = parsing.parse(source)
    except parsing.CelSyntaxError as exc:
        raise CompileProblems(
            [variables.Problem("cel.parse", str(exc), exc.offset, exc.offset + 1)]
        ) from exc
    analysis = variables.analyse(node, scope)
    problems = (
        list(analysis.problems)
        + _unknown_functions(node, env)
        + _literal_problems(node, env)
        + _limit_problems(node)
    )
    warnings = _warnings(source, node)
    if problems:
        raise CompileProblems(problems)
    rewritten, offsets = rewrite(node, env.functions)
    try:
        program = backend.compile(rewritten, env)
    except CelCompileError as exc:
        at = offsets(exc.offset_in(rewritten))
        raise CompileProblems([variables.Problem(exc.code, exc.message, at, at + 1)]) from exc
    declared = analysis.chain_type
    if (
        expect is not None
        and isinstance(declared, Scalar)
        and declared.name not in (expect.value, "raw")
    ):
        raise CompileProblems(
            [
                variables.Problem(
                    "cel.check",
                    f"expression must be {expect.value}, not {declared.name}",
                    0,
                    len(source),
                )
            ]
        )
    if expect is not None and program.result_type not in (expect, CelType.DYN):
        raise CompileProblems(
            [
                variables.Problem(
                    "cel.check",
                    f"expression must be {expect.value}, not {program.result_type.value}",
                    0,
                    len(source),
                )
            ]
        )
    return Checked(source, program, node, analysis, tuple(warnings))


class CompileProblems(Exception):
    """All problems found while compiling one expression."""

    def __init__(self, problems: Sequence[variables.Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = tuple(problems)


def rewrite(node: parsing.Node, functions: Sequence[FunctionDecl]) -> tuple[str, OffsetMap]:
    """Substitutes ``compiled_as`` templates (``since(x)`` → ``(now - (x))``)."""
    templates = {f.name: f.compiled_as for f in functions if f.compiled_as}
    edits: list[tuple[int, int, str]] = []
    for item in node.walk():
        template = templates.get(item.name) if item.kind == "call" else None
        if template and len(item.children) == 1:
            arg = item.children[0]
            head, tail = template.split("{0}")
            edits.append((item.start, arg.start, head))
            edits.append((arg.end, item.end, tail))
    source = node.source
    edits.sort()
    out: list[str] = []
    marks: list[tuple[int, int]] = []  # (new offset, old offset) at each edit end
    cursor = 0
    for start, end, text in edits:
        out.append(source[cursor:start])
        out.append(text)
        cursor = end
        marks.append((sum(map(len, out)), end))
    out.append(source[cursor:])
    return "".join(out), OffsetMap(tuple(marks))


@dataclass(frozen=True, slots=True)
class OffsetMap:
    """Maps an offset of rewritten text back to the original expression."""

    marks: tuple[tuple[int, int], ...]

    def __call__(self, offset: int) -> int:
        shift = 0
        for new, old in self.marks:
            if offset >= new:
                shift = old - new
        return max(0, offset + shift)


def _unknown_functions(node: parsing.Node, env: CelEnv) -> list[variables.Problem]:
    """Calls of functions neither CEL's standard library nor ours declares (both backends)."""
    globals_ = set(STANDARD_GLOBALS)
    members = set(STANDARD_MEMBERS)
    for decl in env.functions:
        for overload in decl.overloads:
            (members if overload.member else globals_).add(decl.name)
    problems: list[variables.Problem] = []
    for item in node.walk():
        if item.kind not in ("call", "member_call"):
            continue
        known = globals_ if item.kind == "call" else members
        if item.name in known:
            continue
        start = item.start if item.kind == "call" else item.children[0].end + 1
        start = node.source.find(item.name, start)
        close = difflib.get_close_matches(item.name, sorted(known), n=1)
        what = "function" if item.kind == "call" else "method"
        problems.append(
            variables.Problem(
                "cel.unknown_function",
                f"unknown {what} {item.name!r}",
                start,
                start + len(item.name),
                f"did you mean {close[0]!r}?" if close else None,
            )
        )
    return problems


def _literal_problems(node: parsing.Node, env: CelEnv) -> list[variables.Problem]:
    problems: list[variables.Problem] = []
    by_name = {f.name: f for f in env.functions}
    window_table = env.extras.get("windows", {})
    for item in node.walk():
        if item.kind not in ("call", "member_call"):
            continue
        args = item.children
        problem = _check_builtin_literal(item, args, window_table)
        if problem is not None:
            problems.append(problem)
        decl = by_name.get(item.name)
        for check in decl.literal_checks if decl else ():
            if check.arity is not None and check.arity != len(args):
                continue
            if check.position < len(args) and args[check.position].kind == "literal":
                message = check.check(args[check.position].value)
                if message:
                    arg = args[check.position]
                    problems.append(
                        variables.Problem("cel.invalid_argument", message, arg.start, arg.end)
                    )
    return problems


def _check_builtin_literal(
    call: parsing.Node, args: tuple[parsing.Node, ...], window_table: Mapping[str, object]
) -> variables.Problem | None:
    literal = [a for a in args if a.kind == "literal" and isinstance(a.value, str)]
    if not literal:
        return None
    arg = literal[-1]
    value = arg.value
    message: str | None = None
    hint: str | None = None
    if call.kind == "call" and call.name == "duration":
        message = _try(lambda: parse_duration(value), f"duration(): {value!r} is not a duration")
    elif call.kind == "call" and call.name == "timestamp":
        message = _try(lambda: parse_timestamp(value), f"timestamp(): {value!r} is not RFC 3339")
    elif call.kind == "member_call" and call.name == "matches" and arg is args[-1]:
        message = _try(lambda: re.compile(value), f"matches(): {value!r} is not a valid regex")
    elif call.kind == "member_call" and call.name in ZONED_ACCESSORS and len(args) == 2:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            message = f"{call.name}(): unknown time zone {value!r}"
            close = difflib.get_close_matches(value, sorted(available_timezones()), n=1)
            hint = f"did you mean {close[0]!r}?" if close else None
    elif (
        call.kind == "call"
        and call.name in ("inWindow", "nextTransition")
        and len(args) == 2
        and args[1] is arg
        and value not in window_table
    ):
        known = ", ".join(sorted(window_table)) or "none"
        message = f"{call.name}(): no window {value!r} in this policy (windows: {known})"
    if message is None:
        return None
    return variables.Problem("cel.invalid_argument", message, arg.start, arg.end, hint)


def _try(action: object, message: str) -> str | None:
    try:
        action()  # type: ignore[operator]
    except (TimeSyntaxError, re.error, ValueError):
        return message
    return None


def _limit_problems(node: parsing.Node) -> list[variables.Problem]:
    depth = parsing.max_macro_depth(node)
    if depth > MAX_MACRO_DEPTH:
        return [
            variables.Problem(
                "cel.limit",
                f"comprehensions nested {depth} deep (limit {MAX_MACRO_DEPTH})",
                node.start,
                node.end,
            )
        ]
    return []


def _warnings(source: str, node: parsing.Node) -> list[variables.Problem]:
    found: list[variables.Problem] = []
    match = _NOT_PORTABLE.search(source)
    if match:
        found.append(
            variables.Problem(
                "cel.not_portable",
                f"{match.group()!r} is not portable to the celpy backend",
                match.start(),
                match.end(),
            )
        )
    for item in node.walk():
        if item.kind == "member_call" and item.name in ZONED_ACCESSORS and len(item.children) == 1:
            found.append(
                variables.Problem(
                    "time.no_timezone",
                    f"{item.name}() without a time zone means UTC",
                    item.start,
                    item.end,
                    f"pass a zone, e.g. {item.name}('Europe/Berlin')",
                )
            )
    return found
