"""Policy loading: YAML positions, every error code at file:line:col, rendering, garbage input."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent, indent

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy_engine import loading
from policy_engine.errors import (
    Diagnostic,
    PolicyErrors,
    Severity,
    SourceLocation,
    render_diagnostic,
    render_diagnostics,
)
from policy_engine.model.policy import Origin
from policy_engine.model.yamlsource import YamlError, read_yaml_documents

FIXTURES = Path(__file__).parent.parent / "fixtures"
EXAMPLE = FIXTURES / "policies" / "prod-promotion.yaml"

HEAD = """\
apiVersion: tidegate.dev/v1alpha1
kind: RolloutPolicy
metadata: {name: p, namespace: shop}
spec:
  targets: {rolloutSelector: {}}
"""


def spec(body: str) -> str:
    """HEAD plus ``body`` (written at any indentation) as the rest of ``spec``."""
    return HEAD + indent(dedent(body), "  ")


def problems(text: str, file: str = "p.yaml") -> list[tuple[str, str]]:
    with pytest.raises(PolicyErrors) as caught:
        loading.load_policy_text(text, file)
    return [(d.code, str(d.location)) for d in caught.value.diagnostics]


def only(text: str, file: str = "p.yaml") -> Diagnostic:
    with pytest.raises(PolicyErrors) as caught:
        loading.load_policy_text(text, file)
    assert len(caught.value.diagnostics) == 1, caught.value.diagnostics
    return caught.value.diagnostics[0]


# ---------------------------------------------------------------- valid policies


def test_the_formats_example_loads_with_its_rules_windows_and_params() -> None:
    (policy,) = loading.load_policy_paths([EXAMPLE])
    assert policy.ref == "shop/prod-promotion"
    assert policy.origin is Origin.NAMESPACED
    assert [r.name for r in policy.spec.rules] == [
        "business-hours",
        "staging-soaked",
        "error-budget",
        "platform-healthy",
    ]
    assert policy.spec.params["minSoak"].type == "duration"
    assert policy.spec.params["maxErrorRate"].type == "double"
    assert policy.spec.windows[0].timezone == "Europe/Berlin"
    assert policy.file == str(EXAMPLE)


def test_a_cel_column_in_a_folded_expression_maps_to_the_file_as_in_the_formats_example() -> None:
    (policy,) = loading.load_policy_paths([EXAMPLE])
    expression = policy.spec.rules[1].expression or ""
    offset = expression.index("healthySince")
    assert policy.source is not None
    assert policy.source.locate(("spec", "rules", 1, "expression"), offset) == (45, 33)
    assert policy.source.line_text(45).strip().startswith("since(variables.staging")


def test_offsets_in_literal_folded_quoted_and_plain_scalars_land_on_the_same_character() -> None:
    text = dedent("""\
        literal: |
          first line
            indented
          third
        folded: >-
          alpha beta
          gamma

          delta
        double: "one \\u0041
          two"
        single: 'it''s
          here'
        plain: word one
          word two
        """)
    ((value, source),) = read_yaml_documents(text, "s.yaml")
    for key in ("literal", "folded", "double", "single", "plain"):
        string = value[key]
        for offset, char in enumerate(string):
            line, column = source.locate((key,), offset)
            found = source.line_text(line)[column - 1 : column]
            if char not in " \n" and not (key == "double" and char == "A"):
                assert found == char, (key, offset, char, line, column)
    assert source.locate(("literal",), value["literal"].index("indented")) == (3, 5)
    assert source.locate(("folded",), value["folded"].index("delta")) == (9, 3)
    assert source.locate(("double",), value["double"].index("A")) == (10, 14)


def test_a_path_that_is_not_in_the_document_resolves_to_its_nearest_ancestor() -> None:
    ((_, source),) = read_yaml_documents("a:\n  b: 1\n", "x.yaml")
    assert source.locate(("a", "missing", 3)) == (2, 3)
    assert source.locate(()) == (1, 1)
    assert source.line_text(99) == ""


def test_builtins_load_as_builtin_policies_without_targets() -> None:
    builtins = loading.load_builtin_policies()
    assert builtins, "policies/builtin/ holds the kuberik set"
    assert {p.origin for p in builtins} == {Origin.BUILTIN}
    assert all(p.ref == "kuberik" for p in builtins)


def test_a_cluster_policy_labelled_builtin_is_inferred_builtin_and_needs_no_targets() -> None:
    text = dedent("""\
        apiVersion: tidegate.dev/v1alpha1
        kind: ClusterRolloutPolicy
        metadata: {name: one-in-flight, labels: {tidegate.dev/builtin: "true"}}
        spec:
          rules: [{name: one-in-flight, expression: "true"}]
        """)
    (policy,) = loading.load_policy_text(text, "b.yaml")
    assert policy.origin is Origin.BUILTIN


def test_origin_is_inferred_from_the_kind_unless_given() -> None:
    cluster = dedent("""\
        apiVersion: tidegate.dev/v1alpha1
        kind: ClusterRolloutPolicy
        metadata: {name: freeze}
        spec:
          targets: {namespaceSelector: {}, rolloutSelector: {}}
          rules: [{name: never, expression: "false"}]
        """)
    assert loading.load_policy_text(cluster, "c.yaml")[0].origin is Origin.CLUSTER
    forced = loading.load_policy_text(cluster, "c.yaml", origin=Origin.BUILTIN)
    assert forced[0].origin is Origin.BUILTIN


def test_documents_of_other_kinds_are_ignored_and_several_policies_load_from_one_file() -> None:
    text = (
        dedent("""\
        apiVersion: tidegate.dev/v1alpha1
        kind: PolicyTest
        metadata: {name: t}
        ---
        """)
        + HEAD
        + "  rules: [{name: a, expression: 'true'}]\n---\n"
        + HEAD.replace("name: p,", "name: q,")
        + "  rules: [{name: a, expression: 'true'}]\n---\nkind: Kustomization\n"
    )
    assert [p.name for p in loading.load_policy_text(text, "m.yaml")] == ["p", "q"]


# ---------------------------------------------------------------- error codes


def test_a_yaml_syntax_error_is_located_at_the_problem() -> None:
    d = only(HEAD + "  rules:\n    - name: [unclosed\n")
    assert d.code == "yaml.syntax"
    assert str(d.location) == "p.yaml:8:1"


def test_a_duplicate_key_is_reported_at_the_second_key_and_all_duplicates_are_collected() -> None:
    text = spec("""\
        rules:
          - name: a
            name: b
            expression: x
            expression: y
        """)
    assert problems(text) == [
        ("yaml.duplicate_key", "p.yaml:8:7"),
        ("yaml.duplicate_key", "p.yaml:10:7"),
    ]


def test_an_unknown_field_points_at_the_key_and_suggests_the_field() -> None:
    d = only(HEAD + "  rules:\n    - name: r\n      expresion: 'true'\n")
    assert (d.code, str(d.location)) == ("policy.schema", "p.yaml:8:7")
    assert d.message == "unknown field 'expresion' in spec.rules[0]"
    assert d.hint == "did you mean 'expression'?"
    assert d.path == "spec.rules[0].expresion"
    assert d.rule == "r"
    assert d.source_line == "      expresion: 'true'"
    assert d.location is not None
    assert d.location.end_column == 16


def test_a_missing_field_points_at_the_parent_mapping() -> None:
    d = only(HEAD + "  description: none\n")
    assert (d.code, str(d.location)) == ("policy.schema", "p.yaml:4:1")
    assert d.message == "missing required field 'rules' in spec"


def test_a_wrong_type_points_at_the_value_and_names_it() -> None:
    d = only(HEAD + "  rules:\n    - name: r\n      kind: gat\n      expression: 'true'\n")
    assert (d.code, str(d.location)) == ("policy.schema", "p.yaml:8:13")
    assert "(got 'gat')" in d.message
    assert d.hint == "did you mean 'gate'?"


def test_duplicate_names_in_a_policy_are_reported_at_the_second_name() -> None:
    text = spec("""\
          variables:
            - {name: v, expression: "1"}
            - {name: v, expression: "2"}
          rules:
            - name: r
              all:
                - {name: c, expression: "true"}
                - {name: c, expression: "true"}
            - {name: r, expression: "true"}
        """)
    assert problems(text) == [
        ("policy.duplicate_id", "p.yaml:8:14"),
        ("policy.duplicate_id", "p.yaml:13:18"),
        ("policy.duplicate_id", "p.yaml:14:14"),
    ]


def test_two_policies_with_the_same_name_across_files_are_a_duplicate(tmp_path: Path) -> None:
    body = HEAD + "  rules: [{name: a, expression: 'true'}]\n"
    (tmp_path / "a.yaml").write_text(body)
    (tmp_path / "b.yaml").write_text(body)
    with pytest.raises(PolicyErrors) as caught:
        loading.load_policy_paths([tmp_path])
    (d,) = caught.value.diagnostics
    assert d.code == "policy.duplicate_id"
    assert str(d.location) == f"{tmp_path / 'b.yaml'}:3:18"
    assert str(tmp_path / "a.yaml") in d.message


def test_a_cluster_policy_needs_a_namespace_selector() -> None:
    text = HEAD.replace("kind: RolloutPolicy", "kind: ClusterRolloutPolicy") + (
        "  rules: [{name: a, expression: 'true'}]\n"
    )
    d = only(text)
    assert (d.code, str(d.location)) == ("policy.target", "p.yaml:5:3")


def test_a_namespaced_policy_needs_a_selector_or_target_refs() -> None:
    text = HEAD.replace("{rolloutSelector: {}}", "{}") + "  rules: [{name: a, expression: 'x'}]\n"
    d = only(text)
    assert (d.code, str(d.location)) == ("policy.target", "p.yaml:5:3")
    refs = HEAD.replace("{rolloutSelector: {}}", "{targetRefs: [{kind: Rollout, name: c}]}")
    assert loading.load_policy_text(refs + "  rules: [{name: a, expression: 'x'}]\n", "p.yaml")


def test_a_rule_window_naming_no_window_is_an_unknown_reference() -> None:
    text = spec("""\
          windows: [{name: business-hours, timezone: UTC}]
          rules: [{name: w, window: busines-hours}]
        """)
    d = only(text)
    assert (d.code, str(d.location)) == ("policy.unknown_reference", "p.yaml:7:29")
    assert d.hint == "did you mean 'business-hours'?"
    assert d.rule == "w"


def test_window_literals_are_checked_at_the_offending_field() -> None:
    text = spec("""\
          windows:
            - name: a
              timezone: Mars/Olympus
            - name: b
              timezone: UTC
              deny:
                - {name: x, dates: "2026-12-19..2027-01-06"}
                - {name: y, between: "9:00-17:00"}
          rules: [{name: r, expression: "true"}]
        """)
    assert problems(text) == [
        ("policy.schema", "p.yaml:8:17"),
        ("policy.schema", "p.yaml:13:30"),
    ]


def test_param_defaults_must_parse_as_their_type() -> None:
    text = spec("""\
          params:
            minSoak: {type: duration, default: 24 hours}
            cutoff: {type: timestamp, default: "2026-03-04T10:00:00"}
            retries: {type: int, default: many}
            ok: {type: duration, default: 1h30m}
          rules: [{name: r, expression: "true"}]
        """)
    assert problems(text) == [
        ("policy.schema", "p.yaml:7:40"),
        ("policy.schema", "p.yaml:8:40"),
        ("policy.schema", "p.yaml:9:35"),
    ]


def test_errors_in_several_files_are_all_collected_and_sorted(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(HEAD + "  rules: [{name: a, expresion: x}]\n")
    (tmp_path / "a.yaml").write_text(
        HEAD + "  rules:\n    - name: Bad_Name\n      kind: gat\n      expression: x\n"
    )
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.yml").write_text("key: [\n")
    (tmp_path / "notes.txt").write_text("not yaml: [")
    with pytest.raises(PolicyErrors) as caught:
        loading.load_policy_paths([tmp_path])
    found = [
        (Path(d.location.file).name, d.location.line, d.code)
        for d in caught.value.diagnostics
        if d.location
    ]
    assert found == [
        ("a.yaml", 7, "policy.schema"),
        ("a.yaml", 8, "policy.schema"),
        ("b.yaml", 6, "policy.schema"),
        ("c.yml", 2, "yaml.syntax"),
    ]


def test_a_path_that_does_not_exist_is_reported_not_raised(tmp_path: Path) -> None:
    with pytest.raises(PolicyErrors) as caught:
        loading.load_policy_paths([tmp_path / "nope.yaml"])
    assert caught.value.diagnostics[0].code == "input.unknown_reference"


def test_the_yaml_reader_raises_yaml_error_for_callers_to_wrap() -> None:
    with pytest.raises(YamlError) as caught:
        read_yaml_documents("a: 1\na: 2\n", "x.yaml")
    assert caught.value.diagnostics[0].code == "yaml.duplicate_key"


def test_an_alias_bomb_is_refused_instead_of_expanded() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    with pytest.raises(YamlError) as caught:
        read_yaml_documents("\n".join(lines) + "\n", "bomb.yaml")
    assert "expands to over" in caught.value.diagnostics[0].message


# ---------------------------------------------------------------- rendering


def test_a_diagnostic_renders_in_the_formats_shape_with_a_caret_under_the_span() -> None:
    d = Diagnostic(
        "cel.undeclared_fact",
        "no field 'healthySnice' on Environment",
        SourceLocation("policies/prod-promotion.yaml", 45, 33, 45),
        "did you mean 'healthySince'?",
        "spec.rules[1].expression",
        "staging-soaked",
        source_line="        since(variables.staging.healthySnice) >= params.minSoak",
    )
    assert render_diagnostics([d]) == dedent("""\
        policies/prod-promotion.yaml:45:33: error[cel.undeclared_fact]: no field 'healthySnice' on Environment
            |
         45 |         since(variables.staging.healthySnice) >= params.minSoak
            |                                 ^^^^^^^^^^^^
            = in spec.rules[1].expression (rule staging-soaked)
            = hint: did you mean 'healthySince'?
        1 error in 1 file
        """)  # noqa: E501


def test_the_gutter_follows_the_line_number_and_a_caret_defaults_to_one_column() -> None:
    d = Diagnostic("yaml.syntax", "bad", SourceLocation("f.yaml", 7, 3), source_line="a: [")
    assert render_diagnostic(d) == "f.yaml:7:3: error[yaml.syntax]: bad\n   |\n 7 | a: [\n   |   ^"


def test_the_summary_counts_errors_files_and_warnings_separately() -> None:
    def at(file: str, severity: Severity = Severity.ERROR) -> Diagnostic:
        return Diagnostic("x.y", "m", SourceLocation(file, 1, 1), severity=severity)

    assert render_diagnostics([at("a"), at("b"), at("a")]).endswith("\n3 errors in 2 files\n")
    last = render_diagnostics([at("a"), at("a", Severity.WARNING)]).splitlines()[-1]
    assert last == "1 error in 1 file, 1 warning"


# ---------------------------------------------------------------- garbage in, PolicyErrors out

BAD = FIXTURES / "bad"
POLICY_CASES = [
    ("syntax-error.yaml", "yaml.syntax", 4, 5),
    ("duplicate-key.yaml", "yaml.duplicate_key", 9, 7),
    ("unknown-field.yaml", "policy.schema", 8, 7),
    ("wrong-type.yaml", "policy.schema", 9, 16),
    ("missing-rules.yaml", "policy.schema", 4, 1),
    ("unknown-zone.yaml", "policy.schema", 8, 17),
    ("malformed-window.yaml", "policy.schema", 11, 48),
    ("binary-garbage.yaml", "yaml.syntax", 1, 1),
    ("top-level-list.yaml", "policy.schema", 1, 1),
    ("empty.yaml", "policy.schema", 1, 1),
    ("deeply-nested.yaml", "yaml.syntax", 3, 106),
    ("cluster-without-namespaces.yaml", "policy.target", 5, 3),
    ("duplicate-rule.yaml", "policy.duplicate_id", 8, 14),
    ("unknown-window-reference.yaml", "policy.unknown_reference", 9, 29),
]


@pytest.mark.parametrize(("name", "code", "line", "column"), POLICY_CASES)
def test_each_bad_policy_file_raises_policy_errors_with_a_located_code(
    name: str, code: str, line: int, column: int
) -> None:
    with pytest.raises(PolicyErrors) as caught:
        loading.load_policy_paths([BAD / name])
    first = caught.value.diagnostics[0]
    assert first.code == code
    assert first.location is not None
    assert (first.location.line, first.location.column) == (line, column)
    assert "\n" not in first.message
    assert len(first.message) <= 256


VALID = EXAMPLE.read_text(encoding="utf-8")
YAMLISH = st.text(alphabet=st.sampled_from(list(" \n\t:-[]{}!&*#|>'\"?,%@`abc01.~\\")), max_size=80)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    start = draw(st.integers(0, len(VALID)))
    end = draw(st.integers(start, min(len(VALID), start + 40)))
    return VALID[:start] + draw(YAMLISH) + VALID[end:]


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(), YAMLISH, mutated()))
def test_no_text_makes_the_loader_raise_anything_but_policy_errors(text: str) -> None:
    try:
        loading.load_policy_text(text, "fuzz.yaml")
    except PolicyErrors as exc:
        found = exc.diagnostics
    else:
        found = ()
    assert all(d.location is not None and d.location.line >= 1 for d in found)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary())
def test_no_bytes_make_loading_a_path_raise_anything_but_policy_errors(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    file = tmp_path_factory.mktemp("fuzz") / "p.yaml"
    file.write_bytes(data)
    try:
        loading.load_policy_paths([file])
    except PolicyErrors as exc:
        found = exc.diagnostics
    else:
        found = (Diagnostic("ok", "loaded"),)
    assert found
