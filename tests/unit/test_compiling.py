"""Load-time checks: every authoring error located at file:line:col with a hint, all collected."""

from __future__ import annotations

import pytest

from policy_engine import loading
from policy_engine.cel.backend import CelBackend
from policy_engine.compiling import compile_policies
from policy_engine.errors import PolicyErrors, render_diagnostics

HEADER = """apiVersion: tidegate.dev/v1alpha1
kind: RolloutPolicy
metadata: {name: p, namespace: shop}
spec:
  targets: {rolloutSelector: {}}
  params: {minSoak: 24h}
  variables:
    - {name: staging, expression: "environments['staging']"}
  windows:
    - {name: office, timezone: Europe/Berlin, allow: [{name: day, between: "09:00-17:00"}]}
  rules:
"""


def errors_of(backend: CelBackend, rules: str, file: str = "p.yaml") -> PolicyErrors:
    with pytest.raises(PolicyErrors) as caught:
        compile_policies(loading.load_policy_text(HEADER + rules, file), backend)
    return caught.value


def test_a_misspelt_field_in_a_folded_block_is_located_exactly(backend: CelBackend) -> None:
    rules = """    - name: soaked
      expression: >-
        variables.staging.tag == release.tag &&
        since(variables.staging.healthySnice) >= duration('24h')
"""
    error = errors_of(backend, rules).diagnostics[0]
    assert error.code == "cel.undeclared_fact"
    assert error.location is not None
    assert (error.location.line, error.location.column) == (15, 33)
    assert error.hint == "did you mean 'healthySince'?"
    rendered = render_diagnostics([error])
    assert (
        "p.yaml:15:33: error[cel.undeclared_fact]: no field 'healthySnice' on Environment"
        in rendered
    )
    assert "^^^^^^^^^^^^" in rendered


@pytest.mark.parametrize(
    ("expression", "code", "needle"),
    [
        ("now.getHours('Europe/Berln') < 9", "cel.invalid_argument", "Europe/Berln"),
        ("since(now) > duration('1 day')", "cel.invalid_argument", "1 day"),
        ("semverDiff('1.2', release.tag) == 'major'", "cel.invalid_argument", "1.2"),
        ("inWindow(now, 'offce')", "cel.invalid_argument", "offce"),
        ("params.minSok > duration('1h')", "cel.undeclared_fact", "minSok"),
        ("variables.prod.tag == ''", "cel.undeclared_fact", "prod"),
        ("relase.tag == ''", "cel.undeclared_fact", "relase"),
        ("release.tag ==", "cel.parse", ""),
        ("'a'.matches('(')", "cel.invalid_argument", "("),
        ("windows.all(a, windows.all(b, windows.all(c, true)))", "cel.limit", "nested"),
    ],
)
def test_each_load_time_check_has_its_code(
    backend: CelBackend, expression: str, code: str, needle: str
) -> None:
    rules = f'    - {{name: r, expression: "{expression}"}}\n'
    diagnostics = errors_of(backend, rules).diagnostics
    assert diagnostics[0].code == code
    assert needle in diagnostics[0].message
    assert diagnostics[0].location is not None
    assert diagnostics[0].location.line == 12


def test_int_literals_against_double_metrics_are_type_errors_on_cel_cpp() -> None:
    from policy_engine.cel.environment import select_backend

    text = HEADER.replace("  params:", "  facts: {metrics: {rate: {query: up}}}\n  params:")
    text += '    - {name: r, expression: "metrics.rate < 500"}\n'
    with pytest.raises(PolicyErrors) as caught:
        compile_policies(
            loading.load_policy_text(text, "p.yaml"), select_backend("cel-expr-python").backend
        )
    assert caught.value.diagnostics[0].code == "cel.check"


def test_every_error_of_every_rule_is_collected_and_sorted(backend: CelBackend) -> None:
    rules = """    - {name: a, expression: "relase.tag == ''"}
    - {name: b, expression: "now.getHours('Mars/Base') < 1"}
    - {name: c, expression: "release.tag =="}
"""
    diagnostics = errors_of(backend, rules).diagnostics
    assert [d.code for d in diagnostics] == [
        "cel.undeclared_fact",
        "cel.invalid_argument",
        "cel.parse",
    ]
    assert [d.location.line for d in diagnostics if d.location] == [12, 13, 14]


def test_a_body_must_be_boolean(backend: CelBackend) -> None:
    diagnostics = errors_of(backend, '    - {name: r, expression: "release.tag"}\n').diagnostics
    assert diagnostics[0].code == "cel.check"


def test_builtins_compile_cleanly(backend: CelBackend) -> None:
    compiled = compile_policies(loading.load_builtin_policies(), backend)
    assert sorted(r.name for p in compiled for r in p.rules) == [
        "deploy-windows",
        "no-deploy-after-failed-bake",
        "no-deploy-into-unhealthy",
        "one-in-flight",
        "rollout-gates",
    ]
    assert all(p.warnings == () for p in compiled)
