"""The block conventions of the docs test: exit markers, sessions, shown output, wildcards."""

from __future__ import annotations

from shellblocks import missing_lines, shell_blocks

PAGE = """\
Intro.

```bash
echo one
```

```text
one
```

<!-- expect-exit: 3 -->
```console
$ echo two \\
    three
two three
$ exit 3
```

```yaml
not: run
```

```bash
true
```

Prose between the blocks.

```text
not the output of `true`
```
"""


def test_blocks_carry_their_script_exit_status_and_shown_output() -> None:
    first, second, third = shell_blocks(PAGE)
    assert (first.language, first.script, first.expected_exit) == ("bash", "echo one\n", 0)
    assert first.shown == ("one",)
    assert first.shell_options == ("-e", "-o", "pipefail")
    assert second.language == "console"
    assert second.script == "echo two \\\n    three\nexit 3\n"
    assert second.expected_exit == 3
    assert second.shown == ("two three",)
    assert "-e" not in second.shell_options
    assert third.shown == ()
    assert (first.line, second.line, third.line) == (3, 12, 23)


def test_shown_lines_must_appear_in_order_in_one_stream() -> None:
    out = "a\nb\nc\n"
    assert missing_lines(("a", "c"), out, "") == []
    assert missing_lines(("c", "a"), out, "") == ["a"]
    assert missing_lines(("x",), out, "x-ish\n") == ["x"]
    assert missing_lines(("a", "e"), out, "d\ne\n") == []


def test_an_ellipsis_matches_varying_text_and_stands_for_left_out_lines() -> None:
    out = "7 cases: 7 passed   cel-expr-python 0.1.3   0.41 s\n"
    assert missing_lines(("…", "7 cases: 7 passed   cel-expr-python … s"), out, "") == []
    assert missing_lines(("7 cases: 6 passed   …",), out, "") == ["7 cases: 6 passed   …"]
