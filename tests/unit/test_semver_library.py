"""The semver family in plain Python: parsing, precedence, normalisation, diff, declarations."""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import cmp_to_key
from itertools import combinations
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policy_engine.cel.library import semver as lib
from policy_engine.cel.types import CelType, LibraryError, Semver

# SemVer 2.0.0 §11, ascending.
PRECEDENCE_CHAIN = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.9.0",
    "1.10.0",
    "2.0.0-0",
    "2.0.0",
    "2.1.0",
    "2.1.1",
    "10.0.0",
]


def cmp(a: str, b: str) -> int:
    return lib.compare(lib.parse_semver(a), lib.parse_semver(b))


@pytest.mark.parametrize(("lower", "higher"), list(combinations(PRECEDENCE_CHAIN, 2)))
def test_precedence_follows_the_semver_spec_chain(lower: str, higher: str) -> None:
    a, b = lib.parse_semver(lower), lib.parse_semver(higher)
    assert (lib.compare(a, b), lib.compare(b, a)) == (-1, 1)
    assert lib.is_less_than(a, b)
    assert not lib.is_less_than(b, a)
    assert lib.is_greater_than(b, a)
    assert not lib.is_greater_than(a, b)


def test_sorting_a_shuffled_chain_restores_it() -> None:
    shuffled = PRECEDENCE_CHAIN[:]
    random.Random(7).shuffle(shuffled)
    assert sorted(shuffled, key=cmp_to_key(cmp)) == PRECEDENCE_CHAIN


@pytest.mark.parametrize(
    ("a", "b"),
    [("1.0.0+a", "1.0.0+b"), ("1.0.0-rc.1+x.1", "1.0.0-rc.1"), ("0.0.0", "0.0.0")],
)
def test_build_metadata_does_not_affect_precedence(a: str, b: str) -> None:
    assert cmp(a, b) == cmp(b, a) == 0
    assert not lib.is_less_than(lib.parse_semver(a), lib.parse_semver(b))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.0.0", Semver(0, 0, 0)),
        ("1.4.2", Semver(1, 4, 2)),
        ("1.0.0-alpha.1", Semver(1, 0, 0, ("alpha", "1"))),
        ("1.0.0-0A.is.legal", Semver(1, 0, 0, ("0A", "is", "legal"))),
        ("1.0.0-x-y-z.--", Semver(1, 0, 0, ("x-y-z", "--"))),
        ("1.0.0+001", Semver(1, 0, 0, (), ("001",))),
        ("1.0.0-beta+exp.sha.5114f85", Semver(1, 0, 0, ("beta",), ("exp", "sha", "5114f85"))),
        ("9223372036854775807.0.0", Semver(2**63 - 1, 0, 0)),
    ],
)
def test_valid_strings_parse_into_their_parts(text: str, expected: Semver) -> None:
    parsed = lib.parse_semver(text)
    assert parsed == expected
    assert str(parsed) == text
    assert lib.major(parsed) == expected.major
    assert lib.minor(parsed) == expected.minor
    assert lib.patch(parsed) == expected.patch
    assert lib.is_semver(text)


INVALID = [
    "",
    "1",
    "1.2",
    "1.2.3-",
    "1.2.3+",
    "1.2.3-01",
    "01.2.3",
    "1.02.3",
    "1.2.03",
    "00.0.0",
    "v1.2.3",
    "1.2.3.4",
    "1.2.3-alpha..1",
    "1.2.3+build..1",
    "1.2.3-alpha_1",
    "1.2.3+a+b",
    " 1.2.3",
    "1.2.3 ",
    "1.2.3\n",
    "-1.2.3",
    "١.٢.٣",  # Arabic-Indic digits
    "１.2.3",  # fullwidth digit
    "1.2.3-αlpha",
    "1.2.3+bück",
    "9223372036854775808.0.0",  # does not fit a CEL int
]


@pytest.mark.parametrize("text", INVALID)
def test_invalid_strings_are_rejected_in_strict_mode(text: str) -> None:
    assert not lib.is_semver(text)
    with pytest.raises(LibraryError) as caught:
        lib.parse_semver(text)
    assert str(caught.value).startswith("semver(): argument 1: ")
    assert str(caught.value).endswith(" is not valid SemVer")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1.02.3", 'semver(): argument 1: "1.02.3" is not valid SemVer'),
        ("", 'semver(): argument 1: "" is not valid SemVer'),
        ("1.2.3-αlpha", 'semver(): argument 1: "1.2.3-αlpha" is not valid SemVer'),
        ('a"b\\c\n\u202e', 'semver(): argument 1: "a\\"b\\\\c\\n\\u202e" is not valid SemVer'),
        ("x" * 500, f'semver(): argument 1: "{"x" * 80}"... is not valid SemVer'),
    ],
)
def test_error_messages_quote_the_argument_exactly(text: str, message: str) -> None:
    with pytest.raises(LibraryError) as caught:
        lib.parse_semver(text)
    assert str(caught.value) == message
    assert len(message) <= 256


def test_huge_numbers_are_handled_without_int_conversion_limits() -> None:
    assert not lib.is_semver("1" * 5000 + ".0.0")
    big = "1.0.0-" + "9" * 5000
    assert cmp(big, "1.0.0-" + "1" + "0" * 5000) == -1
    assert cmp(big, "1.0.0-" + "9" * 4999) == 1
    assert cmp(big, "1.0.0-a") == -1


def test_long_inputs_are_rejected_quickly() -> None:
    for tail in ("1" * 100_000 + "_", "a" * 100_000 + "_", "1." * 50_000 + "_"):
        assert not lib.is_semver("1.0.0-" + tail)
        assert not lib.is_semver("1.0.0-" + tail, normalize=True)


def test_error_messages_stay_short_for_hostile_input() -> None:
    with pytest.raises(LibraryError) as caught:
        lib.semver_diff("1.0.0", "\x00\U0010ffff" * 5000)
    assert len(str(caught.value)) <= 256


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v1.4", "1.4.0"),
        ("1", "1.0.0"),
        ("v2", "2.0.0"),
        ("1.0", "1.0.0"),
        ("01.01.01", "1.1.1"),
        ("1.02.3", "1.2.3"),
        ("00.0.000", "0.0.0"),
        ("v1.02.03-rc.1+b.01", "1.2.3-rc.1+b.01"),
        ("1.2.3", "1.2.3"),
        ("1.2.00-x", "1.2.0-x"),
        ("1.2.-rc", "1.2.0-rc"),  # Kubernetes quirk: an empty patch before "-" becomes 0
    ],
)
def test_normalize_follows_kubernetes(text: str, expected: str) -> None:
    assert str(lib.parse_semver(text, normalize=True)) == expected
    assert lib.is_semver(text, True)


@pytest.mark.parametrize(
    "text",
    [
        "V1.2.3",
        "vv1.2.3",
        " v1.2.3",
        "1.2-rc",
        "1-rc.1",
        "1.2+b",
        "1.2.3-01",
        "v",
        "",
        "1.",
        "1..2",
    ],
)
def test_normalize_still_rejects(text: str) -> None:
    assert not lib.is_semver(text, True)
    with pytest.raises(LibraryError, match=r'^semver\(\): argument 1: ".*" is not valid SemVer$'):
        lib.parse_semver(text, True)


@pytest.mark.parametrize(
    ("a", "b", "part"),
    [
        ("1.4.2", "2.0.0", "major"),
        ("2.0.0", "1.9.9", "major"),
        ("1.4.2", "1.5.0", "minor"),
        ("1.4.2-rc.1", "1.5.0", "minor"),
        ("1.4.2", "1.4.3", "patch"),
        ("1.4.2", "1.4.3-rc.1", "patch"),
        ("1.4.2-rc.1", "1.4.2-rc.2", "prerelease"),
        ("1.4.2", "1.4.2-rc.1", "prerelease"),
        ("1.4.2+a", "1.4.2+b", "none"),
        ("1.4.2", "1.4.2", "none"),
    ],
)
def test_semver_diff_names_the_highest_differing_part(a: str, b: str, part: str) -> None:
    assert lib.semver_diff(a, b) == part


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ("x", "1.0.0", 'semverDiff(): argument 1: "x" is not valid SemVer'),
        ("1.0.0", "x", 'semverDiff(): argument 2: "x" is not valid SemVer'),
        ("x", "y", 'semverDiff(): argument 1: "x" is not valid SemVer'),
        ("v1.4.2", "1.4.2", 'semverDiff(): argument 1: "v1.4.2" is not valid SemVer'),
    ],
)
def test_semver_diff_parses_strictly_and_names_the_argument(a: str, b: str, message: str) -> None:
    with pytest.raises(LibraryError) as caught:
        lib.semver_diff(a, b)
    assert str(caught.value) == message


# --- declarations -------------------------------------------------------------------------

DECLS = {d.name: d for d in lib.SEMVER_FUNCTIONS}
P = lib.parse_semver

# Every declared example, computed with the Python implementations directly.
EXAMPLE_ORACLE: dict[str, Callable[[], Any]] = {
    "isSemver('1.4.2-rc.1+build.5')": lambda: lib.is_semver("1.4.2-rc.1+build.5"),
    "isSemver('v1.4')": lambda: lib.is_semver("v1.4"),
    "isSemver('v1.4', true)": lambda: lib.is_semver("v1.4", True),
    "isSemver('1.02.3')": lambda: lib.is_semver("1.02.3"),
    "semver('1.4.2-rc.1+build.5').patch()": lambda: lib.patch(P("1.4.2-rc.1+build.5")),
    "semver('v01.4', true).compareTo(semver('1.4.0'))": lambda: lib.compare(
        P("v01.4", True), P("1.4.0")
    ),
    "semver('1.0' + '2.3')": lambda: P("1.02.3"),
    "semver('1.4.2').major()": lambda: lib.major(P("1.4.2")),
    "semver('v2', true).major()": lambda: lib.major(P("v2", True)),
    "semver('1.4.2').minor()": lambda: lib.minor(P("1.4.2")),
    "semver('3', true).minor()": lambda: lib.minor(P("3", True)),
    "semver('1.4.2').patch()": lambda: lib.patch(P("1.4.2")),
    "semver('1.4', true).patch()": lambda: lib.patch(P("1.4", True)),
    "semver('1.4.2').compareTo(semver('1.4.2+build.5'))": lambda: lib.compare(
        P("1.4.2"), P("1.4.2+build.5")
    ),
    "semver('1.2.3').compareTo(semver('2.0.0'))": lambda: lib.compare(P("1.2.3"), P("2.0.0")),
    "semver('1.10.0').compareTo(semver('1.9.0'))": lambda: lib.compare(P("1.10.0"), P("1.9.0")),
    "semver('1.10.0').isGreaterThan(semver('1.9.9'))": lambda: lib.is_greater_than(
        P("1.10.0"), P("1.9.9")
    ),
    "semver('1.0.0-rc.1').isGreaterThan(semver('1.0.0'))": lambda: lib.is_greater_than(
        P("1.0.0-rc.1"), P("1.0.0")
    ),
    "semver('1.0.0-rc.1').isLessThan(semver('1.0.0'))": lambda: lib.is_less_than(
        P("1.0.0-rc.1"), P("1.0.0")
    ),
    "semver('1.0.0-alpha.beta').isLessThan(semver('1.0.0-alpha.1'))": lambda: lib.is_less_than(
        P("1.0.0-alpha.beta"), P("1.0.0-alpha.1")
    ),
    "semverDiff('1.4.2', '2.0.0')": lambda: lib.semver_diff("1.4.2", "2.0.0"),
    "semverDiff('1.4.2', '1.4.3-rc.1')": lambda: lib.semver_diff("1.4.2", "1.4.3-rc.1"),
    "semverDiff('1.4.2+a', '1.4.2+b')": lambda: lib.semver_diff("1.4.2+a", "1.4.2+b"),
    "semverDiff('1.4.2', 'v' + '1.4.3')": lambda: lib.semver_diff("1.4.2", "v" + "1.4.3"),
}
EXAMPLES = [e for d in lib.SEMVER_FUNCTIONS for e in d.examples]


def test_the_family_declares_the_kubernetes_names_plus_semver_diff() -> None:
    assert list(DECLS) == [
        "isSemver",
        "semver",
        "major",
        "minor",
        "patch",
        "compareTo",
        "isGreaterThan",
        "isLessThan",
        "semverDiff",
    ]
    ids = [o.id for d in lib.SEMVER_FUNCTIONS for o in d.overloads]
    assert len(ids) == len(set(ids)) == 11
    for decl in lib.SEMVER_FUNCTIONS:
        assert decl.family == "semver"
        assert decl.summary
        assert "\n" not in decl.summary
        assert 2 <= len(decl.examples) <= 4
        assert not decl.time_edges
        assert decl.compiled_as is None


def test_signatures_render_as_in_the_function_table() -> None:
    assert DECLS["isSemver"].signatures() == [
        "isSemver(string) -> bool",
        "isSemver(string, bool) -> bool",
    ]
    assert DECLS["semver"].signatures() == [
        "semver(string) -> Semver",
        "semver(string, bool) -> Semver",
    ]
    assert DECLS["major"].signatures() == ["Semver.major() -> int"]
    assert DECLS["compareTo"].signatures() == ["Semver.compareTo(Semver) -> int"]
    assert DECLS["isLessThan"].signatures() == ["Semver.isLessThan(Semver) -> bool"]
    assert DECLS["semverDiff"].signatures() == ["semverDiff(string, string) -> string"]
    members = {"major", "minor", "patch", "compareTo", "isGreaterThan", "isLessThan"}
    for decl in lib.SEMVER_FUNCTIONS:
        for overload in decl.overloads:
            assert overload.member == (decl.name in members)
            assert overload.params[0] is (CelType.SEMVER if overload.member else CelType.STRING)


def test_every_example_has_an_oracle() -> None:
    assert sorted(e.expression for e in EXAMPLES) == sorted(EXAMPLE_ORACLE)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.expression)
def test_examples_match_the_python_implementation(example: Any) -> None:
    compute = EXAMPLE_ORACLE[example.expression]
    if example.error is not None:
        assert example.error == "eval.function"
        with pytest.raises(LibraryError):
            compute()
    else:
        result = compute()
        assert type(result) is type(example.result)
        assert result == example.result


def test_overload_impls_agree_with_the_public_functions() -> None:
    by_id = {o.id: o.impl for d in lib.SEMVER_FUNCTIONS for o in d.overloads}
    assert by_id["semver_string"]("1.4.2") == P("1.4.2")
    assert by_id["semver_string_bool"]("v1.4", True) == P("1.4.0")
    assert by_id["is_semver_string"]("v1.4") is False
    assert by_id["is_semver_string_bool"]("v1.4", True) is True
    assert by_id["semver_minor"](P("1.4.2")) == 4
    assert by_id["semver_compare_to"](P("1.0.0"), P("2.0.0")) == -1


def test_literal_checks_report_invalid_literals() -> None:
    strict, normalised = DECLS["semver"].literal_checks
    assert (strict.position, strict.arity, normalised.arity) == (0, 1, 2)
    assert strict.check("latest") == 'semver(): argument 1: "latest" is not valid SemVer'
    assert strict.check("1.2.3") is None
    assert strict.check("1.02.3") == 'semver(): argument 1: "1.02.3" is not valid SemVer'
    # semver(s, true) normalises, so only literals invalid even when normalised fail there
    assert normalised.check("v1.4") is None
    assert normalised.check("latest") is not None
    assert strict.check(7) is None
    first, second = DECLS["semverDiff"].literal_checks
    assert (first.position, second.position) == (0, 1)
    assert first.check("v1.4.2") == 'semverDiff(): argument 1: "v1.4.2" is not valid SemVer'
    assert second.check("1.2") == 'semverDiff(): argument 2: "1.2" is not valid SemVer'
    assert first.check("1.4.2") is second.check("1.4.2-rc.1+b") is None
    assert not DECLS["isSemver"].literal_checks


# --- properties ---------------------------------------------------------------------------

_numbers = st.integers(0, 2**63 - 1).map(str)
_alnum = st.text("0123456789abcXYZ-", min_size=1, max_size=6)
_pre_id = st.one_of(_numbers, _alnum.filter(lambda s: not s.isdigit()))
_ids = st.lists(_pre_id, min_size=1, max_size=4).map(".".join)
_build = st.lists(_alnum, min_size=1, max_size=3).map(".".join)


def _version_text(core: tuple[str, ...], pre: str | None, build: str | None) -> str:
    return ".".join(core) + (f"-{pre}" if pre else "") + (f"+{build}" if build else "")


versions = st.builds(
    _version_text,
    st.tuples(*[st.one_of(st.integers(0, 12).map(str), _numbers)] * 3),
    st.one_of(st.none(), _ids),
    st.one_of(st.none(), _build),
)


@settings(max_examples=300, deadline=None)
@given(versions)
def test_generated_versions_round_trip(text: str) -> None:
    parsed = lib.parse_semver(text)
    assert str(parsed) == text
    assert lib.parse_semver(text, normalize=True) == parsed


@settings(max_examples=300, deadline=None)
@given(versions, versions, versions)
def test_compare_is_antisymmetric_and_transitive(a: str, b: str, c: str) -> None:
    x, y, z = (lib.parse_semver(t) for t in (a, b, c))
    assert lib.compare(x, x) == 0
    assert lib.compare(x, y) == -lib.compare(y, x)
    if lib.compare(x, y) <= 0 and lib.compare(y, z) <= 0:
        assert lib.compare(x, z) <= 0
    ordered = sorted([x, y, z], key=cmp_to_key(lib.compare))
    for low, high in combinations(ordered, 2):
        assert lib.compare(low, high) <= 0
