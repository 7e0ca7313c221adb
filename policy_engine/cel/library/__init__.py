"""The function library: every family's declarations, assembled explicitly.

Callers: ``cel.environment`` (per-policy environments), ``tidegate
functions`` (reference), tests (examples). Nothing registers at import time.
"""

from __future__ import annotations

from collections.abc import Mapping

from policy_engine import windows
from policy_engine.cel.library.semver import SEMVER_FUNCTIONS
from policy_engine.cel.library.windows import time_functions
from policy_engine.cel.types import FunctionDecl


def standard_library(
    window_table: Mapping[str, windows.Window] | None = None,
) -> tuple[FunctionDecl, ...]:
    """All library functions; ``inWindow``/``nextTransition`` by name use ``window_table``."""
    return (*SEMVER_FUNCTIONS, *time_functions(window_table or {}))
