"""Expanding condition text, the third loading stage: exceptions and lists become condition text.

Falco builds a rule's exceptions into its condition as *text* (`(cond) and not (...)`), and
substitutes lists into condition text wherever a list name stands alone (bounded by blanks, `(`,
`)`, `,` or `=`), before anything is parsed. falconet does exactly the same, so a condition means
what it means in Falco, quirks of the textual substitution included.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from falconet.rules.collector import ListItem
from falconet.rules.exceptions import ExceptionItem

_BLANKS = " \t\n\r"
_LIST_DELIMS = _BLANKS + "(),="
_PAREN_OPS = {"in", "intersects", "pmatch"}


Lists = list[tuple[str, list[str]]]  # (name, items) in position order, nested lists expanded


def expand_lists(lists: Mapping[str, ListItem]) -> Lists:
    """Every list with the lists it names expanded one level deep (raw items, as Falco does,
    and only lists defined before its latest definition)."""
    ordered = sorted(lists.values(), key=lambda i: i.index)
    out: Lists = []
    for lst in ordered:
        items: list[str] = []
        for value in lst.items:
            ref = lists.get(value)
            if ref is not None and ref.index < lst.visibility:
                items.extend(ref.items)
            else:
                items.append(value)
        out.append((lst.name, items))
    return out


def substitute_lists(text: str, lists: Lists) -> str:
    """`text` with every list name substituted by its items, in list position order."""
    for name, items in lists:
        if name in text:
            text = substitute_list(text, name, items)
    return text


def _quote_item(value: str) -> str:
    if " " in value and not value.startswith(('"', "'")):
        return f'"{value}"'
    return value


def substitute_list(cond: str, name: str, items: Sequence[str]) -> str:
    """Falco's textual list substitution of one list into a condition."""
    sub = ", ".join(_quote_item(v) for v in items)
    start = cond.find(name)
    while start >= 0:
        end = start + len(name)
        if (start == 0 or cond[start - 1] in _LIST_DELIMS) and (
            end >= len(cond) or cond[end] in _LIST_DELIMS
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


def _exception_item(value: Any, comp: str) -> str:
    if isinstance(value, list):
        return "(" + ", ".join(_quote_exception(str(v)) for v in value) + ")"
    text = _quote_exception(str(value))
    base = comp.split(maxsplit=1)[0] if comp.split() else comp
    if (base in _PAREN_OPS or len(comp.split()) > 1) and not text.startswith("("):
        return f"({text})"
    return text


def _quote_exception(value: str) -> str:
    if " " in value and not value.startswith('"'):
        return f'"{value}"'
    return value


def build_exception_condition(condition: str, exceptions: Iterable[ExceptionItem]) -> str:
    """The rule condition with its exceptions, built as text exactly as Falco does."""
    cond = "(" + condition + ")"
    for exc in exceptions:
        if not exc.values:
            continue
        if isinstance(exc.fields, str):
            comp = exc.comps if isinstance(exc.comps, str) else "in"
            items = ", ".join(_quote_exception(str(v)) for v in exc.values)
            text = f"({exc.fields} {comp} ({items}))"
        else:
            comps = (
                exc.comps
                if isinstance(exc.comps, list) and exc.comps
                else (["="] * len(exc.fields))
            )
            tuples = []
            for value in exc.values:
                checks = [
                    f" {f} {c} {_exception_item(v, c)}"
                    for f, c, v in zip(exc.fields, comps, value, strict=False)
                ]
                tuples.append("(" + " and ".join(checks) + ")")
            text = "(" + " or ".join(tuples) + ")"
        cond += " and not " + text
    return cond
