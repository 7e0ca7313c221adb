"""Decision-log lines are FactSnapshots that the snapshot reader (and so replay) accepts."""

from __future__ import annotations

from kuberik_sim import T0, Sim

from controller.planning import decide, observe, prepare
from controller.planning.facts import facts_of
from controller.planning.recording import decision_line, facts_digest, signature, ulid
from controller.policies import PolicyEngine
from policy_engine import evaluate
from policy_engine.cel.environment import select_backend
from policy_engine.snapshots import load_snapshot_text


def test_a_decision_line_reads_back_as_the_same_facts_and_decision() -> None:
    engine = PolicyEngine(select_backend("cel-expr-python").backend)
    sim = Sim(engine)
    sim.observe("0.1.0")
    sim.gate("closed", passing=False)
    sim.observe("0.2.0", reconcile=False)
    rollout = sim.store.get("rollouts.kuberik.com", "ns", "r")
    assert rollout is not None
    observed = observe(sim.store, rollout)
    prepared = prepare(observed, T0)
    facts = facts_of(observed, prepared, T0)
    evaluation = engine.evaluate(engine.builtins, facts)
    decide(prepared, evaluation)
    line = decision_line(facts, evaluation, "none", T0)
    assert line.endswith("\n")
    assert line.count("\n") == 1
    [snapshot] = load_snapshot_text(line, "decisions.ndjson")
    assert snapshot.action == "none"
    assert snapshot.decision is not None
    assert snapshot.decision["candidates"]["0.2.0"]["decision"] == "Blocked"
    replayed = evaluate(engine.builtins, snapshot.facts, engine.backend)
    assert replayed.decision == evaluation.decision
    assert facts_digest(snapshot.facts) == facts_digest(facts)
    assert signature(replayed, facts_digest(snapshot.facts)) == signature(
        evaluation, facts_digest(facts)
    )


def test_decision_ids_sort_by_time() -> None:
    first, second = ulid(T0), ulid(T0.replace(year=2027))
    assert len(first) == 26
    assert first < second
