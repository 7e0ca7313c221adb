"""Generates the reference parts of the docs from the declarations; --check finds stale copies.

Owns: docs/functions.md (the CEL function reference, exactly ``tidegate
functions -o markdown``) and the generated regions of docs/policy-reference.md
(the builtin rules of ``policies/builtin/`` and the ``@common`` gates of
``policies/common/``, from each rule's fields and ``metadata``). A region is
the text between ``<!-- BEGIN GENERATED: NAME ... -->`` and
``<!-- END GENERATED: NAME -->``; the prose around it is hand-written.

Callers: people (``python scripts/docs_reference.py`` after changing a function
declaration or a builtin/library rule) and tests/docs/test_reference.py
(``--check``). Uses only the engine's public loading and rendering API; it
never evaluates a rule.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from policy_engine import loading
from policy_engine.cel.library import standard_library
from policy_engine.model.policy import NamedExpression, Policy, RuleSpec
from policy_engine.rendering import reference

ROOT = Path(__file__).resolve().parents[1]
REGION = re.compile(
    r"(?P<begin><!-- BEGIN GENERATED: (?P<name>[\w-]+)[^\n]*-->\n)"
    r"(?P<body>.*?)"
    r"(?P<end><!-- END GENERATED: (?P=name) -->)",
    re.S,
)


def fold(text: str) -> str:
    """Whitespace folded to single spaces, pipes escaped: safe inside a table row."""
    return " ".join(text.split()).replace("|", "\\|")


def cell(text: str) -> str:
    """Prose in a table cell; ``<tag>`` stays visible instead of becoming HTML."""
    return fold(text).replace("<", "&lt;").replace(">", "&gt;")


def code(text: str) -> str:
    """Inline code in a table cell."""
    return f"`{fold(text)}`"


def rule_body(rule: RuleSpec) -> str:
    """The rule's body as the policy writes it: expression, all/any checks or window."""
    if rule.window is not None:
        return f"`window: {rule.window}`"
    checks: Sequence[NamedExpression] | None = rule.all if rule.all is not None else rule.any
    if checks is not None:
        joiner = "all" if rule.all is not None else "any"
        return f"{joiner}: " + "; ".join(f"`{c.name}` = {code(c.expression)}" for c in checks)
    return code(rule.expression or "")


def conditions(rule: RuleSpec) -> str:
    parts = []
    if rule.when:
        parts.append(f"when {code(rule.when)}")
    if rule.pending_when:
        parts.append(f"pendingWhen {code(rule.pending_when)}")
    return "<br>".join(parts) or "—"


def source_link(policy: Policy, folder: str) -> str:
    """The policy's file, relative to docs/ (installed paths may be absolute)."""
    return f"../policies/{folder}/{Path(policy.file).name}"


def builtin_tables(policies: Sequence[Policy]) -> str:
    """Two tables: what each builtin rule is for, then exactly what it evaluates."""
    lines = [
        "| rule | kind | summary | why | example | use instead |",
        "|---|---|---|---|---|---|",
    ]
    rows = [(p, r) for p in policies for r in p.spec.rules]
    for policy, rule in rows:
        meta = rule.metadata
        lines.append(
            f"| [`{policy.rule_id(rule.name)}`]({source_link(policy, 'builtin')}) "
            f"| {rule.kind.value} | {cell(rule.description or policy.spec.description)} "
            f"| {cell(meta.get('why', ''))} | {cell(meta.get('example', ''))} "
            f"| {cell(meta.get('useInstead', ''))} |"
        )
    lines += [
        "",
        "| rule | applies | body | reason | message |",
        "|---|---|---|---|---|",
    ]
    for policy, rule in rows:
        lines.append(
            f"| `{policy.rule_id(rule.name)}` | {conditions(rule)} | {rule_body(rule)} "
            f"| `{rule.reason or ''}` | {cell(rule.message or rule.name)} |"
        )
    return "\n".join(lines) + "\n"


def params_cell(params: dict[str, Any]) -> str:
    """Each param as name (type, default): description."""
    parts = []
    for name, declared in params.items():
        kind = getattr(declared, "type", "value")
        default = json.dumps(getattr(declared, "default", declared))
        description = cell(getattr(declared, "description", ""))
        parts.append(f"`{name}` ({kind}, default {code(default)}) {description}".rstrip())
    return "<br>".join(parts) or "—"


def library_table(policies: Sequence[Policy]) -> str:
    """The opt-in gates: label, params, what it does and when to use something else."""
    lines = [
        "| gate | kind | opt in with the label | params | summary | why | use instead |",
        "|---|---|---|---|---|---|---|",
    ]
    for policy in policies:
        for rule in policy.spec.rules:
            meta = rule.metadata
            lines.append(
                f"| [`{policy.rule_id(rule.name)}`]({source_link(policy, 'common')})"
                f' | {rule.kind.value} | `gates.tidegate.dev/{policy.name}: "true"` '
                f"| {params_cell(policy.spec.params)} "
                f"| {cell(rule.description or policy.spec.description)} "
                f"| {cell(meta.get('why', ''))} | {cell(meta.get('useInstead', ''))} |"
            )
    return "\n".join(lines) + "\n"


def library_policies() -> list[Policy]:
    policies = loading.load_policy_paths([loading.library_path()])
    return sorted(policies, key=lambda p: p.name)


def regions() -> dict[str, Callable[[], str]]:
    return {
        "builtin-rules": lambda: builtin_tables(loading.load_builtin_policies()),
        "common-gates": lambda: library_table(library_policies()),
    }


def fill_regions(text: str, renderers: dict[str, Callable[[], str]]) -> str:
    """``text`` with every known region's body regenerated; unknown names are an error."""
    seen: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in renderers:
            raise SystemExit(f"unknown generated region {name!r}; known: {sorted(renderers)}")
        seen.add(name)
        return f"{match.group('begin')}{renderers[name]()}{match.group('end')}"

    filled = REGION.sub(replace, text)
    missing = sorted(set(renderers) - seen)
    if missing:
        raise SystemExit(f"docs/policy-reference.md lacks the generated regions {missing}")
    return filled


def generated(docs: Path) -> dict[Path, str]:
    """Every generated file under ``docs`` with the content it must have."""
    policy_reference = docs / "policy-reference.md"
    return {
        docs / "functions.md": reference.functions(standard_library(), "markdown"),
        policy_reference: fill_regions(policy_reference.read_text(encoding="utf-8"), regions()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is stale")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs", help="the docs folder")
    args = parser.parse_args(argv)
    stale = []
    for path, content in generated(args.docs).items():
        if path.read_text(encoding="utf-8") == content:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(content, encoding="utf-8")
            print(f"updated {path}")
    if args.check and stale:
        names = ", ".join(str(p) for p in stale)
        print(f"stale: {names}; run `python scripts/docs_reference.py`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
