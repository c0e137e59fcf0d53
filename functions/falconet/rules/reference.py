"""The reference evaluator: a plain tree walk over a resolved condition.

It is the executable statement of the semantics. The fast engine (`compiler.py`) is tested against
it on every corpus event and on hypothesis-generated events, and the engine falls back to it for the
rare events the fast path does not cover (events without `auditID`). Keep it simple: no caching
beyond bound getters, no specialisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from falconet import fields
from falconet.context import EventContext
from falconet.rules import ast
from falconet.rules.operators import (
    TRANSFORMS,
    ascii_lower,
    glob_matcher,
    pmatch_matcher,
    regex_matcher,
)

Event = Mapping[str, Any]


class ReferenceEvaluator:
    """Evaluates condition trees against events; binds each field getter once."""

    def __init__(self, env: fields.BindEnv = fields.EMPTY_ENV) -> None:
        self._env = env
        self._getters: dict[tuple[str, str | None], fields.Getter] = {}
        self._types: dict[str, str] = {}

    def getter(self, name: str, arg: str | None) -> fields.Getter:
        key = (name, arg)
        g = self._getters.get(key)
        if g is None:
            definition = fields.lookup(name)
            if definition is None:
                raise KeyError(name)
            g = definition.bind(arg, self._env)
            self._getters[key] = g
            self._types[name] = definition.type
        return g

    def operand(self, node: ast.Field | ast.Transformer, ev: Event, ctx: EventContext) -> Any:
        if isinstance(node, ast.Field):
            return self.getter(node.name, node.arg)(ev, ctx)
        value = self.operand(node.child, ev, ctx)
        if value is None or node.name == "val":
            return value
        if isinstance(value, list):
            return None
        return TRANSFORMS[node.name](str(value))

    def field_type(self, node: ast.Field | ast.Transformer) -> str:
        if isinstance(node, ast.Transformer):
            return "string" if node.name != "val" else self.field_type(node.child)
        self.getter(node.name, node.arg)
        return self._types[node.name]

    def evaluate(self, node: ast.Expr, ev: Event, ctx: EventContext) -> bool:
        if isinstance(node, ast.And):
            return all(self.evaluate(c, ev, ctx) for c in node.children)
        if isinstance(node, ast.Or):
            return any(self.evaluate(c, ev, ctx) for c in node.children)
        if isinstance(node, ast.Not):
            return not self.evaluate(node.child, ev, ctx)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.UnaryCheck):
            return self.operand(node.left, ev, ctx) is not None
        if isinstance(node, ast.BinaryCheck):
            return self.check(node, ev, ctx)
        raise TypeError(f"unresolved node {node!r}")

    def check(self, node: ast.BinaryCheck, ev: Event, ctx: EventContext) -> bool:
        left = self.operand(node.left, ev, ctx)
        if left is None:
            return False
        right = node.right
        values: tuple[Any, ...]
        if isinstance(right, ast.Transformer):
            other = self.operand(right, ev, ctx)
            if other is None or isinstance(other, list):
                return False
            values = (other,)
        elif isinstance(right, ast.ListValue):
            values = right.values
        else:
            values = (right.text,)
        if self.field_type(node.left) == "number":
            values = tuple(int(v, 0) if isinstance(v, str) else v for v in values)
        return compare(node.op, left, values)


def compare(op: str, left: Any, values: tuple[Any, ...]) -> bool:  # noqa: C901, PLR0911
    """Apply `op` to a present left value (a scalar or a non-empty list) and right values."""
    if isinstance(left, list):
        members = set(values)
        if op == "in":
            return all(v in members for v in left)
        if op == "intersects":
            return any(v in members for v in left)
        raise ValueError(f"operator {op} on a list value")
    if op in ("in", "intersects"):
        return left in values
    if op == "pmatch":
        return pmatch_matcher(tuple(str(v) for v in values))(left)
    value = values[0] if values else ""
    if op in ("=", "=="):
        return bool(left == value)
    if op == "!=":
        return bool(left != value)
    if op == "<":
        return bool(left < value)
    if op == "<=":
        return bool(left <= value)
    if op == ">":
        return bool(left > value)
    if op == ">=":
        return bool(left >= value)
    if op == "contains":
        return value in left
    if op == "icontains":
        return ascii_lower(value) in ascii_lower(left)
    if op == "startswith":
        return bool(left.startswith(value))
    if op == "endswith":
        return bool(left.endswith(value))
    if op == "glob":
        return glob_matcher(value)(left) is not None
    if op == "iglob":
        return glob_matcher(value, ignore_case=True)(left) is not None
    if op == "regex":
        return regex_matcher(value)(left)
    raise ValueError(f"unsupported operator {op}")
