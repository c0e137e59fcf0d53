"""Token matching for the condition language, as libsinsp's scanner-less parser does it.

Falco's parser (libsinsp `filter/parser.cpp`) has no separate token stream: at each step it tries
POSIX regexes and literal strings at the cursor. This module holds those token patterns and the
quoted-string unescaping (`escaping.cpp`); `parser.py` drives them.
"""

from __future__ import annotations

import re

BLANKS = " \t\b\r\n"

IDENTIFIER = re.compile(r"[a-zA-Z]+[a-zA-Z0-9_]*")
FIELD_NAME = re.compile(r"[a-zA-Z]+[a-zA-Z0-9_]*(?:\.[a-zA-Z]+[a-zA-Z0-9_]*)+")
FIELD_ARG_BARE = re.compile(r"[^\]\[\"'\s]+")
NUMBER = re.compile(r"0[xX][0-9a-zA-Z]+|[+\-]?[0-9]+\.?[0-9]*(?:[eE][+\-][0-9]+)?")
BARE_STRING = re.compile(r"[^()\"'\s=,]+")
NOT_BLANK = re.compile(r"not[ \t\b\r\n]+")

UNARY_OPS = ("exists",)
NUM_OPS = ("<=", "<", ">=", ">")
# Word operators must be followed by a blank; symbol operators need none (`a.b=c`).
STR_OPS = (
    "==",
    "=",
    "!=",
    "glob",
    "iglob",
    "contains",
    "icontains",
    "bcontains",
    "startswith",
    "bstartswith",
    "endswith",
    "regex",
)
WORD_OPS = frozenset(op for op in STR_OPS if op.isalpha())
LIST_OPS = ("intersects", "in", "pmatch")
TRANSFORMERS = ("tolower", "toupper", "b64", "basename", "len", "join", "concat")
CALLS = frozenset(("join", "concat"))  # transformers of several arguments (libs 0.25)
# Falco 0.44's list modifiers of the string operators: `startswith anyof (a, b)` (libs 0.25).
MODIFIERS = ("oneof", "anyof", "allof")
MODIFIER_OPS = frozenset(
    ("=", "==", "!=", "contains", "icontains", "bcontains", "startswith", "bstartswith")
    + ("endswith", "glob", "iglob", "regex")
)
MODIFIER = re.compile(r"(oneof|anyof|allof)(?=[ \t\b\r\n]*\()")
# "Which operator is at the cursor" in one match: the operators in the order the parser tries
# them (unary, numeric, string, list; the first alternative that matches wins, as in a loop), a
# word operator only when a blank follows it. OPERATOR_KINDS gives the form of its value.
OPERATOR = re.compile(
    "|".join(
        re.escape(op) + (r"(?=[ \t\b\r\n])" if op in WORD_OPS else "")
        for op in (*UNARY_OPS, *NUM_OPS, *STR_OPS, *LIST_OPS)
    )
)
# A list of plain items, the common case, read in one match (`parse_list_value`): bare strings
# and quoted strings without a backslash (whose value is their body), comma-separated, blanks
# allowed. Backspace, a blank for the parser but a character of a bare string, is left to the
# general path, as is anything else (which then parses or fails exactly as before).
_PLAIN_ITEM = r"""(?:[^()"'\s=,\x08]+|"[^"\\]*"|'[^'\\]*')"""
_LIST_BLANKS = r"[ \t\r\n]*"
PLAIN_LIST = re.compile(
    rf"\({_LIST_BLANKS}(?:{_PLAIN_ITEM}(?:{_LIST_BLANKS},{_LIST_BLANKS}{_PLAIN_ITEM})*)?"
    rf"{_LIST_BLANKS}\)"
)
PLAIN_ITEM = re.compile(_PLAIN_ITEM)
OPERATOR_KINDS = {
    **dict.fromkeys(UNARY_OPS, "unary"),
    **dict.fromkeys(NUM_OPS, "num"),
    **dict.fromkeys(STR_OPS, "str"),
    **dict.fromkeys(LIST_OPS, "list"),
}

_SIMPLE_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "\\": "\\", "/": "/"}
_HEX = frozenset("0123456789abcdefABCDEF")


class EscapeError(ValueError):
    """A quoted string holds an escape sequence Falco does not accept."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def scan_quoted(text: str, start: int) -> int | None:
    """End offset (exclusive) of the quoted string starting at `start`, or None if unterminated.

    Like libsinsp, a delimiter preceded by a backslash does not end the string.
    """
    delimiter = text[start]
    prev = "\\"
    i = start
    n = len(text)
    while i < n:
        c = text[i]
        if c == delimiter and prev != "\\":
            return i + 1
        prev = c
        i += 1
    return None


def unescape(body: str, delimiter: str) -> str:
    """Unescape the inside of a quoted string (Falco's `unescape_str`).

    Accepted: \\b \\f \\n \\r \\t \\\\ \\/ \\xHH, the string's own delimiter, and backslash-space
    (which yields a lone backslash). Anything else raises EscapeError with the offset in `body`.
    """
    if "\\" not in body:
        return body
    out: list[str] = []
    i = 0
    n = len(body)
    while i < n:
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= n:
            raise EscapeError("unterminated escape sequence", i)
        e = body[i + 1]
        if e in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[e])
            i += 2
        elif e == delimiter:
            out.append(e)
            i += 2
        elif e == " ":
            out.append("\\")
            i += 2
        elif e == "x":
            digits = body[i + 2 : i + 4]
            if len(digits) != 2 or not set(digits) <= _HEX:
                raise EscapeError("invalid \\x escape: expected two hex digits", i)
            out.append(chr(int(digits, 16)))
            i += 4
        else:
            raise EscapeError(f"invalid escape sequence '\\{e}'", i)
    return "".join(out)


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of `offset` in `text`."""
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, col


def caret(text: str, offset: int) -> str:
    """The line of `text` holding `offset`, and a caret under it."""
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    if end < 0:
        end = len(text)
    line = text[start:end]
    pad = "".join("\t" if ch == "\t" else " " for ch in line[: offset - start])
    return f"    {line}\n    {pad}^"
