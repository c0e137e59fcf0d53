"""Untrusted text made safe to echo: in an HTTP answer, a log line, an error message.

Everything that reaches an answer or a log from a request or an event (a CloudEvent's id and
source, an object key, an auditID, a decoder's snippet of a bad record) goes through `echoable`:
unprintable characters are escaped, so a value cannot forge a log line or carry terminal escapes,
and the length is bounded, so a 1 MB `ce-id` cannot make a 1 MB log line.
"""

from __future__ import annotations

ECHO_LIMIT = 256  # characters of one echoed value, by default
_CUT = "…"


def echoable(value: object, limit: int = ECHO_LIMIT) -> str:
    """`value` as text with unprintable characters escaped (`\\n`, `\\x1b`, `\\u2028`), at most
    `limit` characters long (a cut is marked with '…')."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit * 4:
        text = text[: limit * 4]  # never escape more than can be kept
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
    if len(text) > limit:
        text = text[: limit - 1] + _CUT
    return text
