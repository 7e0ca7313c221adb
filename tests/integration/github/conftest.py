"""The GitHub Deployments double for integration tests: fixture ``github_double``.

A fresh loopback server per test (``tests/githubdouble.py``), closed afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from githubdouble import DEFAULT_TOKEN, GitHubDouble, served


@pytest.fixture
def github_double() -> Iterator[GitHubDouble]:
    """A started double for repository ``acme/app`` accepting ``DEFAULT_TOKEN``."""
    yield from served(token=DEFAULT_TOKEN, owner_repo="acme/app")
