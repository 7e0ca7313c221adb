"""``tidegate test`` as a library: discovery, file contexts, filters, the TestReport.

Callers: the CLI verb and the pytest plugin. Dispatches documents by kind
(PolicyTest, PolicyCheckTest run; FactFixture, FactSnapshot are data;
others warn ``input.unrecognised_kind``), compiles each file's policies
once, and runs cases. Never prints.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from policy_engine import loading
from policy_engine.cel.backend import CelBackend
from policy_engine.compiling import CompiledPolicy, compile_policies
from policy_engine.errors import Diagnostic, InputErrors, Severity, SourceLocation
from policy_engine.model.policy import Origin
from policy_engine.model.yamlsource import YamlError, YamlSourceMap, read_yaml_documents
from policy_engine.testing import checks, composing, expectations
from policy_engine.testing.documents import (
    FactFixtureDocument,
    PolicyCheckTestDocument,
    PolicyTestDocument,
)
from policy_engine.testing.runner import CaseResult, FileContext, run_case, validate_references

DATA_KINDS = ("FactFixture", "FactSnapshot", "RolloutPolicy", "ClusterRolloutPolicy")


@dataclass(frozen=True, slots=True)
class Filters:
    """``--run`` regex over case IDs and ``--filter KEY=GLOB`` (same key ORs, keys AND)."""

    run: re.Pattern[str] | None = None
    globs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def accepts(
        self, case_id: str, file: str, name: str, tags: Sequence[str], rules: Sequence[str]
    ) -> bool:
        if self.run is not None and not self.run.search(case_id):
            return False
        values = {"file": [file], "case": [name], "tag": list(tags), "rule": list(rules)}
        return all(
            any(fnmatch(v, g) for v in values.get(key, []) for g in globs)
            for key, globs in self.globs.items()
        )


@dataclass(frozen=True, slots=True)
class TestReport:
    cases: tuple[CaseResult, ...]
    diagnostics: tuple[Diagnostic, ...]
    backend: str
    duration_ms: float

    def count(self, status: str) -> int:
        return sum(1 for c in self.cases if c.status == status)

    @property
    def input_errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity is Severity.ERROR)


@dataclass(frozen=True, slots=True)
class LoadedFile:
    path: str
    display: str
    documents: tuple[tuple[Any, YamlSourceMap], ...]


def discover(paths: Sequence[str], root: Path | None = None) -> list[LoadedFile]:
    """Reads every ``*.yaml``/``*.yml`` under ``paths`` (sorted); raises InputErrors."""
    files: list[Path] = []
    for path in paths:
        target = Path(path)
        if target.is_dir():
            files += sorted(p for p in target.rglob("*") if p.suffix in (".yaml", ".yml"))
        elif target.is_file():
            files.append(target)
        else:
            raise InputErrors(
                [Diagnostic("input.unknown_reference", f"test path {path!r} does not exist")]
            )
    base = root or Path.cwd()
    loaded: list[LoadedFile] = []
    problems: list[Diagnostic] = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
            documents = read_yaml_documents(text, str(file))
        except YamlError as exc:
            problems.extend(exc.diagnostics)
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(
                Diagnostic("input.schema", f"cannot read: {exc}", SourceLocation(str(file)))
            )
            continue
        loaded.append(LoadedFile(str(file), _display(file, base), tuple(documents)))
    if problems:
        raise InputErrors(problems)
    return loaded


def _display(file: Path, base: Path) -> str:
    try:
        return str(file.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(file)


class Suite:
    """Runs the test documents of a set of files with one backend."""

    def __init__(self, backend: CelBackend, *, strict: bool = False) -> None:
        self.backend = backend
        self.strict = strict
        self._compiled: dict[tuple[str, ...], list[CompiledPolicy]] = {}
        self._builtins: list[Any] | None = None
        self._load_snapshot = composing.caching_loader()

    def contexts(
        self, files: Sequence[LoadedFile]
    ) -> tuple[list[FileContext], list[checks.CheckContext], list[Diagnostic]]:
        """Validates every document; returns PolicyTest and PolicyCheckTest contexts."""
        tests: list[FileContext] = []
        check_files: list[checks.CheckContext] = []
        diagnostics: list[Diagnostic] = []
        for loaded in files:
            fixtures = _local_fixtures(loaded)
            for document, source in loaded.documents:
                kind = document.get("kind") if isinstance(document, dict) else None
                try:
                    if kind == "PolicyTest":
                        tests.append(self._test_context(loaded, document, source, fixtures))
                    elif kind == "PolicyCheckTest":
                        doc = PolicyCheckTestDocument.model_validate(document)
                        check_files.append(
                            checks.CheckContext(doc, loaded.path, loaded.display, source)
                        )
                    elif kind not in DATA_KINDS:
                        diagnostics.append(
                            Diagnostic(
                                "input.unrecognised_kind",
                                f"document of kind {kind!r} ignored",
                                SourceLocation(loaded.path, *source.locate(())),
                                severity=Severity.WARNING,
                            )
                        )
                except ValidationError as exc:
                    diagnostics.extend(_schema_problems(exc, loaded.path, source))
                except InputErrors as exc:
                    diagnostics.extend(exc.diagnostics)
        return tests, check_files, diagnostics

    def _test_context(
        self,
        loaded: LoadedFile,
        raw: dict[str, Any],
        source: YamlSourceMap,
        fixtures: Callable[[str], Mapping[str, Any] | None],
    ) -> FileContext:
        document = PolicyTestDocument.model_validate(raw)
        names = [c.name for c in document.cases]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InputErrors(
                [
                    Diagnostic(
                        "input.duplicate_case",
                        f"case names repeat: {', '.join(duplicates)}",
                        SourceLocation(loaded.path, *source.locate(())),
                    )
                ]
            )
        policies = self.policies_for(loaded.path, document)
        lines = {
            c.name: source.locate(("cases", i, "name"))[0] for i, c in enumerate(document.cases)
        }

        def lookup(name: str) -> Mapping[str, Any] | None:
            if name in document.fixtures:
                return document.fixtures[name]
            return fixtures(name)

        context = FileContext(
            document,
            loaded.path,
            loaded.display,
            policies,
            self.backend,
            expectations.RuleIndex(policies),
            lookup,
            lines,
            self._load_snapshot,
        )
        validate_references(context)
        return context

    def policies_for(self, file: str, document: PolicyTestDocument) -> list[CompiledPolicy]:
        base = Path(file).parent
        paths = tuple(os.path.normpath(base / p) for p in document.policies)
        key = (*paths, repr(document.builtins))
        if key not in self._compiled:
            builtins = self._builtin_policies(document.builtins)
            custom = loading.load_policy_paths(list(paths)) if paths else []
            self._compiled[key] = compile_policies([*builtins, *custom], self.backend)
        return self._compiled[key]

    def _builtin_policies(self, wanted: bool | tuple[str, ...]) -> list[Any]:
        if wanted is False:
            return []
        if self._builtins is None:
            self._builtins = loading.load_builtin_policies()
        if wanted is True:
            return list(self._builtins)
        known = {p.name for p in self._builtins}
        unknown = sorted(set(wanted) - known)
        if unknown:
            raise InputErrors(
                [
                    Diagnostic(
                        "input.unknown_reference",
                        f"unknown builtin {', '.join(unknown)}",
                        hint="builtins: " + ", ".join(sorted(known)),
                    )
                ]
            )
        return [p for p in self._builtins if p.name in wanted and p.origin is Origin.BUILTIN]

    def run(
        self,
        paths: Sequence[str],
        filters: Filters,
        *,
        fail_fast: bool = False,
        root: Path | None = None,
    ) -> TestReport:
        started = time.perf_counter()
        files = discover(paths, root)
        tests, check_files, diagnostics = self.contexts(files)
        results: list[CaseResult] = []
        for context in tests:
            for case in context.document.cases:
                case_id = f"{context.display}::{case.name}"
                rules = [*case.rules, *(case.expect.rules if case.expect else {})]
                if not filters.accepts(case_id, context.display, case.name, case.tags, rules):
                    continue
                chosen = case
                if self.strict and case.strict is None:
                    chosen = case.model_copy(update={"strict": True})
                results.extend(run_case(context, chosen))
                if fail_fast and any(r.status == "failed" for r in results):
                    break
        for check_context in check_files:
            results.extend(checks.run_checks(check_context, self.backend, filters.accepts))
        return TestReport(
            tuple(results),
            tuple(diagnostics),
            f"{self.backend.name} {self.backend.version}",
            (time.perf_counter() - started) * 1000,
        )


def _local_fixtures(loaded: LoadedFile) -> Callable[[str], Mapping[str, Any] | None]:
    """FactFixtures by name: this file, then ``fixtures/`` beside it and in each parent."""
    cache: dict[str, Mapping[str, Any]] = {}
    for document, _ in loaded.documents:
        if isinstance(document, dict) and document.get("kind") == "FactFixture":
            fixture = FactFixtureDocument.model_validate(document)
            cache[fixture.metadata.name] = fixture.facts

    def lookup(name: str) -> Mapping[str, Any] | None:
        if name in cache:
            return cache[name]
        for folder in _fixture_folders(Path(loaded.path).parent):
            for file in sorted(folder.glob("*.y*ml")):
                for document, _ in read_yaml_documents(file.read_text(encoding="utf-8"), str(file)):
                    if isinstance(document, dict) and document.get("kind") == "FactFixture":
                        fixture = FactFixtureDocument.model_validate(document)
                        cache.setdefault(fixture.metadata.name, fixture.facts)
            if name in cache:
                return cache[name]
        return None

    return lookup


def _fixture_folders(start: Path) -> Iterable[Path]:
    current = start.resolve()
    while True:
        folder = current / "fixtures"
        if folder.is_dir():
            yield folder
        if current.parent == current or (current / ".git").exists():
            return
        current = current.parent


def _schema_problems(exc: ValidationError, file: str, source: YamlSourceMap) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for error in exc.errors():
        path = tuple(p for p in error["loc"] if isinstance(p, str | int))
        try:
            line, column = source.locate(path)
        except (KeyError, IndexError, ValueError):
            line, column = source.locate(())
        dotted = ".".join(str(p) for p in path)
        out.append(
            Diagnostic(
                "input.schema",
                f"{dotted or 'document'}: {error['msg']}",
                SourceLocation(file, line, column),
                path=dotted,
            )
        )
    return out


__all__ = ["Filters", "LoadedFile", "Suite", "TestReport", "discover"]
