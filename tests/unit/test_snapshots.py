"""FactSnapshots: YAML/JSON/NDJSON in, normalised facts, digests, round trips, located errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from textwrap import dedent
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy_engine import snapshots
from policy_engine.errors import Diagnostic, InputErrors
from policy_engine.model.facts import FactError, ObjectRef

FIXTURES = Path(__file__).parent.parent / "fixtures"
EXAMPLE = FIXTURES / "snapshots" / "checkout-prod.facts.yaml"
EXAMPLE_DIGEST = "sha256:a81701e24b2073781deff5f54683db3173544a7af343a8d6b8b051aa67e42b72"

HEAD = """\
apiVersion: tidegate.dev/v1alpha1
kind: FactSnapshot
metadata: {name: s}
now: "2026-03-04T09:30:12Z"
"""


def example() -> snapshots.Snapshot:
    (snapshot,) = snapshots.load_snapshot_path(EXAMPLE)
    return snapshot


def only(text: str, file: str = "s.yaml") -> Diagnostic:
    with pytest.raises(InputErrors) as caught:
        snapshots.load_snapshot_text(text, file)
    assert len(caught.value.diagnostics) == 1, caught.value.diagnostics
    return caught.value.diagnostics[0]


def document(snapshot: snapshots.Snapshot) -> dict[str, Any]:
    return snapshots.snapshot_document(snapshot)


# ---------------------------------------------------------------- the §7.1 example


def test_the_formats_example_loads_with_normalised_facts_and_its_record() -> None:
    s = example()
    assert s.name == "shop.checkout.20260304T093012Z"
    assert s.now == datetime(2026, 3, 4, 9, 30, 12, tzinfo=UTC)
    assert s.recorded_at == s.now
    assert s.target == ("shop", "checkout")
    assert s.recorded_by["cluster"] == "prod-eu1"
    assert s.policies[1] == {
        "ref": "shop/prod-promotion",
        "digest": "sha256:3f9c0e1d",
        "generation": 7,
    }
    assert s.engine["tzdata"] == "2026a"
    assert s.redacted == ("rollout.annotations",)
    assert s.source == (str(EXAMPLE), 1)
    assert s.decision is not None
    assert s.decision["allowedVersions"] == ["1.4.2"]
    values = s.facts.values
    assert values["candidates"][0]["created"] == datetime(2026, 3, 4, 7, 55, tzinfo=UTC)
    assert values["candidates"][0]["digest"] is None
    assert values["rollout"]["intents"]["bypassGates"] is None
    assert values["environments"]["staging"]["healthySince"].tzinfo is UTC
    assert values["metrics"] == {"errorRate": 0.0042, "requestCount": 18231.0}


def test_the_fact_set_carries_now_target_errors_provenance_and_the_computed_digest() -> None:
    facts = example().facts
    assert facts.now_source == "snapshot"
    assert facts.target == ("shop", "checkout")
    assert facts.digest == EXAMPLE_DIGEST
    assert facts.errors == (
        FactError(
            ("flux", "helmReleases"), "fact.unavailable", "list helmreleases in shop: forbidden"
        ),
    )
    staging = facts.provenance_of(("environments", "staging", "tag"))
    assert staging is not None
    assert staging.ref == ObjectRef(
        "Rollout", "checkout", "shop-staging", resource_version="884213"
    )
    assert staging.observed_at == datetime(2026, 3, 4, 9, 30, 5, tzinfo=UTC)


def test_an_errors_entry_removes_its_path_from_the_values() -> None:
    assert "helmReleases" not in example().facts.values["flux"]
    text = HEAD + dedent("""\
        facts:
          environments:
            staging: {name: staging, tag: 1.4.2}
            prod: {name: prod}
        errors:
          - {path: environments.staging, code: fact.stale, message: too old}
          - {path: "history[0].bakeStatus", code: fact.unavailable}
        """)
    (s,) = snapshots.load_snapshot_text(text, "s.yaml")
    assert list(s.facts.values["environments"]) == ["prod"]
    assert "history" not in s.facts.values
    assert s.facts.error_for([("environments", "staging", "tag")]) is not None


def test_a_short_recorded_digest_matches_when_it_is_a_prefix_of_the_real_one() -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace(EXAMPLE_DIGEST, EXAMPLE_DIGEST[:15])
    (s,) = snapshots.load_snapshot_text(text, "short.yaml")
    assert s.digest == EXAMPLE_DIGEST


def test_a_digest_mismatch_is_reported_with_both_digests_at_the_digest() -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace("errorRate: 0.0042", "errorRate: 0.5")
    d = only(text)
    assert d.code == "input.digest_mismatch"
    assert str(d.location) == "s.yaml:56:9"
    assert EXAMPLE_DIGEST in d.message
    assert "sha256:" in d.message.split("records", 1)[1]


def test_a_digest_shorter_than_eight_hex_digits_is_a_schema_error() -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace(EXAMPLE_DIGEST, "sha256:a817")
    assert only(text).code == "input.schema"


# ---------------------------------------------------------------- digests and round trips


@pytest.mark.parametrize("fmt", ["yaml", "json", "ndjson"])
def test_dumping_and_loading_again_keeps_digest_values_and_record(
    fmt: Literal["yaml", "json", "ndjson"],
) -> None:
    s = example()
    (again,) = snapshots.load_snapshot_text(snapshots.dump_snapshot(s, fmt), f"again.{fmt}")
    assert again.digest == s.digest
    assert again.facts.values == s.facts.values
    assert again.facts.errors == s.facts.errors
    assert again.facts.provenance == s.facts.provenance
    assert (again.now, again.recorded_at, again.target, again.decision) == (
        s.now,
        s.recorded_at,
        s.target,
        s.decision,
    )
    assert (again.policies, again.engine, again.redacted) == (s.policies, s.engine, s.redacted)


def test_written_records_leave_out_null_keys_and_use_utc_strings() -> None:
    doc = document(example())
    candidate = doc["facts"]["candidates"][0]
    assert candidate == {"tag": "1.4.3", "revision": "c41d9e2", "created": "2026-03-04T07:55:00Z"}
    assert doc["facts"]["rollout"]["intents"] == {"unblockFailed": False}
    assert doc["digest"] == EXAMPLE_DIGEST


def test_the_digest_is_stable_under_key_reordering_and_omitted_nulls() -> None:
    doc = document(example())

    def reverse(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: reverse(value[k]) for k in reversed(list(value))}
        if isinstance(value, list):
            return [reverse(v) for v in value]
        return value

    shuffled = reverse(doc)
    shuffled["facts"]["candidates"][0]["digest"] = None
    shuffled["facts"]["rollout"]["intents"]["wantedVersion"] = None
    assert list(shuffled) != list(doc)
    (s,) = snapshots.load_snapshot_text(json.dumps(shuffled), "shuffled.json")
    assert s.digest == EXAMPLE_DIGEST


def test_the_digest_covers_now_target_facts_and_errors() -> None:
    s = example()
    facts = snapshots.facts_to_json(s.facts.values)
    errors = snapshots.errors_to_json(s.facts.errors)
    base = snapshots.snapshot_digest(s.now, s.target, facts, errors)
    assert base == EXAMPLE_DIGEST
    assert snapshots.snapshot_digest(s.now, None, facts, errors) != base
    assert snapshots.snapshot_digest(s.now, s.target, facts, []) != base
    later = s.now.replace(second=13)
    assert snapshots.snapshot_digest(later, s.target, facts, errors) != base
    assert snapshots.snapshot_digest(s.now, s.target, {**facts, "gates": [{}]}, errors) != base


# ---------------------------------------------------------------- JSON and decision logs


def test_a_json_document_and_ndjson_lines_are_recognised() -> None:
    doc = document(example())
    (single,) = snapshots.load_snapshot_text(json.dumps(doc, indent=2), "one.json")
    assert single.digest == EXAMPLE_DIGEST
    lines = [json.dumps({**doc, "decisionId": f"01J{i}", "action": "none"}) for i in range(3)]
    found = snapshots.load_snapshot_text("\n".join(lines) + "\n", "log.ndjson")
    assert [(s.decision_id, s.action, s.source) for s in found] == [
        ("01J0", "none", ("log.ndjson", 1)),
        ("01J1", "none", ("log.ndjson", 2)),
        ("01J2", "none", ("log.ndjson", 3)),
    ]


def test_a_bad_decision_log_line_is_located_on_its_own_line() -> None:
    doc = document(example())
    bad = {**doc, "now": "2026-03-04T09:30:12"}
    text = "\n".join([json.dumps(doc), "{not json", json.dumps(bad)]) + "\n"
    with pytest.raises(InputErrors) as caught:
        snapshots.load_snapshot_text(text, "log.ndjson")
    found = [(d.code, str(d.location)) for d in caught.value.diagnostics]
    column = json.dumps(bad).index('"2026-03-04T09:30:12"') + 1
    assert found == [
        ("yaml.syntax", "log.ndjson:2:2"),
        ("input.naive_time", f"log.ndjson:3:{column}"),
    ]


# ---------------------------------------------------------------- located input errors


def test_a_naive_now_is_rejected_at_its_value() -> None:
    d = only(HEAD.replace('09:30:12Z"', '09:30:12"') + "facts: {}\n")
    assert (d.code, str(d.location)) == ("input.naive_time", "s.yaml:4:6")
    assert d.hint is not None
    assert "offset" in d.hint


def test_a_naive_timestamp_inside_facts_is_rejected_at_its_value() -> None:
    d = only(HEAD + "facts:\n  candidates:\n    - {tag: 1.4.3, created: 2026-03-04T07:55:00}\n")
    assert (d.code, str(d.location)) == ("input.naive_time", "s.yaml:7:29")
    assert d.path == "facts.candidates[0].created"


def test_an_unknown_record_key_is_rejected_at_the_key_with_a_suggestion() -> None:
    d = only(HEAD + "facts:\n  candidates:\n    - {tag: 1.4.3, craeted: 2026-03-04T07:55:00Z}\n")
    assert (d.code, str(d.location)) == ("fact.invalid", "s.yaml:7:20")
    assert d.hint == "did you mean 'created'?"


def test_every_bad_fact_is_reported_not_only_the_first() -> None:
    text = HEAD + dedent("""\
        facts:
          candidates:
            - {tag: 1.4.3, created: yesterday}
            - {tag: [1]}
          metrics: {errorRate: high}
          release: {tag: 1.4.3}
        """)
    with pytest.raises(InputErrors) as caught:
        snapshots.load_snapshot_text(text, "s.yaml")
    found = [(d.code, str(d.location)) for d in caught.value.diagnostics]
    assert found == [
        ("fact.invalid", "s.yaml:7:29"),
        ("fact.invalid", "s.yaml:8:13"),
        ("fact.invalid", "s.yaml:9:24"),
        ("fact.invalid", "s.yaml:10:3"),
    ]


def test_an_unknown_top_level_field_points_at_the_key() -> None:
    d = only(HEAD + "recordedat: x\nfacts: {}\n")
    assert (d.code, str(d.location)) == ("input.schema", "s.yaml:5:1")
    assert d.hint == "did you mean 'recordedAt'?"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (HEAD.replace("kind: FactSnapshot", "kind: FactSnapshots") + "facts: {}\n", "s.yaml:2:7"),
        (HEAD.replace("v1alpha1", "v1") + "facts: {}\n", "s.yaml:1:13"),
        (HEAD, "s.yaml:1:1"),
    ],
    ids=["kind", "apiVersion", "no facts"],
)
def test_a_wrong_kind_api_version_or_missing_facts_is_a_schema_error(text: str, where: str) -> None:
    d = only(text)
    assert (d.code, str(d.location)) == ("input.schema", where)


def test_documents_of_other_tidegate_kinds_are_skipped() -> None:
    text = "apiVersion: tidegate.dev/v1alpha1\nkind: FactFixture\nfacts: {}\n---\n"
    assert snapshots.load_snapshot_text(text + HEAD + "facts: {}\n", "m.yaml")[0].name == "s"
    assert snapshots.load_snapshot_text(text, "fixture.yaml") == []


BAD = FIXTURES / "bad"


@pytest.mark.parametrize(
    ("name", "code", "line", "column"),
    [
        ("naive-time.facts.yaml", "input.naive_time", 4, 6),
        ("unknown-record-key.facts.yaml", "fact.invalid", 8, 20),
        ("digest-mismatch.facts.yaml", "input.digest_mismatch", 7, 9),
        ("binary-garbage.yaml", "yaml.syntax", 1, 1),
        ("top-level-list.yaml", "input.schema", 1, 1),
        ("empty.yaml", "input.schema", 1, 1),
        ("syntax-error.yaml", "yaml.syntax", 4, 5),
    ],
)
def test_each_bad_snapshot_file_raises_input_errors_with_a_located_code(
    name: str, code: str, line: int, column: int
) -> None:
    with pytest.raises(InputErrors) as caught:
        snapshots.load_snapshot_path(BAD / name)
    first = caught.value.diagnostics[0]
    assert first.code == code
    assert first.location is not None
    assert (first.location.line, first.location.column) == (line, column)


VALID = EXAMPLE.read_text(encoding="utf-8")
NOISE = st.text(alphabet=st.sampled_from(list(" \n:-[]{}!&*#|>'\",.{}~0129TZabc\\")), max_size=60)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    start = draw(st.integers(0, len(VALID)))
    end = draw(st.integers(start, min(len(VALID), start + 30)))
    return VALID[:start] + draw(NOISE) + VALID[end:]


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(), NOISE, mutated(), st.builds(lambda t: "{" + t, st.text())))
def test_no_text_makes_the_snapshot_loader_raise_anything_but_input_errors(text: str) -> None:
    try:
        snapshots.load_snapshot_text(text, "fuzz.yaml")
    except InputErrors as exc:
        found = exc.diagnostics
    else:
        found = ()
    assert all(d.location is not None and d.location.line >= 1 for d in found)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary())
def test_no_bytes_make_loading_a_snapshot_path_raise_anything_but_input_errors(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    file = tmp_path_factory.mktemp("fuzz") / "s.facts.yaml"
    file.write_bytes(data)
    try:
        snapshots.load_snapshot_path(file)
    except InputErrors as exc:
        found = exc.diagnostics
    else:
        found = (Diagnostic("ok", "loaded"),)
    assert found
