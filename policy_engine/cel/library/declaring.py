"""How library functions are declared (re-exported from ``cel.types`` for the families).

Callers: each ``cel/library/<family>.py``. The declaration types live in
``cel.types`` so that the backend protocol below the library can name them.
"""

from __future__ import annotations

from policy_engine.cel.types import Example, FunctionDecl, LibraryError, LiteralCheck, Overload

__all__ = ["Example", "FunctionDecl", "LibraryError", "LiteralCheck", "Overload"]
