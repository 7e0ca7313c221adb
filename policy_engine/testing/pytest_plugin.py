"""pytest plugin: ``pytest tests/policy_cases`` collects every PolicyTest case as an item.

Callers: pytest, through the ``pytest11`` entry point. One item per case and
matrix row, per CEL backend (``--tidegate-backend all`` runs both). The only
module of the engine that imports pytest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from policy_engine.cel.environment import select_backend
from policy_engine.errors import Diagnostic, InputErrors, PolicyErrors, render_diagnostics
from policy_engine.rendering import tests as render
from policy_engine.testing import checks
from policy_engine.testing.documents import CaseSpec
from policy_engine.testing.runner import CaseResult, FileContext, case_rows, run_row
from policy_engine.testing.suite import Suite, discover

MARKERS = ("kind: PolicyTest", "kind: PolicyCheckTest")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tidegate")
    group.addoption(
        "--tidegate-backend",
        default="all",
        choices=["all", "auto", "cel-expr-python", "celpy"],
        help="CEL backend(s) for policy cases (default: all)",
    )


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    try:
        head = file_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if not any(marker in head for marker in MARKERS):
        return None
    return PolicyCaseFile.from_parent(parent, path=file_path)


def _backends(config: pytest.Config) -> list[str]:
    chosen = str(config.getoption("--tidegate-backend"))
    return ["cel-expr-python", "celpy"] if chosen == "all" else [chosen]


class PolicyCaseFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        for backend_name in _backends(self.config):
            suite = _suite(self.config, backend_name)
            try:
                tests, check_files, diagnostics = suite.contexts(discover([str(self.path)]))
            except (InputErrors, PolicyErrors) as exc:
                yield LoadErrorItem.from_parent(
                    self, name=f"load[{backend_name}]", text=render_diagnostics(exc.diagnostics)
                )
                continue
            errors = [d for d in diagnostics if d.severity.value == "error"]
            if errors:
                yield LoadErrorItem.from_parent(
                    self, name=f"load[{backend_name}]", text=render_diagnostics(errors)
                )
            for context in tests:
                for case in context.document.cases:
                    for case_id, row in _rows(context, case):
                        label = case_id.split("::", 1)[1]
                        yield PolicyCaseItem.from_parent(
                            self,
                            name=f"{label}[{backend_name}]",
                            context=context,
                            row=row,
                            case_id=case_id,
                        )
            for check_context in check_files:
                for result in checks.run_checks(check_context, suite.backend, lambda *_: True):
                    yield ResultItem.from_parent(
                        self, name=f"{result.name}[{backend_name}]", results=[result]
                    )


def _rows(context: FileContext, case: CaseSpec) -> list[tuple[str, CaseSpec]]:
    try:
        return case_rows(context, case)
    except InputErrors:
        return [(f"{context.display}::{case.name}", case)]


def _suite(config: pytest.Config, backend_name: str) -> Suite:
    cache: dict[str, Suite] = config.stash.setdefault(_SUITES, {})
    if backend_name not in cache:
        requested = None if backend_name == "auto" else backend_name
        cache[backend_name] = Suite(select_backend(requested).backend)
    return cache[backend_name]


_SUITES = pytest.StashKey[dict[str, Suite]]()


class CaseFailed(Exception):
    """A policy case did not meet its expectations."""


class PolicyCaseItem(pytest.Item):
    def __init__(self, *, context: FileContext, row: CaseSpec, case_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.context = context
        self.row = row
        self.case_id = case_id
        self.case_name = row.name

    def runtest(self) -> None:
        _assert([run_row(self.context, self.row, self.case_id)])

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        if isinstance(excinfo.value, CaseFailed | InputErrors):
            return (
                str(excinfo.value)
                if isinstance(excinfo.value, CaseFailed)
                else render_diagnostics(excinfo.value.diagnostics)
            )
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        line = self.context.case_lines.get(self.case_name, 1)
        return self.path, line - 1, f"policy case {self.case_name}"


class ResultItem(pytest.Item):
    def __init__(self, *, results: list[CaseResult], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.results = results

    def runtest(self) -> None:
        _assert(self.results)

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        return str(excinfo.value)


class LoadErrorItem(pytest.Item):
    def __init__(self, *, text: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.text = text

    def runtest(self) -> None:
        raise CaseFailed(self.text)

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        return self.text


def _assert(results: list[CaseResult]) -> None:
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise CaseFailed(render.text(_Report(failed)))
    if results and all(r.status in ("skipped", "todo") for r in results):
        pytest.skip(results[0].note or results[0].status)


class _Report:
    def __init__(self, cases: list[CaseResult]) -> None:
        self.cases: tuple[CaseResult, ...] = tuple(cases)
        self.diagnostics: tuple[Diagnostic, ...] = ()
        self.backend = ""
        self.duration_ms = 0.0

    def count(self, status: str) -> int:
        return sum(1 for c in self.cases if c.status == status)
