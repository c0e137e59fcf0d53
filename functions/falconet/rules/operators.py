"""The meaning of each comparison operator, shared by the reference evaluator and the compiler.

Semantics follow libsinsp's comparisons of string fields (`flt_compare` in falcosecurity/libs):
- `=`, `!=`, `<`... compare bytes (Python compares code points, which orders UTF-8 the same way);
- `contains`/`icontains` are substring tests (`icontains` folds ASCII case only, like strcasestr);
- `glob`/`iglob` are POSIX fnmatch with flags 0 / FNM_CASEFOLD: `*` also matches `/`, sets and
  POSIX classes work, a backslash escapes; `iglob` folds ASCII letters only, as Falco's does;
- `regex` is RE2 in Falco's mode (`re2::RE2::POSIX`, matched `ANCHOR_BOTH`): the whole value,
  POSIX egrep syntax, in time linear in the value whatever the pattern; what RE2 rejects in that
  mode (Perl classes such as `\\d`, `\\b`, `(?` groups and flags, lookaround, backreferences)
  is a load-time error (`compile_regex`);
- `pmatch` is a path-prefix match over `/`-separated components, glob characters allowed;
- on a list field, `in` means every value is in the set and `intersects` means some value is.
An absent value makes every operator false; that rule lives in the callers.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Callable
from typing import Any

_ASCII_LOWER = str.maketrans({chr(c): chr(c + 32) for c in range(ord("A"), ord("Z") + 1)})
_ASCII_UPPER = str.maketrans({chr(c + 32): chr(c) for c in range(ord("A"), ord("Z") + 1)})

_POSIX_CLASSES = {
    "alnum": "a-zA-Z0-9",
    "alpha": "a-zA-Z",
    "blank": " \\t",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "\\x21-\\x7e",
    "lower": "a-z",
    "print": "\\x20-\\x7e",
    "punct": "!-/:-@\\[-`{-~",
    "space": " \\t\\n\\r\\f\\v",
    "upper": "A-Z",
    "xdigit": "0-9A-Fa-f",
}


def ascii_lower(text: str) -> str:
    """Lower-case ASCII letters only (strcasestr's folding). str.lower() is the same on ASCII
    text and ~10x faster than translate, so translate only runs on non-ASCII text."""
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


def ascii_upper(text: str) -> str:
    return text.upper() if text.isascii() else text.translate(_ASCII_UPPER)


def _glob_set(pattern: str, i: int) -> tuple[str, int] | None:
    """Translate a `[...]` set starting at pattern[i] == '['; None if it is not a valid set.

    A range whose end is below its start (`[z-a]`) is empty, as in glibc's fnmatch (Python's
    `re` refused it: the pattern raised at every engine build); a `-` after a POSIX class or a
    range is a plain character."""
    j = i + 1
    n = len(pattern)
    negate = False
    if j < n and pattern[j] in "!^":
        negate = True
        j += 1
    parts: list[str] = []
    last: str | None = None  # the character the last part matches, when it may start a range
    first = True
    while j < n:
        c = pattern[j]
        if c == "]" and not first:
            body = "".join(parts)
            if not body:  # only empty ranges: matches no character
                return ("[\\s\\S]" if negate else "(?!)"), j + 1
            return ("[^" if negate else "[") + body + "]", j + 1
        first = False
        if c == "[" and pattern.startswith("[:", j):
            end = pattern.find(":]", j + 2)
            if end > 0 and pattern[j + 2 : end] in _POSIX_CLASSES:
                parts.append(_POSIX_CLASSES[pattern[j + 2 : end]])
                last = None
                j = end + 2
                continue
        if c == "-" and last is not None and j + 1 < n and pattern[j + 1] != "]":
            if pattern[j + 1] == "\\" and j + 2 < n:
                high, j = pattern[j + 2], j + 3
            elif pattern.startswith("[:", j + 1):
                parts.append("\\-")  # a class cannot end a range
                last = None
                j += 1
                continue
            else:
                high, j = pattern[j + 1], j + 2
            if last <= high:
                parts.append("-" + re.escape(high))
            else:
                parts.pop()  # the range is empty: its start goes too
            last = None
            continue
        if c == "\\" and j + 1 < n:
            last = pattern[j + 1]
            j += 2
        else:
            last = c
            j += 1
        parts.append(re.escape(last) if last != "-" else "\\-")
    return None


def glob_to_regex(pattern: str) -> str:
    """A Python regex equivalent to fnmatch(pattern) with flags 0, to be full-matched.

    Written so that matching never backtracks more than once per character and pattern piece:
    the pieces between stars have a fixed length, so each middle piece is matched at its
    leftmost place (`(?>.*?piece)`, atomic: never tried again), which finds a match whenever one
    exists; only the last piece, anchored at the end, follows a plain `.*`. A naive translation
    (`.*a.*b...`) took 0.3 s for an 8 KB URI against `*/namespaces/*/pods/*/exec*`, growing with
    the cube of its length.
    """
    pieces: list[list[str]] = [[]]  # the regex atoms between stars
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pieces[-1] or len(pieces) == 1:
                pieces.append([])  # consecutive stars are one
            i += 1
        elif c == "?":
            pieces[-1].append(".")
            i += 1
        elif c == "[":
            translated = _glob_set(pattern, i)
            if translated is None:
                pieces[-1].append("\\[")
                i += 1
            else:
                pieces[-1].append(translated[0])
                i = translated[1]
        elif c == "\\" and i + 1 < n:
            pieces[-1].append(re.escape(pattern[i + 1]))
            i += 2
        else:
            pieces[-1].append(re.escape(c))
            i += 1
    head, *rest = ("".join(piece) for piece in pieces)
    if not rest:
        return head
    *middle, last = rest
    return head + "".join(f"(?>.*?{piece})" for piece in middle if piece) + ".*" + last


def glob_matcher(pattern: str, *, ignore_case: bool = False) -> Callable[[str], object]:
    # FNM_CASEFOLD folds with tolower() in the C locale: ASCII letters only ("Ü" is not "ü").
    flags = re.DOTALL | (re.IGNORECASE | re.ASCII if ignore_case else 0)
    return re.compile(glob_to_regex(pattern), flags).fullmatch


class RegexError(ValueError):
    """A `regex` pattern RE2 rejects (in Falco's POSIX mode); the message is RE2's."""


_re2_options: Any = None


def _utf8(text: str) -> bytes:
    """`text` as UTF-8; lone surrogates (which no JSON decoder here produces, but a caller might)
    become U+FFFD, as Falco sanitizes a value before matching it."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace").encode()


@functools.lru_cache(maxsize=256)
def compile_regex(pattern: str) -> Callable[[bytes], object]:
    """The full-match function of `pattern` compiled by RE2 exactly as libsinsp compiles a
    `regex` operand (`re2::RE2::POSIX`: POSIX syntax, leftmost-longest, UTF-8; RE2's default
    memory budget). Raises RegexError with RE2's message for a pattern RE2 rejects.

    RE2 (google-re2) is imported on first use: the bundled rules have no `regex`, and the import
    costs ~14 ms of a cold start. Compiled patterns are cached (the reference evaluator asks per
    evaluation)."""
    global _re2_options  # noqa: PLW0603 - made once, then constant
    import re2

    if _re2_options is None:
        options = re2.Options()
        options.posix_syntax = True
        options.longest_match = True
        options.log_errors = False  # RE2 would print every rejected pattern on stderr
        _re2_options = options
    try:
        return re2.compile(_utf8(pattern), _re2_options).fullmatch  # type: ignore[no-any-return]
    except re2.error as exc:
        message = exc.args[0] if exc.args else "invalid pattern"
        if isinstance(message, bytes):  # google-re2 gives RE2's message as bytes
            message = message.decode("utf-8", "replace")
        raise RegexError(str(message)) from None


def regex_matcher(pattern: str) -> Callable[[str], bool]:
    """Whether a value matches `pattern` (the `regex` operator: RE2, whole value, linear time).
    Raises RegexError for a pattern RE2 rejects (the loader reports it first)."""
    fullmatch = compile_regex(pattern)

    def match(value: str) -> bool:
        return fullmatch(_utf8(value)) is not None

    return match


def _components(path: str) -> list[str]:
    return [p for p in path.split("/") if p]


def pmatch_matcher(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    """True when some pattern's components are a prefix of the value's components."""
    compiled = [
        [glob_matcher(part) if any(ch in part for ch in "*?[") else part for part in _components(p)]
        for p in patterns
    ]

    def match(value: str) -> bool:
        parts = _components(value)
        for pattern in compiled:
            if len(pattern) > len(parts):
                continue
            for want, have in zip(pattern, parts, strict=False):
                if isinstance(want, str):
                    if want != have:
                        break
                elif not want(have):
                    break
            else:
                return True
        return False

    return match


def icontains(value: str, needle_lower: str) -> bool:
    return needle_lower in ascii_lower(value)


def b64(value: str) -> str | None:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return None


def utf8_len(value: str) -> int:
    """The bytes of a value before its first NUL (libsinsp's `len` of a string: strnlen)."""
    return len(value.split("\0", 1)[0].encode("utf-8", "surrogatepass"))


def basename(value: str) -> str:
    return value.rsplit("/", 1)[-1]


TRANSFORMS: dict[str, Callable[[str], str | None]] = {
    "tolower": ascii_lower,
    "toupper": ascii_upper,
    "b64": b64,
    "basename": basename,
}


MEMO_SIZE = 4096


def memoized(predicate: Callable[[str], object]) -> Callable[[str], bool]:
    """`predicate` as a bool, remembered per distinct value in a bounded cache.

    For the expensive string checks (regex searches, globs, path prefixes) on fields whose values
    repeat from event to event (user agents, user names, namespaces, images): a dict hit costs
    less than lowering and scanning the value again. The predicates are pure functions of the
    value, so caching cannot change a result; a full cache is simply cleared.
    """
    cache: dict[str, bool] = {}

    def check(value: str) -> bool:
        result = cache.get(value)
        if result is None:
            result = bool(predicate(value))  # a Match object is true, None and False are not
            if len(cache) >= MEMO_SIZE:
                cache.clear()
            cache[value] = result
        return result

    return check
