"""Semantic versions for CEL: parsing, precedence and the ``semver`` function family.

Callers: ``cel.library`` (``SEMVER_FUNCTIONS`` in the standard library), the
backends (``parse_semver`` to rebuild a ``Semver`` from its text), the load-time
checker (literal checks). Names follow the Kubernetes CEL semver library, plus
``semverDiff``. Pure Python on plain values: must not import a CEL
implementation, register anything at import time, or do I/O.

Strict parsing is SemVer 2.0.0. ``normalize`` follows Kubernetes'
``normalizeAndParse``: drop one leading ``v``, strip leading zeros from the
three dot-separated core parts, pad ``1`` / ``1.4`` with ``.0`` (a short version
may not carry prerelease or build), then parse strictly. Major, minor and patch
must fit a CEL ``int``.
"""

from __future__ import annotations

import re
from typing import Any

from policy_engine.cel.types import (
    CelType,
    Example,
    FunctionDecl,
    LibraryError,
    LiteralCheck,
    Overload,
    Semver,
)

T = CelType
MAX_PART = 2**63 - 1  # major/minor/patch are returned as CEL int (int64)
_MAX_DIGITS = len(str(MAX_PART))  # checked before int(): huge digit strings stay cheap
_NUMBER = r"0|[1-9][0-9]*"
_PRE_ID = r"0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*"
_BUILD_ID = r"[0-9A-Za-z-]+"
_STRICT = re.compile(
    rf"(?P<major>{_NUMBER})\.(?P<minor>{_NUMBER})\.(?P<patch>{_NUMBER})"
    rf"(?:-(?P<pre>(?:{_PRE_ID})(?:\.(?:{_PRE_ID}))*))?"
    rf"(?:\+(?P<build>{_BUILD_ID}(?:\.{_BUILD_ID})*))?"
)
_QUOTE_LIMIT = 80
_DIFF_PARTS = ("major", "minor", "patch", "prerelease")


def _quote(text: str) -> str:
    """``text`` double-quoted for a message: non-printables escaped, at most ~80 characters."""
    pieces: list[str] = []
    size = 0
    for char in text:
        if char in '"\\':
            piece = "\\" + char
        elif char.isprintable():
            piece = char
        else:
            piece = char.encode("unicode_escape").decode("ascii")
        size += len(piece)
        if size > _QUOTE_LIMIT:
            return '"' + "".join(pieces) + '"...'
        pieces.append(piece)
    return '"' + "".join(pieces) + '"'


def _invalid(function: str, position: int, text: Any) -> str:
    shown = _quote(text) if isinstance(text, str) else type(text).__name__
    return f"{function}(): argument {position}: {shown} is not valid SemVer"


def _strip_leading_zeros(part: str) -> str:
    if len(part) <= 1:
        return part
    stripped = part.lstrip("0")
    if not stripped or stripped[0] not in "0123456789":
        stripped = "0" + stripped  # keep one zero before "-rc", "+b" or nothing
    return stripped


def _normalized(text: str) -> str | None:
    """Kubernetes' normalisation of ``text``, or None when a short version has a suffix."""
    parts = [_strip_leading_zeros(p) for p in text.removeprefix("v").split(".", 2)]
    if len(parts) < 3:
        if "-" in parts[-1] or "+" in parts[-1]:
            return None
        parts += ["0"] * (3 - len(parts))
    return ".".join(parts)


def _parse(text: Any, normalize: bool, function: str, position: int) -> Semver:
    candidate = _normalized(text) if normalize and isinstance(text, str) else text
    found = _STRICT.fullmatch(candidate) if isinstance(candidate, str) else None
    if found is None:
        raise LibraryError(_invalid(function, position, text))
    digits = (found["major"], found["minor"], found["patch"])
    if any(len(d) > _MAX_DIGITS or int(d) > MAX_PART for d in digits):
        raise LibraryError(_invalid(function, position, text))
    pre, build = found["pre"], found["build"]
    return Semver(
        int(digits[0]),
        int(digits[1]),
        int(digits[2]),
        prerelease=tuple(pre.split(".")) if pre else (),
        build=tuple(build.split(".")) if build else (),
    )


def parse_semver(text: str, normalize: bool = False) -> Semver:
    """Parses a SemVer 2.0.0 string (Kubernetes-normalised first when ``normalize``).

    Raises:
        LibraryError: ``semver(): argument 1: "1.02.3" is not valid SemVer``.
    """
    return _parse(text, normalize, "semver", 1)


def is_semver(text: str, normalize: bool = False) -> bool:
    """Whether ``parse_semver(text, normalize)`` succeeds."""
    try:
        _parse(text, normalize, "isSemver", 1)
    except LibraryError:
        return False
    return True


def _identifier_key(identifier: str) -> tuple[int, int, str]:
    # Numeric identifiers sort numerically (no leading zeros: by length, then digits) and
    # before alphanumeric ones (SemVer §11.4); no int() so any length is safe.
    if identifier.isascii() and identifier.isdigit():
        return (0, len(identifier), identifier)
    return (1, 0, identifier)


def _precedence(version: Semver) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
    # A release (no prerelease) ranks above all of its prereleases; build is ignored.
    keys = tuple(_identifier_key(i) for i in version.prerelease)
    return (version.major, version.minor, version.patch, 0 if keys else 1, keys)


def compare(a: Semver, b: Semver) -> int:
    """-1, 0 or 1 by SemVer 2.0.0 precedence; build metadata is ignored."""
    left, right = _precedence(a), _precedence(b)
    return (left > right) - (left < right)


def major(version: Semver) -> int:
    """``Semver.major()``."""
    return version.major


def minor(version: Semver) -> int:
    """``Semver.minor()``."""
    return version.minor


def patch(version: Semver) -> int:
    """``Semver.patch()``."""
    return version.patch


def is_greater_than(a: Semver, b: Semver) -> bool:
    """``Semver.isGreaterThan(Semver)``: ``a`` has higher precedence than ``b``."""
    return compare(a, b) > 0


def is_less_than(a: Semver, b: Semver) -> bool:
    """``Semver.isLessThan(Semver)``: ``a`` has lower precedence than ``b``."""
    return compare(a, b) < 0


def semver_diff(a: str, b: str) -> str:
    """The highest differing part: ``major``, ``minor``, ``patch``, ``prerelease`` or ``none``.

    Both arguments are parsed strictly; build metadata is ignored.

    Raises:
        LibraryError: ``semverDiff(): argument 2: "x" is not valid SemVer``.
    """
    left = _parse(a, False, "semverDiff", 1)
    right = _parse(b, False, "semverDiff", 2)
    for part in _DIFF_PARTS:
        if getattr(left, part) != getattr(right, part):
            return part
    return "none"


def _literal_check(
    function: str, position: int, normalize: bool, arity: int | None = None
) -> LiteralCheck:
    def check(value: Any) -> str | None:
        if not isinstance(value, str) or is_semver(value, normalize):
            return None
        return _invalid(function, position + 1, value)

    return LiteralCheck(position, check, arity)


def _member(name: str, overload: Overload, summary: str, *examples: Example) -> FunctionDecl:
    return FunctionDecl(name, (overload,), summary, examples, family="semver")


SEMVER_FUNCTIONS: tuple[FunctionDecl, ...] = (
    FunctionDecl(
        "isSemver",
        (
            Overload("is_semver_string", (T.STRING,), T.BOOL, is_semver),
            Overload("is_semver_string_bool", (T.STRING, T.BOOL), T.BOOL, is_semver),
        ),
        "Whether a string is strict SemVer 2.0.0; normalize=true also allows 'v1.4' and '01.2.3'.",
        (
            Example("isSemver('1.4.2-rc.1+build.5')", True),
            Example("isSemver('v1.4')", False),
            Example("isSemver('v1.4', true)", True),
            Example("isSemver('1.02.3')", False),
        ),
        family="semver",
    ),
    FunctionDecl(
        "semver",
        (
            Overload("semver_string", (T.STRING,), T.SEMVER, parse_semver),
            Overload("semver_string_bool", (T.STRING, T.BOOL), T.SEMVER, parse_semver),
        ),
        "Parses a SemVer 2.0.0 string (Kubernetes-normalised if normalize=true); invalid: error.",
        (
            Example("semver('1.4.2-rc.1+build.5').patch()", 2),
            Example("semver('v01.4', true).compareTo(semver('1.4.0'))", 0),
            Example("semver('1.0' + '2.3')", error="eval.function"),
        ),
        family="semver",
        # a literal is checked at load: strictly for semver(s), normalised for semver(s, true)
        literal_checks=(
            _literal_check("semver", 0, normalize=False, arity=1),
            _literal_check("semver", 0, normalize=True, arity=2),
        ),
    ),
    _member(
        "major",
        Overload("semver_major", (T.SEMVER,), T.INT, major, member=True),
        "The major version number.",
        Example("semver('1.4.2').major()", 1),
        Example("semver('v2', true).major()", 2),
    ),
    _member(
        "minor",
        Overload("semver_minor", (T.SEMVER,), T.INT, minor, member=True),
        "The minor version number.",
        Example("semver('1.4.2').minor()", 4),
        Example("semver('3', true).minor()", 0),
    ),
    _member(
        "patch",
        Overload("semver_patch", (T.SEMVER,), T.INT, patch, member=True),
        "The patch version number.",
        Example("semver('1.4.2').patch()", 2),
        Example("semver('1.4', true).patch()", 0),
    ),
    _member(
        "compareTo",
        Overload("semver_compare_to", (T.SEMVER, T.SEMVER), T.INT, compare, member=True),
        "-1, 0 or 1 by SemVer precedence; build metadata is ignored.",
        Example("semver('1.4.2').compareTo(semver('1.4.2+build.5'))", 0),
        Example("semver('1.2.3').compareTo(semver('2.0.0'))", -1),
        Example("semver('1.10.0').compareTo(semver('1.9.0'))", 1),
    ),
    _member(
        "isGreaterThan",
        Overload(
            "semver_is_greater_than", (T.SEMVER, T.SEMVER), T.BOOL, is_greater_than, member=True
        ),
        "Whether the receiver has higher SemVer precedence than the argument.",
        Example("semver('1.10.0').isGreaterThan(semver('1.9.9'))", True),
        Example("semver('1.0.0-rc.1').isGreaterThan(semver('1.0.0'))", False),
    ),
    _member(
        "isLessThan",
        Overload("semver_is_less_than", (T.SEMVER, T.SEMVER), T.BOOL, is_less_than, member=True),
        "Whether the receiver has lower SemVer precedence than the argument.",
        Example("semver('1.0.0-rc.1').isLessThan(semver('1.0.0'))", True),
        Example("semver('1.0.0-alpha.beta').isLessThan(semver('1.0.0-alpha.1'))", False),
    ),
    FunctionDecl(
        "semverDiff",
        (Overload("semver_diff_string_string", (T.STRING, T.STRING), T.STRING, semver_diff),),
        "The highest differing part of two versions: major, minor, patch, prerelease or none.",
        (
            Example("semverDiff('1.4.2', '2.0.0')", "major"),
            Example("semverDiff('1.4.2', '1.4.3-rc.1')", "patch"),
            Example("semverDiff('1.4.2+a', '1.4.2+b')", "none"),
            Example("semverDiff('1.4.2', 'v' + '1.4.3')", error="eval.function"),
        ),
        family="semver",
        literal_checks=(
            _literal_check("semverDiff", 0, normalize=False),
            _literal_check("semverDiff", 1, normalize=False),
        ),
    ),
)
