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
    # 9**8 values from 674 bytes ran past 150 s and 5 GB; 9**7 (here) took tens of seconds.
    text = anchors(7) + RULE.format(condition="ka.verb=get").rstrip("\n")
    text += "\n  exceptions:\n  - name: e\n    fields: ka.user.name\n    values: *a6\n"
    assert messages(text) == [
        "hostile.yaml:10:7: error: macro 'defs': YAML aliases expand this node to more than "
        "1000000 nodes and characters"
    ]


def test_aliases_of_a_long_scalar_count_its_characters() -> None:
    # 100 aliases of 20,000 characters are few nodes, but 2 MB of condition text.
    text = f"- list: long\n  items: [&v {'x' * 20_000}]\n- list: many\n  items: ["
    text += ", ".join(["*v"] * 100) + "]\n"
    assert messages(text) == [
        "hostile.yaml:4:10: error: list 'many': YAML aliases expand this node to more than "
        "1000000 nodes and characters"
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


def test_a_rules_file_is_at_most_1_mib(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * limits.MAX_FILE_BYTES + b"\n" + RULE.format(condition="x").encode())
    with pytest.raises(RuleLimitError) as info:
        Engine.from_paths([path], code_cache=tmp_path / "cache")
    assert (
        str(info.value)
        == f"{path}:1:1: error: rules file is larger than the limit of 1048576 bytes"
    )
    text = "#" * limits.MAX_FILE_BYTES + "é\n"  # the limit is in bytes of UTF-8
    assert messages(text) == [
        "hostile.yaml:1:1: error: rules file is larger than the limit of 1048576 bytes"
    ]
    assert messages("#" * (limits.MAX_FILE_BYTES - 1) + "\n") == []


# -- conditions -------------------------------------------------------------------------------


def doubling(count: int) -> str:
    """Macros m0..m<count>, each naming the one before twice: m<count> has 2**(count+1) - 1
    checks and operators as a tree, in a file of 42 bytes per macro."""
    text = "- macro: m0\n  condition: ka.verb=get\n"
    for i in range(1, count + 1):
        text += f"- macro: m{i}\n  condition: (m{i - 1} or m{i - 1})\n"
    return text


def test_macros_that_double_are_refused() -> None:
    # Building the engine of this 1.7 KB file ran past 100 s and 2 GB (2**41 checks).
    text = doubling(40) + RULE.format(condition="m40")
    (error,) = errors(text)
    assert isinstance(error, RuleLimitError)
    assert error.render() == (
        "hostile.yaml:85:14: error: rule 'R': condition has 2199023255551 checks and operators "
        "once its macros are expanded, more than the limit of 20000\n"
        "    (m40)\n"
        "    ^"
    )


def test_the_whole_load_has_a_budget_of_checks() -> None:
    # m13 is 16,383 checks and operators: twelve rules fit in 200,000, the thirteenth does not.
    rules = "".join(
        RULE.format(condition="m13").replace("rule: R", f"rule: R{i}") for i in range(13)
    )
    assert messages(doubling(13) + rules) == [
        "hostile.yaml:103:14: error: rule 'R12': the rules' conditions expand to more than "
        "200000 checks and operators in all"
    ]


@pytest.mark.parametrize("form", ["(m{} and ka.user.name=u)", "not m{}"])
def test_a_deep_macro_chain_is_refused(form: str) -> None:
    # 900 macros each wrapping the one before: RecursionError (a traceback) in the checker.
    text = "- macro: m0\n  condition: ka.verb=get\n"
    for i in range(1, 901):
        text += f"- macro: m{i}\n  condition: {form.format(i - 1)}\n"
    assert messages(text + RULE.format(condition="m900")) == [
        "hostile.yaml:1805:14: error: rule 'R': condition nests 900 levels deep once its macros "
        "are expanded, more than the limit of 100"
    ]


def test_a_deeply_nested_condition_is_refused() -> None:
    # The parser takes ~200 levels of parentheses; the generated Python, fewer (SyntaxError).
    condition = "ka.verb=get"
    for i in range(150):
        condition = f"(ka.user.name=u{i} {'and' if i % 2 else 'or'} {condition})"
    assert messages(RULE.format(condition=condition)) == [
        "hostile.yaml:3:14: error: rule 'R': condition nests 150 levels deep once its macros "
        "are expanded, more than the limit of 100"
    ]


def test_macros_resolving_inside_one_another_are_capped() -> None:
    # Each macro is redefined to name the next, not yet resolved one: resolving m0 recursed
    # through all 1,200 (RecursionError, a traceback).
    count = 1200
    text = "".join(f"- macro: m{i}\n  condition: ka.verb=get\n" for i in range(count + 1))
    text += "".join(f"- macro: m{i}\n  condition: m{i + 1}\n" for i in range(count))
    first = errors(text + RULE.format(condition="m0"))[0]
    assert isinstance(first, RuleLimitError)
    assert first.render(with_excerpt=False) == (
        f"hostile.yaml:{2 * count + 4}:14: error: macro 'm0': macros nest more than 100 deep "
        "at 'm100'"
    )


# -- lists ------------------------------------------------------------------------------------


def test_lists_naming_lists_expand_to_at_most_a_million_items() -> None:
    # Expansion is one level deep but multiplies: this list named a 1,000-item list 1,001 times
    # (and 50,000 times a 100,000-item one exhausted the memory).
    text = "- list: big\n  items: [" + ", ".join(f"v{i}" for i in range(1000)) + "]\n"
    text += "- list: many\n  items: [" + ", ".join(["big"] * 1001) + "]\n"
    assert messages(text + RULE.format(condition="ka.verb in (many)")) == [
        "hostile.yaml:3:3: error: list 'many': lists expand to more than the limit of 1000000 "
        "items in all"
    ]


def test_a_condition_is_at_most_1_mib_once_lists_are_substituted() -> None:
    text = "- list: big\n  items: [" + ", ".join(f"value{i:05}" for i in range(20_000)) + "]\n"
    condition = " or ".join(["ka.verb in (big)"] * 5)  # 5 x 220 KB
    assert messages(text + RULE.format(condition=condition)) == [
        "hostile.yaml:5:14: error: rule 'R': condition is longer than the limit of 1048576 "
        "characters once lists are substituted"
    ]


def test_list_substitution_has_a_budget_for_the_whole_load() -> None:
    # A 220 KB list named by 80 rules is 17 MB of conditions: text substitution multiplies (a
    # 100,000-item list named by 3,000 rules exhausted the memory). One error, at the first rule
    # past the budget; the rules after it are not compiled.
    text = "- list: big\n  items: [" + ", ".join(f"value{i:05}" for i in range(20_000)) + "]\n"
    text += "".join(
        RULE.format(condition="ka.verb in (big)").replace("rule: R", f"rule: R{i}")
        for i in range(80)
    )
    assert messages(text) == [
        "hostile.yaml:413:14: error: rule 'R68': substituting lists into conditions produces "
        "more than the limit of 16777216 characters in all"
    ]
