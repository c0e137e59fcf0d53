"""List substitution: Falco's textual semantics, now linear and searched by word.

The previous implementation (substituting every list into the text, occurrence after occurrence,
into a new string each time) is kept here as the oracle: the fast one must give the same text,
blanks and commas included, for any condition and lists.
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from falconet.rules.expand import Lists, substitute_list, substitute_lists

_BLANKS = " \t\n\r"
_DELIMS = _BLANKS + "(),="


def _quote(value: str) -> str:
    return f'"{value}"' if " " in value and not value.startswith(('"', "'")) else value


def oracle_list(cond: str, name: str, items: Sequence[str]) -> str:
    """The substitution of one list as falconet did it until the linear rewrite."""
    sub = ", ".join(_quote(v) for v in items)
    start = cond.find(name)
    while start >= 0:
        end = start + len(name)
        if (start == 0 or cond[start - 1] in _DELIMS) and (
            end >= len(cond) or cond[end] in _DELIMS
        ):
            while start > 0 and cond[start - 1] in _BLANKS:
                start -= 1
            while end < len(cond) and cond[end] in _BLANKS:
                end += 1
            if not sub:
                if start > 0 and cond[start - 1] == ",":
                    start -= 1
                elif end < len(cond) and cond[end] == ",":
                    end += 1
            head = cond[:start] + " " if start > 0 else ""
            cond = head + sub + " " + cond[end:]
            start = len(head) + len(sub) + 1
            start = cond.find(name, start)
        else:
            start = cond.find(name, start + 1)
    return cond


def oracle(text: str, lists: Sequence[tuple[str, list[str]]]) -> str:
    for name, items in lists:
        if name in text:
            text = oracle_list(text, name, items)
    return text


NAMES = ["a", "ab", "b", "list_x", "odd name", "=q", "c,d"]  # the last three hold delimiters
PIECES = st.sampled_from([*NAMES, " ", "  ", "\t", "\n", ",", "(", ")", "=", "x", "'a'", '"a b"'])
ITEMS = st.lists(st.sampled_from([*NAMES, "v", "w w", "'q' ", '"z",', ",", " "]), max_size=4)


@settings(max_examples=600, deadline=None)
@given(
    pieces=st.lists(PIECES, max_size=24),
    lists=st.lists(st.tuples(st.sampled_from(NAMES), ITEMS), max_size=6, unique_by=lambda x: x[0]),
)
def test_substitution_is_the_same_text_as_before(
    pieces: list[str], lists: list[tuple[str, list[str]]]
) -> None:
    text = "".join(pieces)
    assert substitute_lists(text, Lists(lists)) == oracle(text, lists)


def test_many_occurrences_of_an_empty_list_cost_one_pass() -> None:
    # 100,000 occurrences: the previous version copied the whole text for each (minutes).
    text = "ka.verb in (a" + ", e" * 100_000 + ")"
    assert substitute_list(text, "e", "") == "ka.verb in (a" + "  " * 100_000 + ")"


def test_only_the_lists_a_condition_names_are_tried() -> None:
    lists = Lists((f"l{i}", [f"v{i}"]) for i in range(50_000))
    assert substitute_lists("ka.verb in (l7, l49999)", lists) == "ka.verb in ( v7 , v49999 )"
    assert lists.work < 1000  # the words of the text, not 50,000 searches
