"""Reading JSON text as Falco's k8saudit plugin does (valyala/fastjson), where that changes what
rules see: the reader behind `orjson.loads` when orjson refuses a text, and behind every parse in
Falco-exact mode (`decode(..., falco_json=True)`).

What it gives that `orjson.loads` does not:

* invalid UTF-8, and `\\u` escapes of lone surrogates, read as U+FFFD (Falco evaluates such an
  event and shows U+FFFD; orjson refuses the whole text);
* nesting over `MAX_DEPTH` (fastjson's 300, counting every value, the top one included) refused
  with the reason `LIMIT_DEPTH` (orjson reads 1024 levels);
* the first of duplicate keys wins (fastjson's `Get` returns the first; orjson keeps the last);
* a number keeps its source text (`1.50`, `2.01e2`, `-0`, integers past 64 bits, `1e400`): it
  is read as a `Sourced` string of that text wherever it is not a plain integer;
* a string with a NUL is compared up to the NUL (Falco hands plugin strings to the rule engine as
  C strings): it is read as a `Sourced` string holding the text before the NUL, whose `json` is
  the whole string as written, for a containing object rendered as text;
* a string whose escapes orjson would write differently (`caf\\u00e9`, `a\\u0026b`, `\\/`) is a
  `Sourced` string too, so that an object holding it prints with the source's escapes, as
  fastjson's `MarshalTo` writes them (a value read alone is its decoded text, as always).

`Sourced` is a `str` whose value is Falco's string view of the JSON value and whose `json` is its
JSON text; `falconet.fields.registry.stringify` renders both. The reader is iterative (no
recursion, whatever the depth) and linear in the text: one regular-expression match per token.
It is pure Python, ~25x slower than `orjson.loads` (`decode(falco_json=True)` of the benchmark
corpus: ~20x the default decode), which is why the fast path stays orjson's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from json import decoder
from typing import Any

import orjson

from falconet.decode.stats import LIMIT_DEPTH, NOT_JSON

MAX_DEPTH = 300  # fastjson's MaxDepth: a value nested deeper makes the whole text unreadable

_BLANKS = re.compile(r"[ \t\n\r]*")
# A scalar: a number (strict JSON grammar) or a literal.
_SCALAR = re.compile(
    r"(?:(?P<num>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)"
    r"|(?P<lit>true|false|null))"
)
# The C string scanner behind `json.loads` (not in the type stubs): strict JSON strings.
_scanstring: Callable[[str, int, bool], tuple[str, int]] = decoder.scanstring  # type: ignore[attr-defined]
# The common cases in one match: a key without escapes and its colon; a string without escapes.
_PLAIN_KEY = re.compile(r'[ \t\n\r]*"([^"\\\x00-\x1f]*)"[ \t\n\r]*:')
_PLAIN_STRING = re.compile(r'"([^"\\\x00-\x1f]*)"')
_SURROGATE = re.compile("[\ud800-\udfff]")
_LITERALS: dict[str, Any] = {"true": True, "false": False, "null": None}
# Integers orjson writes (int64 and uint64) are plain `int`s; longer integer texts stay text.
_INT_RANGE = (-(2**63), 2**64 - 1)
_MAX_INT_CHARS = 20


class SourceError(orjson.JSONDecodeError):
    """The text is not JSON, or nests deeper than `MAX_DEPTH` (`reason` says which)."""

    def __init__(self, message: str, text: str, pos: int, reason: str = NOT_JSON) -> None:
        if pos >= len(text) and reason == NOT_JSON:
            message = "unexpected end of data"  # orjson's words: the splitters rely on them
        super().__init__(message, text, pos)
        self.reason = reason


class Sourced(str):
    """A JSON value as Falco's string view of it (`str`), and its JSON text (`json`)."""

    json: str

    def __new__(cls, value: str, json: str) -> Sourced:
        self = super().__new__(cls, value)
        self.json = json
        return self

    def __reduce__(self) -> Any:  # copy and pickle keep the JSON text
        return (Sourced, (str(self), self.json))


def read(data: bytes | bytearray | str) -> Any:
    """The JSON value of `data` as fastjson reads it (see the module). Raises `SourceError`."""
    text = data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")
    blanks = _BLANKS.match
    # The containers being filled, innermost last: [container, the key its next value goes to].
    stack: list[list[Any]] = []
    i = 0
    while True:
        # A value starts at i (after blanks).
        i = blanks(text, i).end()  # type: ignore[union-attr]
        if len(stack) >= MAX_DEPTH:  # this value would be at depth MAX_DEPTH + 1
            raise SourceError(f"nested over {MAX_DEPTH} levels", text, i, LIMIT_DEPTH)
        c = text[i : i + 1]
        value: Any
        if c == '"':
            m = _PLAIN_STRING.match(text, i)
            if m is None:
                value, i = _string(text, i)
            else:
                value, i = m.group(1), m.end()
        elif c in _OPENERS:
            container: Any = {} if c == "{" else []
            i = blanks(text, i + 1).end()  # type: ignore[union-attr]
            if text[i : i + 1] != _OPENERS[c]:
                frame = [container, None]
                stack.append(frame)
                if c == "{":
                    frame[1], i = _key(text, i)
                continue
            value = container  # empty
            i += 1
        else:
            value, i = _scalar(text, i)
        done, value, i = _place(text, i, stack, value)
        if done:
            return value


_OPENERS = {"{": "}", "[": "]"}


def _place(text: str, i: int, stack: list[list[Any]], value: Any) -> tuple[bool, Any, int]:
    """Put `value` (which ended at `i`) into the innermost container, and close every container
    that ends there. Returns whether the text is complete (and then its value), and where the
    next value starts."""
    blanks = _BLANKS.match
    while stack:
        frame = stack[-1]
        container = frame[0]
        if type(container) is list:
            container.append(value)
        elif frame[1] not in container:  # the first of duplicate keys wins
            container[frame[1]] = value
        i = blanks(text, i).end()  # type: ignore[union-attr]
        c = text[i : i + 1]
        if c == ",":
            if type(container) is dict:
                frame[1], i = _key(text, i + 1)
                return False, None, i
            return False, None, i + 1
        if c != ("}" if type(container) is dict else "]"):
            raise SourceError("expected ',' or a closing bracket", text, i)
        i += 1
        stack.pop()
        value = container
    i = blanks(text, i).end()  # type: ignore[union-attr]
    if i != len(text):
        raise SourceError("unexpected content after document", text, i)
    return True, value, i


def _scalar(text: str, i: int) -> tuple[Any, int]:
    """The number or literal at `i`, and the position after it."""
    m = _SCALAR.match(text, i)
    if m is None:
        raise SourceError("expected a value", text, i)
    num = m.group("num")
    return (_number(num) if num is not None else _LITERALS[m.group("lit")]), m.end()


def _key(text: str, i: int) -> tuple[str, int]:
    """An object key at `i` (after blanks) and its `:`; the position after the `:`."""
    m = _PLAIN_KEY.match(text, i)
    if m is not None:
        return m.group(1), m.end()
    i = _BLANKS.match(text, i).end()  # type: ignore[union-attr]
    if text[i : i + 1] != '"':
        raise SourceError("expected an object key", text, i)
    key, i = _string(text, i, key=True)
    i = _BLANKS.match(text, i).end()  # type: ignore[union-attr]
    if text[i : i + 1] != ":":
        raise SourceError("expected ':' after an object key", text, i)
    return key, i + 1


def _string(text: str, start: int, *, key: bool = False) -> tuple[str, int]:
    """The string whose opening quote is at `start`, and the position after its closing quote.
    Lone surrogates become U+FFFD; a value (not a key) with a NUL, or written with escapes orjson
    would write otherwise, is `Sourced` (see above)."""
    try:
        value, end = _scanstring(text, start + 1, True)
    except ValueError as exc:
        # A string running to the end of the text: the text ends early (as orjson says it).
        at = len(text) if str(exc).startswith("Unterminated string") else start
        raise SourceError(f"bad string: {exc}", text, at) from None
    if text.find("\\", start, end) >= 0:  # escaped: the value may print differently
        if _SURROGATE.search(value):
            value = _SURROGATE.sub("\ufffd", value)
        if not key:
            written = text[start:end]
            if "\x00" in value or orjson.dumps(value).decode() != written:
                value = Sourced(value.partition("\x00")[0], written)
    return value, end


def _number(text: str) -> Any:
    """A plain `int` for an integer text Python writes back the same (so `stringify` gives the
    text) and orjson can write (64 bits); else the text itself, as `Sourced`."""
    if len(text) <= _MAX_INT_CHARS and "." not in text and "e" not in text and "E" not in text:
        number = int(text)
        if _INT_RANGE[0] <= number <= _INT_RANGE[1] and text != "-0":
            return number
    return Sourced(text, text)
