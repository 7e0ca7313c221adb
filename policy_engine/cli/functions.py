"""``tidegate functions``: the CEL function and fact reference, from the declarations.

Callers: ``policy_engine.cli.main``. Renders ``cel.library`` declarations and
``model.schema``; never evaluates.
"""

from __future__ import annotations

import argparse
from typing import Any

from policy_engine import loading
from policy_engine.cel.library import standard_library
from policy_engine.cli import common
from policy_engine.errors import UsageError
from policy_engine.rendering import reference


def register(sub: Any) -> None:
    parser = sub.add_parser("functions", help="CEL function reference")
    parser.add_argument("name", nargs="?", help="one function")
    parser.add_argument("--facts", action="store_true", help="the fact roots and records")
    parser.add_argument(
        "--rules",
        action="store_true",
        help="the builtin rules and the opt-in library (@common) with metadata",
    )
    parser.add_argument("-o", "--output", choices=["text", "json", "markdown"], default="text")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, streams: common.Streams) -> int:
    declarations = standard_library()
    if args.name:
        declarations = tuple(d for d in declarations if d.name == args.name)
        if not declarations:
            known = ", ".join(sorted({d.name for d in standard_library()}))
            raise UsageError(f"no function {args.name!r}", hint=f"functions: {known}")
    if args.rules:
        library = loading.load_policy_paths([loading.library_path()])
        streams.out.write(
            reference.rules([*loading.load_builtin_policies(), *library], args.output)
        )
    elif args.facts:
        streams.out.write(reference.facts(args.output))
    else:
        streams.out.write(reference.functions(declarations, args.output))
    return 0
