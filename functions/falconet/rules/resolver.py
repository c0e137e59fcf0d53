"""Resolving macros, the fourth loading stage: macro names in a condition tree become their trees.

Macros resolve in position order against the macros defined before their latest definition; rules
see every macro. A loop or an undefined macro is an error even in a macro no rule uses, as in
Falco. The resolved trees are shared, not copied: a macro used by twenty rules is one subtree.
"""

from __future__ import annotations

from collections.abc import Callable

from falconet import errors as errs
from falconet.rules import ast


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
    """
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
        return resolve(target, lookup, [*stack, node.name], resolved)
    if isinstance(node, ast.And | ast.Or):
        children = tuple(resolve(c, lookup, stack, resolved) for c in node.children)
        if all(new is old for new, old in zip(children, node.children, strict=True)):
            return node
        return type(node)(node.pos, children)
    if isinstance(node, ast.Not):
        child = resolve(node.child, lookup, stack, resolved)
        return node if child is node.child else ast.Not(node.pos, child)
    return node
