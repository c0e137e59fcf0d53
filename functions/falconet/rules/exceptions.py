"""A rule's `exceptions`, as the collector reads them: Falco's two forms, checked as Falco checks.

`fields` is a list (with `comps`, one per field, `=` by default, and `values` that are tuples of
one value per field) or a single field (with `comps` `in`, `pmatch` or `intersects`, and `values`
that are plain values). `expand.build_exception_condition` turns them into condition text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from falconet import errors as errs
from falconet import fields
from falconet.rules import ast
from falconet.rules.diagnostics import located
from falconet.rules.lexer import MODIFIER_OPS, MODIFIERS
from falconet.rules.model import SOURCE, Position
from falconet.rules.parser import ParseError, parse_operand
from falconet.rules.reader import YamlNode

# How a reader reports a warning: (message, place, kind=..., item=...).
Warn = Callable[..., None]

_EXCEPTION_OPS = {
    "=",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "contains",
    "icontains",
    "startswith",
    "endswith",
    "glob",
    "iglob",
    "in",
    "intersects",
    "pmatch",
    "regex",
    "exists",
}


def _modified(comp: str) -> bool:
    """Whether `comp` is an operator with Falco 0.44's list modifier: `startswith anyof`."""
    words = comp.split()
    return len(words) == 2 and words[0] in MODIFIER_OPS and words[1] in MODIFIERS


def _known_operand(text: str) -> bool:
    """Whether an exception field is a known field, or a transformer over one
    (`toupper(ka.user.name)`, as Falco 0.44 accepts); the checker checks the rest."""
    try:
        operand, end = parse_operand(text)
    except ParseError:
        return False
    found = ast.operand_fields(operand)
    return end == len(text) and bool(found) and all(fields.lookup(f.name) for f in found)


class ExceptionItem:
    __slots__ = ("comps", "fields", "name", "position", "values")

    def __init__(
        self,
        name: str,
        fields: list[str] | str,
        comps: list[str] | str,
        values: list[Any],
        position: Position,
    ) -> None:
        self.name = name
        self.fields = fields
        self.comps = comps
        self.values = values
        self.position = position


def read_exceptions(
    node: YamlNode | None,
    name: str,
    source: str,
    warn: Warn,
    *,
    define: bool,
) -> list[ExceptionItem]:
    """A rule's `exceptions`. Raises RuleError; duplicate names are reported through `warn`."""
    if node is None:
        return []
    out: list[ExceptionItem] = []
    seen: set[str] = set()
    for entry in node.sequence("exceptions"):
        ex = entry.mapping("an exception")
        if "name" not in ex:
            raise located(
                "Item has no mapping for key 'name'", entry.position, kind="rule", item=name
            )
        ex_name = ex["name"].scalar("exception name")
        if ex_name in seen:
            warn(f"duplicate exception name '{ex_name}'", entry.position, kind="rule", item=name)
        seen.add(ex_name)
        out.append(_read_exception(entry, ex, ex_name, name, source, define=define))
    return out


def _read_exception(
    entry: YamlNode,
    ex: dict[str, YamlNode],
    ex_name: str,
    name: str,
    source: str,
    *,
    define: bool,
) -> ExceptionItem:
    """One exception of rule `name` (`ex`: the entry's keys). Raises RuleError."""
    if "fields" not in ex:
        raise located(
            f"exception '{ex_name}': Item has no mapping for key 'fields'",
            entry.position,
            kind="rule",
            item=name,
        )
    fields_node = ex["fields"]
    ex_fields: list[str] | str
    if fields_node.node.id == "sequence":
        ex_fields = [f.scalar("exception field") for f in fields_node.sequence("fields")]
        comps: list[str] | str = (
            [c.scalar("comp") for c in ex["comps"].sequence("comps")]
            if "comps" in ex
            else (["="] * len(ex_fields) if define else [])
        )
        if isinstance(comps, list) and comps and len(comps) != len(ex_fields):
            raise located(
                f"exception '{ex_name}': fields and comps lists must have equal length",
                entry.position,
                kind="rule",
                item=name,
            )
    else:
        ex_fields = fields_node.scalar("exception field")
        comps = ex["comps"].scalar("comp") if "comps" in ex else "in"
        if comps not in ("in", "pmatch", "intersects") and not _modified(comps):
            raise located(
                f"exception '{ex_name}': when fields is a single value, comps "
                "must be one of (in, pmatch, intersects), or an operator with a list "
                "modifier (e.g. 'startswith anyof')",
                entry.position,
                kind="rule",
                item=name,
            )
    for comp in comps if isinstance(comps, list) else [comps]:
        if comp not in _EXCEPTION_OPS and not _modified(comp):
            raise located(
                f"exception '{ex_name}': '{comp}' is not a supported comparison operator",
                entry.position,
                kind="rule",
                item=name,
            )
    if source == SOURCE:
        for f in ex_fields if isinstance(ex_fields, list) else [ex_fields]:
            if not _known_operand(f):
                raise located(
                    f"exception '{ex_name}': '{f}' is not a supported filter field",
                    entry.position,
                    cls=errs.UnknownFieldError,
                    kind="rule",
                    item=name,
                )
    exc = ExceptionItem(ex_name, ex_fields, comps, [], entry.position)
    if "values" in ex:
        exc.values = _exception_values(ex["values"], exc)
    return exc


def merge_exceptions(
    exceptions: list[ExceptionItem],
    by_name: dict[str, ExceptionItem],
    node: YamlNode,
    name: str,
    source: str,
) -> None:
    """Falco's `exceptions: append`: new exceptions are added, existing ones get more values.
    `by_name` indexes `exceptions` (the last of a name) and is kept up to date: the caller keeps
    it between appends, so many appends to one rule stay linear."""
    for entry in node.sequence("exceptions"):
        ex = entry.mapping("an exception")
        if "name" not in ex:
            raise located(
                "Item has no mapping for key 'name'", entry.position, kind="rule", item=name
            )
        ex_name = ex["name"].scalar("exception name")
        current = by_name.get(ex_name)
        if current is None:
            if "fields" not in ex or "values" not in ex:
                raise located(
                    f"exception '{ex_name}': a new exception must have 'fields' and 'values'",
                    entry.position,
                    kind="rule",
                    item=name,
                )
            new = _read_exception(entry, ex, ex_name, name, source, define=True)
            exceptions.append(new)
            by_name[ex_name] = new
            continue
        if "fields" in ex or "comps" in ex:
            raise located(
                f"exception '{ex_name}': appending to an existing exception may only add 'values'",
                entry.position,
                kind="rule",
                item=name,
            )
        if "values" in ex:
            current.values.extend(_exception_values(ex["values"], current))


def _exception_values(node: YamlNode, exc: ExceptionItem) -> list[Any]:
    values = node.plain()
    if not isinstance(values, list):
        raise located(f"exception '{exc.name}': values must be a sequence", node.position)
    if isinstance(exc.fields, list):
        for v in values:
            if not isinstance(v, list) or len(v) != len(exc.fields):
                raise located(
                    f"exception '{exc.name}': each value must be a list of "
                    f"{len(exc.fields)} item(s), one per field",
                    node.position,
                )
    return values
