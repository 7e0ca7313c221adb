"""GitHub Actions workflow commands (``::error file=…,line=…,col=…::``) for eval, check, test.

Callers: the CLI (``-o github``). Returns text; the CLI writes it and the
step summary. Must not compute decisions.
"""

from __future__ import annotations

from collections.abc import Sequence

from policy_engine.errors import Diagnostic, Severity, SourceLocation
from policy_engine.model.verdict import Evaluation, Outcome


def _escape(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _escape(text).replace(":", "%3A").replace(",", "%2C")


def command(
    level: str, message: str, location: SourceLocation | None = None, title: str | None = None
) -> str:
    props: list[str] = []
    if location is not None and location.file:
        props.append(f"file={_property(location.file)}")
        if location.line:
            props.append(f"line={location.line}")
            props.append(f"col={location.column}")
    if title:
        props.append(f"title={_property(title)}")
    joined = (" " + ",".join(props)) if props else ""
    return f"::{level}{joined}::{_escape(message)}\n"


def evaluation_annotations(evaluation: Evaluation) -> str:
    out: list[str] = []
    for verdict in evaluation.verdicts:
        for result in verdict.results:
            if result.outcome in (Outcome.PASS, Outcome.SKIP):
                continue
            level = (
                "error"
                if result.blocking and result.outcome is not Outcome.PENDING
                else ("warning" if result.blocking else "notice")
            )
            detail = result.error.message if result.error else result.message
            out.append(
                command(
                    level,
                    f"{verdict.tag}: {result.rule_id} {result.outcome.value}"
                    f" ({result.reason}): {detail}",
                    result.location,
                    result.rule_id,
                )
            )
    decision = evaluation.decision.value if evaluation.decision else "UpToDate"
    out.append(
        command(
            "notice",
            f"decision {decision}; allowed: {', '.join(evaluation.allowed_versions) or 'none'}",
        )
    )
    return "".join(out)


def diagnostic_annotations(diagnostics: Sequence[Diagnostic]) -> str:
    return "".join(
        command(
            "error" if d.severity is Severity.ERROR else "warning",
            f"[{d.code}] {d.message}" + (f" ({d.hint})" if d.hint else ""),
            d.location,
        )
        for d in diagnostics
    )
