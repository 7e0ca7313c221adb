"""Planning: the pure Kuberik mechanics around the engine's decision (KUBERIK-SEMANTICS.md §4).

Callers: ``reconciling``. ``prepare`` runs steps 1–8 (retry, releases,
candidates, gates, health, bake) on a copy of the status; the engine then
evaluates facts built from it; ``decide`` selects, deploys and returns the
Plan. No I/O, no clock: ``now`` is an argument.
"""

from __future__ import annotations

from controller.planning.deciding import decide
from controller.planning.observing import Observed, observe
from controller.planning.preparing import Prepared, prepare

__all__ = ["Observed", "Prepared", "decide", "observe", "prepare"]
