"""Expanding condition text, the third loading stage: exceptions and lists become condition text.

Falco builds a rule's exceptions into its condition as *text* (`(cond) and not (...)`), and
substitutes lists into condition text wherever a list name stands alone (bounded by blanks, `(`,
`)`, `,` or `=`), before anything is parsed. falconet does exactly the same, so a condition means
what it means in Falco, quirks of the textual substitution included.

The text is the same as Falco's, but the work is bounded: a condition is only searched for the
lists it names (found from its words, not by trying every list), each list is substituted in one
linear pass, and the text produced is limited per condition and for the whole load (`limits`):
text substitution multiplies, so one list named in many places could otherwise fill the memory.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Mapping
from typing import Any

from falconet.rules.collector import ListItem
from falconet.rules.exceptions import ExceptionItem
from falconet.rules.limits import MAX_CONDITION_CHARS, MAX_LIST_ITEMS, MAX_TOTAL_CONDITION_CHARS

_BLANKS = " \t\n\r"
_LIST_DELIMS = _BLANKS + "(),="
_TRIM = _BLANKS + ","  # what a substitution may remove before a list name
_WORDS = re.compile(r"[^ \t\n\r(),=]+")
_PAREN_OPS = {"in", "intersects", "pmatch"}


_TOO_LONG = (
    f"condition is longer than the limit of {MAX_CONDITION_CHARS} characters once lists are "
    "substituted"
)


class ExpandLimitError(Exception):
    """Expanding lists went past a limit: the message says which. `budget`: the load's budget
    (`Lists.charge`), which every later condition would exceed too."""

    def __init__(self, message: str, *, budget: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.budget = budget


class Lists:
    """Every list, its items expanded (`expand_lists`), indexed to find the lists a text names.

    `work` counts the characters the substitutions of one load produced and searched, against
    `MAX_TOTAL_CONDITION_CHARS`."""

    __slots__ = ("_odd", "_order", "_subs", "items", "names", "work")

    def __init__(self, ordered: Iterable[tuple[str, list[str]]] = ()) -> None:
        pairs = list(ordered)
        self.names = [name for name, _ in pairs]
        self.items = [items for _, items in pairs]
        self._order = {name: i for i, name in enumerate(self.names)}
        # Names holding a delimiter are not one word of the text: searched for as text (rare: the
        # collector warns that conditions cannot reference them).
        self._odd = [i for i, name in enumerate(self.names) if _has_delimiter(name)]
        self._subs: dict[int, tuple[str, list[int]]] = {}
        self.work = 0

    def __len__(self) -> int:
        return len(self.names)

    def named_in(self, text: str, after: int = -1) -> list[int]:
        """The positions of the lists (after `after`) that `text` may name."""
        order = self._order
        found = {order[w] for w in _WORDS.findall(text) if w in order}
        self.charge(len(text))
        for i in self._odd:
            if i > after:
                self.charge(len(text))
                if self.names[i] in text:
                    found.add(i)
        return [i for i in found if i > after]

    def substitution(self, i: int) -> tuple[str, list[int]]:
        """The text that replaces list `i`, and the later lists that text names (made once)."""
        made = self._subs.get(i)
        if made is None:
            items = self.items[i]
            if sum(len(v) + 2 for v in items) > MAX_CONDITION_CHARS:
                raise ExpandLimitError(
                    f"list '{self.names[i]}' is longer than the limit of {MAX_CONDITION_CHARS} "
                    "characters of a condition"
                )
            sub = ", ".join(_quote_item(v) for v in items)
            made = self._subs[i] = (sub, self.named_in(sub, i))
        return made

    def charge(self, characters: int) -> None:
        self.work += characters
        if self.work > MAX_TOTAL_CONDITION_CHARS:
            raise ExpandLimitError(
                "substituting lists into conditions produces more than the limit of "
                f"{MAX_TOTAL_CONDITION_CHARS} characters in all",
                budget=True,
            )


def _has_delimiter(name: str) -> bool:
    return any(c in _LIST_DELIMS for c in name)


def expand_lists(lists: Mapping[str, ListItem]) -> tuple[Lists, str | None]:
    """Every list with the lists it names expanded one level deep (raw items, as Falco does,
    and only lists defined before its latest definition), and the name of the first list that
    took the expanded items past `MAX_LIST_ITEMS` (it and the later lists keep their items as
    written), or None."""
    ordered = sorted(lists.values(), key=lambda i: i.index)
    out: list[tuple[str, list[str]]] = []
    total = 0
    over: str | None = None
    for lst in ordered:
        items: list[str] = []
        if over is None:
            for value in lst.items:
                ref = lists.get(value)
                if ref is not None and ref.index < lst.visibility:
                    if total + len(items) + len(ref.items) > MAX_LIST_ITEMS:
                        over = lst.name  # checked before the items are copied
                        break
                    items.extend(ref.items)
                else:
                    items.append(value)
            total += len(items)
            if total > MAX_LIST_ITEMS:
                over = lst.name
        if over is not None:
            items = list(lst.items)
        out.append((lst.name, items))
    return Lists(out), over


def substitute_lists(text: str, lists: Lists) -> str:
    """`text` with every list name substituted by its items, in list position order, as
    Falco does: a list's items may name later lists, which are substituted in turn.

    Raises ExpandLimitError past `MAX_CONDITION_CHARS` for this text, or past the load's
    budget (`Lists.charge`)."""
    if not lists:
        return text
    pending = lists.named_in(text)
    heapq.heapify(pending)
    queued = set(pending)
    while pending:
        i = heapq.heappop(pending)  # always the next list in position order
        sub, later = lists.substitution(i)
        new = substitute_list(text, lists.names[i], sub)
        if new is text:
            continue
        text = new
        lists.charge(len(text))
        if len(text) > MAX_CONDITION_CHARS:
            raise ExpandLimitError(_TOO_LONG)
        for j in later:  # the lists the items name, and odd names (searched in the whole text)
            if j not in queued:
                queued.add(j)
                heapq.heappush(pending, j)
        for j in lists.named_in(text, i) if lists._odd else ():
            if j not in queued:
                queued.add(j)
                heapq.heappush(pending, j)
    return text


def _quote_item(value: str) -> str:
    if " " in value and not value.startswith(('"', "'")):
        return f'"{value}"'
    return value


def _push(out: list[str], text: str) -> None:
    """Append `text` to the parts of the text being produced, with its trailing blanks and
    commas as parts of one character each: a later substitution may take them off again."""
    core = text.rstrip(_TRIM)
    if core:
        out.append(core)
    out.extend(text[len(core) :])


def substitute_list(cond: str, name: str, sub: str) -> str:
    """Falco's textual substitution of one list (its items joined, `sub`) into a condition:
    each occurrence of `name` bounded by delimiters becomes ` sub `, the blanks around it
    dropped, and for an empty list one comma before (else after) it too. Returns `cond` itself
    when nothing changes.

    One pass: the text produced so far is a list of parts (`_push`), the rest of `cond` is
    copied as it is reached; this is the same text as substituting occurrence after occurrence
    into a new string each time, which was quadratic in the occurrences."""
    out: list[str] = []
    pos = 0  # cond[pos:] is still to copy
    n = len(cond)
    size = n  # an upper bound of the length of the text produced
    start = cond.find(name)
    while start >= 0:
        end = start + len(name)
        if start > pos:
            before = cond[start - 1]
        elif out:
            before = out[-1][-1]  # the text produced (a substitution ends with a blank)
        else:
            before = None  # the start of the text
        if (before is None or before in _LIST_DELIMS) and (end >= n or cond[end] in _LIST_DELIMS):
            _push(out, cond[pos:start])
            while out and out[-1] in _BLANKS:  # blanks are single-character parts
                out.pop()
            while end < n and cond[end] in _BLANKS:
                end += 1
            if not sub:
                if out and out[-1] == ",":
                    out.pop()
                elif end < n and cond[end] == ",":
                    end += 1
            if out:
                out.append(" ")
            size += len(sub) + 2
            if size > MAX_CONDITION_CHARS:
                raise ExpandLimitError(_TOO_LONG)
            _push(out, sub)
            out.append(" ")
            pos = end
            start = cond.find(name, pos)
        else:
            start = cond.find(name, start + 1)
    if not out:
        return cond
    out.append(cond[pos:])
    return "".join(out)


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
    parts = ["(" + condition + ")"]
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
        parts.append(text)
    return " and not ".join(parts)
