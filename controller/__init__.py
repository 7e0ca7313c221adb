"""tidegate's in-cluster controller: Kuberik-compatible Rollout reconciliation driven by the engine.

Composition root (ARCHITECTURE.md §7): ``tidegate run`` builds the runtime,
kopf feeds watch events into stores, a keyed queue runs ``reconcile`` per
Rollout, ``planning`` decides from (previous status, verdicts, now) and
``applying`` writes: status first, then convergent server-side applies.
"""
