"""Every function example runs on both backends; backends agree on values and errors."""

from __future__ import annotations

import gc
import sys
from datetime import UTC, datetime, timedelta

import pytest

from policy_engine.cel import environment
from policy_engine.cel.backend import CelBackend
from policy_engine.cel.library import standard_library
from policy_engine.cel.parsing import reads
from policy_engine.cel.types import Semver
from policy_engine.errors import EvalError
from policy_engine.model.times import to_utc

EXAMPLES = [(decl.name, example) for decl in standard_library() for example in decl.examples]


def run(
    backend: CelBackend,
    text: str,
    variables: dict[str, object] | None = None,
    now: datetime | None = None,
) -> object:
    env = environment.make_env()
    checked = environment.compile_checked(backend, text, env, reads.Scope())
    bound = backend.bind(
        {
            "now": now or datetime(2026, 3, 4, 10, 30, tzinfo=UTC),
            "params": {},
            "variables": {},
            **(variables or {}),
        }
    )
    return backend.evaluate(checked.program, bound)


@pytest.mark.parametrize(
    ("function", "example"), EXAMPLES, ids=[f"{n}:{e.expression[:40]}" for n, e in EXAMPLES]
)
def test_every_documented_example_gives_its_result(
    backend: CelBackend, function: str, example: object
) -> None:
    result = run(backend, example.expression, now=to_utc(example.now))  # type: ignore[attr-defined]
    if example.error:  # type: ignore[attr-defined]
        assert isinstance(result, EvalError)
        assert result.code == example.error  # type: ignore[attr-defined]
    else:
        expected = example.result  # type: ignore[attr-defined]
        if isinstance(result, Semver):
            result = str(result)
        assert result == expected, f"{function}: {example.expression}"  # type: ignore[attr-defined]


def test_every_function_has_examples() -> None:
    assert all(decl.examples for decl in standard_library())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rollout.spec.replicas == 3.0", True),
        ("rollout.spec.replicas < 3.5", True),
        ("release.created < now", True),
        ("now - release.created", timedelta(days=3)),
        ("since(release.created) > duration('71h')", True),
        ("has(rollout.spec.missing)", False),
        ("[1, 2, 3].exists_one(x, x == 2)", True),
        ("{'a': 1}.all(k, k == 'a')", True),
        ("['a', 'b'].map(x, x + '!')", ["a!", "b!"]),
        ("'abc'.matches('^a.c$')", True),
        ("now.getHours('Europe/Berlin')", 11),
        ("now.getDayOfWeek('America/New_York')", 3),
        ("semver('1.4.2').isGreaterThan(semver('1.4.1'))", True),
        ("rollout.labels['tier'] == 'prod' ? 'p' : 'n'", "p"),
        ("string(release.created)", "2026-03-01T10:30:00Z"),
    ],
)
def test_backends_agree_on_portable_expressions(
    backend: CelBackend, text: str, expected: object
) -> None:
    facts = {
        "rollout": {"spec": {"replicas": 3}, "labels": {"tier": "prod"}},
        "release": {"tag": "1.4.3", "created": datetime(2026, 3, 1, 10, 30, tzinfo=UTC)},
    }
    assert run(backend, text, facts) == expected


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("rollout.spec.nope == 1", "eval.no_such_key"),
        ("1 / 0 == 1", "eval.division_by_zero"),
        ("[1][5] == 1", "eval.no_such_key"),
        ("semver('1.0' + '2.3') == semver('1.2.3')", "eval.function"),
        ("alerts.size() == 0", "eval.no_such_key"),
    ],
)
def test_runtime_errors_are_values_with_stable_codes(
    backend: CelBackend, text: str, code: str
) -> None:
    result = run(backend, text, {"rollout": {"spec": {}}})
    assert isinstance(result, EvalError)
    assert result.code == code


def test_null_results_do_not_corrupt_the_interpreter() -> None:
    # cel-expr-python 0.1.3 hands back None without a reference; the backend restores it
    backend = environment.select_backend("cel-expr-python").backend
    env = environment.make_env()
    program = environment.compile_checked(
        backend, "environments['staging']", env, reads.Scope()
    ).program
    bound = backend.bind({"environments": {"staging": {"tag": None, "healthy": None}}})
    gc.collect()
    before = sys.getrefcount(None)
    for _ in range(5000):
        assert backend.evaluate(program, bound) == {"tag": None, "healthy": None}
    gc.collect()
    assert abs(sys.getrefcount(None) - before) < 100


def test_metrics_compared_with_an_int_literal_is_a_load_error_on_the_primary_backend() -> None:
    backend = environment.select_backend("cel-expr-python").backend
    with pytest.raises(environment.CompileProblems) as caught:
        environment.compile_checked(
            backend,
            "metrics.x < 500",
            environment.make_env(),
            reads.Scope(metrics=frozenset({"x"})),
        )
    assert caught.value.problems[0].code == "cel.check"


def test_an_error_on_both_sides_of_and_keeps_the_first_error_code(backend: CelBackend) -> None:
    result = run(backend, "rollout.spec.a == 1 && rollout.spec.b == 2", {"rollout": {"spec": {}}})
    assert isinstance(result, EvalError)
    assert result.code == "eval.no_such_key"
