"""Shared fixtures: CEL backends (every test that takes ``backend`` runs on both)."""

from __future__ import annotations

import pytest

from policy_engine.cel.backend import CelBackend
from policy_engine.cel.environment import select_backend

BACKENDS = ("cel-expr-python", "celpy")


@pytest.fixture(params=BACKENDS, scope="session")
def backend(request: pytest.FixtureRequest) -> CelBackend:
    return select_backend(request.param).backend
