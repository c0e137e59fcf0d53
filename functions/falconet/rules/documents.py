"""YAML documents that are not Falco rules (correlations), kept as located plain values.

A rules path may hold files of Falco rules (each document a sequence of items) and files of
mapping documents (`---` separated, one correlation each: Sigma's format). The loader reads both
with the same bounded reader; a mapping document becomes a `Doc`: the same values every scalar a
string, as `YamlNode` gives them, with every node's position, detached from the YAML library so
that the load cache can store it (`encode` / `decode`) and a cached cold start never imports YAML.

    for doc in ruleset.documents:                 # list[Doc], in load order
        fields = doc.mapping("a correlation")     # dict[str, Doc]; RuleError (located) otherwise
        title = fields["title"].scalar("title")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from falconet import errors as errs
from falconet.rules.diagnostics import located
from falconet.rules.limits import MAX_YAML_DEPTH
from falconet.rules.model import Position
from falconet.rules.reader import YamlNode

SCALAR, SEQUENCE, MAPPING = 0, 1, 2
_KINDS = {"scalar": SCALAR, "sequence": SEQUENCE, "mapping": MAPPING}
_TRUE = {"true", "yes", "on", "y"}
_FALSE = {"false", "no", "off", "n"}


class Doc:
    """A YAML value and its position: a string (None for null), a list of Docs or a dict of
    key -> Doc (keys in document order; the positions of keys are the values')."""

    __slots__ = ("kind", "position", "value")

    def __init__(self, kind: int, value: Any, position: Position) -> None:
        self.kind = kind
        self.value = value
        self.position = position

    @classmethod
    def from_yaml(cls, node: YamlNode, depth: int = 0) -> Doc:
        """The node and everything under it (RuleLimitError past MAX_YAML_DEPTH levels; the
        reader has already bounded what aliases may add)."""
        if depth > MAX_YAML_DEPTH:
            raise located(
                f"YAML values nest deeper than {MAX_YAML_DEPTH} levels",
                node.position,
                cls=errs.RuleLimitError,
            )
        kind = _KINDS[node.node.id]
        if kind == SEQUENCE:
            value: Any = [cls.from_yaml(n, depth + 1) for n in node.sequence("a value")]
        elif kind == MAPPING:
            value = {k: cls.from_yaml(v, depth + 1) for k, v in node.mapping("a value").items()}
        else:
            value = None if node.is_null() else node.scalar("a value")
        return cls(kind, value, node.position)

    # -- reading -----------------------------------------------------------------------------

    def is_null(self) -> bool:
        return self.kind == SCALAR and self.value is None

    def scalar(self, what: str) -> str:
        if self.kind != SCALAR:
            raise located(f"{what} must be a single value", self.position)
        return "" if self.value is None else str(self.value)

    def boolean(self, what: str) -> bool:
        text = self.scalar(what).lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise located(f"{what} must be true or false, got '{self.scalar(what)}'", self.position)

    def sequence(self, what: str) -> list[Doc]:
        if self.is_null():
            return []
        if self.kind != SEQUENCE:
            raise located(f"{what} must be a list", self.position)
        return list(self.value)

    def mapping(self, what: str) -> dict[str, Doc]:
        if self.kind != MAPPING:
            raise located(f"{what} must be a mapping", self.position)
        return dict(self.value)

    def plain(self) -> Any:
        if self.kind == SEQUENCE:
            return [d.plain() for d in self.value]
        if self.kind == MAPPING:
            return {k: d.plain() for k, d in self.value.items()}
        return self.value

    # -- the load cache's form ---------------------------------------------------------------

    def encode(self, files: dict[str, int]) -> tuple[Any, ...]:
        """Nested tuples of plain values (marshal-able), file names as indexes into `files`
        (KeyError for a file outside it)."""
        where = (files[self.position.file], self.position.line, self.position.column)
        if self.kind == SEQUENCE:
            return (SEQUENCE, where, tuple(d.encode(files) for d in self.value))
        if self.kind == MAPPING:
            return (MAPPING, where, tuple((k, d.encode(files)) for k, d in self.value.items()))
        return (SCALAR, where, self.value)

    @classmethod
    def decode(cls, data: Sequence[Any], names: Sequence[str]) -> Doc:
        kind, (file, line, column), payload = data
        position = Position(names[file], line, column)
        if kind == SEQUENCE:
            return cls(kind, [cls.decode(d, names) for d in payload], position)
        if kind == MAPPING:
            return cls(kind, {str(k): cls.decode(d, names) for k, d in payload}, position)
        if kind != SCALAR or not (payload is None or isinstance(payload, str)):
            raise ValueError("not an encoded document")
        return cls(kind, payload, position)
