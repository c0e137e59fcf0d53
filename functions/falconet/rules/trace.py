"""Why a condition is true or false on one event: its tree, each part with its value.

`trace_condition` walks a resolved condition (macros expanded) with the reference evaluator, the
semantics the compiled code is tested against, and returns the lines `falconet explain --rule`
prints: one node per line, indented by depth, each with `true`/`false`, and each check with the
values its fields have on the event. Every part is evaluated (no short-circuit), so the whole
tree is shown; conditions are pure, so that changes no value. No I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from falconet.context import EventContext
from falconet.rules import ast
from falconet.rules.reference import ReferenceEvaluator

_INDENT = "  "


def trace_condition(
    node: ast.Expr, evaluator: ReferenceEvaluator, event: Mapping[str, Any], ctx: EventContext
) -> tuple[bool, list[str]]:
    """(value, lines) of `node` on `event`; the value is the reference evaluator's."""
    lines: list[str] = []
    value = _trace(node, evaluator, event, ctx, 0, lines)
    return value, lines


def _mark(value: bool) -> str:
    return "true " if value else "false"


def _trace(
    node: ast.Expr,
    ev: ReferenceEvaluator,
    event: Mapping[str, Any],
    ctx: EventContext,
    depth: int,
    lines: list[str],
) -> bool:
    pad = _INDENT * depth
    if isinstance(node, ast.And | ast.Or):
        at = len(lines)
        lines.append("")
        values = [_trace(c, ev, event, ctx, depth + 1, lines) for c in node.children]
        value = all(values) if isinstance(node, ast.And) else any(values)
        lines[at] = f"{_mark(value)} {pad}{'and' if isinstance(node, ast.And) else 'or'}"
        return value
    if isinstance(node, ast.Not):
        at = len(lines)
        lines.append("")
        value = not _trace(node.child, ev, event, ctx, depth + 1, lines)
        lines[at] = f"{_mark(value)} {pad}not"
        return value
    value = ev.evaluate(node, event, ctx)
    lines.append(f"{_mark(value)} {pad}{render_check(node)}{_values(node, ev, event, ctx)}")
    return value


def render_check(node: ast.Expr) -> str:
    """A check (or constant) as condition text."""
    if isinstance(node, ast.Constant):
        return "(always true)" if node.value else "(always false)"
    if isinstance(node, ast.UnaryCheck):
        return f"{_operand(node.left)} {node.op}"
    if isinstance(node, ast.BinaryCheck):
        right = node.right
        if isinstance(right, ast.Transformer | ast.Call):
            text = _operand(right)
        elif isinstance(right, ast.ListValue):
            text = "(" + ", ".join(_literal(v) for v in right.values) + ")"
        else:
            text = _literal(right.text)
        return f"{_operand(node.left)} {node.op} {text}"
    return repr(node)


_operand = ast.operand_text


def _literal(text: str) -> str:
    plain = text and all(c.isalnum() or c in "._-:/*@" for c in text)
    return text if plain else json.dumps(text)


def _show(value: Any) -> str:
    if value is None:
        return "<NA>"
    return json.dumps(value, default=str, ensure_ascii=False)


def _values(
    node: ast.Expr, ev: ReferenceEvaluator, event: Mapping[str, Any], ctx: EventContext
) -> str:
    """`   [field: value, ...]` for the operands a check reads."""
    if not isinstance(node, ast.UnaryCheck | ast.BinaryCheck):
        return ""
    operands = [node.left]
    if isinstance(node, ast.BinaryCheck) and isinstance(node.right, ast.Transformer | ast.Call):
        operands.append(node.right)
    shown = ", ".join(f"{_operand(o)}: {_show(ev.operand(o, event, ctx))}" for o in operands)
    return f"   [{shown}]"
