"""PlainReader: an ObjectReader over Stores without their indexes, for tests of the fallbacks.

Callers: test_stores.py and test_dependents.py, which check that the index lookups
(``stores.find``) give what a plain scan of ``reader.list`` gives.
"""

from __future__ import annotations

from collections.abc import Sequence

from controller.stores import Stores
from evaluators.base import Object


class PlainReader:
    """An ObjectReader without indexes: ``find`` scans it."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    def get(self, kind: str, namespace: str | None, name: str) -> Object | None:
        return self.stores.get(kind, namespace, name)

    def list(self, kind: str, namespace: str | None = None) -> Sequence[Object]:
        return self.stores.list(kind, namespace)

    def synced(self, kind: str) -> bool:
        return self.stores.synced(kind)
