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
    utf8_len,
)

Event = Mapping[str, Any]


class ReferenceEvaluator:
    """Evaluates condition trees against events; binds each field getter once."""

    def __init__(self, env: fields.BindEnv = fields.EMPTY_ENV) -> None:
        self._env = env
        self._getters: dict[tuple[str, str | None], fields.Getter] = {}

    def getter(self, name: str, arg: str | None) -> fields.Getter:
        key = (name, arg)
        g = self._getters.get(key)
        if g is None:
            definition = fields.lookup(name)
            if definition is None:
                raise KeyError(name)
            g = definition.bind(arg, self._env)
            self._getters[key] = g
        return g

    def operand(self, node: ast.Arg, ev: Event, ctx: EventContext) -> Any:
        if isinstance(node, ast.Field):
            return self.getter(node.name, node.arg)(ev, ctx)
        if isinstance(node, ast.Transformer):
            return transform(node, self.operand(node.child, ev, ctx))
        if isinstance(node, ast.Value):
            return node.text
        if isinstance(node, ast.ArgList):
            items = [self.operand(item, ev, ctx) for item in node.items]
            return None if any(item is None for item in items) else [str(i) for i in items]
        values = [self.operand(arg, ev, ctx) for arg in node.args]
        return call(node.name, values)

    def field_type(self, node: ast.Operand) -> str:
        return operand_shape(node)[1]

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
        if isinstance(right, ast.Transformer | ast.Call):
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


def operand_shape(node: ast.Arg) -> tuple[bool, str]:
    """(is a list, type) of an operand's value: `len` makes a number of anything, `join` and
    `concat` a string, the others keep the shape and make strings (`val` keeps the type too).
    The fields must be known (the checker says so first)."""
    if isinstance(node, ast.Field):
        definition = fields.lookup(node.name)
        if definition is None:
            raise KeyError(node.name)
        return definition.is_list, definition.type
    if isinstance(node, ast.Value):
        return False, "string"
    if isinstance(node, ast.ArgList):
        return True, "string"
    if isinstance(node, ast.Call):
        return False, "string"
    is_list, type_ = operand_shape(node.child)
    if node.name == "val":
        return is_list, type_
    if node.name == "len":
        return False, "number"
    return is_list, "string"


def transform(node: ast.Transformer, value: Any) -> Any:
    """One transformer applied to its operand's value (None: absent). As libsinsp's
    transformers: element-wise on a list, and absent when any element cannot be transformed
    (b64 of a value that is not base64); `len` counts a list's items or a string's UTF-8 bytes
    (up to a NUL, as strnlen)."""
    if value is None or node.name == "val":
        return value
    if node.name == "len":
        return len(value) if isinstance(value, list) else utf8_len(str(value))
    fn = TRANSFORMS[node.name]
    if isinstance(value, list):
        out = [fn(str(v)) for v in value]
        return None if any(v is None for v in out) else out
    return fn(str(value))


def call(name: str, values: list[Any]) -> str | None:
    """`join(sep, list)` or `concat(a, b, ...)` of argument values (the checker checked their
    count and shapes); absent when an argument is."""
    if any(v is None for v in values):
        return None
    if name == "join":
        sep, items = values
        return str(sep).join(str(i) for i in items)
    return "".join(str(v) for v in values)


def compare(op: str, left: Any, values: tuple[Any, ...]) -> bool:
    """Apply `op` to a present left value (a scalar or a non-empty list) and right values.

    An operator with a list modifier (`startswith anyof`) applies the operator to each value:
    `oneof` is true when exactly one matches, `anyof` when at least one, `allof` when all do;
    every modifier is false on an empty list (Falco 0.44)."""
    base, _, modifier = op.partition(" ")
    if not modifier:
        return _compare(op, left, values)
    if not values:
        return False
    hits = sum(1 for v in values if _compare(base, left, (v,)))
    if modifier == "oneof":
        return hits == 1
    if modifier == "anyof":
        return hits > 0
    return hits == len(values)


def _compare(op: str, left: Any, values: tuple[Any, ...]) -> bool:  # noqa: C901, PLR0911
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
