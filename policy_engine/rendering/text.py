"""Human text for ``eval``: decision, candidates, rules and explanations (POLICY-FORMATS.md §9.3).

Callers: the CLI. Returns strings (rich markup rendered to text, colour only
when asked); never prints and never computes decisions.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from rich.console import Console
from rich.markup import escape

from policy_engine.explaining import ExplainNode, RuleExplanation
from policy_engine.model.facts import FactSet
from policy_engine.model.verdict import Decision, Evaluation, Outcome, RuleResult, Verdict
from policy_engine.rendering.values import display

GLYPHS = {
    Outcome.PASS: ("✓", "green", "pass"),
    Outcome.FAIL: ("✗", "red", "fail"),
    Outcome.PENDING: ("…", "yellow", "pending"),
    Outcome.ERROR: ("?", "magenta", "error"),
    Outcome.SKIP: ("○", "dim", "skip"),
}
DECISION_STYLE = {
    Decision.ALLOWED: "bold green",
    Decision.PENDING: "bold yellow",
    Decision.BLOCKED: "bold red",
}


@dataclass(frozen=True, slots=True)
class TextOptions:
    color: bool = False
    glyphs: bool = True
    display_tz: tzinfo | None = None
    width: int = 110
    explain: str = "fails"
    rules: frozenset[str] | None = None


def console(options: TextOptions) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(
        file=buffer,
        force_terminal=options.color,
        no_color=not options.color,
        width=options.width,
        highlight=False,
        soft_wrap=True,
    ), buffer


def when(value: datetime | None, options: TextOptions, now: datetime | None = None) -> str:
    if value is None:
        return "none"
    shown = value.astimezone(options.display_tz) if options.display_tz else value
    text = shown.strftime("%Y-%m-%d %H:%M:%S %z")
    text = text[:-2] + ":" + text[-2:] if text[-5] in "+-" else text
    if now is not None and value > now:
        text += f" {shown.strftime('%a')} (in {_span(value - now)})"
    return text


def _span(delta: Any) -> str:
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{days}d" if days else "",
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes and not days else "",
        f"{secs}s" if secs and not (days or hours) else "",
    ]
    return " ".join(p for p in parts if p) or "0s"


def evaluation_text(
    evaluation: Evaluation,
    facts: FactSet,
    header: Sequence[tuple[str, str]],
    explanations: Mapping[str, Sequence[RuleExplanation]],
    options: TextOptions,
) -> str:
    out, buffer = console(options)
    for label, value in header:
        out.print(f"{label:<9} {escape(value)}")
    decision = evaluation.decision
    if decision is None:
        out.print("\n[bold]UP TO DATE[/]   no candidates")
        return buffer.getvalue()
    allowed = ", ".join(evaluation.allowed_versions) or "none"
    out.print(
        f"\n[{DECISION_STYLE[decision]}]{decision.value.upper():<9}[/] allowed: "
        f"{escape(allowed)}   next change {when(evaluation.next_change, options, facts.now)}"
    )
    for verdict in evaluation.verdicts:
        _candidate(out, verdict, explanations.get(verdict.tag, ()), options, facts.now)
    for diagnostic in evaluation.diagnostics:
        out.print(f"[yellow]warning[{diagnostic.code}][/]: {escape(diagnostic.message)}")
    return buffer.getvalue()


def _candidate(
    out: Console,
    verdict: Verdict,
    explained: Sequence[RuleExplanation],
    options: TextOptions,
    now: datetime,
) -> None:
    style = DECISION_STYLE[verdict.decision]
    line = f"\n[bold]{escape(verdict.tag)}[/]  [{style}]{verdict.decision.value.upper()}[/]"
    if verdict.hypothetical:
        line += "  (hypothetical)"
    if verdict.next_change is not None:
        line += f"  next change {when(verdict.next_change, options, now)}"
    out.print(line)
    by_id = {e.result.rule_id: e for e in explained}
    passed = 0
    for result in verdict.results:
        if options.rules is not None and result.rule_id not in options.rules:
            continue
        shown = result.outcome not in (Outcome.PASS, Outcome.SKIP) or options.explain == "all"
        if not shown:
            passed += result.outcome is Outcome.PASS
            continue
        _rule(out, result, by_id.get(result.rule_id), options, now)
    if passed:
        out.print(f"  [green]✓[/] {passed} passed")


def _rule(
    out: Console,
    result: RuleResult,
    explanation: RuleExplanation | None,
    options: TextOptions,
    now: datetime,
) -> None:
    glyph, color, word = GLYPHS[result.outcome]
    mark = f"[{color}]{glyph}[/] " if options.glyphs else ""
    line = (
        f"  {mark}{escape(result.rule_id)}  {result.kind.value}  "
        f"{result.effect.value}  {word}  {escape(result.reason)}"
    )
    out.print(line)
    if result.message:
        out.print(f"      {escape(result.message)}")
    if result.error is not None:
        out.print(f"      [magenta]{escape(result.error.code)}[/]: {escape(result.error.message)}")
    if result.next_change is not None:
        out.print(f"      changes {when(result.next_change, options, now)}")
    if explanation is not None:
        _explanation(out, explanation, options)
    if result.location is not None and result.location.line:
        out.print(f"      [dim]{escape(str(result.location))}[/]")


def _explanation(out: Console, explanation: RuleExplanation, options: TextOptions) -> None:
    for w in explanation.windows:
        state = "open" if w.open else "closed"
        changes = (
            f", {'closes' if w.open else 'opens'} {when(w.next_change, options)}"
            if w.next_change
            else ""
        )
        out.print(
            f"      window {escape(w.name)} {state} ({escape(w.timezone)}, local "
            f"{escape(w.local_time)}{changes})"
        )
        for entry in w.entries:
            mark = "✓" if entry.active else "✗"
            why = "" if entry.active else f" {entry.because}"
            out.print(
                f"          {entry.kind:<5} {escape(entry.name):<18} "
                f"{escape(entry.description):<32} {mark}{why}"
            )
    if explanation.root is not None:
        _node(out, explanation.root, 6, options)
    for name, node in explanation.checks:
        out.print(f"      check {escape(name)}")
        _node(out, node, 8, options)
    facts = [f for f in explanation.facts if f.status != "ok" or options.explain == "all"]
    for fact in facts:
        where = fact.provenance.describe() if fact.provenance else "no provenance"
        status = "" if fact.status == "ok" else f" [magenta]{fact.status}[/]"
        out.print(f"      [dim]fact {escape(fact.path)}{status} ← {escape(where)}[/]")


def _node(out: Console, node: ExplainNode, indent: int, options: TextOptions) -> None:
    ok = node.value is True
    mark = "✓" if ok else ("✗" if node.value is False else "?")
    pad = " " * indent
    if node.children and node.op != "not":
        if not ok or options.explain == "all":
            for child in node.children:
                _node(out, child, indent, options)
        return
    out.print(
        f"{pad}{mark} {escape(node.text)}"
        + ("" if isinstance(node.value, bool) else f" = {escape(display(node.value))}")
    )
    inner = node.children[0] if node.op == "not" and node.children else node
    if inner.witness is not None:
        label = "first false for" if inner.op == "all" else "true for"
        out.print(f"{pad}    {label} {escape(display(inner.witness, 160))}")
    if not ok or options.explain == "all":
        for operand in inner.operands:
            shown = [f for f in operand.facts if f.split(":", 1)[0] != operand.text]
            facts = f"  ← {', '.join(shown)}" if shown else ""
            out.print(
                f"{pad}    {escape(display(operand.value))}  {escape(operand.text)}{escape(facts)}"
            )
