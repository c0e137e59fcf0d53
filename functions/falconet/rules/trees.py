"""Condition trees as nested tuples of plain values, and back: what the caches store.

The load cache (`rules.loadcache`) stores every rule's condition this way, and the index cache
(`rules.compiler`) the few checks generated code hands to the reference evaluator. Plain tuples,
strings, numbers and booleans only, so reading them back builds syntax-tree nodes and nothing else.
"""

from __future__ import annotations

from typing import Any

from falconet.rules import ast

# Tree node tags in the cached form: (tag, pos, fields...), children encoded the same way.
_AND, _OR, _NOT, _IDENT, _FIELD, _TRANSFORMER, _VALUE, _LIST, _UNARY, _BINARY, _CONST = range(11)
_CALL, _ARGLIST = 11, 12


def encode_tree(node: ast.Expr | ast.Node, memo: dict[int, Any]) -> Any:
    """A tree as nested tuples; a subtree shared by several rules is encoded once (marshal keeps
    the sharing, so `_decode_tree` rebuilds it shared, as `resolver.resolve` made it)."""
    found = memo.get(id(node))
    if found is not None:
        return found
    out: tuple[Any, ...]
    if isinstance(node, ast.And | ast.Or):
        tag = _AND if isinstance(node, ast.And) else _OR
        out = (tag, node.pos, tuple(encode_tree(c, memo) for c in node.children))
    elif isinstance(node, ast.Not):
        out = (_NOT, node.pos, encode_tree(node.child, memo))
    elif isinstance(node, ast.Identifier):
        out = (_IDENT, node.pos, node.name)
    elif isinstance(node, ast.Field):
        out = (_FIELD, node.pos, node.name, node.arg)
    elif isinstance(node, ast.Transformer):
        out = (_TRANSFORMER, node.pos, node.name, encode_tree(node.child, memo))
    elif isinstance(node, ast.Call):
        out = (_CALL, node.pos, node.name, tuple(encode_tree(a, memo) for a in node.args))
    elif isinstance(node, ast.ArgList):
        out = (_ARGLIST, node.pos, tuple(encode_tree(a, memo) for a in node.items))
    elif isinstance(node, ast.Value):
        out = (_VALUE, node.pos, node.text)
    elif isinstance(node, ast.ListValue):
        out = (_LIST, node.pos, node.values)
    elif isinstance(node, ast.UnaryCheck):
        out = (_UNARY, node.pos, encode_tree(node.left, memo), node.op)
    elif isinstance(node, ast.BinaryCheck):
        left = encode_tree(node.left, memo)
        out = (_BINARY, node.pos, left, node.op, encode_tree(node.right, memo))
    elif isinstance(node, ast.Constant):
        out = (_CONST, node.pos, node.value)
    else:
        raise ValueError(f"unknown node {node!r}")
    memo[id(node)] = out
    return out


def decode_tree(data: Any, memo: dict[int, Any]) -> Any:
    """The inverse of `_encode_tree` (memo by id of the loaded tuples: they stay alive)."""
    found = memo.get(id(data))
    if found is not None:
        return found
    tag = data[0]
    node: ast.Node
    if tag == _AND:
        node = ast.And(data[1], tuple(decode_tree(c, memo) for c in data[2]))
    elif tag == _OR:
        node = ast.Or(data[1], tuple(decode_tree(c, memo) for c in data[2]))
    elif tag == _NOT:
        node = ast.Not(data[1], decode_tree(data[2], memo))
    elif tag == _IDENT:
        node = ast.Identifier(data[1], data[2])
    elif tag == _FIELD:
        node = ast.Field(data[1], data[2], data[3])
    elif tag == _TRANSFORMER:
        node = ast.Transformer(data[1], data[2], decode_tree(data[3], memo))
    elif tag == _CALL:
        node = ast.Call(data[1], data[2], tuple(decode_tree(a, memo) for a in data[3]))
    elif tag == _ARGLIST:
        node = ast.ArgList(data[1], tuple(decode_tree(a, memo) for a in data[2]))
    elif tag == _VALUE:
        node = ast.Value(data[1], data[2])
    elif tag == _LIST:
        node = ast.ListValue(data[1], data[2])
    elif tag == _UNARY:
        node = ast.UnaryCheck(data[1], decode_tree(data[2], memo), data[3])
    elif tag == _BINARY:
        left = decode_tree(data[2], memo)
        node = ast.BinaryCheck(data[1], left, data[3], decode_tree(data[4], memo))
    elif tag == _CONST:
        node = ast.Constant(data[1], data[2])
    else:
        raise ValueError(f"unknown node tag {tag!r}")
    memo[id(data)] = node
    return node
