"""Resolving macros, the fourth loading stage: macro names in a condition tree become their trees.

Macros resolve in position order against the macros defined before their latest definition; rules
see every macro. A loop or an undefined macro is an error even in a macro no rule uses, as in
Falco. The resolved trees are shared, not copied: a macro used by twenty rules is one subtree, and
`measure` gives a resolved tree's size as the tree every later stage walks (a macro named twice
counts twice), without walking that tree.
"""

from __future__ import annotations

from collections.abc import Callable

from falconet import errors as errs
from falconet.rules import ast
from falconet.rules.limits import MAX_MACRO_NESTING


class ResolveError(Exception):
    """A macro reference that cannot be resolved: undefined, or part of a loop."""

    def __init__(
        self, message: str, pos: int, cls: type[errs.RuleError], token: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos
        self.cls = cls
        self.token = token


def resolve(
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

    At most `MAX_MACRO_NESTING` macros resolve inside one another (a RuleLimitError past it).
    """
    try:
        return _resolve(node, lookup, stack, resolved)
    except RecursionError:  # deep trees inside many nested macros: Python's stack, not a limit
        raise ResolveError(
            "macros nest too deeply to resolve", node.pos, errs.RuleLimitError
        ) from None


def _resolve(
    node: ast.Expr,
    lookup: Callable[[str], ast.Expr | None],
    stack: list[str],
    resolved: dict[int, ast.Expr] | None,
) -> ast.Expr:
    if isinstance(node, ast.Identifier):
        if node.name in stack:
            chain = " -> ".join([*stack[stack.index(node.name) :], node.name])
            # Point at the first macro the item itself references (stack[1]), else the name.
            token = stack[1] if len(stack) > 1 else node.name
            raise ResolveError(
                f"reference loop in macro '{node.name}' ({chain})",
                node.pos,
                errs.MacroLoopError,
                token,
            )
        target = lookup(node.name)
        if target is None:
            raise ResolveError(
                f"Undefined macro '{node.name}' used in filter.",
                node.pos,
                errs.UndefinedMacroError,
                node.name,
            )
        if resolved is not None and resolved.get(id(target)) is target:
            return target
        if len(stack) >= MAX_MACRO_NESTING:
            raise ResolveError(
                f"macros nest more than {MAX_MACRO_NESTING} deep at '{node.name}'",
                node.pos,
                errs.RuleLimitError,
                stack[1] if len(stack) > 1 else node.name,
            )
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


Measures = dict[int, tuple[ast.Expr, int, int]]  # id -> (node, size, depth), node kept alive


def measure(tree: ast.Expr, memo: Measures) -> tuple[int, int]:
    """(size, depth) of a resolved condition as a tree: its checks and operators, and how deep
    `and`, `or` and `not` nest. Each distinct subtree is measured once (`memo`, by id, shared
    across rules): 40 macros each naming the one before twice are 2**40 checks, measured in 80
    steps. Recursive (4x faster than a stack of our own: this runs for every rule at a cold
    start); a tree too deep for Python's stack is measured iteratively."""
    try:
        return _measure(tree, memo)
    except RecursionError:
        return _measure_deep(tree, memo)


def _measure(node: ast.Expr, memo: Measures) -> tuple[int, int]:
    hit = memo.get(id(node))
    if hit is not None and hit[0] is node:
        return hit[1], hit[2]
    cls = node.__class__
    if cls is ast.And or cls is ast.Or:
        size = 1
        depth = 0
        for child in node.children:  # type: ignore[union-attr]
            child_size, child_depth = _measure(child, memo)
            size += child_size
            depth = max(depth, child_depth)
        depth += 1
    elif cls is ast.Not:
        size, depth = _measure(node.child, memo)  # type: ignore[union-attr]
        size += 1
        depth += 1
    else:
        return 1, 0
    memo[id(node)] = (node, size, depth)
    return size, depth


def _measure_deep(tree: ast.Expr, memo: Measures) -> tuple[int, int]:
    stack: list[tuple[ast.Expr, bool]] = [(tree, False)]
    while stack:
        node, expanded = stack.pop()
        key = id(node)
        if expanded:
            size = 1
            depth = 0
            for child in _children(node):
                _, child_size, child_depth = memo[id(child)]
                size += child_size
                depth = max(depth, child_depth)
            memo[key] = (node, size, depth + 1)
            continue
        hit = memo.get(key)
        if hit is not None and hit[0] is node:
            continue
        kids = _children(node)
        if kids:
            stack.append((node, True))
            stack.extend((child, False) for child in kids)
        else:
            memo[key] = (node, 1, 0)
    _, size, depth = memo[id(tree)]
    return size, depth


def _children(node: ast.Expr) -> tuple[ast.Expr, ...]:
    if isinstance(node, ast.And | ast.Or):
        return node.children
    if isinstance(node, ast.Not):
        return (node.child,)
    return ()
