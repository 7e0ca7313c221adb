"""Releases, their order and the candidates: KUBERIK-SEMANTICS.md §4.3 and §4.8.

Callers: ``planning.plan``. Pure. Owns ranking tags by the ImagePolicy's own
policy (semver / alphabetical / numerical after ``filterTags``), the
``availableReleases`` list, the candidates above the current tag, and
retention. Must not decide whether a candidate may deploy (the engine does).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cmp_to_key
from typing import Any

from policy_engine.cel.library.semver import compare, parse_semver
from policy_engine.cel.types import LibraryError
from policy_engine.model.times import parse_timestamp

Release = dict[str, Any]
"""A VersionInfo as Kuberik serialises it: tag, digest, version, revision, created."""


@dataclass(frozen=True, slots=True)
class Ranking:
    """How the ImagePolicy orders tags; ``rank`` gives None for an unrankable tag."""

    kind: str
    descending: bool
    pattern: re.Pattern[str] | None
    extract: str | None

    def value(self, tag: str) -> str | None:
        """The tag after ``filterTags`` (None when the pattern does not match)."""
        if self.pattern is None:
            return tag
        match = self.pattern.fullmatch(tag) or self.pattern.search(tag)
        if match is None:
            return None
        return match.expand(self.extract) if self.extract else tag

    def compare(self, a: str, b: str) -> int | None:
        """<0, 0, >0 when ``a`` is older, equal, newer than ``b``; None if either is unrankable."""
        left, right = self.value(a), self.value(b)
        if left is None or right is None:
            return None
        order = _compare_values(self.kind, left, right)
        if order is None:
            return None
        return -order if self.descending else order

    def rankable(self, tag: str) -> bool:
        value = self.value(tag)
        return value is not None and _compare_values(self.kind, value, value) is not None


def ranking_of(image_policy: Mapping[str, Any] | None) -> Ranking:
    """The ImagePolicy's ``spec.policy`` and ``spec.filterTags`` (semver when unset)."""
    spec = (image_policy or {}).get("spec") or {}
    policy = spec.get("policy") or {}
    kind, descending = "semver", False
    for candidate in ("semver", "alphabetical", "numerical"):
        if candidate in policy:
            kind = candidate
            descending = (policy.get(candidate) or {}).get("order") == "desc"
    filter_tags = spec.get("filterTags") or {}
    pattern = filter_tags.get("pattern")
    extract = filter_tags.get("extract")
    try:
        compiled = re.compile(_python_regex(pattern)) if pattern else None
    except re.error:
        compiled = re.compile(r"(?!)")  # an invalid pattern ranks nothing: no candidates
    return Ranking(kind, descending, compiled, _python_template(extract) if extract else None)


def _python_regex(pattern: str) -> str:
    """Go's named groups ``(?P<n>…)`` are Python's; ``(?<n>…)`` is Go-only."""
    return re.sub(r"\(\?<([A-Za-z_]\w*)>", r"(?P<\1>", pattern)


def _python_template(extract: str) -> str:
    """Go's ``$name`` / ``${name}`` expansions as Python ``\\g<name>``."""
    return re.sub(r"\$\{?(\w+)\}?", r"\\g<\1>", extract)


def _compare_values(kind: str, left: str, right: str) -> int | None:
    if kind == "numerical":
        try:
            a, b = float(left), float(right)
        except ValueError:
            return None
        return (a > b) - (a < b)
    if kind == "alphabetical":
        return (left > right) - (left < right)
    try:
        return compare(parse_semver(left, normalize=True), parse_semver(right, normalize=True))
    except LibraryError:
        return None


def latest_release(image_policy: Mapping[str, Any]) -> Release | None:
    """``status.latestRef`` (v1), else the tag of ``status.latestImage`` (v1beta2)."""
    status = image_policy.get("status") or {}
    ref = status.get("latestRef") or {}
    if ref.get("tag"):
        release: Release = {"tag": str(ref["tag"])}
        if ref.get("digest"):
            release["digest"] = str(ref["digest"])
        return release
    image = str(status.get("latestImage") or "")
    name, _, tag = image.rpartition(":")
    if name and tag and "/" not in tag:
        return {"tag": tag}
    return None


def with_release(
    available: Sequence[Release], latest: Release, ranking: Ranking, observed_order: bool
) -> list[Release]:
    """``available`` with ``latest`` recorded (metadata refreshed), in release order."""
    releases = [dict(r) for r in available]
    for index, release in enumerate(releases):
        if release.get("tag") == latest["tag"]:
            releases[index] = {**release, **latest}
            break
    else:
        releases.append(dict(latest))
    if observed_order:
        return releases
    return order_releases(releases, ranking)


def order_releases(releases: Sequence[Release], ranking: Ranking) -> list[Release]:
    """Oldest first: unrankable tags (by observation) then rankable ones by rank (stable)."""
    unrankable = [r for r in releases if not ranking.rankable(str(r.get("tag")))]
    rankable = [r for r in releases if ranking.rankable(str(r.get("tag")))]

    def by_rank(a: Release, b: Release) -> int:
        return ranking.compare(str(a["tag"]), str(b["tag"])) or 0

    return unrankable + sorted(rankable, key=cmp_to_key(by_rank))


@dataclass(frozen=True, slots=True)
class Candidates:
    """Releases newer than the current tag, newest first, and why there are none."""

    releases: tuple[Release, ...]
    reason: str | None = None

    @property
    def tags(self) -> list[str]:
        return [str(r["tag"]) for r in self.releases]


def candidates(
    available: Sequence[Release], current: str | None, ranking: Ranking, observed_order: bool
) -> Candidates:
    """The candidates of §4.3 in policy order (default) or Kuberik's observation order."""
    if observed_order:
        tags = [r.get("tag") for r in available]
        if current is None:
            return Candidates(tuple(reversed(available)))
        if current not in tags:
            return Candidates((), f"current tag {current} is not among the observed releases")
        after = available[tags.index(current) + 1 :]
        return Candidates(tuple(reversed(after)))
    rankable = [r for r in available if ranking.rankable(str(r.get("tag")))]
    if current is None:
        return Candidates(tuple(reversed(rankable)))
    if not ranking.rankable(current):
        return Candidates(
            (), f"current tag {current} is not comparable under the ImagePolicy's {ranking.kind}"
        )
    newer = [r for r in rankable if (ranking.compare(str(r["tag"]), current) or 0) > 0]
    return Candidates(tuple(reversed(newer)))


def retained(
    available: Sequence[Release],
    history: Sequence[Mapping[str, Any]],
    now: datetime,
    retention_days: int,
    min_count: int,
) -> list[Release]:
    """§4.8: keeps the newest K releases after a deploy truncated history."""
    tags = [r.get("tag") for r in available]
    from_history = 0
    for entry in history:
        tag = (entry.get("version") or {}).get("tag")
        if tag in tags:
            from_history = max(from_history, len(tags) - tags.index(tag))
    recent = 0
    cutoff = now - timedelta(days=retention_days)
    for release in reversed(available):
        created = release.get("created")
        if created and _instant(created) < cutoff:
            break
        recent += 1
    keep = max(from_history, recent, min_count)
    return list(available[-keep:]) if keep < len(available) else list(available)


def _instant(value: Any) -> datetime:
    return value if isinstance(value, datetime) else parse_timestamp(str(value))
