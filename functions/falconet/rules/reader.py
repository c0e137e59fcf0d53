"""Reading rules files, the first loading stage: YAML text in, nodes with their positions out.

Every scalar is read as its text, as Falco's yaml-cpp does (`true`, `1.0` and `null`-looking
values stay strings; only an empty or `~`/`null` scalar is null), and every node keeps its line and
column, so later stages can point at the exact place of a problem. Reading executes nothing: no
YAML tag constructs an object. The YAML library is imported on first use.

Reading is bounded (`limits`): a file is at most 1 MiB, aliases may add at most 1,000,000 nodes
and characters to a document (an alias that contains itself is an error), and values read as plain
data nest at most 64 levels; past a limit, a located `RuleLimitError`.

    for root in read_documents(text, "rules.yaml"):    # RuleSyntaxError for bad YAML
        for entry in items_of(root):                    # RuleSyntaxError unless a sequence
            ...                                         # each entry: a YamlNode (see below)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from falconet import errors as errs
from falconet.rules.diagnostics import located
from falconet.rules.limits import MAX_ALIAS_EXPANSION, MAX_FILE_BYTES, MAX_YAML_DEPTH
from falconet.rules.model import Position

if TYPE_CHECKING:
    import yaml

_YAML_NULLS = frozenset(("", "~", "null", "Null", "NULL"))  # YAML 1.1's plain nulls
_yaml_loader_class: Any = None


def _yaml_loader() -> Any:
    """The PyYAML loader class that composes rules files, made on first use: `import yaml` costs
    ~10 ms, which a cold start that finds its rules in the load cache (`load_rules`' `cache_dir`)
    never pays.

    It is libyaml's safe loader (~9x faster than the pure-Python one, measured on
    the bundled rules) with a smaller resolver, called back from C for every node: the loader reads
    every scalar as its text (as yaml-cpp does) and asks a tag only whether a value is null, so
    a plain scalar resolves to `null` or `str`, and the path resolvers (unused) are skipped.
    Explicit tags are kept as written. ~20% of the compose time of the bundled rules.
    """
    global _yaml_loader_class  # noqa: PLW0603 - a lazily built, then constant, class
    if _yaml_loader_class is not None:
        return _yaml_loader_class
    import yaml

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


_TRUE = {"true", "yes", "on", "y"}
_FALSE = {"false", "no", "off", "n"}


class Span:
    """The YAML scalar a piece of condition text came from, to locate tokens inside it."""

    __slots__ = ("column", "end", "file", "line", "start")

    def __init__(self, file: str, start: int, end: int, line: int, column: int) -> None:
        self.file = file
        self.start = start  # character offsets in the file's text
        self.end = end
        self.line = line  # 1-based position of the scalar
        self.column = column


class YamlNode:
    """A YAML node with helpers that read it Falco's way (every scalar is a string)."""

    __slots__ = ("file", "node")

    def __init__(self, node: yaml.Node, file: str) -> None:
        # Typed Any: the kind is read from the class attribute `id` ("scalar", "sequence",
        # "mapping"; not in the stubs) so that no yaml class is needed before the first parse.
        self.node: Any = node
        self.file = file

    @property
    def position(self) -> Position:
        mark = self.node.start_mark
        return Position(self.file, mark.line + 1, mark.column + 1)

    def span(self) -> Span:
        start, end = self.node.start_mark, self.node.end_mark
        return Span(self.file, start.index, end.index, start.line + 1, start.column + 1)

    def is_null(self) -> bool:
        tag: str = self.node.tag
        return self.node.id == "scalar" and tag.endswith(":null")

    def scalar(self, what: str) -> str:
        node = self.node
        if node.id != "scalar":
            raise located(f"{what} must be a scalar value", self.position)
        tag: str = node.tag
        return "" if tag.endswith(":null") else str(node.value)

    def boolean(self, what: str) -> bool:
        text = self.scalar(what).lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise located(f"{what} must be a boolean, got '{self.scalar(what)}'", self.position)

    def sequence(self, what: str) -> list[YamlNode]:
        if self.is_null():
            return []
        if self.node.id != "sequence":
            raise located(f"{what} must be a sequence", self.position)
        return [YamlNode(n, self.file) for n in self.node.value]

    def mapping(self, what: str) -> dict[str, YamlNode]:
        if self.node.id != "mapping":
            raise located(f"{what} must be a mapping", self.position)
        out: dict[str, YamlNode] = {}
        file = self.file
        for k, v in self.node.value:
            if k.id == "scalar" and not k.tag.endswith(":null"):  # scalar() inline: most keys
                out[str(k.value)] = YamlNode(v, file)
            else:
                out[YamlNode(k, file).scalar("a key")] = YamlNode(v, file)
        return out

    def plain(self, depth: int = 0) -> Any:
        """Scalars as strings, sequences as lists (for exception values and tags)."""
        if depth > MAX_YAML_DEPTH:
            raise located(
                f"YAML values nest deeper than {MAX_YAML_DEPTH} levels",
                self.position,
                cls=errs.RuleLimitError,
            )
        if self.node.id == "sequence":
            return [YamlNode(n, self.file).plain(depth + 1) for n in self.node.value]
        if self.node.id == "mapping":
            return {k: v.plain(depth + 1) for k, v in self.mapping("a value").items()}
        return self.scalar("a value")


def check_size(size: int, name: str) -> None:
    """RuleLimitError when a rules file of `size` bytes is over `limits.MAX_FILE_BYTES`."""
    if size > MAX_FILE_BYTES:
        raise located(
            f"rules file is larger than the limit of {MAX_FILE_BYTES} bytes",
            Position(name, 1, 1),
            cls=errs.RuleLimitError,
        )


def read_documents(text: str, name: str) -> list[YamlNode]:
    """The non-empty YAML documents of a file's text. Raises RuleSyntaxError (located), and
    RuleLimitError for a file past a reading limit."""
    if len(text) * 4 > MAX_FILE_BYTES:  # the encoding costs ~1 ms per MB: only when it may count
        check_size(len(text.encode("utf-8", "surrogatepass")), name)
    loader = _yaml_loader()
    import yaml  # imported by _yaml_loader: a dictionary look-up here

    try:
        documents = list(yaml.compose_all(text, Loader=loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = Position(name, mark.line + 1, mark.column + 1) if mark else Position(name, 1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        raise located(f"YAML syntax error: {problem}", position, cls=errs.RuleSyntaxError) from None
    except yaml.YAMLError as exc:
        raise located(
            f"YAML error: {exc}", Position(name, 1, 1), cls=errs.RuleSyntaxError
        ) from None
    except RecursionError:  # PyYAML's pure-Python composer (without libyaml) recurses per level
        raise located(
            "YAML nesting too deep to read", Position(name, 1, 1), cls=errs.RuleLimitError
        ) from None
    roots = [YamlNode(document, name) for document in documents if document is not None]
    if "&" in text:  # no anchor, no alias: files without `&` (most) skip the walk
        for root in roots:
            _check_aliases(root)
    return [root for root in roots if not root.is_null()]


def _children(node: Any) -> list[Any]:
    if node.id == "sequence":
        return node.value  # type: ignore[no-any-return]
    if node.id == "mapping":
        return [n for pair in node.value for n in pair]
    return []


def _weight(node: Any) -> int:
    """What a node costs its readers: 1, or a scalar's length."""
    return max(1, len(node.value)) if node.id == "scalar" else 1


def _check_aliases(root: YamlNode) -> None:
    """RuleLimitError when aliases make the document larger than its nodes by more than
    `MAX_ALIAS_EXPANSION` (nodes, and characters of scalars), or when an alias is inside the node
    it names (a loop).

    The composed document is a graph: an alias is the same node object in two places. Every
    reader below walks it as a tree, so the tree's size is what reading costs; it is computed
    here once per distinct node (memoized, iteratively), never by walking the tree."""
    sizes: dict[int, int] = {}  # id(node) -> the node's size as a tree
    distinct = 0  # the size of the distinct nodes
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root.node, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            weight = _weight(node)
            distinct += weight
            sizes[key] = weight + sum(sizes[id(child)] for child in _children(node))
            continue
        if key in sizes:
            continue  # an alias of a node already measured
        if key in on_path:
            raise located(
                "YAML alias refers to a node that contains it",
                YamlNode(node, root.file).position,
                cls=errs.RuleLimitError,
            )
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))
    if sizes[id(root.node)] - distinct <= MAX_ALIAS_EXPANSION:
        return
    node = root.node  # point at the innermost node that expands past the limit
    entry = None  # and name the item (a top-level entry) it is in
    while True:
        bigger = [c for c in _children(node) if sizes[id(c)] > MAX_ALIAS_EXPANSION]
        if not bigger:
            break
        node = max(bigger, key=lambda c: sizes[id(c)])
        entry = node if entry is None else entry
    kind, name = _item_of(entry)
    raise located(
        f"YAML aliases expand this node to more than {MAX_ALIAS_EXPANSION} nodes and characters",
        YamlNode(node, root.file).position,
        cls=errs.RuleLimitError,
        kind=kind,
        item=name,
    )


def _item_of(entry: Any) -> tuple[str | None, str | None]:
    """(kind, name) of a top-level entry that names a list, macro or rule, else (None, None)."""
    if entry is not None and entry.id == "mapping":
        for key, value in entry.value:
            if key.id == value.id == "scalar" and key.value in ("list", "macro", "rule"):
                return str(key.value), str(value.value)
    return None, None


def items_of(root: YamlNode) -> list[YamlNode]:
    """The non-null entries of a Falco rules document (a sequence of items).

    Raises RuleSyntaxError when the document is not a sequence."""
    if root.node.id != "sequence":
        raise located(
            "rules content is not a sequence of items", root.position, cls=errs.RuleSyntaxError
        )
    return [entry for entry in root.sequence("rules content") if not entry.is_null()]
