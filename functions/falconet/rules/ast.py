"""Condition syntax tree: frozen, slotted nodes, each with the offset where it starts.

`pos` is a character offset into the condition text the parser was given (after list substitution
and exception composition); the loader maps it back to the rules file for error messages.

The nodes behave as `@dataclass(frozen=True, slots=True)` classes did (positional constructor,
value equality within one class, hashing, `repr`, `__match_args__`, no assignment) but are written
out by hand: the twelve dataclasses cost ~6 ms at every import (each generates its methods with
`exec` and rebuilds itself for the slots), a sixth of falconet's import time at a cold start.
`_key` gives the fields in constructor order; equality, hashing, `repr` and pickling derive from it.
"""

from __future__ import annotations

from operator import attrgetter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, ClassVar

_set = object.__setattr__  # how the constructors write their slots past `__setattr__`


def _pos_only(node: Any) -> tuple[Any, ...]:
    return (node.pos,)


def _key_of(*names: str) -> staticmethod[[Any], tuple[Any, ...]]:
    """A node's `_key`: its fields in constructor order, in one C call (`attrgetter`)."""
    return staticmethod(attrgetter(*names))


class Node:
    __slots__ = ("pos",)
    __match_args__: ClassVar[tuple[str, ...]] = ("pos",)
    _key: staticmethod[[Any], tuple[Any, ...]] = staticmethod(_pos_only)  # fields, in order

    pos: int

    def __init__(self, pos: int) -> None:
        _set(self, "pos", pos)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._key(self) == self._key(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._key(self))

    def __repr__(self) -> str:
        values = ", ".join(
            f"{name}={value!r}"
            for name, value in zip(self.__match_args__, self._key(self), strict=True)
        )
        return f"{type(self).__qualname__}({values})"

    def __reduce__(self) -> tuple[Any, ...]:  # copy and pickle, past `__setattr__`
        return (type(self), self._key(self))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field '{name}': syntax tree nodes are frozen")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field '{name}': syntax tree nodes are frozen")


class And(Node):
    __slots__ = ("children",)
    __match_args__ = ("pos", "children")
    _key = _key_of(*__match_args__)

    children: tuple[Expr, ...]

    def __init__(self, pos: int, children: tuple[Expr, ...]) -> None:
        _set(self, "pos", pos)
        _set(self, "children", children)


class Or(Node):
    __slots__ = ("children",)
    __match_args__ = ("pos", "children")
    _key = _key_of(*__match_args__)

    children: tuple[Expr, ...]

    def __init__(self, pos: int, children: tuple[Expr, ...]) -> None:
        _set(self, "pos", pos)
        _set(self, "children", children)


class Not(Node):
    __slots__ = ("child",)
    __match_args__ = ("pos", "child")
    _key = _key_of(*__match_args__)

    child: Expr

    def __init__(self, pos: int, child: Expr) -> None:
        _set(self, "pos", pos)
        _set(self, "child", child)


class Identifier(Node):
    """A macro reference (a dotless word)."""

    __slots__ = ("name",)
    __match_args__ = ("pos", "name")
    _key = _key_of(*__match_args__)

    name: str

    def __init__(self, pos: int, name: str) -> None:
        _set(self, "pos", pos)
        _set(self, "name", name)


class Field(Node):
    __slots__ = ("arg", "name")
    __match_args__ = ("pos", "name", "arg")
    _key = _key_of(*__match_args__)

    name: str
    arg: str | None  # the text inside [...] (unescaped when it was quoted)

    def __init__(self, pos: int, name: str, arg: str | None) -> None:
        _set(self, "pos", pos)
        _set(self, "name", name)
        _set(self, "arg", arg)


class Transformer(Node):
    """`tolower(x)`, `toupper(x)`, `b64(x)`, `basename(x)`, or `val(field)` on the right side."""

    __slots__ = ("child", "name")
    __match_args__ = ("pos", "name", "child")
    _key = _key_of(*__match_args__)

    name: str
    child: Field | Transformer

    def __init__(self, pos: int, name: str, child: Field | Transformer) -> None:
        _set(self, "pos", pos)
        _set(self, "name", name)
        _set(self, "child", child)


class Value(Node):
    __slots__ = ("text",)
    __match_args__ = ("pos", "text")
    _key = _key_of(*__match_args__)

    text: str

    def __init__(self, pos: int, text: str) -> None:
        _set(self, "pos", pos)
        _set(self, "text", text)


class ListValue(Node):
    __slots__ = ("values",)
    __match_args__ = ("pos", "values")
    _key = _key_of(*__match_args__)

    values: tuple[str, ...]

    def __init__(self, pos: int, values: tuple[str, ...]) -> None:
        _set(self, "pos", pos)
        _set(self, "values", values)


class UnaryCheck(Node):
    __slots__ = ("left", "op")
    __match_args__ = ("pos", "left", "op")
    _key = _key_of(*__match_args__)

    left: Field | Transformer
    op: str  # "exists"

    def __init__(self, pos: int, left: Field | Transformer, op: str) -> None:
        _set(self, "pos", pos)
        _set(self, "left", left)
        _set(self, "op", op)


class BinaryCheck(Node):
    __slots__ = ("left", "op", "right")
    __match_args__ = ("pos", "left", "op", "right")
    _key = _key_of(*__match_args__)

    left: Field | Transformer
    op: str
    right: Value | ListValue | Transformer

    def __init__(
        self, pos: int, left: Field | Transformer, op: str, right: Value | ListValue | Transformer
    ) -> None:
        _set(self, "pos", pos)
        _set(self, "left", left)
        _set(self, "op", op)
        _set(self, "right", right)


class Constant(Node):
    """A folded subexpression, always true or always false (made by the compiler, never parsed)."""

    __slots__ = ("value",)
    __match_args__ = ("pos", "value")
    _key = _key_of(*__match_args__)

    value: bool

    def __init__(self, pos: int, value: bool) -> None:
        _set(self, "pos", pos)
        _set(self, "value", value)


Operand = Field | Transformer
Expr = And | Or | Not | Identifier | UnaryCheck | BinaryCheck | Constant
