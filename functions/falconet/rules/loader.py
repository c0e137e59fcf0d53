"""Loading Falco rules files: YAML items in, resolved `Rule`s out, every problem located.

Follows Falco's collector and compiler (reference/falco-semantics.md §B.1-B.5):
- files load in order into one collection, so later files append to or override earlier ones;
- every item gets a position (first definition, kept by redefinitions, appends and overrides, and
  deciding evaluation order) and a visibility (its latest definition);
- `append: true` and `override:` follow Falco's per-kind rules; condition appends are text;
- exceptions are compiled to condition text exactly as Falco builds it;
- lists are substituted into condition *text*, wherever a list name is bounded by blanks, `(`,
  `)`, `,` or `=`, before parsing;
- macros resolve in position order against macros defined before their latest definition; rules see
  every macro; loops and undefined macros are errors even in unused macros;
- rules of other sources are parsed (syntax only) and skipped with a warning.

YAML scalars are read as strings, as yaml-cpp does. Nothing in a rules file is executed or opened:
conditions become syntax trees, values stay data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from falconet import errors as errs
from falconet import fields
from falconet.rules import ast
from falconet.rules.model import PRIORITIES, Rule, Source, parse_priority
from falconet.rules.output import FieldToken, OutputFormatError, parse_output

if TYPE_CHECKING:
    import yaml


_YAML_NULLS = frozenset(("", "~", "null", "Null", "NULL"))  # YAML 1.1's plain nulls
_yaml_loader_class: Any = None


def _yaml_loader() -> Any:
    """The PyYAML loader class that composes rules files, made on first use: `import yaml` costs
    ~10 ms, which a cold start that finds its rules in the load cache (`load_rules`' `cache_dir`)
    never pays.

    It is libyaml's safe loader (~9x faster than the pure-Python one, reference/performance.md
    finding 12) with a smaller resolver, called back from C for every node: the loader reads
    every scalar as its text (as yaml-cpp does) and asks a tag only whether a value is null, so
    a plain scalar resolves to `null` or `str`, and the path resolvers (unused) are skipped.
    Explicit tags are kept as written. ~20% of the compose time of the bundled rules.
    """
    global _yaml_loader_class  # noqa: PLW0603 - a lazily built, then constant, class
    if _yaml_loader_class is not None:
        return _yaml_loader_class
    import yaml  # noqa: PLC0415

    base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # CSafeLoader unless no libyaml
    scalar, sequence = yaml.ScalarNode, yaml.SequenceNode

    class _Loader(base):  # type: ignore[misc]
        def resolve(self, kind: type, value: str, implicit: tuple[bool, bool]) -> str:
            if kind is scalar:
                if implicit[0] and value in _YAML_NULLS:
                    return "tag:yaml.org,2002:null"
                return "tag:yaml.org,2002:str"
            return "tag:yaml.org,2002:seq" if kind is sequence else "tag:yaml.org,2002:map"

        def descend_resolver(self, current_node: object, current_index: object) -> None:
            pass

        def ascend_resolver(self) -> None:
            pass

    _yaml_loader_class = _Loader
    return _Loader


ENGINE_VERSION = (0, 63, 0)
# The plugins falconet emulates, for `required_plugin_versions`: k8saudit and json, and the
# provider variants whose inputs falconet's decoders read (their fields are k8saudit's).
PLUGIN_VERSIONS = {
    "k8saudit": (0, 18, 0),
    "k8saudit-eks": (0, 12, 0),
    "k8saudit-gke": (0, 9, 0),
    "k8saudit-aks": (0, 6, 0),
    "json": (0, 7, 4),
}
SOURCE = "k8s_audit"

_TRUE = {"true", "yes", "on", "y"}
_FALSE = {"false", "no", "off", "n"}
# Patterns as text, compiled by `re` on first use and kept in its cache: compiling the three at
# import cost ~0.65 ms, which a cold start served by the load cache never needs.
_MACRO_NAME = r"[a-zA-Z]+[a-zA-Z0-9_]*\Z"
_LIST_NAME = r"[^()\"'\s=,]+\Z"
_SEMVER = r"(\d+)\.(\d+)\.(\d+)(?:[-+][0-9A-Za-z.+-]*)?\Z"
_BLANKS = " \t\n\r"
_LIST_DELIMS = _BLANKS + "(),="

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
_PAREN_OPS = {"in", "intersects", "pmatch"}


# The item records below are plain slotted classes, not dataclasses: seven dataclasses cost ~3 ms
# of `exec` at every import (a cold start), and nothing here compares or prints the private ones.


class Diagnostic:
    """An error or warning with its place: rendered as `FILE:LINE:COL: severity: message`."""

    __slots__ = ("error", "severity")

    def __init__(self, error: errs.RuleError, severity: str = "error") -> None:
        self.error = error
        self.severity = severity

    def __str__(self) -> str:
        return self.error.render(self.severity)

    def __repr__(self) -> str:
        return f"Diagnostic(error={self.error!r}, severity={self.severity!r})"

    def __eq__(self, other: Any) -> bool:
        if other.__class__ is Diagnostic:
            return (self.error, self.severity) == (other.error, other.severity)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaces


class _Span:
    """The YAML scalar a piece of condition text came from, to locate tokens inside it."""

    __slots__ = ("column", "end", "file", "line", "start")

    def __init__(self, file: str, start: int, end: int, line: int, column: int) -> None:
        self.file = file
        self.start = start  # character offsets in the file's text
        self.end = end
        self.line = line  # 1-based position of the scalar
        self.column = column


class _Item:
    __slots__ = ("index", "kind", "name", "spans", "src", "visibility")

    def __init__(
        self,
        kind: str,  # "list", "macro", "rule"
        name: str,
        index: int,
        visibility: int,
        src: Source,
        spans: list[_Span] | None = None,
    ) -> None:
        self.kind = kind
        self.name = name
        self.index = index
        self.visibility = visibility
        self.src = src
        self.spans = [] if spans is None else spans


class _List(_Item):
    __slots__ = ("items",)

    def __init__(
        self, kind: str, name: str, index: int, visibility: int, src: Source, *, items: list[str]
    ) -> None:
        super().__init__(kind, name, index, visibility, src)
        self.items = items


class _Macro(_Item):
    __slots__ = ("condition",)

    def __init__(
        self,
        kind: str,
        name: str,
        index: int,
        visibility: int,
        src: Source,
        spans: list[_Span],
        *,
        condition: str,
    ) -> None:
        super().__init__(kind, name, index, visibility, src, spans)
        self.condition = condition


class _Exception:
    __slots__ = ("comps", "fields", "name", "src", "values")

    def __init__(
        self,
        name: str,
        fields: list[str] | str,
        comps: list[str] | str,
        values: list[Any],
        src: Source,
    ) -> None:
        self.name = name
        self.fields = fields
        self.comps = comps
        self.values = values
        self.src = src


class _Rule(_Item):
    __slots__ = (
        "condition",
        "desc",
        "enabled",
        "exceptions",
        "output",
        "priority",
        "source",
        "tags",
    )

    def __init__(self, kind: str, name: str, index: int, visibility: int, src: Source) -> None:
        super().__init__(kind, name, index, visibility, src)
        self.condition = ""
        self.output = ""
        self.desc = ""
        self.priority = 7
        self.source = "syscall"
        self.enabled = True
        self.tags: list[str] = []
        self.exceptions: list[_Exception] = []


class _Node:
    """A YAML node with helpers that read it Falco's way (every scalar is a string)."""

    __slots__ = ("file", "node")

    def __init__(self, node: yaml.Node, file: str) -> None:
        # Typed Any: the kind is read from the class attribute `id` ("scalar", "sequence",
        # "mapping"; not in the stubs) so that no yaml class is needed before the first parse.
        self.node: Any = node
        self.file = file

    @property
    def src(self) -> Source:
        mark = self.node.start_mark
        return Source(self.file, mark.line + 1, mark.column + 1)

    def span(self) -> _Span:
        start, end = self.node.start_mark, self.node.end_mark
        return _Span(self.file, start.index, end.index, start.line + 1, start.column + 1)

    def is_null(self) -> bool:
        tag: str = self.node.tag
        return self.node.id == "scalar" and tag.endswith(":null")

    def scalar(self, what: str) -> str:
        node = self.node
        if node.id != "scalar":
            raise _located(f"{what} must be a scalar value", self.src)
        tag: str = node.tag
        return "" if tag.endswith(":null") else str(node.value)

    def boolean(self, what: str) -> bool:
        text = self.scalar(what).lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise _located(f"{what} must be a boolean, got '{self.scalar(what)}'", self.src)

    def sequence(self, what: str) -> list[_Node]:
        if self.is_null():
            return []
        if self.node.id != "sequence":
            raise _located(f"{what} must be a sequence", self.src)
        return [_Node(n, self.file) for n in self.node.value]

    def mapping(self, what: str) -> dict[str, _Node]:
        if self.node.id != "mapping":
            raise _located(f"{what} must be a mapping", self.src)
        out: dict[str, _Node] = {}
        file = self.file
        for k, v in self.node.value:
            if k.id == "scalar" and not k.tag.endswith(":null"):  # scalar() inline: most keys
                out[str(k.value)] = _Node(v, file)
            else:
                out[_Node(k, file).scalar("a key")] = _Node(v, file)
        return out

    def plain(self) -> Any:
        """Scalars as strings, sequences as lists (for exception values and tags)."""
        if self.node.id == "sequence":
            return [_Node(n, self.file).plain() for n in self.node.value]
        if self.node.id == "mapping":
            return {k: v.plain() for k, v in self.mapping("a value").items()}
        return self.scalar("a value")


def _caret(text: str, offset: int) -> str:
    from falconet.rules.lexer import caret  # noqa: PLC0415 - only for errors (see RuleSet._parse)

    return caret(text, offset)


def _located(
    message: str,
    src: Source | None,
    *,
    cls: type[errs.RuleError] = errs.RuleDefinitionError,
    kind: str | None = None,
    item: str | None = None,
    excerpt: str | None = None,
) -> errs.RuleError:
    return cls(
        message,
        file=src.file if src else None,
        line=src.line if src else None,
        column=src.column if src else None,
        kind=kind,
        item=item,
        excerpt=excerpt,
    )


def _version(text: str, what: str, src: Source) -> tuple[int, int, int]:
    text = text.strip()
    if text.isdigit():
        return (0, int(text), 0)
    m = re.match(_SEMVER, text)
    if m is None:
        raise _located(f"{what} '{text}' is not a valid version", src, cls=errs.RequirementError)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3)))


def _compatible(have: tuple[int, int, int], need: tuple[int, int, int]) -> bool:
    return have[0] == need[0] and have >= need


def _fmt(v: tuple[int, int, int]) -> str:
    return ".".join(map(str, v))


class RuleSet:
    """A collection of rules files loaded in order. Use `load_rules` for the one-call form."""

    def __init__(self) -> None:
        self.lists: dict[str, _List] = {}
        self.macros: dict[str, _Macro] = {}
        self.rules: dict[str, _Rule] = {}
        self.diagnostics: list[Diagnostic] = []
        self.texts: dict[str, str] = {}
        self._counter = 0
        self._skipped_sources: dict[tuple[str, str], int] = {}

    # -- diagnostics --------------------------------------------------------------------------

    @property
    def errors(self) -> list[errs.RuleError]:
        return [d.error for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    def _error(self, error: errs.RuleError) -> None:
        self.diagnostics.append(Diagnostic(error, "error"))

    def _warn(
        self, message: str, src: Source | None, *, kind: str | None = None, item: str | None = None
    ) -> None:
        self.diagnostics.append(Diagnostic(_located(message, src, kind=kind, item=item), "warning"))

    # -- reading --------------------------------------------------------------------------------

    def load_file(self, path: str | Path) -> None:
        """Read one rules file into the collection; problems are recorded in `diagnostics`."""
        name = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self._error(_located(f"cannot read rules file: {exc}", Source(name, 1, 1)))
            return
        self.load_text(text, name)

    def load_text(self, text: str, name: str = "<rules>") -> None:
        self.texts[name] = text
        loader = _yaml_loader()
        import yaml  # noqa: PLC0415 - imported by _yaml_loader: a dictionary look-up here

        try:
            documents = list(yaml.compose_all(text, Loader=loader))
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            src = Source(name, mark.line + 1, mark.column + 1) if mark else Source(name, 1, 1)
            problem = exc.problem or exc.context or "invalid YAML"
            self._error(_located(f"YAML syntax error: {problem}", src, cls=errs.RuleSyntaxError))
            return
        except yaml.YAMLError as exc:
            self._error(
                _located(f"YAML error: {exc}", Source(name, 1, 1), cls=errs.RuleSyntaxError)
            )
            return
        for document in documents:
            if document is None:
                continue
            root = _Node(document, name)
            if root.is_null():
                continue
            if root.node.id != "sequence":
                self._error(
                    _located(
                        "rules content is not a sequence of items",
                        root.src,
                        cls=errs.RuleSyntaxError,
                    )
                )
                return
            for entry in root.sequence("rules content"):
                if entry.is_null():
                    continue
                try:
                    self._read_item(entry)
                except errs.RuleError as exc:
                    self._error(exc)

    def _read_item(self, entry: _Node) -> None:
        if entry.node.id != "mapping":
            raise _located("unexpected value: each item must be a mapping", entry.src)
        item = entry.mapping("an item")
        self._counter += 1
        if "required_engine_version" in item:
            self._engine_version(item["required_engine_version"])
        elif "required_plugin_versions" in item:
            self._plugin_versions(item["required_plugin_versions"])
        elif "list" in item:
            self._read_list(item, entry.src)
        elif "macro" in item:
            self._read_macro(item, entry.src)
        elif "rule" in item:
            self._read_rule(item, entry.src)
        else:
            self._warn("Unknown top level item", entry.src)

    def _engine_version(self, node: _Node) -> None:
        need = _version(node.scalar("required_engine_version"), "required_engine_version", node.src)
        if not _compatible(ENGINE_VERSION, need):
            raise _located(
                f"Rules require engine version {_fmt(need)}, but engine version is "
                f"{_fmt(ENGINE_VERSION)}",
                node.src,
                cls=errs.RequirementError,
            )

    def _plugin_versions(self, node: _Node) -> None:
        for entry in node.sequence("required_plugin_versions"):
            group = entry.mapping("a required plugin")
            alternatives = [group]
            if "alternatives" in group:
                alternatives += [
                    a.mapping("an alternative")
                    for a in group["alternatives"].sequence("alternatives")
                ]
            names: list[str] = []
            satisfied = False
            for alt in alternatives:
                if "name" not in alt or "version" not in alt:
                    raise _located(
                        "required plugin must have 'name' and 'version'",
                        entry.src,
                        cls=errs.RequirementError,
                    )
                plugin = alt["name"].scalar("name")
                if plugin in names:
                    raise _located(
                        f"duplicate plugin alternative '{plugin}'",
                        entry.src,
                        cls=errs.RequirementError,
                    )
                names.append(plugin)
                need = _version(alt["version"].scalar("version"), "plugin version", entry.src)
                have = PLUGIN_VERSIONS.get(plugin)
                if have is not None and _compatible(have, need):
                    satisfied = True
            if not satisfied:
                wanted = ", ".join(
                    f"{a['name'].scalar('name')} ({a['version'].scalar('version')})"
                    for a in alternatives
                )
                have_text = ", ".join(f"{k} {_fmt(v)}" for k, v in PLUGIN_VERSIONS.items())
                raise _located(
                    f"Plugin requirement not satisfied, must load one of: {wanted} "
                    f"(falconet emulates {have_text})",
                    entry.src,
                    cls=errs.RequirementError,
                )

    def _check_keys(
        self, item: dict[str, _Node], allowed: set[str], kind: str, name: str, src: Source
    ) -> None:
        for key, node in item.items():
            if key not in allowed:
                self._warn(f"unknown key '{key}' ignored", node.src, kind=kind, item=name)

    def _override_ops(
        self,
        item: dict[str, _Node],
        kind: str,
        name: str,
        src: Source,
        appendable: set[str],
        replaceable: set[str],
    ) -> dict[str, str]:
        if "override" not in item:
            return {}
        if "append" in item:
            raise _located(
                "keys 'override' and 'append' cannot be used together", src, kind=kind, item=name
            )
        ops: dict[str, str] = {}
        for key, op_node in item["override"].mapping("override").items():
            op = op_node.scalar("override operation")
            if op not in ("append", "replace"):
                raise _located(
                    f"invalid override operation for key '{key}': '{op}' (use "
                    "'append' or 'replace')",
                    op_node.src,
                    kind=kind,
                    item=name,
                )
            if op == "append" and key not in appendable:
                if key in replaceable:
                    raise _located(
                        f"Key '{key}' cannot be appended to, use 'replace' instead",
                        op_node.src,
                        kind=kind,
                        item=name,
                    )
                raise _located(
                    f"Key '{key}' cannot be overridden", op_node.src, kind=kind, item=name
                )
            if op == "replace" and key not in replaceable:
                raise _located(
                    f"Key '{key}' cannot be overridden", op_node.src, kind=kind, item=name
                )
            if key not in item:
                raise _located(
                    f"An override is defined for '{key}' but the item does not define it",
                    op_node.src,
                    kind=kind,
                    item=name,
                )
            ops[key] = op
        for key, node in item.items():
            if key not in (kind, "override") and key not in ops:
                raise _located(
                    f"Unexpected key '{key}': an override must list every key it changes",
                    node.src,
                    kind=kind,
                    item=name,
                )
        return ops

    def _append_flag(self, item: dict[str, _Node], kind: str, name: str) -> bool:
        if "append" not in item:
            return False
        value = item["append"].boolean("append")
        if value:
            self._warn(
                "'append' is deprecated, use 'override'", item["append"].src, kind=kind, item=name
            )
        return value

    def _read_named(
        self,
        item: dict[str, _Node],
        src: Source,
        kind: str,
        key: str,
        allowed: set[str],
        name_pattern: str,
        name_warning: str,
        existing: dict[str, Any],
    ) -> tuple[str, _Node, str | None, Any]:
        """What lists and macros share: the name, key checks, the name warning, the append /
        override mode of `key`, and Falco's errors for a missing key or a missing item to amend.
        Returns (name, the `key` node, mode or None for a definition, the existing item)."""
        name = item[kind].scalar(f"{kind} name")
        self._check_keys(item, allowed, kind, name, src)
        if not re.match(name_pattern, name):
            self._warn(name_warning, src, kind=kind, item=name)
        ops = self._override_ops(item, kind, name, src, {key}, {key})
        append = self._append_flag(item, kind, name)
        if key not in item:
            raise _located(f"Item has no mapping for key '{key}'", src, kind=kind, item=name)
        mode = ops.get(key) or ("append" if append else None)
        current = existing.get(name)
        if mode is not None and current is None:
            raise _located(
                f"{kind.title()} has '{'override' if ops else 'append'}' key but no {kind} by "
                "that name already exists",
                src,
                kind=kind,
                item=name,
            )
        return name, item[key], mode, current

    def _read_list(self, item: dict[str, _Node], src: Source) -> None:
        name, node, mode, existing = self._read_named(
            item,
            src,
            "list",
            "items",
            _LIST_KEYS,
            _LIST_NAME,
            "list name contains characters that conditions cannot reference",
            self.lists,
        )
        items = [_flatten_scalar(n) for n in node.sequence("items")]
        if existing is not None:
            existing.items = existing.items + items if mode == "append" else items
            existing.visibility = self._counter
            return
        self.lists[name] = _List("list", name, self._counter, self._counter, src, items=items)

    def _read_macro(self, item: dict[str, _Node], src: Source) -> None:
        name, node, mode, existing = self._read_named(
            item,
            src,
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
                existing.src = src
            existing.visibility = self._counter
            return
        self.macros[name] = _Macro(
            "macro", name, self._counter, self._counter, src, [node.span()], condition=condition
        )

    def _read_rule(self, item: dict[str, _Node], src: Source) -> None:  # noqa: C901, PLR0912
        name = item["rule"].scalar("rule name")
        self._check_keys(item, _RULE_KEYS, "rule", name, src)
        ops = self._override_ops(item, "rule", name, src, _RULE_APPENDABLE, _RULE_REPLACEABLE)
        append = self._append_flag(item, "rule", name)
        existing = self.rules.get(name)
        if ops or append:
            if existing is None:
                raise _located(
                    f"Rule has '{'override' if ops else 'append'}' key but no rule by "
                    "that name already exists",
                    src,
                    kind="rule",
                    item=name,
                )
            if append:
                if "condition" not in item and "exceptions" not in item:
                    raise _located(
                        "Appended rule must have exceptions or condition property",
                        src,
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
                raise _located(
                    "Rule must have 'condition', 'output', 'desc' and 'priority' "
                    "(or only 'enabled' to switch an existing rule)",
                    src,
                    kind="rule",
                    item=name,
                )
            if existing is None:
                raise _located(
                    "Rule has 'enabled' key but no rule by that name already exists",
                    src,
                    kind="rule",
                    item=name,
                )
            self._warn(
                "a rule entry with only 'enabled' is deprecated, use 'override: "
                "{enabled: replace}'",
                src,
                kind="rule",
                item=name,
            )
            existing.enabled = item["enabled"].boolean("enabled")
            existing.visibility = self._counter
            return
        for key in ("condition", "output", "desc", "priority"):
            if key not in item:
                raise _located(f"Item has no mapping for key '{key}'", src, kind="rule", item=name)
        source = item["source"].scalar("source") if "source" in item else "syscall"
        if existing is not None and existing.source != source:
            raise _located(
                "Rule has been re-defined with a different source", src, kind="rule", item=name
            )
        rule = _Rule(
            "rule", name, existing.index if existing else self._counter, self._counter, src
        )
        rule.source = source
        node = item["condition"]
        rule.condition = node.scalar("condition")
        rule.spans = [node.span()]
        rule.output = item["output"].scalar("output").strip()
        rule.desc = item["desc"].scalar("desc")
        rule.priority = self._priority(item["priority"], name)
        rule.enabled = item["enabled"].boolean("enabled") if "enabled" in item else True
        rule.tags = _tags(item.get("tags"))
        rule.exceptions = self._exceptions(item.get("exceptions"), name, source, define=True)
        self.rules[name] = rule

    def _priority(self, node: _Node, name: str) -> int:
        text = node.scalar("priority")
        value = parse_priority(text)
        if value is None:
            raise _located(
                f"Invalid priority '{text}' (expected one of {', '.join(PRIORITIES)})",
                node.src,
                kind="rule",
                item=name,
            )
        return value

    def _amend_rule(
        self, rule: _Rule, item: dict[str, _Node], ops: dict[str, str], name: str
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
                else:
                    rule.desc = new
            elif key == "tags":
                tags = _tags(node)
                rule.tags = sorted(set(rule.tags) | set(tags)) if op == "append" else tags
            elif key == "exceptions":
                if op == "append":
                    self._merge_exceptions(rule, node, name)
                else:
                    rule.exceptions = self._exceptions(node, name, rule.source, define=False)
            elif key == "priority":
                rule.priority = self._priority(node, name)
            elif key == "enabled":
                rule.enabled = node.boolean("enabled")
            # warn_evttypes, skip-if-unknown-filter, capture*: accepted, no effect here.

    def _merge_exceptions(self, rule: _Rule, node: _Node, name: str) -> None:
        by_name = {e.name: e for e in rule.exceptions}
        for entry in node.sequence("exceptions"):
            ex = entry.mapping("an exception")
            if "name" not in ex:
                raise _located(
                    "Item has no mapping for key 'name'", entry.src, kind="rule", item=name
                )
            ex_name = ex["name"].scalar("exception name")
            current = by_name.get(ex_name)
            if current is None:
                if "fields" not in ex or "values" not in ex:
                    raise _located(
                        f"exception '{ex_name}': a new exception must have 'fields' and 'values'",
                        entry.src,
                        kind="rule",
                        item=name,
                    )
                new = self._exceptions(
                    _Node(node.node, node.file), name, rule.source, define=True, only=ex_name
                )
                rule.exceptions.extend(new)
                by_name[ex_name] = new[0]
                continue
            if "fields" in ex or "comps" in ex:
                raise _located(
                    f"exception '{ex_name}': appending to an existing exception may "
                    "only add 'values'",
                    entry.src,
                    kind="rule",
                    item=name,
                )
            if "values" in ex:
                current.values = current.values + _exception_values(ex["values"], current)

    def _exceptions(  # noqa: C901 - one pass over Falco's two exception forms
        self, node: _Node | None, name: str, source: str, *, define: bool, only: str | None = None
    ) -> list[_Exception]:
        if node is None:
            return []
        out: list[_Exception] = []
        seen: set[str] = set()
        for entry in node.sequence("exceptions"):
            ex = entry.mapping("an exception")
            if "name" not in ex:
                raise _located(
                    "Item has no mapping for key 'name'", entry.src, kind="rule", item=name
                )
            ex_name = ex["name"].scalar("exception name")
            if only is not None and ex_name != only:
                continue
            if ex_name in seen:
                self._warn(
                    f"duplicate exception name '{ex_name}'", entry.src, kind="rule", item=name
                )
            seen.add(ex_name)
            if "fields" not in ex:
                raise _located(
                    f"exception '{ex_name}': Item has no mapping for key 'fields'",
                    entry.src,
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
                    raise _located(
                        f"exception '{ex_name}': fields and comps lists must have equal length",
                        entry.src,
                        kind="rule",
                        item=name,
                    )
            else:
                ex_fields = fields_node.scalar("exception field")
                comps = ex["comps"].scalar("comp") if "comps" in ex else "in"
                if comps not in ("in", "pmatch", "intersects"):
                    raise _located(
                        f"exception '{ex_name}': when fields is a single value, comps "
                        "must be one of (in, pmatch, intersects)",
                        entry.src,
                        kind="rule",
                        item=name,
                    )
            for comp in comps if isinstance(comps, list) else [comps]:
                base = comp.split()[0] if comp.split() else comp
                if base not in _EXCEPTION_OPS:
                    raise _located(
                        f"exception '{ex_name}': '{comp}' is not a supported comparison operator",
                        entry.src,
                        kind="rule",
                        item=name,
                    )
            if source == SOURCE:
                for f in ex_fields if isinstance(ex_fields, list) else [ex_fields]:
                    if fields.lookup(f) is None:
                        raise _located(
                            f"exception '{ex_name}': '{f}' is not a supported filter field",
                            entry.src,
                            cls=errs.UnknownFieldError,
                            kind="rule",
                            item=name,
                        )
            exc = _Exception(ex_name, ex_fields, comps, [], entry.src)
            if "values" in ex:
                exc.values = _exception_values(ex["values"], exc)
            out.append(exc)
        return out

    # -- compiling ------------------------------------------------------------------------------

    def compile(self) -> list[Rule]:
        """Resolve lists, macros and rules; return the `k8s_audit` rules in position order.

        Problems are recorded in `diagnostics`; rules that fail are left out.
        """
        lists = self._expanded_lists()
        resolved_macros = self._compile_macros(lists)
        memo = _Memo({id(t): t for t in resolved_macros.values()})
        out: list[Rule] = []
        for rule in sorted(self.rules.values(), key=lambda r: r.index):
            compiled = self._compile_rule(rule, lists, resolved_macros, memo)
            if compiled is not None:
                out.append(compiled)
        return out

    def _expanded_lists(self) -> list[tuple[str, list[str]]]:
        ordered = sorted(self.lists.values(), key=lambda i: i.index)
        out: list[tuple[str, list[str]]] = []
        for lst in ordered:
            items: list[str] = []
            for value in lst.items:
                ref = self.lists.get(value)
                if ref is not None and ref.index < lst.visibility:
                    items.extend(ref.items)  # one level deep, raw items, as Falco does
                else:
                    items.append(value)
            out.append((lst.name, items))
        return out

    def _substitute(self, text: str, lists: list[tuple[str, list[str]]]) -> str:
        for name, items in lists:
            if name in text:
                text = substitute_list(text, name, items)
        return text

    def _parse(self, item: _Item, text: str) -> ast.Expr | None:
        # The parser and its lexer (regexes compiled at import, ~1 ms) are imported on first use:
        # a cold start served by the load cache never parses.
        from falconet.rules.parser import ParseError, parse_condition  # noqa: PLC0415

        try:
            return parse_condition(text)
        except ParseError as exc:
            self._error(
                self._condition_error(item, exc.message, text, exc.offset, errs.RuleSyntaxError)
            )
            return None

    def _condition_error(
        self,
        item: _Item,
        message: str,
        text: str,
        offset: int,
        cls: type[errs.RuleError],
        token: str | None = None,
    ) -> errs.RuleError:
        src = self._locate(item, token) if token else None
        if src is None:
            src = self._locate_offset(item, text, offset)
        return _located(
            message,
            src,
            cls=cls,
            kind=item.kind,
            item=item.name,
            excerpt=_caret(text, min(offset, len(text))),
        )

    def _locate(self, item: _Item, token: str) -> Source | None:
        """The file position of `token` inside the item's condition scalar(s), if found."""
        for span in item.spans:
            text = self.texts.get(span.file, "")
            found = _find_token(text, token, span.start, span.end)
            if found >= 0:
                from falconet.rules.lexer import line_col  # noqa: PLC0415 - see _parse

                line, col = line_col(text, found)
                return Source(span.file, line, col)
        return None

    def _locate_offset(self, item: _Item, text: str, offset: int) -> Source:
        """Best effort: the word at `offset` located in the file, else the condition's start."""
        m = re.compile(r"[^\s()]+").search(text, min(offset, len(text)))
        if m is not None and m.start() == offset:
            found = self._locate(item, m.group(0))
            if found is not None:
                return found
        if item.spans:
            span = item.spans[0]
            return Source(span.file, span.line, span.column)
        return item.src

    def _compile_macros(self, lists: list[tuple[str, list[str]]]) -> dict[str, ast.Expr]:
        parsed: dict[str, ast.Expr] = {}
        resolved: dict[int, ast.Expr] = {}  # id -> the macro trees resolved so far
        ordered = sorted(self.macros.values(), key=lambda m: m.index)
        texts: dict[str, str] = {}
        for macro in ordered:
            text = self._substitute(macro.condition, lists)
            texts[macro.name] = text
            tree = self._parse(macro, text)
            if tree is not None:
                parsed[macro.name] = tree
        for macro in ordered:
            tree = parsed.get(macro.name)
            if tree is None:
                continue
            visible = {m.name for m in ordered if m.index < macro.visibility}

            def lookup(name: str, visible: set[str] = visible) -> ast.Expr | None:
                return parsed.get(name) if name in visible else None

            try:
                tree = parsed[macro.name] = _resolve(tree, lookup, [macro.name], resolved)
                resolved[id(tree)] = tree
            except _ResolveError as exc:
                self._error(
                    self._condition_error(
                        macro, exc.message, texts[macro.name], exc.pos, exc.cls, token=exc.token
                    )
                )
                del parsed[macro.name]
        return parsed

    def _compile_rule(
        self,
        rule: _Rule,
        lists: list[tuple[str, list[str]]],
        macros: dict[str, ast.Expr],
        memo: _Memo,
    ) -> Rule | None:
        text = self._substitute(build_exception_condition(rule.condition, rule.exceptions), lists)
        tree = self._parse(rule, text)
        if tree is None:
            return None
        if rule.source != SOURCE:
            self._skipped_sources[(rule.src.file, rule.source)] = (
                self._skipped_sources.get((rule.src.file, rule.source), 0) + 1
            )
            return None
        try:
            tree = _resolve(tree, macros.get, [], memo.macros)
        except _ResolveError as exc:
            self._error(
                self._condition_error(rule, exc.message, text, exc.pos, exc.cls, token=exc.token)
            )
            return None
        problem = check_fields(tree, memo.checked)
        if problem is not None:
            message, node, cls, token = problem
            self._error(self._condition_error(rule, message, text, node.pos, cls, token=token))
            return None
        try:
            parts = parse_output(rule.output)
        except OutputFormatError as exc:
            self._error(
                _located(
                    exc.message,
                    self._locate(rule, "") or rule.src,
                    cls=errs.UnknownFieldError,
                    kind="rule",
                    item=rule.name,
                    excerpt=_caret(rule.output, exc.offset),
                )
            )
            return None
        used = set(_field_names(tree, memo.names))
        used.update(p.name for p in parts if not isinstance(p, str))
        return Rule(
            rule.name,
            rule.index,
            text,
            tree,
            rule.output,
            rule.desc,
            rule.priority,
            rule.enabled,
            tuple(sorted(rule.tags)),
            rule.src,
            frozenset(used),
            tuple(parts),
        )

    def finish_warnings(self) -> None:
        """Add the per-file 'skipped rules of another source' warnings (after `compile`)."""
        for (file, source), count in sorted(self._skipped_sources.items()):
            self._warn(
                f"skipped {count} rule(s) of source '{source}': falconet evaluates "
                f"'{SOURCE}' rules only (their conditions were parsed)",
                Source(file, 1, 1),
            )


# -- helpers -------------------------------------------------------------------------------------


def _flatten_scalar(node: _Node) -> str:
    value = node.plain()
    if isinstance(value, list):  # a nested sequence in items: Falco takes scalars only
        raise _located("list items must be scalars", node.src)
    if isinstance(value, dict):
        raise _located("list items must be scalars", node.src)
    return str(value)


def _tags(node: _Node | None) -> list[str]:
    if node is None:
        return []
    return [t.scalar("tag") for t in node.sequence("tags")]


def _exception_values(node: _Node, exc: _Exception) -> list[Any]:
    values = node.plain()
    if not isinstance(values, list):
        raise _located(f"exception '{exc.name}': values must be a sequence", node.src)
    if isinstance(exc.fields, list):
        for v in values:
            if not isinstance(v, list) or len(v) != len(exc.fields):
                raise _located(
                    f"exception '{exc.name}': each value must be a list of "
                    f"{len(exc.fields)} item(s), one per field",
                    node.src,
                )
    return values


def _find_token(text: str, token: str, start: int, end: int) -> int:
    """Offset of `token` as a whole word (not inside a longer name) in text[start:end], or -1."""
    if not token:
        return -1
    m = re.compile(r"(?<![\w.])" + re.escape(token) + r"(?![\w])").search(text, start, end)
    return m.start() if m else -1


def _quote_item(value: str) -> str:
    if " " in value and not value.startswith(('"', "'")):
        return f'"{value}"'
    return value


def substitute_list(cond: str, name: str, items: Sequence[str]) -> str:
    """Falco's textual list substitution of one list into a condition (§B.5 step 2)."""
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


def build_exception_condition(condition: str, exceptions: Iterable[_Exception]) -> str:
    """The rule condition with its exceptions, built as text exactly as Falco does (§B.4)."""
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


class _ResolveError(Exception):
    def __init__(
        self, message: str, pos: int, cls: type[errs.RuleError], token: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos
        self.cls = cls
        self.token = token


def _resolve(
    node: ast.Expr,
    lookup: Callable[[str], ast.Expr | None],
    stack: list[str],
    resolved: dict[int, ast.Expr] | None = None,
) -> ast.Expr:
    """Replace macro identifiers by their trees (recursively), detecting loops.

    `resolved` maps id() to the macro trees already resolved (they hold no identifier): such a
    tree is used as it is instead of being walked and copied again, so the macros a rule uses
    cost one walk in all, and the rules share them. A subtree with nothing to replace is returned
    unchanged, not copied. Neither changes the result's value (the nodes are immutable).
    """
    if isinstance(node, ast.Identifier):
        if node.name in stack:
            chain = " -> ".join([*stack[stack.index(node.name) :], node.name])
            # Point at the first macro the item itself references (stack[1]), else the name.
            token = stack[1] if len(stack) > 1 else node.name
            raise _ResolveError(
                f"reference loop in macro '{node.name}' ({chain})",
                node.pos,
                errs.MacroLoopError,
                token,
            )
        target = lookup(node.name)
        if target is None:
            raise _ResolveError(
                f"Undefined macro '{node.name}' used in filter.",
                node.pos,
                errs.UndefinedMacroError,
                node.name,
            )
        if resolved is not None and resolved.get(id(target)) is target:
            return target
        return _resolve(target, lookup, [*stack, node.name], resolved)
    if isinstance(node, ast.And | ast.Or):
        children = tuple(_resolve(c, lookup, stack, resolved) for c in node.children)
        if all(new is old for new, old in zip(children, node.children, strict=True)):
            return node
        return type(node)(node.pos, children)
    if isinstance(node, ast.Not):
        child = _resolve(node.child, lookup, stack, resolved)
        return node if child is node.child else ast.Not(node.pos, child)
    return node


class _Memo:
    """What one `RuleSet.compile` remembers per subtree, by id (with the node itself, so that a
    recycled id never matches): rules share their macros' resolved trees (see `_resolve`), so a
    macro used by twenty rules is resolved, checked and scanned for field names once, not twenty
    times. The entries keep their nodes alive for the whole compile."""

    __slots__ = ("checked", "macros", "names")

    def __init__(self, macros: dict[int, ast.Expr]) -> None:
        self.macros = macros  # the resolved macro trees
        self.checked: dict[int, tuple[ast.Expr, Problem | None]] = {}
        self.names: dict[int, tuple[ast.Expr, frozenset[str]]] = {}


def _field_names(
    node: ast.Expr, memo: dict[int, tuple[ast.Expr, frozenset[str]]]
) -> frozenset[str]:
    """The names of the fields a resolved condition reads."""
    hit = memo.get(id(node))
    if hit is not None and hit[0] is node:
        return hit[1]
    names: frozenset[str]
    if isinstance(node, ast.And | ast.Or):
        names = frozenset().union(*(_field_names(c, memo) for c in node.children))
    elif isinstance(node, ast.Not):
        names = _field_names(node.child, memo)
    elif isinstance(node, ast.UnaryCheck | ast.BinaryCheck):
        names = frozenset(
            [
                _field_name(node.left),
                *(
                    [_field_name(node.right)]
                    if isinstance(node, ast.BinaryCheck) and isinstance(node.right, ast.Transformer)
                    else []
                ),
            ]
        )
    else:
        names = frozenset()
    memo[id(node)] = (node, names)
    return names


_LIST_FIELD_OPS = {"in", "intersects", "exists"}
_NUMBER_OPS = {"=", "==", "!=", "<", "<=", ">", ">=", "in", "exists"}
_STRING_REJECTED = {"bcontains", "bstartswith"}

Problem = tuple[str, ast.Node, type[errs.RuleError], str | None]


def _check_operand(node: ast.Field | ast.Transformer) -> tuple[Problem | None, bool, str]:
    """(problem, is_list, type) of an operand, after checking its field and argument."""
    if isinstance(node, ast.Transformer):
        problem, is_list, type_ = _check_operand(node.child)
        if problem is not None:
            return problem, is_list, type_
        if is_list:
            return (
                (
                    f"transformer '{node.name}' cannot be applied to a list field",
                    node,
                    errs.OperatorError,
                    node.name,
                ),
                is_list,
                type_,
            )
        return None, False, "string"
    definition = fields.lookup(node.name)
    if definition is None:
        hint = fields.suggest(node.name)
        extra = f" (did you mean '{hint}'?)" if hint else ""
        return (
            (f"unknown field '{node.name}'{extra}", node, errs.UnknownFieldError, node.name),
            False,
            "string",
        )
    try:
        definition.bind(node.arg)
    except fields.ArgumentError as exc:
        return (str(exc), node, errs.FieldArgumentError, node.name), False, "string"
    return None, definition.is_list, definition.type


def check_fields(
    tree: ast.Expr, memo: dict[int, tuple[ast.Expr, Problem | None]] | None = None
) -> Problem | None:
    """The first field, argument or operator problem of a resolved condition, or None.

    `memo` (see `_Memo`) remembers the answer for each subtree, so shared macro trees are checked
    once per compile; the answer depends on the subtree alone."""
    if memo is None:
        return _check_fields(tree, {})
    return _check_fields(tree, memo)


def _check_fields(
    tree: ast.Expr, memo: dict[int, tuple[ast.Expr, Problem | None]]
) -> Problem | None:
    hit = memo.get(id(tree))
    if hit is not None and hit[0] is tree:
        return hit[1]
    problem = _check_node(tree, memo)
    memo[id(tree)] = (tree, problem)
    return problem


def _check_node(tree: ast.Expr, memo: dict[int, tuple[ast.Expr, Problem | None]]) -> Problem | None:
    if isinstance(tree, ast.And | ast.Or):
        for c in tree.children:
            if (p := _check_fields(c, memo)) is not None:
                return p
        return None
    if isinstance(tree, ast.Not):
        return _check_fields(tree.child, memo)
    if isinstance(tree, ast.UnaryCheck | ast.BinaryCheck):
        problem, is_list, type_ = _check_operand(tree.left)
        if problem is not None:
            return problem
        name = _field_name(tree.left)
        if is_list and tree.op not in _LIST_FIELD_OPS:
            return (
                f"operator '{tree.op}' not supported on list field '{name}' (list fields "
                "accept only 'in', 'intersects' and 'exists')",
                tree,
                errs.OperatorError,
                name,
            )
        if type_ == "string" and tree.op in _STRING_REJECTED:
            return (
                f"operator '{tree.op}' not supported on string field '{name}'",
                tree,
                errs.OperatorError,
                name,
            )
        if type_ == "number" and tree.op not in _NUMBER_OPS:
            return (
                f"operator '{tree.op}' not supported on numeric field '{name}'",
                tree,
                errs.OperatorError,
                name,
            )
        if isinstance(tree, ast.BinaryCheck):
            return _check_right(tree, type_, name)
    return None


def _check_right(tree: ast.BinaryCheck, type_: str, name: str) -> Problem | None:
    right = tree.right
    if isinstance(right, ast.Transformer):
        problem, is_list, _ = _check_operand(right)
        if problem is not None:
            return problem
        if is_list:
            return (
                "a list field cannot be the right side of a comparison",
                right,
                errs.OperatorError,
                None,
            )
        return None
    if type_ == "number":
        values = right.values if isinstance(right, ast.ListValue) else (right.text,)
        for v in values:
            try:
                int(v, 0)
            except ValueError:
                return (
                    f"'{v}' is not a number (field '{name}' is numeric)",
                    right,
                    errs.OperatorError,
                    None,
                )
    if tree.op == "regex":
        text = right.text if isinstance(right, ast.Value) else ""
        try:
            re.compile(text)
        except re.error as exc:
            return (
                f"invalid regular expression '{text}': {exc}",
                right,
                errs.RuleSyntaxError,
                None,
            )
    return None


def _field_name(node: ast.Field | ast.Transformer) -> str:
    while isinstance(node, ast.Transformer):
        node = node.child
    return node.name


def load_rules(
    paths: Iterable[str | Path], *, cache_dir: str | Path | None = None
) -> tuple[list[Rule], RuleSet]:
    """Load rules files and directories in order; directories load their `*.yaml` by name.

    Returns the compiled rules and the RuleSet holding every diagnostic. Does not raise for rule
    problems: callers check `ruleset.errors`.

    `cache_dir` (the engine's code cache, filled by `make build`) holds the result of loading
    files with exactly these contents, in this order, with this loader: a cold start then skips
    YAML (and its import), parsing, resolution and checks. Only error-free loads are stored; a
    RuleSet read from the cache holds the diagnostics (warnings) and file texts, not the
    list/macro/rule items. See `_cache_key` for what the key covers.
    """
    files = expand_paths(paths)
    key = _cache_key(files) if cache_dir is not None else None
    if key is not None and cache_dir is not None:
        cached = _read_cache(Path(cache_dir), key, files)
        if cached is not None:
            return cached
    ruleset = RuleSet()
    for path in files:
        ruleset.load_file(path)
    rules = ruleset.compile()
    ruleset.finish_warnings()
    if key is not None and cache_dir is not None and not ruleset.errors:
        _write_cache(Path(cache_dir), key, files, rules, ruleset)
    return rules, ruleset


# -- the load cache ------------------------------------------------------------------------------

_CACHE_FORMAT = b"falconet rules load cache 1\0"
# The package whose code decides what `load_rules` returns: the source of every one of its modules
# is part of the key, so a cache written by other code is never read (as the compiler keys its code
# cache on the source it generates). Every module, not a list of them: a module split, moved or
# added can neither turn the cache off nor leave a stale one in use.
PACKAGE_DIR = Path(__file__).resolve().parents[1]
# Tree node tags in the cached form: (tag, pos, fields...), children encoded the same way.
_AND, _OR, _NOT, _IDENT, _FIELD, _TRANSFORMER, _VALUE, _LIST, _UNARY, _BINARY, _CONST = range(11)


def _cache_key(files: Sequence[Path], package: Path = PACKAGE_DIR) -> str | None:
    """A hash of the rules files' bytes in order and of the source of every module of `package`
    (~0.8 ms for ~50 modules); None when one of them cannot be read (the normal load then reports
    what it must). File names are not in the key: the cache stores positions in `files` instead,
    so a cache filled under the build directory is read under /var/task, with the run-time names
    in every Source."""
    import hashlib  # noqa: PLC0415 - only with a cache (the engine imports it anyway)
    import marshal  # noqa: PLC0415

    digest = hashlib.sha256(_CACHE_FORMAT + str(marshal.version).encode())
    try:
        modules = sorted(package.rglob("*.py"))
        if not modules:
            return None
        for data in [
            *(m.relative_to(package).as_posix().encode() + b"\0" + m.read_bytes() for m in modules),
            b"\0",
            *(f.read_bytes() for f in files),
        ]:
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)
    except OSError:
        return None
    return digest.hexdigest()[:32]


def _cache_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"loaded-{key}.marshal"


def _write_cache(
    cache_dir: Path, key: str, files: Sequence[Path], rules: Sequence[Rule], ruleset: RuleSet
) -> None:
    """Store the load (best effort and atomic, like the compiler's code cache)."""
    import marshal  # noqa: PLC0415
    import os  # noqa: PLC0415

    index = {str(f): i for i, f in enumerate(files)}
    memo: dict[int, Any] = {}
    try:
        data = (
            tuple(
                (
                    r.name,
                    r.position,
                    r.condition_text,
                    _encode_tree(r.condition, memo),
                    r.output,
                    r.desc,
                    r.priority,
                    r.enabled,
                    r.tags,
                    (index[r.source.file], r.source.line, r.source.column),
                    r.fields_used,
                    tuple(
                        p if isinstance(p, str) else (p.name, p.arg, p.width)
                        for p in r.output_parts
                    ),
                )
                for r in rules
            ),
            tuple(
                (
                    d.severity,
                    type(d.error).__name__,
                    d.error.message,
                    -1 if d.error.file is None else index[d.error.file],
                    d.error.line,
                    d.error.column,
                    d.error.item,
                    d.error.kind,
                    d.error.excerpt,
                )
                for d in ruleset.diagnostics
            ),
        )
        blob = marshal.dumps(data)
    except (KeyError, ValueError):  # a name outside `files`: nothing to remap it to, no cache
        return
    path = _cache_path(cache_dir, key)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(blob)
        tmp.replace(path)
    except OSError:
        pass


def _read_cache(
    cache_dir: Path, key: str, files: Sequence[Path]
) -> tuple[list[Rule], RuleSet] | None:
    """The stored load for `key`, with today's file names, or None (absent or unreadable)."""
    import marshal  # noqa: PLC0415

    try:
        # Our own cache, trusted like the compiler's code cache (and .pyc): part of the
        # deployment, never writable by others. Only tuples of plain values are accepted below.
        data = marshal.loads(_cache_path(cache_dir, key).read_bytes())  # noqa: S302
        names = [str(f) for f in files]
        memo: dict[int, ast.Expr] = {}
        rules = [
            Rule(
                name,
                position,
                condition_text,
                _decode_tree(tree, memo),
                output,
                desc,
                priority,
                enabled,
                tags,
                Source(names[src[0]], src[1], src[2]),
                fields_used,
                tuple(p if isinstance(p, str) else FieldToken(*p) for p in parts),
            )
            for (
                name,
                position,
                condition_text,
                tree,
                output,
                desc,
                priority,
                enabled,
                tags,
                src,
                fields_used,
                parts,
            ) in data[0]
        ]
        ruleset = RuleSet()
        for severity, cls_name, message, file, line, column, item, kind, excerpt in data[1]:
            cls = getattr(errs, cls_name)
            if not (isinstance(cls, type) and issubclass(cls, errs.RuleError)):
                return None
            error = cls(
                message,
                file=None if file < 0 else names[file],
                line=line,
                column=column,
                item=item,
                kind=kind,
                excerpt=excerpt,
            )
            ruleset.diagnostics.append(Diagnostic(error, severity))
        for f in files:
            ruleset.texts[str(f)] = f.read_text(encoding="utf-8")
    except (OSError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError):
        return None
    return rules, ruleset


def _encode_tree(node: ast.Expr | ast.Node, memo: dict[int, Any]) -> Any:
    """A tree as nested tuples; a subtree shared by several rules is encoded once (marshal keeps
    the sharing, so `_decode_tree` rebuilds it shared, as `_resolve` made it)."""
    found = memo.get(id(node))
    if found is not None:
        return found
    out: tuple[Any, ...]
    if isinstance(node, ast.And | ast.Or):
        tag = _AND if isinstance(node, ast.And) else _OR
        out = (tag, node.pos, tuple(_encode_tree(c, memo) for c in node.children))
    elif isinstance(node, ast.Not):
        out = (_NOT, node.pos, _encode_tree(node.child, memo))
    elif isinstance(node, ast.Identifier):
        out = (_IDENT, node.pos, node.name)
    elif isinstance(node, ast.Field):
        out = (_FIELD, node.pos, node.name, node.arg)
    elif isinstance(node, ast.Transformer):
        out = (_TRANSFORMER, node.pos, node.name, _encode_tree(node.child, memo))
    elif isinstance(node, ast.Value):
        out = (_VALUE, node.pos, node.text)
    elif isinstance(node, ast.ListValue):
        out = (_LIST, node.pos, node.values)
    elif isinstance(node, ast.UnaryCheck):
        out = (_UNARY, node.pos, _encode_tree(node.left, memo), node.op)
    elif isinstance(node, ast.BinaryCheck):
        left = _encode_tree(node.left, memo)
        out = (_BINARY, node.pos, left, node.op, _encode_tree(node.right, memo))
    elif isinstance(node, ast.Constant):
        out = (_CONST, node.pos, node.value)
    else:
        raise ValueError(f"unknown node {node!r}")
    memo[id(node)] = out
    return out


def _decode_tree(data: Any, memo: dict[int, Any]) -> Any:
    """The inverse of `_encode_tree` (memo by id of the loaded tuples: they stay alive)."""
    found = memo.get(id(data))
    if found is not None:
        return found
    tag = data[0]
    node: ast.Node
    if tag == _AND:
        node = ast.And(data[1], tuple(_decode_tree(c, memo) for c in data[2]))
    elif tag == _OR:
        node = ast.Or(data[1], tuple(_decode_tree(c, memo) for c in data[2]))
    elif tag == _NOT:
        node = ast.Not(data[1], _decode_tree(data[2], memo))
    elif tag == _IDENT:
        node = ast.Identifier(data[1], data[2])
    elif tag == _FIELD:
        node = ast.Field(data[1], data[2], data[3])
    elif tag == _TRANSFORMER:
        node = ast.Transformer(data[1], data[2], _decode_tree(data[3], memo))
    elif tag == _VALUE:
        node = ast.Value(data[1], data[2])
    elif tag == _LIST:
        node = ast.ListValue(data[1], data[2])
    elif tag == _UNARY:
        node = ast.UnaryCheck(data[1], _decode_tree(data[2], memo), data[3])
    elif tag == _BINARY:
        left = _decode_tree(data[2], memo)
        node = ast.BinaryCheck(data[1], left, data[3], _decode_tree(data[4], memo))
    elif tag == _CONST:
        node = ast.Constant(data[1], data[2])
    else:
        raise ValueError(f"unknown node tag {tag!r}")
    memo[id(data)] = node
    return node


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files in load order: a directory contributes its `*.yaml`/`*.yml` files sorted by name."""
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.extend(
                sorted(f for f in path.iterdir() if f.suffix in (".yaml", ".yml") and f.is_file())
            )
        else:
            out.append(path)
    return out
