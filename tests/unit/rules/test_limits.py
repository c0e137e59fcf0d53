"""Hostile rules files end in a located RuleError, in bounded time and memory (rules.limits).

Each case was a hang, a memory blow-up or a traceback before its limit; the inputs here are the
smallest that cross each limit, so the tests stay fast.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from falconet import Engine
from falconet.errors import RuleError, RuleLimitError
from falconet.rules import limits
from falconet.rules.loader import RuleSet

RULE = """- rule: R
  desc: d
  condition: {condition}
  output: out %ka.user.name
  priority: WARNING
  source: k8s_audit
"""


def errors(text: str) -> list[RuleError]:
    ruleset = RuleSet()
    ruleset.load_text(text, "hostile.yaml")
    ruleset.compile()
    return ruleset.errors


def messages(text: str) -> list[str]:
    return [e.render(with_excerpt=False) for e in errors(text)]


def anchors(count: int) -> str:
    """A macro whose unused key holds `count` anchors, each a list of 9 aliases of the one
    before: the last one is 9**count values as a tree."""
    text = "- macro: defs\n  condition: ka.verb=get\n  x:\n"
    text += '    - &a0 ["v","v","v","v","v","v","v","v","v"]\n'
    for i in range(1, count):
        text += f"    - &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]\n"
    return text


# -- YAML --------------------------------------------------------------------------------------


def test_an_alias_bomb_is_refused_where_it_explodes() -> None:
    # 9**8 values from 674 bytes ran past 150 s and 5 GB; 9**6 (here) took seconds and loaded.
    text = anchors(7) + RULE.format(condition="ka.verb=get").rstrip("\n")
    text += "\n  exceptions:\n  - name: e\n    fields: ka.user.name\n    values: *a6\n"
    assert messages(text) == [
        "hostile.yaml:9:7: error: macro 'defs': YAML aliases expand this node to more than "
        "100000 nodes"
    ]


def test_aliases_within_the_limit_work_as_in_falco() -> None:
    text = "- list: admins\n  items: &people [alice, bob]\n"
    text += RULE.format(condition="ka.verb=get").rstrip("\n")
    text += "\n  exceptions:\n  - name: e\n    fields: ka.user.name\n    values: *people\n"
    ruleset = RuleSet()
    ruleset.load_text(text, "ok.yaml")
    (rule,) = ruleset.compile()
    assert not ruleset.errors
    assert rule.condition_text == "(ka.verb=get) and not (ka.user.name in (alice, bob))"


def test_an_alias_inside_its_own_anchor_is_an_error() -> None:
    # A recursive structure: reading it raised RecursionError.
    text = RULE.format(condition="ka.verb=get").rstrip("\n")
    text += "\n  exceptions:\n  - name: e\n    fields: ka.user.name\n    values: &r [*r]\n"
    assert messages(text) == [
        "hostile.yaml:10:13: error: YAML alias refers to a node that contains it"
    ]


def test_values_nest_at_most_64_levels() -> None:
    # 600 levels raised RecursionError while reading the exception's values.
    text = RULE.format(condition="ka.verb=get").rstrip("\n")
    text += "\n  exceptions:\n  - name: e\n    fields: [ka.user.name]\n    values:\n"
    text += "    - " + "[" * 600 + "x" + "]" * 600 + "\n"
    (error,) = errors(text)
    assert isinstance(error, RuleLimitError)
    assert error.render(with_excerpt=False) == (
        f"hostile.yaml:11:{7 + limits.MAX_YAML_DEPTH}: error: YAML values nest deeper than 64 "
        "levels"
    )


def test_a_rules_file_is_at_most_2_mib(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * limits.MAX_FILE_BYTES + b"\n" + RULE.format(condition="x").encode())
    with pytest.raises(RuleLimitError) as info:
        Engine.from_paths([path], code_cache=tmp_path / "cache")
    assert (
        str(info.value)
        == f"{path}:1:1: error: rules file is larger than the limit of 2097152 bytes"
    )
    text = "#" * limits.MAX_FILE_BYTES + "é\n"  # the limit is in bytes of UTF-8
    assert messages(text) == [
        "hostile.yaml:1:1: error: rules file is larger than the limit of 2097152 bytes"
    ]
    assert messages("#" * (limits.MAX_FILE_BYTES - 1) + "\n") == []
