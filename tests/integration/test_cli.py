"""The ``tidegate`` command end to end, run as a subprocess (POLICY-FORMATS.md §9-§11).

Black-box: every test runs the installed console script with ``NO_COLOR=1``
and checks exit codes, stdout documents and stderr diagnostics against the
contract. Inputs are the shipped examples (``examples/``,
``tests/policy_cases/examples/``) and malformed files (``tests/fixtures/bad/``);
variants (typos, wrong expectations, recorded decisions) are written to
``tmp_path`` so the pytest policy-case plugin never collects them.

One file on purpose, past the 600-line guide: the slowest subprocess runs of
every verb are started together on background threads when the module starts
(``_prefetch``) and shared by the tests of all verbs; split per verb, each file
would pay for them again and the run would take about twice as long.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_POLICIES = REPO / "examples" / "policies"
EXAMPLE_POLICY = EXAMPLE_POLICIES / "prod-promotion.yaml"
EXAMPLE_SNAPSHOT = REPO / "examples" / "snapshots" / "checkout-prod.facts.yaml"
EXAMPLE_SUITE_DIR = REPO / "tests" / "policy_cases" / "examples"
EXAMPLE_SUITE = EXAMPLE_SUITE_DIR / "prod-promotion.yaml"
EXAMPLE_SUITE_ARG = (
    "tests/policy_cases/examples"  # relative to REPO, so case IDs and files read alike
)
BAD_FIXTURES = REPO / "tests" / "fixtures" / "bad"
BAD_FILES = sorted(p for p in BAD_FIXTURES.iterdir() if p.is_file())
BERLIN = ZoneInfo("Europe/Berlin")

WEDNESDAY_MORNING = "2026-03-04T10:30:00+01:00"
SATURDAY_MORNING = "2026-03-07T11:00:00+01:00"

# The header line of one diagnostic (§11): file:line:col: error[code]: message
DIAGNOSTIC = re.compile(
    r"^(?P<file>\S+?):(?P<line>\d+):(?P<col>\d+): error\[(?P<code>[a-z_.]+)\]: "
)


def _tidegate() -> str:
    found = shutil.which("tidegate")
    if found:
        return found
    return str(Path(sys.executable).parent / "tidegate")


TIDEGATE = _tidegate()


def _spawn(args: tuple[str, ...], cwd: Path, stdin: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TIDEGATE_CEL_BACKEND"}
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [TIDEGATE, *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# Invocations started in the background when the whole module runs (see ``_prefetch``);
# ``run`` hands out their results instead of starting the same process again.
_PREFETCHED: dict[
    tuple[tuple[str, ...], str, str | None], Future[subprocess.CompletedProcess[str]]
] = {}


def run(
    *args: str | Path, cwd: Path = REPO, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs ``tidegate ARGS``; never a traceback or an internal error, whatever the input."""
    argv = tuple(map(str, args))
    future = _PREFETCHED.get((argv, str(cwd), stdin))
    result = future.result() if future is not None else _spawn(argv, cwd, stdin)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode != 70, result.stderr
    return result


def eval_args(*args: str | Path) -> tuple[str | Path, ...]:
    return ("eval", "-p", EXAMPLE_POLICIES, "--facts", EXAMPLE_SNAPSHOT, *args, "-o", "json")


def eval_json(*args: str | Path, cwd: Path = REPO) -> tuple[int, dict[str, Any]]:
    result = run(*eval_args(*args), cwd=cwd)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def candidate(report: dict[str, Any], tag: str) -> dict[str, Any]:
    return next(c for c in report["candidates"] if c["release"]["tag"] == tag)


def rule_results(entry: dict[str, Any]) -> dict[str, str]:
    return {r["id"]: r["result"] for r in entry["rules"]}


def diagnostics_in(stderr: str) -> list[tuple[str, int, int, str]]:
    found = []
    for line in stderr.splitlines():
        match = DIAGNOSTIC.match(line)
        if match:
            found.append((match["file"], int(match["line"]), int(match["col"]), match["code"]))
    return found


def position_of(path: Path, needle: str) -> tuple[int, int]:
    """1-based line and column of the first occurrence of ``needle`` in a file."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        column = line.find(needle)
        if column >= 0:
            return number, column + 1
    raise AssertionError(f"{needle!r} not in {path}")


def berlin(text: str) -> datetime:
    """A Europe/Berlin wall-clock time ('2026-03-27 09:00') as an aware UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).astimezone(UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def derive(source: Path, target: Path, old: str, new: str) -> Path:
    """Writes a copy of ``source`` with exactly one ``old`` replaced by ``new``."""
    text = source.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur once in {source}"
    target.write_text(text.replace(old, new), encoding="utf-8")
    return target


def suite_header(name: str) -> str:
    """A PolicyTest preamble pointing at the example policy and snapshot by absolute path."""
    return f"""\
apiVersion: tidegate.dev/v1alpha1
kind: PolicyTest
metadata: {{name: {name}}}
policies: [{EXAMPLE_POLICY}]
defaults:
  now: "{WEDNESDAY_MORNING}"
  release: 1.4.2
  facts: {{from: {EXAMPLE_SNAPSHOT}}}
cases:
"""


WRONG_SUITE_CASES = """\
  - name: allowed on a normal Wednesday morning
    expect: {decision: Allowed, allowedVersions: [1.4.2], nextChange: "2026-03-04T17:00:00+01:00"}

  - name: saturday waits for Monday 09:00
    now: {at: "2026-03-07 11:00", tz: Europe/Berlin}
    expect:
      decision: Pending
      nextChange: "2026-03-09T09:00:00Z"
      rules: {business-hours: {result: pending, reason: OutsideWindow}}
"""

UNKNOWN_RULE_CASES = """\
  - name: names a rule that does not exist
    expect: {decision: Allowed, rules: {staging-soakd: pass}}
"""


@pytest.fixture
def wrong_suite(tmp_path: Path) -> Path:
    path = tmp_path / "wrong.yaml"
    path.write_text(suite_header("wrong-expectation") + WRONG_SUITE_CASES, encoding="utf-8")
    return path


@pytest.fixture
def unknown_rule_suite(tmp_path: Path) -> Path:
    path = tmp_path / "unknown-rule.yaml"
    path.write_text(suite_header("unknown-rule") + UNKNOWN_RULE_CASES, encoding="utf-8")
    return path


@pytest.fixture
def typo_policy(tmp_path: Path) -> Path:
    return derive(
        EXAMPLE_POLICY,
        tmp_path / "typo.yaml",
        "since(variables.staging.healthySince)",
        "since(variables.staging.healthySnice)",
    )


TWO_CEL_ERRORS = """\
apiVersion: tidegate.dev/v1alpha1
kind: RolloutPolicy
metadata: {name: a-broken, namespace: shop}
spec:
  targets: {rolloutSelector: {}}
  rules:
    - name: first
      expression: "environments['staging'].healthySnice != null"
    - name: second
      expression: "release.tga == 'x'"
"""

ONE_CEL_ERROR = """\
apiVersion: tidegate.dev/v1alpha1
kind: RolloutPolicy
metadata: {name: b-broken, namespace: shop}
spec:
  targets: {rolloutSelector: {}}
  rules:
    - name: only
      expression: "rollout.currnet.tag == release.tag"
"""

ONE_SCHEMA_ERROR = """\
apiVersion: tidegate.dev/v1alpha1
kind: RolloutPolicy
metadata: {name: c-broken, namespace: shop}
spec:
  targets: {rolloutSelector: {}}
  rules:
    - name: r
      expresion: "true"
"""

UNKNOWN_FUNCTION = """\
apiVersion: tidegate.dev/v1alpha1
kind: RolloutPolicy
metadata: {name: fn, namespace: shop}
spec:
  targets: {rolloutSelector: {}}
  rules:
    - name: diff
      expression: "semverDif(rollout.current.tag, release.tag) != 'major'"
"""


@pytest.fixture
def two_broken_policies(tmp_path: Path) -> tuple[Path, Path]:
    first = tmp_path / "a-broken.yaml"
    second = tmp_path / "b-broken.yaml"
    first.write_text(TWO_CEL_ERRORS, encoding="utf-8")
    second.write_text(ONE_CEL_ERROR, encoding="utf-8")
    return first, second


def _bad_file_args(path: Path) -> tuple[str | Path, ...]:
    if path.name.endswith(".facts.yaml"):
        return ("eval", "-p", EXAMPLE_POLICIES, "--facts", path)
    return ("eval", "-p", path, "--facts", EXAMPLE_SNAPSHOT)


def _slow_invocations() -> list[tuple[str | Path, ...]]:
    """Repo-rooted invocations worth starting early: the slowest first."""
    sweep = "2026-03-27T08:00:00+01:00..2026-03-30T18:00:00+02:00/{}"
    return [
        ("test", EXAMPLE_SUITE_ARG, "--cel-backend", "celpy"),
        eval_args("--sweep", sweep.format("7m"), "--release", "1.4.2"),
        eval_args("--sweep", sweep.format("15m"), "--release", "1.4.2"),
        ("test", EXAMPLE_SUITE_ARG, "-o", "junit"),
        ("test", EXAMPLE_SUITE_ARG, "-o", "json"),
        ("test", EXAMPLE_SUITE_ARG),
        eval_args("--at", WEDNESDAY_MORNING, "--cel-backend", "celpy"),
        eval_args("--at", SATURDAY_MORNING, "--cel-backend", "celpy"),
        eval_args("--at", WEDNESDAY_MORNING),
        eval_args("--at", SATURDAY_MORNING),
        *(_bad_file_args(path) for path in BAD_FILES),
    ]


@pytest.fixture(scope="module", autouse=True)
def _prefetch(request: pytest.FixtureRequest) -> Iterator[None]:
    """When most of this module runs, start its slow, repo-rooted processes in the background.

    Each is an independent process; results are handed out by ``run`` to the tests
    that make the same call, so the ~60 process starts overlap on a 2-core machine.
    """
    selected = sum(1 for item in request.session.items if item.path == request.path)
    if selected < 20:
        yield
        return
    pool = ThreadPoolExecutor(max_workers=2)
    for args in _slow_invocations():
        argv = tuple(map(str, args))
        _PREFETCHED[(argv, str(REPO), None)] = pool.submit(_spawn, argv, REPO, None)
    try:
        yield
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _PREFETCHED.clear()


# ---------------------------------------------------------------- eval


def test_eval_allows_the_soaked_release_on_a_wednesday_morning() -> None:
    code, report = eval_json("--at", WEDNESDAY_MORNING)
    assert code == 0
    assert report["apiVersion"] == "tidegate.dev/v1alpha1"
    assert report["kind"] == "EvaluationReport"
    assert report["decision"] == "Allowed"
    assert report["allowedVersions"] == ["1.4.2"]
    assert report["nextChange"] == "2026-03-04T16:00:00Z"
    assert report["now"] == "2026-03-04T09:30:00Z"
    assert report["nowSource"] == "flag"
    assert report["rollout"]["namespace"] == "shop"
    assert report["rollout"]["name"] == "checkout"
    assert candidate(report, "1.4.3")["decision"] == "Blocked"
    assert candidate(report, "1.4.2")["decision"] == "Allowed"


def test_eval_on_a_saturday_is_pending_until_monday_nine_in_berlin() -> None:
    code, report = eval_json("--at", SATURDAY_MORNING)
    assert code == 1
    assert report["decision"] == "Pending"
    assert report["allowedVersions"] == []
    assert report["nextChange"] == "2026-03-09T08:00:00Z"
    assert utc(report["nextChange"]) == berlin("2026-03-09 09:00")
    released = candidate(report, "1.4.2")
    assert released["decision"] == "Pending"
    assert rule_results(released)["shop/prod-promotion/business-hours"] == "pending"


def test_eval_explain_names_the_failing_rule_its_operand_values_and_the_window_entries() -> None:
    result = run(
        "eval",
        "-p",
        EXAMPLE_POLICIES,
        "--facts",
        EXAMPLE_SNAPSHOT,
        "--at",
        SATURDAY_MORNING,
        "--explain",
    )
    assert result.returncode == 1
    out = result.stdout
    assert "shop/prod-promotion/staging-soaked" in out
    assert "staging runs 1.4.2, candidate is 1.4.3" in out
    assert "variables.staging.tag == release.tag" in out
    assert '"1.4.2"' in out
    assert '"1.4.3"' in out
    assert "shop/prod-promotion/business-hours" in out
    for entry in ("mon-thu", "friday-morning", "holiday-freeze"):
        assert entry in out
    assert "09:00-17:00" in out
    assert "09:00-12:00" in out
    assert "2026-12-19..2027-01-06" in out
    assert "Europe/Berlin" in out


def test_eval_of_an_unsoaked_release_is_blocked_and_exits_1() -> None:
    code, report = eval_json("--at", WEDNESDAY_MORNING, "--release", "1.4.3")
    assert code == 1
    chosen = candidate(report, "1.4.3")
    assert chosen["decision"] == "Blocked"
    soaked = next(r for r in chosen["rules"] if r["id"] == "shop/prod-promotion/staging-soaked")
    assert soaked["result"] == "fail"
    assert soaked["reason"] == "SoakIncomplete"
    assert soaked["message"] == "staging runs 1.4.2, candidate is 1.4.3"


def test_fail_on_none_lets_a_blocked_release_exit_0() -> None:
    code, report = eval_json("--at", WEDNESDAY_MORNING, "--release", "1.4.3", "--fail-on", "none")
    assert code == 0
    assert candidate(report, "1.4.3")["decision"] == "Blocked"


def test_setting_a_failed_bake_blocks_every_candidate_with_the_builtin_rule() -> None:
    code, report = eval_json("--at", WEDNESDAY_MORNING, "--set", "history[0].bakeStatus=Failed")
    assert code == 1
    assert report["decision"] == "Blocked"
    assert report["allowedVersions"] == []
    for entry in report["candidates"]:
        assert entry["decision"] == "Blocked"
        assert rule_results(entry)["kuberik/no-deploy-after-failed-bake"] == "fail"
    assert any("history[0].bakeStatus" in o for o in report["facts"]["overrides"])
    assert report["provenance"]["history[0].bakeStatus"]["source"] == "cli"


def test_a_longer_soak_param_moves_next_change_to_thursday_morning() -> None:
    code, report = eval_json("--at", WEDNESDAY_MORNING, "--param", "minSoak=48h")
    assert code == 1
    assert report["decision"] == "Pending"
    # staging healthy since 2026-03-03T08:10Z + 48h, inside Thursday's window
    assert report["nextChange"] == "2026-03-05T08:10:00Z"
    released = candidate(report, "1.4.2")
    assert rule_results(released)["shop/prod-promotion/staging-soaked"] == "pending"


# The window in Europe/Berlin: Fri 27th 09:00-12:00 (CET, +01:00), then Mon 30th 09:00-17:00
# (CEST, +02:00 after the DST change on the 29th). Staging has soaked since the 4th.
EXPECTED_DST_TRANSITIONS = [
    (berlin("2026-03-27 09:00"), "Allowed"),
    (berlin("2026-03-27 12:00"), "Pending"),
    (berlin("2026-03-30 09:00"), "Allowed"),
    (berlin("2026-03-30 17:00"), "Pending"),
]


@pytest.mark.parametrize("step", ["15m", "7m"], ids=["on-the-step-grid", "off-the-step-grid"])
def test_sweep_lists_each_window_transition_across_the_dst_change_to_the_second(step: str) -> None:
    code, report = eval_json(
        "--sweep",
        f"2026-03-27T08:00:00+01:00..2026-03-30T18:00:00+02:00/{step}",
        "--release",
        "1.4.2",
    )
    assert code in (0, 1)
    assert report["initial"] == "Pending"
    transitions = [(utc(t["at"]), t["to"]) for t in report["transitions"]]
    assert transitions == EXPECTED_DST_TRANSITIONS


def _decision_summary(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "decision": report["decision"],
        "allowedVersions": report["allowedVersions"],
        "nextChange": report["nextChange"],
        "candidates": [
            {
                "tag": c["release"]["tag"],
                "decision": c["decision"],
                "nextChange": c["nextChange"],
                "warnings": c["warnings"],
                "rules": [
                    (r["id"], r["result"], r["reason"], r["message"], r["nextChange"])
                    for r in c["rules"]
                ],
            }
            for c in report["candidates"]
        ],
    }


@pytest.mark.parametrize("at", [WEDNESDAY_MORNING, SATURDAY_MORNING], ids=["wednesday", "saturday"])
def test_the_celpy_backend_gives_the_same_decision_as_the_primary(at: str) -> None:
    primary_code, primary = eval_json("--at", at)
    celpy_code, fallback = eval_json("--at", at, "--cel-backend", "celpy")
    assert fallback["engine"]["celBackend"].startswith("celpy")
    assert celpy_code == primary_code
    assert _decision_summary(fallback) == _decision_summary(primary)


def test_eval_reads_the_snapshot_from_stdin() -> None:
    result = run(
        "eval",
        "-p",
        EXAMPLE_POLICIES,
        "--facts",
        "-",
        "--at",
        WEDNESDAY_MORNING,
        "-o",
        "json",
        stdin=EXAMPLE_SNAPSHOT.read_text(encoding="utf-8"),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["allowedVersions"] == ["1.4.2"]


@pytest.mark.parametrize(
    "extra",
    [
        ["--facts", EXAMPLE_SNAPSHOT, "--bogus"],
        ["--facts", EXAMPLE_SNAPSHOT, "--at", "notatime"],
        ["--facts", EXAMPLE_SNAPSHOT, "--at", "2026-03-04T10:30:00"],
        [],
        ["--facts", EXAMPLE_SNAPSHOT, "--sweep", "garbage"],
        ["--facts", EXAMPLE_SNAPSHOT, "--fail-on", "sometimes"],
        ["--facts", EXAMPLE_SNAPSHOT, "--set", "no-equals-sign"],
    ],
    ids=[
        "unknown-flag",
        "bad-at",
        "naive-at",
        "missing-facts",
        "bad-sweep",
        "bad-fail-on",
        "bad-set",
    ],
)
def test_eval_usage_errors_exit_2(extra: list[str | Path]) -> None:
    result = run("eval", "-p", EXAMPLE_POLICIES, *extra)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip()
    assert result.stdout == ""


def test_a_cel_typo_in_a_policy_exits_3_with_location_caret_and_suggestion(
    tmp_path: Path, typo_policy: Path
) -> None:
    result = run("eval", "-p", typo_policy.name, "--facts", EXAMPLE_SNAPSHOT, cwd=tmp_path)
    assert result.returncode == 3
    line, column = position_of(typo_policy, "healthySnice")
    lines = result.stderr.splitlines()
    header = f"typo.yaml:{line}:{column}: error[cel.undeclared_fact]: "
    assert any(entry.startswith(header) for entry in lines), result.stderr
    caret = next(entry for entry in lines if "^" in entry)
    assert caret.strip(" |") == "^" * len("healthySnice")
    source = next(entry for entry in lines if "since(variables.staging.healthySnice)" in entry)
    # the caret sits under the misspelt field
    assert source.index("healthySnice") == caret.index("^")
    assert "did you mean 'healthySince'" in result.stderr
    assert "1 error in 1 file" in result.stderr
    assert result.stdout == ""


def test_errors_in_two_policy_files_are_all_reported_sorted_by_file_line_and_column(
    tmp_path: Path, two_broken_policies: tuple[Path, Path]
) -> None:
    first, second = two_broken_policies
    result = run(
        "eval", "-p", second.name, "-p", first.name, "--facts", EXAMPLE_SNAPSHOT, cwd=tmp_path
    )
    assert result.returncode == 3
    expected = [
        ("a-broken.yaml", *position_of(first, "healthySnice"), "cel.undeclared_fact"),
        ("a-broken.yaml", *position_of(first, "tga"), "cel.undeclared_fact"),
        ("b-broken.yaml", *position_of(second, "currnet"), "cel.undeclared_fact"),
    ]
    assert diagnostics_in(result.stderr) == expected
    assert "3 errors in 2 files" in result.stderr


def test_a_schema_error_in_one_file_does_not_hide_cel_errors_in_another(tmp_path: Path) -> None:
    (tmp_path / "b-broken.yaml").write_text(ONE_CEL_ERROR, encoding="utf-8")
    (tmp_path / "c-broken.yaml").write_text(ONE_SCHEMA_ERROR, encoding="utf-8")
    result = run(
        "eval",
        "-p",
        "c-broken.yaml",
        "-p",
        "b-broken.yaml",
        "--facts",
        EXAMPLE_SNAPSHOT,
        cwd=tmp_path,
    )
    assert result.returncode == 3
    codes = [(file, code) for file, _, _, code in diagnostics_in(result.stderr)]
    assert codes == [("b-broken.yaml", "cel.undeclared_fact"), ("c-broken.yaml", "policy.schema")]


@pytest.mark.parametrize("cel_backend", ["cel-expr-python", "celpy"])
def test_calling_an_unknown_function_is_a_load_error_on_every_backend(
    tmp_path: Path, cel_backend: str
) -> None:
    policy = tmp_path / "fn.yaml"
    policy.write_text(UNKNOWN_FUNCTION, encoding="utf-8")
    result = run("check", policy.name, "--cel-backend", cel_backend, cwd=tmp_path)
    assert result.returncode == 3, result.stdout + result.stderr
    found = diagnostics_in(result.stderr)
    assert [(f, ln, code) for f, ln, _, code in found] == [
        ("fn.yaml", position_of(policy, "semverDif")[0], "cel.unknown_function")
    ]


def test_a_snapshot_with_a_naive_timestamp_exits_4_and_points_at_it(tmp_path: Path) -> None:
    snapshot = derive(
        EXAMPLE_SNAPSHOT,
        tmp_path / "naive.facts.yaml",
        'healthySince: "2026-03-03T08:10:00Z"',
        'healthySince: "2026-03-03T08:10:00"',
    )
    result = run("eval", "-p", EXAMPLE_POLICIES, "--facts", snapshot.name, cwd=tmp_path)
    assert result.returncode == 4
    line, column = position_of(snapshot, '"2026-03-03T08:10:00"')
    assert diagnostics_in(result.stderr) == [("naive.facts.yaml", line, column, "input.naive_time")]
    assert result.stdout == ""


def test_an_invalid_policy_outranks_an_invalid_snapshot(typo_policy: Path) -> None:
    result = run("eval", "-p", typo_policy, "--facts", BAD_FIXTURES / "naive-time.facts.yaml")
    assert result.returncode == 3


def test_a_usage_error_outranks_an_invalid_policy(typo_policy: Path) -> None:
    result = run("eval", "-p", typo_policy, "--facts", EXAMPLE_SNAPSHOT, "--at", "notatime")
    assert result.returncode == 2, result.stderr


def test_there_are_malformed_fixtures_to_try() -> None:
    assert len(BAD_FILES) >= 10


@pytest.mark.parametrize("name", [p.name for p in BAD_FILES])
def test_a_malformed_input_file_exits_with_a_diagnostic_and_no_traceback(name: str) -> None:
    result = run(*_bad_file_args(BAD_FIXTURES / name))
    assert result.returncode in (2, 3, 4), result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip()
    assert diagnostics_in(result.stderr) or result.returncode == 2, result.stderr


# ---------------------------------------------------------------- test


def _example_case_count() -> tuple[int, int]:
    """(cases incl. matrix rows, skipped + todo) of the example suite, read from its YAML."""
    document = YAML(typ="safe").load(EXAMPLE_SUITE.read_text(encoding="utf-8"))
    total = skipped = 0
    for case in document["cases"]:
        rows = 1
        for values in (case.get("matrix") or {}).values():
            rows *= len(values)
        total += rows
        if case.get("skip") or case.get("todo"):
            skipped += rows
    return total, skipped


SUMMARY = re.compile(
    r"^(?P<cases>\d+) cases: (?P<passed>\d+) passed, (?P<failed>\d+) failed"
    r"(?:, (?P<skipped>\d+) skipped)?(?:, (?P<todo>\d+) todo)?",
    re.MULTILINE,
)


def test_the_example_suite_passes_and_prints_a_summary_line() -> None:
    result = run("test", EXAMPLE_SUITE_ARG)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = SUMMARY.search(result.stdout)
    assert summary, result.stdout
    total, not_run = _example_case_count()
    assert int(summary["cases"]) == total
    assert int(summary["failed"]) == 0
    assert int(summary["passed"]) == total - not_run
    assert int(summary["skipped"] or 0) + int(summary["todo"] or 0) == not_run


def test_a_wrong_expectation_fails_the_case_and_shows_expected_and_actual(
    tmp_path: Path, wrong_suite: Path
) -> None:
    result = run("test", wrong_suite.name, cwd=tmp_path)
    assert result.returncode == 1
    out = result.stdout
    assert "saturday waits for Monday 09:00" in out
    assert re.search(r"expected\s+\"?2026-03-09T09:00:00Z\"?", out), out
    assert re.search(r"actual\s+\"?2026-03-09T08:00:00Z\"?", out), out
    summary = SUMMARY.search(out)
    assert summary, out
    assert (summary["cases"], summary["passed"], summary["failed"]) == ("2", "1", "1")


def test_junit_output_has_one_testcase_per_case_and_matrix_row() -> None:
    result = run("test", EXAMPLE_SUITE_ARG, "-o", "junit")
    assert result.returncode == 0, result.stderr
    root = ET.fromstring(result.stdout)
    testcases = list(root.iter("testcase"))
    total, not_run = _example_case_count()
    assert len(testcases) == total
    assert len({case.get("name") for case in testcases}) == total
    assert sum(1 for case in testcases if case.find("skipped") is not None) == not_run
    assert not any(
        case.find("failure") is not None or case.find("error") is not None for case in testcases
    )
    for case in testcases:
        assert case.get("file") == "tests/policy_cases/examples/prod-promotion.yaml"
        assert int(case.get("line", "0")) > 0
    names = {case.get("name") for case in testcases}
    assert "tests/policy_cases/examples/prod-promotion.yaml::rollback drill" in names
    assert (
        "tests/policy_cases/examples/prod-promotion.yaml::"
        "open on weekday working hours[now=2026-03-05T09:00:00+01:00]"
    ) in names


def test_junit_reports_a_wrong_expectation_as_a_failure(tmp_path: Path, wrong_suite: Path) -> None:
    result = run("test", wrong_suite.name, "-o", "junit", cwd=tmp_path)
    assert result.returncode == 1
    root = ET.fromstring(result.stdout)
    failed = [
        case.get("name") for case in root.iter("testcase") if case.find("failure") is not None
    ]
    assert failed == ["wrong.yaml::saturday waits for Monday 09:00"]


def test_a_run_filter_matching_no_case_exits_5() -> None:
    result = run("test", EXAMPLE_SUITE_ARG, "--run", "no-such-case")
    assert result.returncode == 5


def test_allow_empty_accepts_a_run_in_which_no_case_ran() -> None:
    result = run("test", EXAMPLE_SUITE_ARG, "--run", "no-such-case", "--allow-empty")
    assert result.returncode == 0


def test_an_expectation_naming_an_unknown_rule_exits_4_with_input_unknown_reference(
    tmp_path: Path, unknown_rule_suite: Path
) -> None:
    result = run("test", unknown_rule_suite.name, cwd=tmp_path)
    assert result.returncode == 4
    assert "error[input.unknown_reference]" in result.stderr
    assert "staging-soakd" in result.stderr
    assert [d[0] for d in diagnostics_in(result.stderr)] == ["unknown-rule.yaml"]


def test_diagnostic_messages_stay_under_256_characters(
    tmp_path: Path, unknown_rule_suite: Path
) -> None:
    result = run("test", unknown_rule_suite.name, "-o", "json", cwd=tmp_path)
    assert result.returncode == 4
    diagnostics = json.loads(result.stdout)["diagnostics"]
    assert diagnostics
    for diagnostic in diagnostics:
        assert len(diagnostic["message"]) < 256, diagnostic["message"]


def test_an_input_error_outranks_failing_cases(
    tmp_path: Path, unknown_rule_suite: Path, wrong_suite: Path
) -> None:
    result = run("test", unknown_rule_suite.name, wrong_suite.name, cwd=tmp_path)
    assert result.returncode == 4


def test_json_output_is_a_test_report_with_a_consistent_summary() -> None:
    result = run("test", EXAMPLE_SUITE_ARG, "-o", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["apiVersion"] == "tidegate.dev/v1alpha1"
    assert report["kind"] == "TestReport"
    summary = report["summary"]
    total, not_run = _example_case_count()
    assert summary["cases"] == total == len(report["cases"])
    assert summary["failed"] == 0
    assert summary["passed"] == total - not_run
    assert summary["skipped"] + summary["todo"] == not_run
    assert isinstance(summary["durationMs"], int | float)
    statuses = {case["status"] for case in report["cases"]}
    assert "passed" in statuses
    for case in report["cases"]:
        assert case["id"].startswith("tests/policy_cases/examples/prod-promotion.yaml::")
        assert case["file"] == "tests/policy_cases/examples/prod-promotion.yaml"
        assert case["line"] > 0


def test_the_example_suite_also_passes_on_celpy() -> None:
    result = run("test", EXAMPLE_SUITE_ARG, "--cel-backend", "celpy")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = SUMMARY.search(result.stdout)
    assert summary, result.stdout
    assert summary["failed"] == "0"
    assert "celpy" in result.stdout


# ---------------------------------------------------------------- check


def test_check_accepts_the_example_policies() -> None:
    result = run("check", "examples/policies")
    assert result.returncode == 0, result.stderr
    assert diagnostics_in(result.stderr) == []


def test_check_reports_every_error_of_broken_policies_and_exits_3(
    tmp_path: Path, two_broken_policies: tuple[Path, Path]
) -> None:
    result = run("check", "b-broken.yaml", "a-broken.yaml", cwd=tmp_path)
    assert result.returncode == 3
    assert [(f, code) for f, _, _, code in diagnostics_in(result.stderr)] == [
        ("a-broken.yaml", "cel.undeclared_fact"),
        ("a-broken.yaml", "cel.undeclared_fact"),
        ("b-broken.yaml", "cel.undeclared_fact"),
    ]
    assert "3 errors in 2 files" in result.stderr


def test_check_json_is_a_check_report_whose_errors_carry_code_file_line_and_column(
    tmp_path: Path, two_broken_policies: tuple[Path, Path]
) -> None:
    first, second = two_broken_policies
    result = run("check", "a-broken.yaml", "b-broken.yaml", "-o", "json", cwd=tmp_path)
    assert result.returncode == 3
    report = json.loads(result.stdout)
    assert report["apiVersion"] == "tidegate.dev/v1alpha1"
    assert report["kind"] == "CheckReport"
    assert sorted(report["files"]) == ["a-broken.yaml", "b-broken.yaml"]
    assert report["warnings"] == []
    located = [(e["code"], e["file"], e["line"], e["column"]) for e in report["errors"]]
    assert located == [
        ("cel.undeclared_fact", "a-broken.yaml", *position_of(first, "healthySnice")),
        ("cel.undeclared_fact", "a-broken.yaml", *position_of(first, "tga")),
        ("cel.undeclared_fact", "b-broken.yaml", *position_of(second, "currnet")),
    ]
    for error in report["errors"]:
        assert error["severity"] == "error"
        assert error["message"]


def test_check_of_the_malformed_fixtures_lists_one_error_per_file_and_exits_3() -> None:
    result = run("check", "tests/fixtures/bad")
    assert result.returncode == 3
    files = {Path(f).name for f, _, _, _ in diagnostics_in(result.stderr)}
    assert files == {p.name for p in BAD_FILES}


def test_max_errors_caps_the_listing_and_says_how_many_more_there_are() -> None:
    everything = run("check", "tests/fixtures/bad", "--max-errors", "1000")
    total = len(diagnostics_in(everything.stderr))
    assert total >= len(BAD_FILES)  # every malformed file has at least one error
    result = run("check", "tests/fixtures/bad", "--max-errors", "3")
    assert result.returncode == 3
    assert len(diagnostics_in(result.stderr)) == 3
    assert f"{total - 3} more" in result.stderr


# ---------------------------------------------------------------- functions


def test_functions_lists_the_cel_library() -> None:
    result = run("functions")
    assert result.returncode == 0, result.stderr
    for name in ("isSemver", "semver", "semverDiff", "since", "inWindow", "nextTransition"):
        assert re.search(rf"^{name}\b", result.stdout, re.MULTILINE), name


def test_functions_json_for_one_function_gives_its_signatures() -> None:
    result = run("functions", "semverDiff", "-o", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["apiVersion"] == "tidegate.dev/v1alpha1"
    assert [f["name"] for f in document["functions"]] == ["semverDiff"]
    assert document["functions"][0]["signatures"] == ["semverDiff(string, string) -> string"]


def test_functions_facts_lists_the_fact_roots() -> None:
    result = run("functions", "--facts")
    assert result.returncode == 0, result.stderr
    for root in (
        "now",
        "rollout",
        "release",
        "candidates",
        "history",
        "environments",
        "gates",
        "windows",
    ):
        assert re.search(rf"^\s+{root}\s", result.stdout, re.MULTILINE), root


def test_an_unknown_function_name_exits_2() -> None:
    result = run("functions", "nosuch")
    assert result.returncode == 2
    assert "nosuch" in result.stderr


# ---------------------------------------------------------------- replay

RECORDED_DECISION = """\
decision:
  allowedVersions: [1.4.2]
  nextChange: "2026-03-04T16:00:00Z"
  candidates:
    1.4.3: {decision: Blocked, rules: {shop/prod-promotion/staging-soaked: fail}}
    1.4.2: {decision: Allowed, nextChange: "2026-03-04T16:00:00Z"}
"""


@pytest.fixture
def recorded_snapshot(tmp_path: Path) -> Path:
    """The example snapshot plus the decision recorded at its ``now``.

    At that instant (Wed 09:30:12Z) the window is open and 1.4.2 has soaked: Allowed.
    """
    text = EXAMPLE_SNAPSHOT.read_text(encoding="utf-8")
    assert "\ndecision:" not in text
    path = tmp_path / "recorded.facts.yaml"
    path.write_text(text.rstrip("\n") + "\n" + RECORDED_DECISION, encoding="utf-8")
    return path


def test_replay_under_the_same_policy_finds_no_change_and_exits_0(
    tmp_path: Path, recorded_snapshot: Path
) -> None:
    result = run("replay", recorded_snapshot, "-p", EXAMPLE_POLICIES, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Allowed →" not in result.stdout


def test_replay_under_a_tightened_policy_lists_the_changed_decision_and_exits_1(
    tmp_path: Path, recorded_snapshot: Path
) -> None:
    tight = derive(
        EXAMPLE_POLICY,
        tmp_path / "tight.yaml",
        "minSoak: {type: duration, default: 24h}",
        "minSoak: {type: duration, default: 48h}",
    )
    result = run("replay", recorded_snapshot, "-p", tight, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert re.search(r"1\.4\.2\s+Allowed → (Pending|Blocked)", result.stdout), result.stdout
    assert not re.search(r"1\.4\.3\s+Blocked →", result.stdout)
    report = json.loads(
        run("replay", recorded_snapshot, "-p", tight, "-o", "json", cwd=tmp_path).stdout
    )
    assert report["kind"] == "ReplayReport"
    assert [(c["release"], c["recorded"]) for c in report["changes"]] == [("1.4.2", "Allowed")]


# ---------------------------------------------------------------- the command itself


def test_version_prints_the_program_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert re.fullmatch(r"tidegate \d+\.\d+\.\d+\S*\n", result.stdout), result.stdout


def test_an_unknown_verb_exits_2() -> None:
    result = run("frobnicate")
    assert result.returncode == 2
    assert "frobnicate" in result.stderr


def test_run_without_the_controller_extra_exits_2_with_an_install_hint(tmp_path: Path) -> None:
    (tmp_path / "kopf").mkdir()
    (tmp_path / "kopf" / "__init__.py").write_text("raise ImportError('No module named kopf')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "NO_COLOR": "1"}
    result = subprocess.run(
        [TIDEGATE, "run"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 2, result.stderr
    assert "tidegate[controller]" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_common_library_is_reachable_from_any_directory(tmp_path: Path) -> None:
    checked = run("check", "@common", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "8 file(s) checked, no problems" in checked.stdout
    rules = run("functions", "--rules", cwd=tmp_path)
    assert rules.returncode == 0, rules.stderr
    assert "no-major-bump/no-major-bump" in rules.stdout
    assert "opt-in: label gates.tidegate.dev/no-major-bump=true" in rules.stdout
    assert "kuberik/one-in-flight" in rules.stdout


def test_a_major_bump_is_blocked_by_the_opt_in_gate() -> None:
    labels = 'rollout.labels={"tier": "prod", "gates.tidegate.dev/no-major-bump": "true"}'
    code, report = eval_json(
        "-p",
        "@common/no-major-bump",
        "--facts",
        "examples/snapshots/checkout-prod.facts.yaml",
        "--release",
        "2.0.0",
        "--set",
        labels,
    )
    assert code == 1
    assert candidate(report, "2.0.0")["decision"] == "Blocked"
    assert rule_results(candidate(report, "2.0.0"))["no-major-bump/no-major-bump"] == "fail"


def test_three_broken_files_are_all_reported_with_locations_and_exit_3() -> None:
    bad = REPO / "tests" / "fixtures" / "bad"
    result = run(
        "check", bad / "cel-type-error.yaml", bad / "zone-literal.yaml", bad / "syntax-error.yaml"
    )
    assert result.returncode == 3
    found = {(Path(file).name, code) for file, _, _, code in diagnostics_in(result.stderr)}
    assert {
        ("cel-type-error.yaml", "cel.check"),
        ("zone-literal.yaml", "cel.invalid_argument"),
        ("syntax-error.yaml", "yaml.syntax"),
    } <= found
    assert all(line > 0 and column > 0 for _, line, column, _ in diagnostics_in(result.stderr))
