"""The bench's hand-written baseline decides exactly as the engine does on the sample.

The ratios ``tidegate bench`` reports compare the engine with
``bench.handwritten_decision``; they mean something only while both compute
the same decisions, nextChange and warnings. No timing is asserted.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from policy_engine import bench, evaluation, windows
from policy_engine.cel.environment import select_backend
from policy_engine.compiling import compile_policies

BUSINESS_HOURS = windows.parse_window(
    {
        "name": "business-hours",
        "timezone": "Europe/Berlin",
        "allow": [
            {
                "name": "weekdays",
                "days": ["Mon", "Tue", "Wed", "Thu", "Fri"],
                "between": "09:00-17:00",
            }
        ],
    }
)
START = datetime(2026, 3, 2, 0, 7, tzinfo=UTC)  # before the soak ends, across a weekend


@pytest.mark.parametrize("with_next_change", [True, False])
def test_the_hand_written_decision_matches_the_engine_hour_by_hour(with_next_change: bool) -> None:
    backend = select_backend("cel-expr-python").backend
    compiled = compile_policies(bench.sample_policies(), backend)
    options = evaluation.Options() if with_next_change else evaluation.Options(horizon=timedelta(0))
    differences = []
    for hour in range(0, 24 * 9, 3):
        now = START + timedelta(hours=hour)
        facts = bench.sample_facts(now)
        engine = {
            v.tag: (v.decision.value, v.next_change, bool(v.warnings))
            for v in evaluation.evaluate(compiled, facts, backend, options).verdicts
        }
        by_hand = bench.handwritten_decision(
            facts, BUSINESS_HOURS, with_next_change=with_next_change
        )
        if by_hand != engine:
            differences.append((now, by_hand, engine))
    assert differences == []


def test_ratios_compare_like_with_like() -> None:
    rows = [
        ("cel-expr-python", bench.Figure("decision (evaluate, with nextChange)", 4e-4)),
        ("cel-expr-python", bench.Figure("decision (evaluate, no nextChange)", 3e-4)),
        ("celpy", bench.Figure("decision (evaluate, with nextChange)", 8e-3)),
        ("celpy", bench.Figure("decision (evaluate, no nextChange)", 6e-3)),
        ("python", bench.Figure("decision (hand-written, with nextChange)", 4e-5)),
        ("python", bench.Figure("decision (hand-written, no nextChange)", 1e-5)),
    ]
    assert bench.ratios(rows) == [
        "decision with nextChange cel-expr-python / hand-written Python = 10.0x",
        "decision with nextChange celpy / hand-written Python = 200.0x",
        "decision without nextChange cel-expr-python / hand-written Python = 30.0x",
        "decision without nextChange celpy / hand-written Python = 600.0x",
        "decision with nextChange celpy / cel-expr-python = 20.0x",
        "decision without nextChange celpy / cel-expr-python = 20.0x",
    ]
