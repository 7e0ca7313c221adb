"""Read-only fact sources: collect facts from the cluster and from services for the engine.

Callers: the ``record`` verb and the controller build a ``CollectRequest``, run
sources through ``evaluators.collecting`` and hand the pieces to the engine as a
``FactSet``. Evaluators must not write anywhere, compile or evaluate CEL, or
import ``policy_engine.cel``, ``evaluation``, ``explaining`` or ``testing``.
"""
