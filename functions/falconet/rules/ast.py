"""Condition syntax tree: frozen, slotted nodes, each with the offset where it starts.

`pos` is a character offset into the condition text the parser was given (after list substitution
and exception composition); the loader maps it back to the rules file for error messages.

The nodes behave as `@dataclass(frozen=True, slots=True)` classes did (positional constructor,
value equality within one class, hashing, `repr`, `__match_args__`, no assignment) but are written
out by hand: the twelve dataclasses cost ~6 ms at every import (each generates its methods with
`exec` and rebuilds itself for the slots), a sixth of falconet's import time at a cold start.
Equality and hashing are spelled out per class, as the dataclass generated them (a generic
version over `__match_args__` hashed ~1.6x and compared ~2.3x slower, and the compiler interns
thousands of nodes per build); `repr` and pickling use `__match_args__`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, ClassVar

_set = object.__setattr__  # how the constructors write their slots past `__setattr__`


class Node:
    __slots__ = ("pos",)
    __match_args__: ClassVar[tuple[str, ...]] = ("pos",)

    pos: int

    def __init__(self, pos: int) -> None:
        _set(self, "pos", pos)

    def __eq__(self, other: Any) -> bool:
        if other.__class__ is self.__class__:
            return (self.pos,) == (other.pos,)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.pos,))

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__match_args__)
        return f"{type(self).__qualname__}({values})"

    def __reduce__(self) -> tuple[Any, ...]:  # copy and pickle, past `__setattr__`
        return (type(self), tuple(getattr(self, name) for name in self.__match_args__))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field '{name}': syntax tree nodes are frozen")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field '{name}': syntax tree nodes are frozen")


class And(Node):
    __slots__ = ("children",)
    __match_args__ = ("pos", "children")

    children: tuple[Expr, ...]

    def __init__(self, pos: int, children: tuple[Expr, ...]) -> None:
        _set(self, "pos", pos)
        _set(self, "children", children)

    def __eq__(self, other: Any) -> bool:
        if other.__class__ is self.__class__:
            return (self.pos, self.children) == (other.pos, other.children)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.pos, self.children))


class Or(Node):
    __slots__ = ("children",)
    __match_args__ = ("pos", "children")

    children: tuple[Expr, ...]

    def __init__(self, pos: int, children: tuple[Expr, ...]) -> None:
        _set(self, "pos", pos)
        _set(self, "children", children)

    def __eq__(self, other: Any) -> bool:
        if other.__class__ is self.__class__:
            return (self.pos, self.children) == (other.pos, other.children)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.pos, self.children))


class Not(Node):
    __slots__ = ("child",)
    __match_args__ = ("pos", "child")

    child: Expr

    def __init__(self, pos: int, child: Expr) -> None:
        _set(self, "pos", pos)
        _set(self, "child", child)

    def __eq__(self, other: Any) -> bool:
        if other.__class__ is self.__class__:
            return (self.pos, self.child) == (other.pos, other.child)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.pos, self.child))


class Identifier(Node):
    """A macro reference (a dotless word)."""

    __slots__ = ("name",)
    __match_args__ = ("pos", "name")

    name: str

    def __init__(self, pos: int, name: str) -> None:
        _set(self, "pos", pos)
        _set(self, "name", name)

    def __eq__(self, other: Any) -> bool:
        if other.__class__ is self.__class__:
            return (self.pos, self.name) == (other.pos, other.name)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.pos, self.name))


class Field(Node):
    __slots__ = ("arg", "name")
    __match_args__ = ("pos", "name", "arg")

    name: str
    arg: str | None  # the text inside [...] (unescaped when it was quoted)

    def __init__(self, pos: int, name: str, arg: str | None) -> None:
        _set(self, "pos", pos)
        _set(self, "name", name)
        _set(self, "arg", arg)

    def __eq__(self, other: Any) -> bool:
        if other.__class__ is self.__class__:
            return (self.pos, self.name, self.arg) == (other.pos, other.name, other.arg)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.pos, self.name, self.arg))


class Transformer(Node):
    """`tolower(x)`, `toupper(x)`, `b64(x)`, `basename(x)`, `len(x)`, or `val(field)` on the
    right side: one operand, transformed."""

    __slots__ = ("child", "name")
    __match_args__ = ("pos", "name", "child")

    name: str
    child: Field | Transformer | Call

    def __init__(self, pos: int, name: str, child: Field | Transformer | Call) -> None:
        _set(self, "pos", pos)
        _set(self, "name", name)
        _set(self, "child", child)

    def __eq__(self, other: Any) -> bool:
        if other.__class__ is self.__class__:
            return (self.pos, self.name, self.child) == (other.pos, other.name, other.child)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.pos, self.name, self.child))


class Call(Node):
    """A transformer of several arguments (libs 0.25): `join(sep, list)`, `concat(a, b, ...)`.
    An argument is an operand, a literal (`Value`: a quoted string or a number) or, for join's
    list, an `ArgList` of those."""

    __slots__ = ("args", "name")
    __match_args__ = ("pos", "name", "args")

    name: str
    args: tuple[Arg, ...]

    def __init__(self, pos: int, name: str, args: tuple[Arg, ...]) -> None:
        _set(self, "pos", pos)
        _set(self, "name", name)
        _set(self, "args", args)

    def __eq__(self, other: Any) -> bool:
        if other.__class__ is self.__class__:
            return (self.pos, self.name, self.args) == (other.pos, other.name, other.args)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.pos, self.name, self.args))


class ArgList(Node):
    """`(a, "b", tolower(c))`: a list given to a transformer (join's second argument)."""

    __slots__ = ("items",)
    __match_args__ = ("pos", "items")

    items: tuple[Arg, ...]

    def __init__(self, pos: int, items: tuple[Arg, ...]) -> None:
        _set(self, "pos", pos)
        _set(self, "items", items)

    def __eq__(self, other: Any) -> bool:
        if other.__class__ is self.__class__:
            return (self.pos, self.items) == (other.pos, other.items)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.pos, self.items))


class Value(Node):
    __slots__ = ("text",)
    __match_args__ = ("pos", "text")

    text: str

    def __init__(self, pos: int, text: str) -> None:
        _set(self, "pos", pos)
        _set(self, "text", text)

    def __eq__(self, other: Any) -> bool:
        if other.__class__ is self.__class__:
            return (self.pos, self.text) == (other.pos, other.text)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.pos, self.text))


class ListValue(Node):
    __slots__ = ("values",)
    __match_args__ = ("pos", "values")

    values: tuple[str, ...]

    def __init__(self, pos: int, values: tuple[str, ...]) -> None:
        _set(self, "pos", pos)
        _set(self, "values", values)

    def __eq__(self, other: Any) -> bool:
        if other.__class__ is self.__class__:
            return (self.pos, self.values) == (other.pos, other.values)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.pos, self.values))


class UnaryCheck(Node):
    __slots__ = ("left", "op")
    __match_args__ = ("pos", "left", "op")

    left: Field | Transformer | Call
    op: str  # "exists"

    def __init__(self, pos: int, left: Field | Transformer | Call, op: str) -> None:
        _set(self, "pos", pos)
        _set(self, "left", left)
        _set(self, "op", op)

    def __eq__(self, other: Any) -> bool:
        if other.__class__ is self.__class__:
            return (self.pos, self.left, self.op) == (other.pos, other.left, other.op)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.pos, self.left, self.op))


class BinaryCheck(Node):
    __slots__ = ("left", "op", "right")
    __match_args__ = ("pos", "left", "op", "right")

    left: Field | Transformer | Call
    op: str  # with Falco 0.44's list modifier when there is one: "startswith anyof"
    right: Value | ListValue | Transformer | Call

    def __init__(
        self,
        pos: int,
        left: Field | Transformer | Call,
        op: str,
        right: Value | ListValue | Transformer | Call,
    ) -> None:
        _set(self, "pos", pos)
        _set(self, "left", left)
        _set(self, "op", op)
        _set(self, "right", right)

    def __eq__(self, other: Any) -> bool:
        if other.__class__ is self.__class__:
            return (self.pos, self.left, self.op, self.right) == (
                other.pos,
                other.left,
                other.op,
                other.right,
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.pos, self.left, self.op, self.right))


class Constant(Node):
    """A folded subexpression, always true or always false (made by the compiler, never parsed)."""

    __slots__ = ("value",)
    __match_args__ = ("pos", "value")

    value: bool

    def __init__(self, pos: int, value: bool) -> None:
        _set(self, "pos", pos)
        _set(self, "value", value)

    def __eq__(self, other: Any) -> bool:
        if other.__class__ is self.__class__:
            return (self.pos, self.value) == (other.pos, other.value)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.pos, self.value))


Operand = Field | Transformer | Call
Arg = Field | Transformer | Call | Value | ArgList
Expr = And | Or | Not | Identifier | UnaryCheck | BinaryCheck | Constant


def operand_fields(node: Arg) -> tuple[Field, ...]:
    """Every field an operand reads, in order (`concat(a.b, "-", tolower(c.d))` -> a.b, c.d)."""
    if isinstance(node, Field):
        return (node,)
    if isinstance(node, Transformer):
        return operand_fields(node.child)
    if isinstance(node, Call):
        return tuple(f for a in node.args for f in operand_fields(a))
    if isinstance(node, ArgList):
        return tuple(f for a in node.items for f in operand_fields(a))
    return ()


def base_field(node: Operand) -> Field:
    """The (first) field under an operand's transformers (`tolower(ka.user.name)` ->
    `ka.user.name`). The checker rejects an operand that reads no field."""
    found = operand_fields(node)
    if not found:
        raise ValueError("the operand reads no field")
    return found[0]


def operand_text(node: Arg) -> str:
    """An operand as condition text: `ka.uri.param[x]`, `len(ka.user.groups)`, `join(",", f)`."""
    if isinstance(node, Transformer):
        return f"{node.name}({operand_text(node.child)})"
    if isinstance(node, Call):
        return f"{node.name}(" + ", ".join(operand_text(a) for a in node.args) + ")"
    if isinstance(node, ArgList):
        return "(" + ", ".join(operand_text(a) for a in node.items) + ")"
    if isinstance(node, Value):
        return '"' + node.text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return node.name if node.arg is None else f"{node.name}[{node.arg}]"
