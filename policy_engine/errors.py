"""Error codes, source locations and the error classes of the engine.

Callers: every layer of ``policy_engine``; the CLI maps the classes to exit
codes. This module must not import anything else from the engine.

Error tree::

    TidegateError
    ├── PolicyErrors      authoring problems, all of a run (exit 3)
    ├── InputErrors       bad test, fixture, snapshot or facts file (exit 4)
    ├── UsageError        bad flags or a missing extra (exit 2)
    └── NothingSelected   no case or Rollout matched the selection (exit 5)

    EvalError             a *value*: a run-time CEL or fact error of one rule
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

FOREIGN_TEXT_LIMIT = 256


class Severity(StrEnum):
    """How serious a diagnostic is."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class SourceLocation:
    """A position in a file: 1-based line and column, optional end column."""

    file: str
    line: int = 0
    column: int = 0
    end_column: int | None = None
    end_line: int | None = None

    def __str__(self) -> str:
        if not self.line:
            return self.file
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One located problem: stable code, message, optional hint and context."""

    code: str
    message: str
    location: SourceLocation | None = None
    hint: str | None = None
    path: str | None = None
    rule: str | None = None
    severity: Severity = Severity.ERROR
    source_line: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if len(self.message) >= FOREIGN_TEXT_LIMIT:
            object.__setattr__(self, "message", cap(self.message, FOREIGN_TEXT_LIMIT - 1))

    @property
    def sort_key(self) -> tuple[str, int, int, str]:
        loc = self.location
        if loc is None:
            return ("", 0, 0, self.code)
        return (loc.file, loc.line, loc.column, self.code)


def cap(text: str, limit: int = FOREIGN_TEXT_LIMIT) -> str:
    """Shortens foreign text (library messages, values) to ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class TidegateError(Exception):
    """Base of the errors that end a CLI run with a documented exit code."""

    exit_code = 70


class _DiagnosticsError(TidegateError):
    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(
            sorted(diagnostics, key=lambda d: d.sort_key)
        )
        first = self.diagnostics[0].message if self.diagnostics else "no diagnostics"
        super().__init__(f"{len(self.diagnostics)} error(s); first: {first}")

    @property
    def errors(self) -> Sequence[Diagnostic]:
        return [d for d in self.diagnostics if d.severity is Severity.ERROR]


class PolicyErrors(_DiagnosticsError):
    """Authoring errors in policies or cel HealthChecks (exit 3).

    ``loaded`` holds what did load despite the errors, so callers can go on
    checking it and report every problem of every file at once.
    """

    exit_code = 3

    def __init__(self, diagnostics: Iterable[Diagnostic], loaded: Sequence[object] = ()) -> None:
        super().__init__(diagnostics)
        self.loaded = tuple(loaded)


class InputErrors(_DiagnosticsError):
    """Errors in tests, fixtures, snapshots or facts files (exit 4)."""

    exit_code = 4


class NothingSelected(TidegateError):
    """No test case or Rollout matched the selection (exit 5)."""

    exit_code = 5


class UsageError(TidegateError):
    """Bad command-line usage or a missing optional extra (exit 2)."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True, slots=True)
class EvalError:
    """A run-time error of one rule, kept as a value (never raised).

    ``code`` is one of ``eval.*`` or ``fact.*``; ``span`` is the text of the
    failing part when known.
    """

    code: str
    message: str
    span: str | None = None

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def render_diagnostic(d: Diagnostic) -> str:
    """Renders one diagnostic in the POLICY-FORMATS.md §11 shape (caret under the span).

    Example::

        policies/p.yaml:45:33: error[cel.undeclared_fact]: no field 'healthySnice' on Environment
            |
         45 |         since(variables.staging.healthySnice) >= params.minSoak
            |                                 ^^^^^^^^^^^^
            = in spec.rules[1].expression (rule staging-soaked)
            = hint: did you mean 'healthySince'?
    """
    head = f"{d.severity.value}[{d.code}]: {d.message}"
    loc = d.location
    lines = [f"{loc}: {head}" if loc is not None else head]
    if loc is not None and loc.line and d.source_line is not None:
        number = str(loc.line)
        blank = " " * (len(number) + 2) + "|"
        text = d.source_line.rstrip("\r\n")
        column = max(loc.column, 1)
        width = 1
        if loc.end_column is not None and loc.end_column > column:
            width = loc.end_column - column
        pad = "".join("\t" if c == "\t" else " " for c in text[: column - 1])
        pad += " " * max(0, column - 1 - len(text))
        lines += [blank, f" {number} | {text}", f"{blank} {pad}{'^' * width}"]
    indent = " " * (len(str(loc.line)) + 2 if loc is not None and loc.line else 4)
    if d.path:
        lines.append(f"{indent}= in {d.path}" + (f" (rule {d.rule})" if d.rule else ""))
    elif d.rule:
        lines.append(f"{indent}= in rule {d.rule}")
    if d.hint:
        lines.append(f"{indent}= hint: {d.hint}")
    return "\n".join(lines)


def render_diagnostics(ds: Iterable[Diagnostic]) -> str:
    """Renders diagnostics sorted by file, line, column, then a summary line.

    The summary reads ``1 error in 1 file`` or ``3 errors in 2 files, 1 warning``.
    The result ends with a newline.
    """
    ordered = sorted(ds, key=lambda d: d.sort_key)
    errors = sum(1 for d in ordered if d.severity is Severity.ERROR)
    warnings = len(ordered) - errors
    files = len({d.location.file for d in ordered if d.location is not None})
    where = f" in {files} {_plural(files, 'file')}"
    if errors:
        summary = f"{errors} {_plural(errors, 'error')}{where}"
        if warnings:
            summary += f", {warnings} {_plural(warnings, 'warning')}"
    elif warnings:
        summary = f"{warnings} {_plural(warnings, 'warning')}{where}"
    else:
        summary = "no problems"
    return "".join(render_diagnostic(d) + "\n" for d in ordered) + summary + "\n"


def _plural(count: int, word: str) -> str:
    return word if count == 1 else word + "s"
