"""Condition syntax tree: frozen, slotted nodes, each with the offset where it starts.

`pos` is a character offset into the condition text the parser was given (after list substitution
and exception composition); the loader maps it back to the rules file for error messages.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Node:
    pos: int


@dataclass(frozen=True, slots=True)
class And(Node):
    children: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or(Node):
    children: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Not(Node):
    child: Expr


@dataclass(frozen=True, slots=True)
class Identifier(Node):
    """A macro reference (a dotless word)."""

    name: str


@dataclass(frozen=True, slots=True)
class Field(Node):
    name: str
    arg: str | None  # the text inside [...] (unescaped when it was quoted)


@dataclass(frozen=True, slots=True)
class Transformer(Node):
    """`tolower(x)`, `toupper(x)`, `b64(x)`, `basename(x)`, or `val(field)` on the right side."""

    name: str
    child: Field | Transformer


@dataclass(frozen=True, slots=True)
class Value(Node):
    text: str


@dataclass(frozen=True, slots=True)
class ListValue(Node):
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UnaryCheck(Node):
    left: Field | Transformer
    op: str  # "exists"


@dataclass(frozen=True, slots=True)
class BinaryCheck(Node):
    left: Field | Transformer
    op: str
    right: Value | ListValue | Transformer


@dataclass(frozen=True, slots=True)
class Constant(Node):
    """A folded subexpression, always true or always false (made by the compiler, never parsed)."""

    value: bool


Operand = Field | Transformer
Expr = And | Or | Not | Identifier | UnaryCheck | BinaryCheck | Constant
