"""Collecting items, the second loading stage: lists, macros and rules, amended as Falco does.

Files are collected in order into one `Collector`, so later files append to or override earlier
ones: `append: true` and `override:` follow Falco's per-kind rules (condition appends are text),
`exceptions` are gathered per rule, a rule entry with only `enabled` switches a rule, and
`required_*` items are checked as they come (`requirements`). Each item keeps its position (its
first definition: the evaluation order) and its visibility (its latest definition: which macros it
may use). Nothing is parsed or resolved here; conditions stay text until `expand`.
"""

from __future__ import annotations

import re
from typing import Any

from falconet.rules.diagnostics import Diagnostic, located
from falconet.rules.exceptions import ExceptionItem, merge_exceptions, read_exceptions
from falconet.rules.model import PRIORITIES, Position, parse_priority
from falconet.rules.reader import Span, YamlNode
from falconet.rules.requirements import check_engine_version, check_plugin_versions

# Name patterns as text, compiled by `re` on first use and kept in its cache: compiling them at
# import costs time a cold start served by the load cache never needs.
_MACRO_NAME = r"[a-zA-Z]+[a-zA-Z0-9_]*\Z"
_LIST_NAME = r"[^()\"'\s=,]+\Z"

_LIST_KEYS = {"list", "items", "append", "override"}
_MACRO_KEYS = {"macro", "condition", "append", "override"}
_RULE_KEYS = {
    "rule",
    "condition",
    "output",
    "desc",
    "priority",
    "source",
    "enabled",
    "tags",
    "exceptions",
    "append",
    "override",
    "warn_evttypes",
    "skip-if-unknown-filter",
    "capture",
    "capture_duration",
}
_RULE_APPENDABLE = {"condition", "output", "desc", "tags", "exceptions"}
_RULE_REPLACEABLE = _RULE_APPENDABLE | {
    "priority",
    "enabled",
    "warn_evttypes",
    "skip-if-unknown-filter",
    "capture",
    "capture_duration",
}


# The item records are plain slotted classes, not dataclasses: seven dataclasses cost ~3 ms of
# `exec` at every import (a cold start), and nothing compares or prints them.


class Item:
    __slots__ = ("index", "kind", "name", "spans", "position", "visibility")

    def __init__(
        self,
        kind: str,  # "list", "macro", "rule"
        name: str,
        index: int,
        visibility: int,
        position: Position,
        spans: list[Span] | None = None,
    ) -> None:
        self.kind = kind
        self.name = name
        self.index = index
        self.visibility = visibility
        self.position = position
        self.spans = [] if spans is None else spans


class ListItem(Item):
    __slots__ = ("items",)

    def __init__(
        self,
        kind: str,
        name: str,
        index: int,
        visibility: int,
        position: Position,
        *,
        items: list[str],
    ) -> None:
        super().__init__(kind, name, index, visibility, position)
        self.items = items


class MacroItem(Item):
    __slots__ = ("condition",)

    def __init__(
        self,
        kind: str,
        name: str,
        index: int,
        visibility: int,
        position: Position,
        spans: list[Span],
        *,
        condition: str,
    ) -> None:
        super().__init__(kind, name, index, visibility, position, spans)
        self.condition = condition


class RuleItem(Item):
    __slots__ = (
        "broken",
        "condition",
        "desc",
        "enabled",
        "exception_names",
        "exceptions",
        "output",
        "output_spans",
        "priority",
        "source",
        "source_given",
        "tags",
    )

    def __init__(
        self, kind: str, name: str, index: int, visibility: int, position: Position
    ) -> None:
        super().__init__(kind, name, index, visibility, position)
        self.condition = ""
        self.output = ""
        self.desc = ""
        self.priority = 7
        self.source = "syscall"
        self.source_given = False  # Falco's default source: a rule without one is 'syscall'
        self.output_spans: list[Span] = []  # where the output text came from (its errors)
        # An error was recorded for this rule while collecting it (a bad priority): it is still
        # compiled, so its other problems are reported too, but never loaded.
        self.broken = False
        self.enabled = True
        self.tags: list[str] | set[str] = []  # a set once appended to (sorted when loaded)
        self.exceptions: list[ExceptionItem] = []
        # `exceptions` by name, kept by `merge_exceptions` (None: not made yet)
        self.exception_names: dict[str, ExceptionItem] | None = None


class Collector:
    """Every list, macro and rule of the files read so far, with appends and overrides applied.

    `collect(entry)` takes one item; the items keep their position (first definition) and
    visibility (latest definition) as Falco's collector does. Warnings go to `diagnostics`.
    """

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.lists: dict[str, ListItem] = {}
        self.macros: dict[str, MacroItem] = {}
        self.rules: dict[str, RuleItem] = {}
        self.diagnostics = diagnostics
        self._counter = 0

    def _warn(
        self,
        message: str,
        position: Position | None,
        *,
        kind: str | None = None,
        item: str | None = None,
    ) -> None:
        self.diagnostics.append(
            Diagnostic(located(message, position, kind=kind, item=item), "warning")
        )

    def collect(self, entry: YamlNode) -> None:
        """Add one item of a rules file (raises the item's first RuleError; warnings are
        recorded)."""
        if entry.node.id != "mapping":
            raise located("unexpected value: each item must be a mapping", entry.position)
        item = entry.mapping("an item")
        self._counter += 1
        if "required_engine_version" in item:
            check_engine_version(item["required_engine_version"])
        elif "required_plugin_versions" in item:
            check_plugin_versions(item["required_plugin_versions"])
        elif "list" in item:
            self._read_list(item, entry.position)
        elif "macro" in item:
            self._read_macro(item, entry.position)
        elif "rule" in item:
            self._read_rule(item, entry.position)
        else:
            self._warn("Unknown top level item", entry.position)

    def _check_keys(
        self, item: dict[str, YamlNode], allowed: set[str], kind: str, name: str, position: Position
    ) -> None:
        for key, node in item.items():
            if key not in allowed:
                self._warn(f"unknown key '{key}' ignored", node.position, kind=kind, item=name)

    def _override_ops(
        self,
        item: dict[str, YamlNode],
        kind: str,
        name: str,
        position: Position,
        appendable: set[str],
        replaceable: set[str],
    ) -> dict[str, str]:
        if "override" not in item:
            return {}
        if "append" in item:
            raise located(
                "keys 'override' and 'append' cannot be used together",
                position,
                kind=kind,
                item=name,
            )
        ops: dict[str, str] = {}
        for key, op_node in item["override"].mapping("override").items():
            op = op_node.scalar("override operation")
            if op not in ("append", "replace"):
                raise located(
                    f"invalid override operation for key '{key}': '{op}' (use "
                    "'append' or 'replace')",
                    op_node.position,
                    kind=kind,
                    item=name,
                )
            if op == "append" and key not in appendable:
                if key in replaceable:
                    raise located(
                        f"Key '{key}' cannot be appended to, use 'replace' instead",
                        op_node.position,
                        kind=kind,
                        item=name,
                    )
                raise located(
                    f"Key '{key}' cannot be overridden", op_node.position, kind=kind, item=name
                )
            if op == "replace" and key not in replaceable:
                raise located(
                    f"Key '{key}' cannot be overridden", op_node.position, kind=kind, item=name
                )
            if key not in item:
                raise located(
                    f"An override is defined for '{key}' but the item does not define it",
                    op_node.position,
                    kind=kind,
                    item=name,
                )
            ops[key] = op
        for key, node in item.items():
            if key not in (kind, "override") and key not in ops:
                raise located(
                    f"Unexpected key '{key}': an override must list every key it changes",
                    node.position,
                    kind=kind,
                    item=name,
                )
        return ops

    def _append_flag(self, item: dict[str, YamlNode], kind: str, name: str) -> bool:
        if "append" not in item:
            return False
        value = item["append"].boolean("append")
        if value:
            self._warn(
                "'append' is deprecated, use 'override'",
                item["append"].position,
                kind=kind,
                item=name,
            )
        return value

    def _read_named(
        self,
        item: dict[str, YamlNode],
        position: Position,
        kind: str,
        key: str,
        allowed: set[str],
        name_pattern: str,
        name_warning: str,
        existing: dict[str, Any],
    ) -> tuple[str, YamlNode, str | None, Any]:
        """What lists and macros share: the name, key checks, the name warning, the append /
        override mode of `key`, and Falco's errors for a missing key or a missing item to amend.
        Returns (name, the `key` node, mode or None for a definition, the existing item)."""
        name = _item_name(item, kind, position)
        self._check_keys(item, allowed, kind, name, position)
        if not re.match(name_pattern, name):
            self._warn(name_warning, position, kind=kind, item=name)
        ops = self._override_ops(item, kind, name, position, {key}, {key})
        append = self._append_flag(item, kind, name)
        if key not in item:
            raise located(f"Item has no mapping for key '{key}'", position, kind=kind, item=name)
        mode = ops.get(key) or ("append" if append else None)
        current = existing.get(name)
        if mode is not None and current is None:
            raise located(
                f"{kind.title()} has '{'override' if ops else 'append'}' key but no {kind} by "
                "that name already exists",
                position,
                kind=kind,
                item=name,
            )
        return name, item[key], mode, current

    def _read_list(self, item: dict[str, YamlNode], position: Position) -> None:
        name, node, mode, existing = self._read_named(
            item,
            position,
            "list",
            "items",
            _LIST_KEYS,
            _LIST_NAME,
            "list name contains characters that conditions cannot reference",
            self.lists,
        )
        items = [_flatten_scalar(n) for n in node.sequence("items")]
        if existing is not None:
            if mode == "append":
                existing.items.extend(items)  # in place: many appends stay linear
            else:
                existing.items = items
            existing.visibility = self._counter
            return
        self.lists[name] = ListItem(
            "list", name, self._counter, self._counter, position, items=items
        )

    def _read_macro(self, item: dict[str, YamlNode], position: Position) -> None:
        name, node, mode, existing = self._read_named(
            item,
            position,
            "macro",
            "condition",
            _MACRO_KEYS,
            _MACRO_NAME,
            "macro name is not a valid identifier: conditions cannot reference it",
            self.macros,
        )
        condition = node.scalar("condition")
        if existing is not None:
            if mode == "append":
                existing.condition = f"{existing.condition} {condition}"
                existing.spans.append(node.span())
            else:
                existing.condition = condition
                existing.spans = [node.span()]
                existing.position = position
            existing.visibility = self._counter
            return
        self.macros[name] = MacroItem(
            "macro",
            name,
            self._counter,
            self._counter,
            position,
            [node.span()],
            condition=condition,
        )

    def _read_rule(self, item: dict[str, YamlNode], position: Position) -> None:
        name = _item_name(item, "rule", position)
        self._check_keys(item, _RULE_KEYS, "rule", name, position)
        ops = self._override_ops(item, "rule", name, position, _RULE_APPENDABLE, _RULE_REPLACEABLE)
        append = self._append_flag(item, "rule", name)
        existing = self.rules.get(name)
        if ops or append:
            if existing is None:
                raise located(
                    f"Rule has '{'override' if ops else 'append'}' key but no rule by "
                    "that name already exists",
                    position,
                    kind="rule",
                    item=name,
                )
            if append:
                if "condition" not in item and "exceptions" not in item:
                    raise located(
                        "Appended rule must have exceptions or condition property",
                        position,
                        kind="rule",
                        item=name,
                    )
                ops = {k: "append" for k in ("condition", "exceptions") if k in item}
            self._amend_rule(existing, item, ops, name)
            existing.visibility = self._counter
            return
        defines = [k for k in ("condition", "output", "desc", "priority") if k in item]
        if not defines:
            if "enabled" not in item:
                raise located(
                    "Rule must have 'condition', 'output', 'desc' and 'priority' "
                    "(or only 'enabled' to switch an existing rule)",
                    position,
                    kind="rule",
                    item=name,
                )
            if existing is None:
                raise located(
                    "Rule has 'enabled' key but no rule by that name already exists",
                    position,
                    kind="rule",
                    item=name,
                )
            self._warn(
                "a rule entry with only 'enabled' is deprecated, use 'override: "
                "{enabled: replace}'",
                position,
                kind="rule",
                item=name,
            )
            existing.enabled = item["enabled"].boolean("enabled")
            existing.visibility = self._counter
            return
        for key in ("condition", "output", "desc", "priority"):
            if key not in item:
                raise located(
                    f"Item has no mapping for key '{key}'", position, kind="rule", item=name
                )
        source = item["source"].scalar("source") if "source" in item else "syscall"
        if existing is not None and existing.source != source:
            raise located(
                "Rule has been re-defined with a different source", position, kind="rule", item=name
            )
        rule = RuleItem(
            "rule", name, existing.index if existing else self._counter, self._counter, position
        )
        rule.source = source
        rule.source_given = "source" in item or (existing is not None and existing.source_given)
        node = item["condition"]
        rule.condition = node.scalar("condition")
        rule.spans = [node.span()]
        rule.output = item["output"].scalar("output").strip()
        rule.output_spans = [item["output"].span()]
        rule.desc = item["desc"].scalar("desc")
        self._set_priority(rule, item["priority"])
        rule.enabled = item["enabled"].boolean("enabled") if "enabled" in item else True
        rule.tags = _tags(item.get("tags"))
        rule.exceptions = read_exceptions(
            item.get("exceptions"), name, source, self._warn, define=True
        )
        self.rules[name] = rule

    def _set_priority(self, rule: RuleItem, node: YamlNode) -> None:
        """Set the rule's priority; a bad one is recorded, not raised, and marks the rule broken:
        the rest of the rule is still read and compiled, so its other errors are reported too."""
        text = node.scalar("priority")
        value = parse_priority(text)
        if value is None:
            rule.broken = True
            self.diagnostics.append(
                Diagnostic(
                    located(
                        f"Invalid priority '{text}' (expected one of {', '.join(PRIORITIES)})",
                        node.position,
                        kind="rule",
                        item=rule.name,
                    )
                )
            )
            return
        rule.priority = value

    def _amend_rule(
        self, rule: RuleItem, item: dict[str, YamlNode], ops: dict[str, str], name: str
    ) -> None:
        for key, op in ops.items():
            node = item[key]
            if key == "condition":
                text = node.scalar("condition")
                if op == "append":
                    rule.condition = f"{rule.condition} {text}"
                    rule.spans.append(node.span())
                else:
                    rule.condition = text
                    rule.spans = [node.span()]
            elif key in ("output", "desc"):
                text = node.scalar(key)
                old = rule.output if key == "output" else rule.desc
                new = f"{old} {text}" if op == "append" else text
                if key == "output":
                    rule.output = new.strip()
                    spans = rule.output_spans if op == "append" else []
                    rule.output_spans = [*spans, node.span()]
                else:
                    rule.desc = new
            elif key == "tags":
                tags = _tags(node)
                if op == "append":  # a set: appending to one rule many times stays linear
                    rule.tags = rule.tags if isinstance(rule.tags, set) else set(rule.tags)
                    rule.tags.update(tags)
                else:
                    rule.tags = tags
            elif key == "exceptions":
                if op == "append":
                    if rule.exception_names is None:
                        rule.exception_names = {e.name: e for e in rule.exceptions}
                    merge_exceptions(rule.exceptions, rule.exception_names, node, name, rule.source)
                else:
                    rule.exceptions = read_exceptions(
                        node, name, rule.source, self._warn, define=False
                    )
                    rule.exception_names = None
            elif key == "priority":
                self._set_priority(rule, node)
            elif key == "enabled":
                rule.enabled = node.boolean("enabled")
            # warn_evttypes, skip-if-unknown-filter, capture*: accepted, no effect here.


def _item_name(item: dict[str, YamlNode], kind: str, position: Position) -> str:
    """The name of a list, macro or rule: a non-empty scalar, as Falco requires. (An empty list
    name also matched everywhere in condition text, and its substitution never ended.)"""
    node = item[kind]
    if node.is_null():
        raise located(f"Mapping for key '{kind}' is empty", position)
    name = node.scalar(f"{kind} name")
    if not name:
        raise located(f"Value for key '{kind}' must be non-empty", node.position)
    return name


def _flatten_scalar(node: YamlNode) -> str:
    value = node.plain()
    if isinstance(value, list):  # a nested sequence in items: Falco takes scalars only
        raise located("list items must be scalars", node.position)
    if isinstance(value, dict):
        raise located("list items must be scalars", node.position)
    return str(value)


def _tags(node: YamlNode | None) -> list[str]:
    if node is None:
        return []
    return [t.scalar("tag") for t in node.sequence("tags")]
