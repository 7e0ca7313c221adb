"""``assemble``: collected facts (whole roots and keys below them) into one FactSet."""

from __future__ import annotations

from datetime import UTC, datetime

from controller.planning.facts import assemble
from evaluators.base import CollectedFact, FactUnavailable
from policy_engine.model import facts as model

NOW = datetime(2026, 3, 4, 9, 30, tzinfo=UTC)
PROV = model.Provenance("prometheus", observed_at=NOW)


def fact(path: tuple[str, ...], value: object) -> CollectedFact:
    return CollectedFact(path, value, None, PROV)


def test_keys_below_a_root_are_set_into_it_in_collection_order() -> None:
    facts = assemble(
        [
            fact(("metrics",), {}),
            fact(("metricsMeta",), {}),
            fact(("metrics", "errors"), 0.25),
            fact(("metrics", "requests"), 900.0),
        ],
        NOW,
        None,
    )
    assert facts.values["metrics"] == {"errors": 0.25, "requests": 900.0}
    assert not facts.errors


def test_an_error_below_a_root_is_recorded_and_the_root_stays_usable() -> None:
    missing = ("metrics", "latency")
    facts = assemble(
        [
            fact(("metrics",), {}),
            fact(("metrics", "errors"), 0.25),
            CollectedFact(missing, None, FactUnavailable("prometheus down").at(missing), PROV),
        ],
        NOW,
        None,
    )
    assert facts.values["metrics"] == {"errors": 0.25}
    [error] = facts.errors
    assert error.path == missing
    assert error.code == "fact.unavailable"


def test_a_collected_map_is_never_written_into() -> None:
    shared: dict[str, float] = {}
    assemble([fact(("metrics",), shared), fact(("metrics", "errors"), 0.5)], NOW, None)
    assert shared == {}
