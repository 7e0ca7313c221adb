"""TestReport output: text (§9.3), JSON (§10), JUnit XML and GitHub annotations.

Callers: ``tidegate test``. Takes the runner's results; never runs cases.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol
from xml.etree import ElementTree as ET

from policy_engine.errors import Diagnostic, Severity, SourceLocation, render_diagnostics
from policy_engine.rendering import github, json
from policy_engine.rendering.values import display, jsonable

MARKS = {"passed": "✓", "failed": "✗", "skipped": "○", "todo": "◌"}


class CaseLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def file(self) -> str: ...
    @property
    def line(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def mismatches(self) -> Sequence[Any]: ...
    @property
    def duration_ms(self) -> float: ...
    @property
    def note(self) -> str: ...
    @property
    def explanations(self) -> Sequence[Any]: ...


class ReportLike(Protocol):
    @property
    def cases(self) -> Sequence[CaseLike]: ...
    @property
    def diagnostics(self) -> Sequence[Diagnostic]: ...
    @property
    def backend(self) -> str: ...
    @property
    def duration_ms(self) -> float: ...

    def count(self, status: str) -> int: ...


def summary_line(report: ReportLike) -> str:
    total = len(report.cases)
    parts = [f"{report.count('passed')} passed", f"{report.count('failed')} failed"]
    if report.count("skipped"):
        parts.append(f"{report.count('skipped')} skipped")
    if report.count("todo"):
        parts.append(f"{report.count('todo')} todo")
    return (
        f"{total} cases: {', '.join(parts)}   {report.backend}   {report.duration_ms / 1000:.2f} s"
    )


def text(report: ReportLike, *, verbose: bool = False) -> str:
    lines: list[str] = []
    current = None
    quiet_passes = 0
    for case in report.cases:
        if case.file != current:
            if quiet_passes:
                lines.append(f"  … {quiet_passes} passed")
                quiet_passes = 0
            current = case.file
            lines.append(case.file)
        if case.status == "passed" and not verbose:
            quiet_passes += 1
            continue
        label = case.id.split("::", 1)[1] if "::" in case.id else case.name
        tail = ""
        if case.status == "skipped":
            tail = f"   skipped: {case.note}"
        elif case.status == "todo":
            tail = "   todo"
        elif case.note:
            tail = f"   {case.note}"
        lines.append(f"  {MARKS[case.status]} {label}{tail}")
        if case.status == "failed":
            lines += _failure(case)
    if quiet_passes:
        lines.append(f"  … {quiet_passes} passed")
    warnings = [d for d in report.diagnostics if d.severity is Severity.WARNING]
    if warnings:  # errors go to stderr with the exit code, once
        lines.append(render_diagnostics(warnings).rstrip())
    lines.append("")
    lines.append(summary_line(report))
    return "\n".join(lines) + "\n"


def _failure(case: CaseLike) -> list[str]:
    out: list[str] = []
    for mismatch in case.mismatches:
        out.append(f"      {mismatch.path:<12} expected {display(mismatch.expected, 200)}")
        out.append(f"      {'':<12} actual   {display(mismatch.actual, 200)}")
    out.append(f"      case        {case.file}:{case.line}")
    for explained in case.explanations:
        result = explained.result
        where = f" at {result.location}" if result.location and result.location.line else ""
        detail = result.error.message if result.error else result.message
        out.append(
            f"      rule        {result.rule_id} {result.outcome.value} "
            f"({result.reason}){where}: {detail}"
        )
    return out


def json_report(report: ReportLike) -> str:
    return (
        json.dumps(
            {
                "apiVersion": json.API_VERSION,
                "kind": "TestReport",
                "summary": {
                    "cases": len(report.cases),
                    "passed": report.count("passed"),
                    "failed": report.count("failed"),
                    "skipped": report.count("skipped"),
                    "todo": report.count("todo"),
                    "durationMs": round(report.duration_ms, 3),
                },
                "engine": {"version": json.ENGINE_VERSION, "celBackend": report.backend},
                "cases": [_case_json(c) for c in report.cases],
                "diagnostics": [json.diagnostic_json(d) for d in report.diagnostics],
            }
        )
        + "\n"
    )


def _case_json(case: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": case.id,
        "file": case.file,
        "line": case.line,
        "status": case.status,
        "durationMs": round(case.duration_ms, 3),
        "now": jsonable(case.now),
        "nowSource": case.now_source,
        "mismatches": [
            {"path": m.path, "expected": jsonable(m.expected), "actual": jsonable(m.actual)}
            for m in case.mismatches
        ],
    }
    if case.note:
        out["note"] = case.note
    if case.verdict is not None:
        out["evaluation"] = json.candidate_json(case.verdict, case.explanations)
    return out


def junit(report: ReportLike) -> str:
    suites = ET.Element(
        "testsuites",
        name="tidegate test",
        tests=str(len(report.cases)),
        failures=str(report.count("failed")),
        time=f"{report.duration_ms / 1000:.3f}",
    )
    by_file: dict[str, list[CaseLike]] = {}
    for case in report.cases:
        by_file.setdefault(case.file, []).append(case)
    for file, cases in by_file.items():
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=file,
            tests=str(len(cases)),
            failures=str(sum(c.status == "failed" for c in cases)),
            skipped=str(sum(c.status in ("skipped", "todo") for c in cases)),
        )
        for case in cases:
            element = ET.SubElement(
                suite,
                "testcase",
                name=case.id,
                classname=file,
                file=file,
                line=str(case.line),
                time=f"{case.duration_ms / 1000:.4f}",
            )
            if case.status == "failed":
                failure = ET.SubElement(
                    element, "failure", message=f"{len(case.mismatches)} mismatch(es)"
                )
                failure.text = "\n".join(_failure(case))
            elif case.status in ("skipped", "todo"):
                ET.SubElement(element, "skipped", message=case.note or case.status)
    for diagnostic in report.diagnostics:
        suite = ET.SubElement(
            suites, "testsuite", name=str(diagnostic.location or "input"), tests="1", errors="1"
        )
        case_el = ET.SubElement(suite, "testcase", name=diagnostic.code)
        ET.SubElement(case_el, "error", message=diagnostic.message, type=diagnostic.code)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def github_report(report: ReportLike) -> str:
    out = [github.diagnostic_annotations(report.diagnostics)]
    for case in report.cases:
        if case.status != "failed":
            continue
        details = "; ".join(
            f"{m.path}: expected {display(m.expected)}, actual {display(m.actual)}"
            for m in case.mismatches
        )
        out.append(
            github.command(
                "error", f"{case.id}: {details}", SourceLocation(case.file, case.line, 1), case.name
            )
        )
        for explained in case.explanations:
            if explained.result.location is not None:
                out.append(
                    github.command(
                        "notice",
                        f"{explained.result.rule_id} {explained.result.outcome.value}",
                        explained.result.location,
                    )
                )
    out.append(github.command("notice", summary_line(report)))
    return "".join(out)


def summary_markdown(report: ReportLike) -> str:
    return f"### tidegate test\n\n{summary_line(report)}\n\n" + "".join(
        f"- ✗ `{c.id}`\n" for c in report.cases if c.status == "failed"
    )
