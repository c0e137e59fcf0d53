"""Recursive-descent parser for Falco conditions, following libsinsp's grammar.

Grammar (libsinsp `filter/parser.cpp`; blanks are space, \\t, \\b, \\r, \\n)::

    Expr        := Or
    Or          := And ( "or" ( Blank And | "(" Embedded ) )*
    And         := Not ( "and" ( Blank Not | "(" Embedded ) )*
    Not         := ( "not" Blank+ )* ( "not(" Embedded | Check )     -- each "not" toggles
    Embedded    := Or ")"
    Check       := "(" Embedded
                 | Operand Condition
                 | Identifier                                       -- a macro reference
    Operand     := FieldName [ "[" ( Quoted | ArgBare ) "]" ]
                 | Transformer "(" Operand ")"   -- tolower, toupper, b64, basename, len
                 | ( "join" | "concat" ) "(" CallArg ( "," CallArg )* ")"
    CallArg     := Number | Quoted | "(" [ CallArg ( "," CallArg )* ] ")" | Operand
    Condition   := "exists"
                 | NumOp ( Number | RightOperand )              -- <= < >= >
                 | StrOp ( RightOperand | Quoted | BareStr )    -- == = != glob contains ...
                 | StrOp Modifier List         -- Falco 0.44: oneof, anyof, allof
                 | ListOp ( List | RightOperand | Identifier )  -- intersects in pmatch
    RightOperand:= "val(" FieldName [ "[" ... "]" ] ")" | Transformer "(" Operand ")"
    List        := "(" [ Value ( "," Value )* ] ")"                  -- "(a,)" is rejected
    Value       := Quoted | BareStr

    FieldName   := [a-zA-Z]+[a-zA-Z0-9_]* ( "." [a-zA-Z]+[a-zA-Z0-9_]* )+
    Identifier  := [a-zA-Z]+[a-zA-Z0-9_]*
    BareStr     := [^()"'[:space:]=,]+
    ArgBare     := [^][\\"'[:space:]]+
    Number      := [+-]?[0-9]+\\.?[0-9]*([eE][+-][0-9]+)? | 0[xX][0-9a-zA-Z]+

Keywords and operators are lowercase and case-sensitive; word operators need a blank after them.
`not` binds tighter than `and`, which binds tighter than `or`. The parse never evaluates anything:
it only builds `ast` nodes. Depth is capped (Falco uses 1000) so hostile input cannot exhaust the
stack.
"""

from __future__ import annotations

import re

from falconet.rules import ast
from falconet.rules.lexer import (
    BARE_STRING,
    BLANKS,
    CALLS,
    FIELD_ARG_BARE,
    FIELD_NAME,
    IDENTIFIER,
    LIST_OPS,
    MODIFIER,
    MODIFIER_OPS,
    NOT_BLANK,
    NUM_OPS,
    NUMBER,
    OPERATOR,
    OPERATOR_KINDS,
    PLAIN_ITEM,
    PLAIN_LIST,
    STR_OPS,
    TRANSFORMERS,
    UNARY_OPS,
    EscapeError,
    scan_quoted,
    unescape,
)

MAX_DEPTH = 1000
# What may open a transformer / a right-hand operand: one startswith() rules most cursors out.
_TRANSFORMER_OPENS = tuple(name + "(" for name in TRANSFORMERS)
_RIGHT_OPENS = ("val(", *_TRANSFORMER_OPENS)


class ParseError(ValueError):
    """The condition does not parse; `offset` is where the parser stopped."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


def parse_condition(text: str, *, max_depth: int = MAX_DEPTH) -> ast.Expr:
    """Parse a whole condition. Raises ParseError."""
    try:
        return _Parser(text, max_depth).parse()
    except RecursionError:  # Python's own stack limit can come before Falco's depth limit
        raise ParseError(f"exceeded max depth limit of {max_depth}", 0) from None


def parse_operand(text: str, start: int = 0) -> tuple[ast.Operand, int]:
    """Parse one operand (a field, or a transformer over one) at `start`: the exception
    `fields` and the `%len(...)` tokens of outputs. Returns it and the offset after it.
    Raises ParseError."""
    parser = _Parser(text, MAX_DEPTH)
    parser.pos = start
    try:
        if (name := parser.regex(FIELD_NAME)) is not None:
            return parser.parse_field_remainder(name, start), parser.pos
        if (transformer := parser.transformer_open()) is not None:
            return parser.parse_transformer_remainder(transformer, start), parser.pos
    except RecursionError:
        raise ParseError(f"exceeded max depth limit of {MAX_DEPTH}", start) from None
    raise ParseError("expected a field or a transformer", start)


class _Parser:
    __slots__ = ("depth", "last", "max_depth", "pos", "text")

    def __init__(self, text: str, max_depth: int) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0
        self.max_depth = max_depth
        self.last = ""

    # -- lexing helpers ------------------------------------------------------------------------

    def error(self, message: str, offset: int | None = None) -> ParseError:
        return ParseError(message, self.pos if offset is None else offset)

    def blank(self) -> bool:
        pos = self.pos
        text = self.text
        n = len(text)
        if pos >= n or text[pos] not in BLANKS:  # the usual answer: return at once
            return False
        pos += 1
        while pos < n and text[pos] in BLANKS:
            pos += 1
        self.pos = pos
        return True

    def literal(self, word: str) -> bool:
        if self.text.startswith(word, self.pos):
            self.pos += len(word)
            self.last = word
            return True
        return False

    def regex(self, pattern: re.Pattern[str]) -> str | None:
        m = pattern.match(self.text, self.pos)
        if m is None:
            return None
        self.pos = m.end()
        self.last = m.group(0)
        return self.last

    def quoted(self) -> str | None:
        if self.pos >= len(self.text) or self.text[self.pos] not in "\"'":
            return None
        start = self.pos
        end = scan_quoted(self.text, start)
        if end is None:
            return None
        delimiter = self.text[start]
        try:
            value = unescape(self.text[start + 1 : end - 1], delimiter)
        except EscapeError as exc:
            raise self.error(str(exc), start + 1 + exc.offset) from None
        self.pos = end
        self.last = self.text[start:end]
        return value

    def enter(self) -> None:
        self.depth += 1
        if self.depth >= self.max_depth:
            raise self.error(f"exceeded max depth limit of {self.max_depth}")

    # -- grammar ------------------------------------------------------------------------------

    def parse(self) -> ast.Expr:
        if not self.text.strip(BLANKS):
            raise self.error("filter input string is empty", 0)
        expr = self.parse_or()
        if self.pos != len(self.text):
            raise self.error(f"unexpected token after '{self.last}', expecting 'or', 'and'")
        return expr

    def parse_or(self) -> ast.Expr:
        self.enter()
        self.blank()
        pos = self.pos
        children = [self.parse_and()]
        self.blank()
        while self.literal("or"):
            if self.blank():
                children.append(self.parse_and())
            elif self.literal("("):
                children.append(self.parse_embedded())
            else:
                raise self.error("expected blank or '(' after 'or'")
            self.blank()
        self.depth -= 1
        return children[0] if len(children) == 1 else ast.Or(pos, tuple(children))

    # parse_and, parse_not and parse_check start where their caller has just skipped blanks
    # (parse_or, parse_and, and parse_not after a blank or `not` + blanks): no blank() of their
    # own, which would return False, ~2,000 times per build of the bundled rules.

    def parse_and(self) -> ast.Expr:
        self.enter()
        pos = self.pos
        children = [self.parse_not()]
        self.blank()
        while self.literal("and"):
            if self.blank():
                children.append(self.parse_not())
            elif self.literal("("):
                children.append(self.parse_embedded())
            else:
                raise self.error("expected blank or '(' after 'and'")
            self.blank()
        self.depth -= 1
        return children[0] if len(children) == 1 else ast.And(pos, tuple(children))

    def parse_not(self) -> ast.Expr:
        self.enter()
        pos = self.pos
        negate = False
        if self.text.startswith("not", pos):  # a check rarely starts with "not": skip the tries
            while self.regex(NOT_BLANK) is not None:
                negate = not negate
            if self.literal("not("):
                negate = not negate
                child = self.parse_embedded()
            else:
                child = self.parse_check()
        else:
            child = self.parse_check()
        self.depth -= 1
        return ast.Not(pos, child) if negate else child

    def parse_embedded(self) -> ast.Expr:
        self.enter()
        self.blank()
        child = self.parse_or()
        self.blank()
        if not self.literal(")"):
            raise self.error("expected a ')' token")
        self.depth -= 1
        return child

    def parse_check(self) -> ast.Expr:
        self.enter()
        pos = self.pos
        left: ast.Operand
        result: ast.Expr
        if self.literal("("):
            result = self.parse_embedded()
        elif (name := self.regex(FIELD_NAME)) is not None:
            left = self.parse_field_remainder(name, pos)
            result = self.parse_condition(left, pos)
        elif (transformer := self.transformer_open()) is not None:
            left = self.parse_transformer_remainder(transformer, pos)
            result = self.parse_condition(left, pos)
        elif (ident := self.regex(IDENTIFIER)) is not None:
            result = ast.Identifier(pos, ident)
        else:
            raise self.error("expected a '(' token, a field check, or an identifier")
        self.depth -= 1
        return result

    def transformer_open(self) -> str | None:
        if not self.text.startswith(_TRANSFORMER_OPENS, self.pos):
            return None
        for name in TRANSFORMERS:
            if self.literal(name + "("):
                return name
        return None

    def parse_field_remainder(self, name: str, pos: int) -> ast.Field:
        arg: str | None = None
        if self.literal("["):
            arg = self.quoted()
            if arg is None:
                arg = self.regex(FIELD_ARG_BARE)
            if arg is None:
                raise self.error(
                    "expected a valid field argument: a quoted string or a bare string"
                )
            if not self.literal("]"):
                raise self.error("expected a ']' token")
        return ast.Field(pos, name, arg)

    def parse_transformer_remainder(self, name: str, pos: int) -> ast.Transformer | ast.Call:
        self.enter()
        self.blank()
        if name in CALLS:
            call = ast.Call(pos, name, self.parse_call_args())
            self.depth -= 1
            return call
        arg_pos = self.pos
        child: ast.Field | ast.Transformer | ast.Call
        if (inner := self.transformer_open()) is not None:
            child = self.parse_transformer_remainder(inner, arg_pos)
        elif (field := self.regex(FIELD_NAME)) is not None:
            child = self.parse_field_remainder(field, arg_pos)
        else:
            raise self.error(
                "expected a field or a nested valid transformer: "
                + ", ".join(f"'{t}'" for t in ("val", *TRANSFORMERS))
            )
        self.blank()
        if not self.literal(")"):
            raise self.error("expected a ')' token closing the transformer")
        self.depth -= 1
        return ast.Transformer(pos, name, child)

    def parse_call_args(self) -> tuple[ast.Arg, ...]:
        """`join(sep, list)` / `concat(a, b, ...)` after the "(": arguments to the ")". An
        argument is a number, a quoted string, a "(" list, a transformer or a field."""
        args = [self.parse_call_arg(allow_list=True)]
        self.blank()
        while self.literal(","):
            self.blank()
            args.append(self.parse_call_arg(allow_list=True))
            self.blank()
        if not self.literal(")"):
            raise self.error("expected a ')' token closing the transformer")
        return tuple(args)

    def parse_call_arg(self, *, allow_list: bool) -> ast.Arg:
        pos = self.pos
        if (number := self.regex(NUMBER)) is not None:
            return ast.Value(pos, number)
        if (text := self.quoted()) is not None:
            return ast.Value(pos, text)
        if allow_list and self.literal("("):
            self.enter()
            self.blank()
            items: list[ast.Arg] = []
            if not self.literal(")"):
                items.append(self.parse_call_arg(allow_list=False))
                self.blank()
                while self.literal(","):
                    self.blank()
                    items.append(self.parse_call_arg(allow_list=False))
                    self.blank()
                if not self.literal(")"):
                    raise self.error("expected a ')' token closing the list")
            self.depth -= 1
            return ast.ArgList(pos, tuple(items))
        if (inner := self.transformer_open()) is not None:
            return self.parse_transformer_remainder(inner, pos)
        if (field := self.regex(FIELD_NAME)) is not None:
            return self.parse_field_remainder(field, pos)
        raise self.error(
            "expected a transformer argument: a field, a transformer, a quoted string, "
            "a number" + (" or a list" if allow_list else "")
        )

    def parse_condition(self, left: ast.Operand, pos: int) -> ast.Expr:
        self.blank()
        op = self.regex(OPERATOR)
        if op is None:
            ops = ", ".join(f"'{op}'" for op in (*UNARY_OPS, *NUM_OPS, *STR_OPS, *LIST_OPS))
            raise self.error(f"expected a valid check operator: one of {ops}")
        kind = OPERATOR_KINDS[op]
        if kind == "unary":
            return ast.UnaryCheck(pos, left, op)
        if kind == "num":
            return ast.BinaryCheck(pos, left, op, self.parse_num_value())
        if kind == "str":
            if op in MODIFIER_OPS:
                self.blank()
                if (modifier := self.regex(MODIFIER)) is not None:  # `startswith anyof (a, b)`
                    self.blank()
                    values = self.parse_list_value()
                    assert isinstance(values, ast.ListValue)  # the lookahead saw its "("
                    return ast.BinaryCheck(pos, left, f"{op} {modifier}", values)
            return ast.BinaryCheck(pos, left, op, self.parse_str_value())
        return ast.BinaryCheck(pos, left, op, self.parse_list_value())

    def parse_right_operand(self) -> ast.Transformer | ast.Call | None:
        self.blank()
        pos = self.pos
        if not self.text.startswith(_RIGHT_OPENS, pos):  # a value, as most right sides are
            return None
        if self.literal("val("):
            self.blank()
            field_pos = self.pos
            name = self.regex(FIELD_NAME)
            if name is None:
                raise self.error("expected a field within 'val' transformer")
            child = self.parse_field_remainder(name, field_pos)
            self.blank()
            if not self.literal(")"):
                raise self.error("expected a ')' token closing the transformer")
            return ast.Transformer(pos, "val", child)
        if (name := self.transformer_open()) is not None:
            return self.parse_transformer_remainder(name, pos)
        return None

    def parse_num_value(self) -> ast.Value | ast.Transformer | ast.Call:
        self.blank()
        pos = self.pos
        if (right := self.parse_right_operand()) is not None:
            return right
        if (number := self.regex(NUMBER)) is not None:
            return ast.Value(pos, number)
        raise self.error("expected a number value or a field with a valid transformer")

    def parse_str_value(
        self, *, allow_transformer: bool = True
    ) -> ast.Value | ast.Transformer | ast.Call:
        self.blank()
        pos = self.pos
        if allow_transformer and (right := self.parse_right_operand()) is not None:
            return right
        value = self.quoted()
        if value is None:
            value = self.regex(BARE_STRING)
        if value is not None:
            return ast.Value(pos, value)
        if allow_transformer:
            raise self.error("expected a string value or a field with a valid transformer")
        raise self.error("expected a string value")

    def parse_list_value(self) -> ast.ListValue | ast.Value | ast.Transformer | ast.Call:
        self.blank()
        pos = self.pos
        plain = PLAIN_LIST.match(self.text, pos)
        if plain is not None:  # the same values as the general path below, in one match
            self.pos = plain.end()
            self.last = ")"
            return ast.ListValue(
                pos,
                tuple(
                    item[1:-1] if item[0] in "\"'" else item
                    for item in PLAIN_ITEM.findall(self.text, pos + 1, self.pos - 1)
                ),
            )
        if self.literal("("):
            self.blank()
            values: list[str] = []
            start = self.pos
            try:
                first = self.parse_str_value(allow_transformer=False)
            except ParseError:
                self.pos = start
            else:
                assert isinstance(first, ast.Value)
                values.append(first.text)
                self.blank()
                while self.literal(","):
                    item = self.parse_str_value(allow_transformer=False)
                    assert isinstance(item, ast.Value)
                    values.append(item.text)
                    self.blank()
            if not self.literal(")"):
                raise self.error("expected a ')' token")
            return ast.ListValue(pos, tuple(values))
        if (right := self.parse_right_operand()) is not None:
            return right
        if (ident := self.regex(IDENTIFIER)) is not None:
            return ast.Value(pos, ident)
        raise self.error("expected a list, an identifier, or a field with a valid transformer")
