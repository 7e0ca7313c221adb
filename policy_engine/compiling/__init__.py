"""Policy → CompiledPolicy: every expression checked and compiled once, with a digest.

Callers: the CLI verbs, ``testing``, ``replaying``, ``evaluation``, ``explaining`` and
the controller's policy cache (keyed by digest). The types live in
``compiling.compiled``, the compiler in ``compiling.building``; this module only
re-exports them. Must not evaluate anything against facts.
"""

from __future__ import annotations

from policy_engine.compiling.building import compile_policies, policy_digest
from policy_engine.compiling.compiled import (
    ENGINE_VERSION,
    CompiledExpr,
    CompiledPolicy,
    CompiledRule,
    DocPath,
    coerce_param,
    typed_param,
)

__all__ = [
    "ENGINE_VERSION",
    "CompiledExpr",
    "CompiledPolicy",
    "CompiledRule",
    "DocPath",
    "coerce_param",
    "compile_policies",
    "policy_digest",
    "typed_param",
]
