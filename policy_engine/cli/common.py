"""What every verb shares: global flags, the wall clock, output streams, policy sources.

Callers: the verb modules of ``policy_engine.cli``. This package is the only
reader of the wall clock and the only writer to stdout/stderr in the engine.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from ruamel.yaml import YAML

from policy_engine import compiling, loading
from policy_engine.cel.backend import CelBackend
from policy_engine.cel.environment import select_backend
from policy_engine.errors import Diagnostic, PolicyErrors, UsageError
from policy_engine.model.policy import Origin, Policy

CONFIG_FILE = ".tidegate.yaml"


def wall_clock() -> datetime:
    """The current instant, aware UTC; read only by the CLI."""
    return datetime.now(UTC)


def add_global_flags(parser: argparse.ArgumentParser, outputs: Sequence[str]) -> None:
    parser.add_argument(
        "-p",
        "--policy",
        action="append",
        default=[],
        metavar="PATH",
        help=f"policy file or directory (repeatable; default from {CONFIG_FILE}, else policies/)",
    )
    parser.add_argument("-o", "--output", choices=list(outputs), default=outputs[0])
    parser.add_argument("--color", choices=["auto", "always", "never"], default="auto")
    parser.add_argument(
        "--cel-backend",
        choices=["auto", "cel-expr-python", "celpy"],
        default=None,
        help="CEL implementation (env TIDEGATE_CEL_BACKEND)",
    )
    parser.add_argument("-c", "--config", default=None, help=f"config file (default {CONFIG_FILE})")
    parser.add_argument("-q", "--quiet", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true")


@dataclass(slots=True)
class Streams:
    out: TextIO
    err: TextIO

    def color(self, setting: str) -> bool:
        if setting == "never" or os.environ.get("NO_COLOR"):
            return False
        if setting == "always":
            return True
        return bool(getattr(self.out, "isatty", lambda: False)())


def standard_streams() -> Streams:
    return Streams(sys.stdout, sys.stderr)


def backend_from(args: argparse.Namespace, streams: Streams) -> CelBackend:
    choice = select_backend(getattr(args, "cel_backend", None))
    if choice.notice and not getattr(args, "quiet", False):
        streams.err.write(f"notice: {choice.notice}\n")
    return choice.backend


def policy_paths(args: argparse.Namespace) -> list[str]:
    """Explicit ``-p`` paths, else the config's ``policies``, else ``policies/`` if present."""
    if args.policy:
        return list(args.policy)
    config_path = Path(args.config or CONFIG_FILE)
    if config_path.is_file():
        data = YAML(typ="safe").load(config_path.read_text(encoding="utf-8")) or {}
        configured = data.get("policies") if isinstance(data, dict) else None
        if isinstance(configured, list):
            return [str(config_path.parent / p) for p in configured]
        if isinstance(configured, str):
            return [str(config_path.parent / configured)]
    elif args.config:
        raise UsageError(f"config file {args.config!r} not found")
    return ["policies"] if Path("policies").is_dir() else []


LIBRARY_PREFIX = "@common"


def resolve_path(path: str) -> str:
    """``@common`` and ``@common/<gate>`` name the installed library of opt-in gates."""
    if path == LIBRARY_PREFIX:
        return str(loading.library_path())
    if path.startswith(LIBRARY_PREFIX + "/"):
        return str(loading.library_path(path[len(LIBRARY_PREFIX) + 1 :]))
    return path


def load_policies(paths: Sequence[str], *, builtins: bool = True) -> list[Policy]:
    """Builtins (unless disabled) plus the given files and directories."""
    paths = [resolve_path(p) for p in paths]
    for path in paths:
        if not Path(path).exists():
            raise UsageError(f"policy path {path!r} does not exist")
    found = loading.load_builtin_policies() if builtins else []
    if not paths:
        return found
    # a checkout's policies/ holds builtin/ too: builtins are loaded once, from the package
    extra = [p for p in loading.load_policy_paths(list(paths)) if p.origin is not Origin.BUILTIN]
    return [*found, *extra]


def load_and_compile(
    paths: Sequence[str], backend: CelBackend, *, builtins: bool = True
) -> list[compiling.CompiledPolicy]:
    """Loads and compiles; one PolicyErrors with every problem of every file (§11)."""
    problems: list[Diagnostic] = []
    try:
        policies = load_policies(paths, builtins=builtins)
    except PolicyErrors as exc:
        problems += exc.diagnostics
        policies = [p for p in exc.loaded if isinstance(p, Policy)]
    try:
        compiled = compiling.compile_policies(policies, backend)
    except PolicyErrors as exc:
        problems += exc.diagnostics
        compiled = []
    if problems:
        raise PolicyErrors(problems)
    return compiled


def parse_assignment(text: str, flag: str) -> tuple[str, object]:
    """``NAME=VALUE`` with VALUE read as a YAML scalar or flow collection."""
    if "=" not in text:
        raise UsageError(f"{flag} expects NAME=VALUE, got {text!r}")
    name, raw = text.split("=", 1)
    try:
        value = YAML(typ="safe").load(raw) if raw.strip() else ""
    except Exception as exc:  # ruamel raises many classes for bad YAML
        raise UsageError(f"{flag} {name}: cannot read value {raw!r}: {exc}") from exc
    if isinstance(value, datetime) and value.tzinfo is None:
        value = raw
    return name.strip(), value
