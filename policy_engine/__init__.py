"""tidegate's policy engine: load, compile and evaluate CEL deployment policies over facts.

The public API is this module's ``__all__`` (locked by a test). Everything
here is pure: no I/O beyond reading the files you name, no clock, no
global state. Importing it does no work beyond importing its modules.

Typical use::

    backend = select_backend().backend
    policies = compile_policies([*load_builtin_policies(), *load_policy_paths(["policies"])],
                                backend)
    snapshot = load_snapshot_path("facts.yaml")[-1]
    result = evaluate(policies, snapshot.facts, backend)
    result.decision, result.allowed_versions, result.next_change
"""

from __future__ import annotations

from policy_engine.cel.environment import select_backend
from policy_engine.compiling import CompiledPolicy, compile_policies
from policy_engine.errors import EvalError, InputErrors, PolicyErrors, UsageError
from policy_engine.evaluation import Options, evaluate
from policy_engine.explaining import Explainer
from policy_engine.loading import load_builtin_policies, load_policy_paths, load_policy_text
from policy_engine.model.facts import FactSet
from policy_engine.model.verdict import Decision, Evaluation, Outcome, RuleResult, Verdict
from policy_engine.replaying import replay
from policy_engine.snapshots import load_snapshot_path, load_snapshot_text

__version__ = "0.1.0"

__all__ = [
    "CompiledPolicy",
    "Decision",
    "EvalError",
    "Evaluation",
    "Explainer",
    "FactSet",
    "InputErrors",
    "Options",
    "Outcome",
    "PolicyErrors",
    "RuleResult",
    "UsageError",
    "Verdict",
    "__version__",
    "compile_policies",
    "evaluate",
    "load_builtin_policies",
    "load_policy_paths",
    "load_policy_text",
    "load_snapshot_path",
    "load_snapshot_text",
    "replay",
    "select_backend",
]
