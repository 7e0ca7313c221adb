"""Declared CEL variables: every fact root and the CEL type each is declared with.

Callers: ``cel.environment`` (building environments). Types are ``dyn``
except where checking at load time helps users: ``now`` is a timestamp and
``metrics`` a ``map(string, double)`` (so ``metrics.x < 500`` is a
``cel.check`` error on the primary backend).
"""

from __future__ import annotations

from collections.abc import Sequence

from policy_engine.cel.types import CelType
from policy_engine.model import schema


def declared_variables(extra: Sequence[str] = ()) -> dict[str, CelType]:
    """Variable declarations for every fact root, plus ``extra`` roots as ``dyn``."""
    declared = dict.fromkeys(schema.ALL_ROOTS, CelType.DYN)
    declared["now"] = CelType.TIMESTAMP
    declared["metrics"] = CelType.DOUBLE_MAP
    for name in extra:
        declared[name] = CelType.DYN
    return declared
