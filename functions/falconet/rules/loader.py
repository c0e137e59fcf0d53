"""Loading Falco rules files: YAML in, resolved `Rule`s out, every problem located.

The stages, one module each, in the order of Falco's own rule loader (reader, collector, compiler):

1. `reader`: YAML text -> nodes with positions (every scalar a string, as yaml-cpp reads it);
2. `collector`: items -> lists, macros and rules, with appends, overrides, exceptions and
   `required_*` checks applied, each item with its position and visibility;
3. `expand`: exceptions -> condition text, lists substituted into condition text;
   then `parser`: condition text -> syntax tree;
4. `resolver`: macro names -> their (shared) trees, loops and undefined macros found;
5. `checker`: fields, arguments, operators and values checked against the field registry.

`RuleSet` runs them and keeps every problem as a located `Diagnostic`; `load_rules` is the one-call
form, with the load cache (`loadcache`). Rules of other sources are parsed (syntax only) and skipped
with a warning. Nothing in a rules file is executed or opened: conditions become syntax trees,
values stay data.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from pathlib import Path

from falconet import errors as errs
from falconet.rules import ast
from falconet.rules.checker import Problem, check_fields, field_names
from falconet.rules.collector import Collector, Item, ListItem, MacroItem, RuleItem
from falconet.rules.diagnostics import Diagnostic, caret, located
from falconet.rules.documents import Doc
from falconet.rules.expand import (
    ExpandLimitError,
    Lists,
    build_exception_condition,
    expand_lists,
    substitute_lists,
)
from falconet.rules.limits import (
    MAX_CONDITION_DEPTH,
    MAX_CONDITION_NODES,
    MAX_FILE_BYTES,
    MAX_LIST_ITEMS,
    MAX_TOTAL_CONDITION_NODES,
)
from falconet.rules.loadcache import cache_key, read_cache, write_cache
from falconet.rules.model import SOURCE, Position, Rule
from falconet.rules.output import OutputFormatError, parse_output
from falconet.rules.reader import YamlNode, check_size, items_of, read_documents
from falconet.rules.resolver import Measures, ResolveError, measure, resolve

__all__ = ["Diagnostic", "RuleSet", "expand_paths", "load_rules"]


class RuleSet:
    """Rules files loaded in order, and every problem found. `load_rules` is the one-call form."""

    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []
        self.texts: dict[str, str] = {}
        self.collector = Collector(self.diagnostics)
        # Mapping documents (correlations, `falconet.correlate.loader` reads them), in load order.
        self.documents: list[Doc] = []
        self._skipped_sources: dict[tuple[str, str], int] = {}
        self._budget_spent = False  # the load's list substitution budget (reported once)
        # The load cache's key when the load went through it (`load_rules(cache_dir=)`): names
        # exactly these rules, as loaded by this code; the engine keys its index cache on it.
        self.cache_key: str | None = None

    @property
    def lists(self) -> dict[str, ListItem]:
        return self.collector.lists

    @property
    def macros(self) -> dict[str, MacroItem]:
        return self.collector.macros

    @property
    def rules(self) -> dict[str, RuleItem]:
        return self.collector.rules

    # -- diagnostics --------------------------------------------------------------------------

    @property
    def errors(self) -> list[errs.RuleError]:
        return [d.error for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    def _error(self, error: errs.RuleError) -> None:
        self.diagnostics.append(Diagnostic(error, "error"))

    def _warn(self, message: str, position: Position | None) -> None:
        self.diagnostics.append(Diagnostic(located(message, position), "warning"))

    # -- reading and collecting ---------------------------------------------------------------

    def load_file(self, path: str | Path) -> None:
        """Read one rules file into the collection; problems are recorded in `diagnostics`."""
        name = str(path)
        try:
            with Path(path).open("rb") as file:
                data = file.read(MAX_FILE_BYTES + 1)  # never more than the limit into memory
            check_size(len(data), name)
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self._error(located(f"cannot read rules file: {exc}", Position(name, 1, 1)))
            return
        except errs.RuleError as exc:
            self._error(exc)
            return
        self.load_text(text, name)

    def load_text(self, text: str, name: str = "<rules>") -> None:
        """Read rules from `text` (named `name` in positions) into the collection."""
        self.texts[name] = text
        try:
            documents = read_documents(text, name)
        except errs.RuleError as exc:
            self._error(exc)
            return
        if documents and documents[0].node.id == "mapping":
            # A file of correlation documents (its first document decides).
            for root in documents:
                if root.node.id != "mapping":
                    self._error(_mixed(root))
                    return
            for root in documents:
                try:
                    self.documents.append(Doc.from_yaml(root))
                except errs.RuleError as exc:
                    self._error(exc)
            return
        for root in documents:
            if root.node.id == "mapping":
                self._error(_mixed(root))
                return
        for root in documents:
            try:
                entries = items_of(root)
            except errs.RuleError as exc:
                self._error(exc)
                return
            for entry in entries:
                try:
                    self.collector.collect(entry)
                except errs.RuleError as exc:
                    self._error(exc)

    # -- compiling ------------------------------------------------------------------------------

    def compile(self) -> list[Rule]:
        """Resolve lists, macros and rules; return the `k8s_audit` rules in position order.

        Problems are recorded in `diagnostics`; rules that fail are left out.
        """
        lists, over = expand_lists(self.collector.lists)
        if over is not None:
            self._error(
                located(
                    f"lists expand to more than the limit of {MAX_LIST_ITEMS} items in all",
                    self.collector.lists[over].position,
                    cls=errs.RuleLimitError,
                    kind="list",
                    item=over,
                )
            )
        resolved_macros = self._compile_macros(lists)
        memo = Memo({id(t): t for t in resolved_macros.values()})
        out: list[Rule] = []
        for rule in sorted(self.collector.rules.values(), key=lambda r: r.index):
            compiled = self._compile_rule(rule, lists, resolved_macros, memo)
            if compiled is not None:
                out.append(compiled)
        return out

    def _expand(self, item: Item, text: str, lists: Lists) -> str | None:
        """`text` with its lists substituted, or None when that goes past a limit (recorded)."""
        try:
            return substitute_lists(text, lists)
        except ExpandLimitError as exc:
            if exc.budget and self._budget_spent:
                return None  # reported once, at the first condition past it
            self._budget_spent = self._budget_spent or exc.budget
            self._error(
                self._condition_error(item, exc.message, text[:200], 0, errs.RuleLimitError)
            )
            return None

    def _parse(self, item: Item, text: str) -> ast.Expr | None:
        # The parser and its lexer (regexes compiled at import, ~1 ms) are imported on first use:
        # a cold start served by the load cache never parses.
        from falconet.rules.parser import ParseError, parse_condition

        try:
            return parse_condition(text)
        except ParseError as exc:
            self._error(
                self._condition_error(item, exc.message, text, exc.offset, errs.RuleSyntaxError)
            )
            return None

    def _condition_error(
        self,
        item: Item,
        message: str,
        text: str,
        offset: int,
        cls: type[errs.RuleError],
        token: str | None = None,
    ) -> errs.RuleError:
        position = self._locate(item, token) if token else None
        if position is None:
            position = self._locate_offset(item, text, offset)
        return located(
            message,
            position,
            cls=cls,
            kind=item.kind,
            item=item.name,
            excerpt=caret(text, min(offset, len(text))),
        )

    def _locate(self, item: Item, token: str) -> Position | None:
        """The file position of `token` inside the item's condition scalar(s), if found."""
        for span in item.spans:
            text = self.texts.get(span.file, "")
            found = _find_token(text, token, span.start, span.end)
            if found >= 0:
                from falconet.rules.lexer import line_col  # on first use: see _parse

                line, col = line_col(text, found)
                return Position(span.file, line, col)
        return None

    def _locate_offset(self, item: Item, text: str, offset: int) -> Position:
        """Best effort: the word at `offset` located in the file, else the condition's start."""
        m = re.compile(r"[^\s()]+").search(text, min(offset, len(text)))
        if m is not None and m.start() == offset:
            found = self._locate(item, m.group(0))
            if found is not None:
                return found
        if item.spans:
            span = item.spans[0]
            return Position(span.file, span.line, span.column)
        return item.position

    def _compile_macros(self, lists: Lists) -> dict[str, ast.Expr]:
        parsed: dict[str, ast.Expr] = {}
        resolved: dict[int, ast.Expr] = {}  # id -> the macro trees resolved so far
        macros = self.collector.macros
        ordered = sorted(macros.values(), key=lambda m: m.index)
        texts: dict[str, str] = {}
        for macro in ordered:
            text = self._expand(macro, macro.condition, lists)
            if text is None:
                continue
            texts[macro.name] = text
            tree = self._parse(macro, text)
            if tree is not None:
                parsed[macro.name] = tree
        for macro in ordered:
            tree = parsed.get(macro.name)
            if tree is None:
                continue

            def lookup(name: str, visibility: int = macro.visibility) -> ast.Expr | None:
                # the macros defined before this one's latest definition
                other = macros.get(name)
                return parsed.get(name) if other is not None and other.index < visibility else None

            try:
                tree = parsed[macro.name] = resolve(tree, lookup, [macro.name], resolved)
                resolved[id(tree)] = tree
            except ResolveError as exc:
                self._error(
                    self._condition_error(
                        macro, exc.message, texts[macro.name], exc.pos, exc.cls, token=exc.token
                    )
                )
                del parsed[macro.name]
        return parsed

    def _compile_rule(
        self,
        rule: RuleItem,
        lists: Lists,
        macros: dict[str, ast.Expr],
        memo: Memo,
    ) -> Rule | None:
        text = self._expand(rule, build_exception_condition(rule.condition, rule.exceptions), lists)
        if text is None:
            return None
        tree = self._parse(rule, text)
        if tree is None:
            return None
        if rule.source != SOURCE:
            if not rule.source_given and self._unsourced_k8s(rule, tree):
                return None
            self._skipped_sources[(rule.position.file, rule.source)] = (
                self._skipped_sources.get((rule.position.file, rule.source), 0) + 1
            )
            return None
        try:
            tree = resolve(tree, macros.get, [], memo.macros)
        except ResolveError as exc:
            self._error(
                self._condition_error(rule, exc.message, text, exc.pos, exc.cls, token=exc.token)
            )
            return None
        limit = self._over_limit(tree, memo)
        if limit is not None:
            self._error(self._condition_error(rule, limit, text, 0, errs.RuleLimitError))
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
                located(
                    exc.message,
                    self._locate_output(rule, exc.offset),
                    cls=exc.cls,
                    kind="rule",
                    item=rule.name,
                    excerpt=caret(rule.output, exc.offset),
                )
            )
            return None
        if rule.broken:  # its collection error is recorded; its other problems now are too
            return None
        used = set(field_names(tree, memo.names))
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
            rule.position,
            frozenset(used),
            tuple(parts),
        )

    def _unsourced_k8s(self, rule: RuleItem, tree: ast.Expr) -> bool:
        """A rule without `source` is a `syscall` rule (Falco's default). When it reads a
        k8s_audit field, Falco 0.44 fails to load it (conformance case P22_no_source: "rule
        output" error): report it as an error naming the rule, at its line. True if reported."""
        names = set(field_names(tree, {}))
        with contextlib.suppress(OutputFormatError):  # e.g. a syscall field: not ours to read
            names.update(p.name for p in parse_output(rule.output) if not isinstance(p, str))
        k8s = sorted(n for n in names if n.startswith(_K8S_PREFIXES))
        if not k8s:
            return False
        self._error(
            located(
                f"rule has no 'source', so it is a 'syscall' rule (Falco's default), and a "
                f"'syscall' rule cannot read '{k8s[0]}': Falco fails to load it. "
                f"Add 'source: {SOURCE}'",
                rule.position,
                cls=errs.RuleDefinitionError,
                kind="rule",
                item=rule.name,
            )
        )
        return True

    def _locate_output(self, rule: RuleItem, offset: int) -> Position:
        """The place of `offset` in the rule's output: the word there found in the output's YAML
        scalar(s), else the output's first scalar, else the rule."""
        m = re.compile(r"\S+").match(rule.output, min(offset, len(rule.output)))
        word = m.group(0) if m else ""
        for span in rule.output_spans:
            text = self.texts.get(span.file, "")
            found = text.find(word, span.start, span.end) if word else -1
            if found >= 0:
                from falconet.rules.lexer import line_col  # on first use: see _parse

                line, col = line_col(text, found)
                return Position(span.file, line, col)
        if rule.output_spans:
            span = rule.output_spans[0]
            return Position(span.file, span.line, span.column)
        return rule.position

    def _over_limit(self, tree: ast.Expr, memo: Memo) -> str | None:
        """Why a resolved condition is past a limit on its size or depth as a tree (what the
        checker, the index and the compiler walk), or None. Counts it into the whole load's."""
        size, depth = measure(tree, memo.measures)
        if size > MAX_CONDITION_NODES:
            return (
                f"condition has {size} checks and operators once its macros are expanded, "
                f"more than the limit of {MAX_CONDITION_NODES}"
            )
        if depth > MAX_CONDITION_DEPTH:
            return (
                f"condition nests {depth} levels deep once its macros are expanded, more than "
                f"the limit of {MAX_CONDITION_DEPTH}"
            )
        memo.total_nodes += size
        if memo.total_nodes > MAX_TOTAL_CONDITION_NODES:
            return (
                "the rules' conditions expand to more than "
                f"{MAX_TOTAL_CONDITION_NODES} checks and operators in all"
            )
        return None

    def finish_warnings(self) -> None:
        """Add the per-file 'skipped rules of another source' warnings (after `compile`)."""
        for (file, source), count in sorted(self._skipped_sources.items()):
            self._warn(
                f"skipped {count} rule(s) of source '{source}': falconet evaluates "
                f"'{SOURCE}' rules only (their conditions were parsed)",
                Position(file, 1, 1),
            )


# Fields of the k8s_audit source (the k8saudit and json plugins', falconet's): a 'syscall' rule
# cannot read them.
_K8S_PREFIXES = ("ka.", "jevt.", "json.", "falconet.")


def _mixed(root: YamlNode) -> errs.RuleError:
    return located(
        "a rules file holds either Falco rules (a sequence of items) or correlation documents "
        "(mappings), not both: move this document to a file of its own",
        root.position,
        cls=errs.RuleSyntaxError,
    )


def _find_token(text: str, token: str, start: int, end: int) -> int:
    """Offset of `token` as a whole word (not inside a longer name) in text[start:end], or -1."""
    if not token:
        return -1
    m = re.compile(r"(?<![\w.])" + re.escape(token) + r"(?![\w])").search(text, start, end)
    return m.start() if m else -1


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
    list/macro/rule items. See `loadcache.cache_key` for what the key covers.
    """
    files = expand_paths(paths)
    key = cache_key(files) if cache_dir is not None else None
    if key is not None and cache_dir is not None:
        cached = read_cache(Path(cache_dir), key, files)
        if cached is not None:
            rules, diagnostics, texts, documents = cached
            ruleset = RuleSet()
            ruleset.diagnostics.extend(diagnostics)
            ruleset.texts.update(texts)
            ruleset.documents.extend(documents)
            ruleset.cache_key = key
            return rules, ruleset
    ruleset = RuleSet()
    for path in files:
        ruleset.load_file(path)
    rules = ruleset.compile()
    ruleset.finish_warnings()
    if key is not None and cache_dir is not None and not ruleset.errors:
        write_cache(Path(cache_dir), key, files, rules, ruleset.diagnostics, ruleset.documents)
        ruleset.cache_key = key
    return rules, ruleset


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


class Memo:
    """What one `RuleSet.compile` remembers per subtree, by id (with the node itself, so that a
    recycled id never matches): rules share their macros' resolved trees (`resolver.resolve`),
    so a macro used by twenty rules is resolved, checked and scanned for field names once, not
    twenty times. The entries keep their nodes alive for the whole compile."""

    __slots__ = ("checked", "macros", "measures", "names", "total_nodes")

    def __init__(self, macros: dict[int, ast.Expr]) -> None:
        self.macros = macros  # the resolved macro trees
        self.checked: dict[int, tuple[ast.Expr, Problem | None]] = {}
        self.names: dict[int, tuple[ast.Expr, frozenset[str]]] = {}
        self.measures: Measures = {}
        self.total_nodes = 0  # the size of every rule's tree so far (limits)
