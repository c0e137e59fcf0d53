"""The time window of `falconet scan --since/--until`: which events are inside, and how many not.

In: the option values (RFC 3339 `2024-05-01T12:00:00Z` or with an offset, a date `2024-05-01`
meaning midnight UTC, or an age before now: `90s`, `30m`, `24h`, `7d`, `2w`), then the
`(event, context)` pairs `decode` yields. Out: the pairs whose `stageTimestamp` is in
[since, until), and the count of the others (`Window.outside`, for the scan's summary).

Cheap on purpose: the bounds are nanoseconds, the unit `parse_rfc3339_ns` gives, whose cache of
the date-and-seconds prefix a batch's events share, so an event costs a few slices and one
comparison. It never reads the clock per event (an age is turned into a time once, when parsed).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

from falconet.timestamps import parse_rfc3339_ns

_AGE = re.compile(r"(\d+)([smhdw])\Z")
_AGE_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
FORMS = "RFC 3339 (2024-05-01T12:00:00Z), a date (2024-05-01) or an age (90s, 30m, 24h, 7d, 2w)"


def parse_time(text: str, now_ns: int | None = None) -> int:
    """Nanoseconds since the epoch for one of the accepted forms (an age counts back from
    `now_ns`, default the current time). Raises ValueError naming the forms."""
    value = text.strip()
    age = _AGE.match(value)
    if age is not None:
        now = time.time_ns() if now_ns is None else now_ns
        return now - int(age.group(1)) * _AGE_SECONDS[age.group(2)] * 1_000_000_000
    if _DATE.match(value):
        value += "T00:00:00Z"
    ns = parse_rfc3339_ns(value.replace("t", "T").replace("z", "Z"))
    if ns is None:
        raise ValueError(f"'{text}' is not a time: give {FORMS}")
    return ns


class Window:
    """[since, until) on the event time; either bound may be None (open)."""

    def __init__(self, since: int | None, until: int | None) -> None:
        self.since = since if since is not None else -(2**63)
        self.until = until if until is not None else 2**63
        self.outside = 0  # events skipped so far

    def within(self, events: Iterable[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
        """The pairs inside the window; the others are counted in `outside`."""
        since, until = self.since, self.until
        for pair in events:
            # decode lets through only events whose stageTimestamp parses: None is not expected,
            # and is counted as outside rather than guessed at.
            at = parse_rfc3339_ns(pair[0]["stageTimestamp"])
            if at is not None and since <= at < until:
                yield pair
            else:
                self.outside += 1
