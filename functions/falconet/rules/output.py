"""Output format strings: `%field` tokens in rule outputs, parsed as Falco's formatter does.

`%` starts a field token. The longest text that names a known field (optionally followed by
`[arg]`) is consumed; shorter dotted prefixes are tried when the longest is unknown, so
`%ka.target.name/%ka.target.resource` and `%ka.uri.param[command])` work. `%20ka.user.name` pads or
cuts the value to 20 characters (at most `limits.MAX_OUTPUT_WIDTH`; `%0` is no width, as in
Falco). Every field's argument is checked here, as in conditions. A missing value prints `<NA>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from falconet import errors as errs
from falconet import fields
from falconet.rules import ast
from falconet.rules.checker import check_fields
from falconet.rules.lexer import TRANSFORMERS
from falconet.rules.limits import MAX_OUTPUT_WIDTH
from falconet.rules.parser import ParseError, parse_operand

_TOKEN = re.compile(r"([0-9]*)([a-zA-Z]+[a-zA-Z0-9_]*(?:\.[a-zA-Z]+[a-zA-Z0-9_]*)+)")
_TRANSFORMER = re.compile(r"([0-9]*)((?:" + "|".join(TRANSFORMERS) + r")\()")


class OutputFormatError(ValueError):
    """A rule's output does not parse; `cls` is the RuleError class the loader reports."""

    def __init__(
        self,
        message: str,
        offset: int,
        field: str | None = None,
        cls: type[errs.RuleError] = errs.UnknownFieldError,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.field = field
        self.cls = cls


@dataclass(frozen=True, slots=True)
class FieldToken:
    name: str
    arg: str | None
    width: int | None  # %20ka.user.name
    # `%len(ka.req.pod.containers.image)`: the transformer text (name and arg are its field's).
    # Falco prints its value in the output line and leaves it out of `output_fields`.
    expr: str | None = None

    @property
    def key(self) -> str:
        """The `output_fields` key Falco uses: the field with its argument."""
        if self.expr is not None:
            return self.expr
        if self.arg is None:
            return self.name
        if self.arg == "" or any(c in self.arg for c in " \"=\\'") or not self.arg.isprintable():
            escaped = self.arg.replace("\\", "\\\\").replace('"', '\\"')
            return f'{self.name}["{escaped}"]'
        return f"{self.name}[{self.arg}]"


Part = str | FieldToken


def parse_output(text: str) -> list[Part]:
    """Split an output format into literal text and field tokens. Raises OutputFormatError."""
    parts: list[Part] = []
    literal: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c != "%":
            literal.append(c)
            i += 1
            continue
        m = _TOKEN.match(text, i + 1)
        if m is None and (t := _TRANSFORMER.match(text, i + 1)) is not None:
            token, end = _transformer_token(text, t.start(2), t.group(1), i)
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(token)
            i = end
            continue
        if m is None:
            raise OutputFormatError("'%' is not followed by a field name", i)
        width = _width(m.group(1), i)
        name, end = _longest_known(m.group(2), m.start(2))
        if name is None:
            full = m.group(2)
            hint = fields.suggest(full)
            extra = f" (did you mean '{hint}'?)" if hint else ""
            raise OutputFormatError(f"unknown field '{full}' in output{extra}", i, full)
        arg = None
        if end < n and text[end] == "[":
            close = text.find("]", end + 1)
            if close < 0:
                raise OutputFormatError(f"missing ']' after '%{name}['", end, name)
            arg = text[end + 1 : close]
            if len(arg) >= 2 and arg[0] == arg[-1] and arg[0] in "\"'":
                arg = arg[1:-1]
            end = close + 1
        definition = fields.lookup(name)
        assert definition is not None  # found by _longest_known
        try:
            definition.check_arg(arg)
        except fields.ArgumentError as exc:
            raise OutputFormatError(str(exc), i, name, errs.FieldArgumentError) from None
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(FieldToken(name, arg, width))
        i = end
    if literal:
        parts.append("".join(literal))
    return parts


def _width(digits: str, offset: int) -> int | None:
    """The `%N` width, None for none (`%0` included, as Falco's formatter reads it)."""
    if not digits:
        return None
    stripped = digits.lstrip("0")
    if len(stripped) > len(str(MAX_OUTPUT_WIDTH)) or (
        stripped and int(stripped) > MAX_OUTPUT_WIDTH
    ):
        shown = stripped if len(stripped) <= 12 else stripped[:12] + "..."
        raise OutputFormatError(
            f"output field width {shown} exceeds the limit of {MAX_OUTPUT_WIDTH}",
            offset,
            cls=errs.RuleLimitError,
        )
    return int(stripped) if stripped else None


def _longest_known(name: str, start: int) -> tuple[str | None, int]:
    candidate = name
    while True:
        if fields.lookup(candidate) is not None:
            return candidate, start + len(candidate)
        cut = candidate.rfind(".")
        if cut <= 0 or "." not in candidate[:cut]:
            return None, start
        candidate = candidate[:cut]


def _transformer_token(text: str, start: int, digits: str, offset: int) -> tuple[FieldToken, int]:
    """`%len(ka.user.groups)` (a transformer at `start`, `%` at `offset`): its token and end.
    The field is checked as a condition's is (known, argument, a transformer it takes)."""
    width = _width(digits, offset)
    try:
        operand, end = parse_operand(text, start)
    except ParseError as exc:
        raise OutputFormatError(exc.message, exc.offset, cls=errs.RuleSyntaxError) from None
    problem = check_fields(ast.UnaryCheck(start, operand, "exists"))
    if problem is not None:
        message, _node, cls, token = problem
        raise OutputFormatError(f"{message} (in output)", offset, token, cls)
    field = ast.base_field(operand)
    return FieldToken(field.name, field.arg, width, text[start:end]), end


def field_problem(spec: str) -> str | None:
    """Why `spec` (a field name with its argument, e.g. `ka.req.pod.containers.image[0]`) is not
    a field that configuration may name (a correlation's group-by, an `extra_fields` entry), or
    None."""
    try:
        parts = parse_output("%" + spec)
    except OutputFormatError as exc:
        return f"field '{spec}': {exc.message}"
    token = parts[0] if len(parts) == 1 else None
    if not isinstance(token, FieldToken) or token.width is not None or token.expr is not None:
        return f"'{spec}' is not a field name (see `falconet fields`)"
    definition = fields.lookup(token.name)
    if definition is None:
        return f"unknown field '{spec}' (see `falconet fields`)"
    try:
        definition.bind(token.arg, fields.EMPTY_ENV)
    except fields.ArgumentError as exc:
        return f"field '{spec}': {exc}"
    return None
