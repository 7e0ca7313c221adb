"""PolicyCheckTest cases: load and compile policies, compare the diagnostics with ``expect``.

Callers: ``testing.suite``. Paths in cases and in ``at`` are relative to the
test file. Never prints.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from policy_engine import loading
from policy_engine.cel.backend import CelBackend
from policy_engine.compiling import compile_policies
from policy_engine.errors import Diagnostic, PolicyErrors, Severity
from policy_engine.model.yamlsource import YamlSourceMap
from policy_engine.testing.documents import CheckCaseSpec, DiagnosticExpect, PolicyCheckTestDocument
from policy_engine.testing.expectations import Mismatch, text_matches
from policy_engine.testing.runner import CaseResult, not_run_result

Accepts = Callable[[str, str, str, Sequence[str], Sequence[str]], bool]


@dataclass(frozen=True, slots=True)
class CheckContext:
    document: PolicyCheckTestDocument
    file: str
    display: str
    source: YamlSourceMap


def run_checks(context: CheckContext, backend: CelBackend, accepts: Accepts) -> list[CaseResult]:
    out: list[CaseResult] = []
    for index, case in enumerate(context.document.cases):
        case_id = f"{context.display}::{case.name}"
        if not accepts(case_id, context.display, case.name, case.tags, ()):
            continue
        line = context.source.locate(("cases", index, "name"))[0]
        not_run = not_run_result(case, case_id, context.file, line)
        if not_run is not None:
            out.append(not_run)
        else:
            mismatches = _run(context, case, backend)
            out.append(
                CaseResult(
                    case_id,
                    context.file,
                    line,
                    case.name,
                    "failed" if mismatches else "passed",
                    tuple(mismatches),
                )
            )
    return out


def _run(context: CheckContext, case: CheckCaseSpec, backend: CelBackend) -> list[Mismatch]:
    base = Path(context.file).parent
    paths = [str(base / p) for p in ([case.policy] if case.policy else []) + list(case.policies)]
    diagnostics: list[Diagnostic] = []
    try:
        compiled = compile_policies(loading.load_policy_paths(paths), backend)
        diagnostics += [w for p in compiled for w in p.warnings]
    except PolicyErrors as exc:
        diagnostics += exc.diagnostics
    errors = [d for d in diagnostics if d.severity is Severity.ERROR]
    warnings = [d for d in diagnostics if d.severity is Severity.WARNING]
    found: list[Mismatch] = []
    if case.expect.valid is not None and case.expect.valid != (not errors):
        found.append(
            Mismatch("valid", case.expect.valid, [_describe(d, base) for d in errors] or True)
        )
    found += _listed(case.expect.errors, errors, base, "errors", case.allow_other_errors)
    found += _listed(case.expect.warnings, warnings, base, "warnings", True)
    return found


def _listed(
    wanted: Sequence[DiagnosticExpect],
    actual: Sequence[Diagnostic],
    base: Path,
    label: str,
    allow_others: bool,
) -> list[Mismatch]:
    found: list[Mismatch] = []
    matched: set[int] = set()
    for item in wanted:
        hit = next(
            (i for i, d in enumerate(actual) if i not in matched and _matches(item, d, base)), None
        )
        if hit is None:
            found.append(
                Mismatch(
                    label,
                    item.model_dump(exclude_none=True, by_alias=True),
                    [_describe(d, base) for d in actual] or "none",
                )
            )
        else:
            matched.add(hit)
    if not allow_others:
        extra = [_describe(d, base) for i, d in enumerate(actual) if i not in matched]
        if extra:
            found.append(Mismatch(f"{label} (unlisted)", "none", extra))
    return found


def _matches(item: DiagnosticExpect, diagnostic: Diagnostic, base: Path) -> bool:
    if item.code != diagnostic.code:
        return False
    if item.at is not None and item.at != _at(diagnostic, base):
        return False
    if item.path is not None and item.path != diagnostic.path:
        return False
    return item.message is None or text_matches(item.message, diagnostic.message)


def _at(diagnostic: Diagnostic, base: Path) -> str:
    loc = diagnostic.location
    if loc is None:
        return ""
    file = (
        os.path.relpath(loc.file, base)
        if os.path.isabs(loc.file) or Path(loc.file).exists()
        else loc.file
    )
    return f"{file}:{loc.line}:{loc.column}"


def _describe(diagnostic: Diagnostic, base: Path) -> str:
    return f"{_at(diagnostic, base)} {diagnostic.code}: {diagnostic.message}"
