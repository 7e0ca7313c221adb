"""CEL type names shared by declarations and backends, and the opaque Semver value.

Callers: ``cel.library`` declares signatures with these names; each backend
maps them to its own types. No CEL implementation is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class CelType(str, Enum):
    """Types used in function signatures and variable declarations."""

    BOOL = "bool"
    INT = "int"
    UINT = "uint"
    DOUBLE = "double"
    STRING = "string"
    BYTES = "bytes"
    TIMESTAMP = "timestamp"
    DURATION = "duration"
    LIST = "list"
    MAP = "map"
    DYN = "dyn"
    SEMVER = "Semver"
    NULL = "null_type"


@dataclass(frozen=True, slots=True, order=False)
class Semver:
    """A parsed semantic version (SemVer 2.0.0); opaque to CEL programs.

    ``prerelease`` holds the dot-separated identifiers; ``build`` is kept for
    display only and never affects comparison.
    """

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text
