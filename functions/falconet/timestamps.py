"""RFC 3339 timestamps with nanoseconds, as the k8saudit plugin reads and Falco prints them.

The plugin parses `stageTimestamp` with Go's `time.RFC3339Nano` layout and drops the event when that
fails; the parsed time is the event time (`jevt.rawtime`, `evt.time`, the alert's `time`).
Parsing is on the per-event path, so the date-and-seconds prefix is cached: consecutive events of a
batch share it, and the rest is a few slices and an `int()`.
"""

from __future__ import annotations

import re
import time
from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

_PREFIX = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\Z")
_ZONE = re.compile(r"([+-])(\d{2}):(\d{2})\Z")
_cache: dict[str, int] = {}
_CACHE_MAX = 4096
_EPOCH_DAY = date(1970, 1, 1).toordinal()


def _seconds(prefix: str) -> int | None:
    m = _PREFIX.match(prefix)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups())
    if hour > 23 or minute > 59 or second > 59:
        return None
    # `date` rejects a month or day out of range, as the calendar check did; it is also what
    # calendar.timegm used, without importing calendar (and locale: ~2 ms at a cold start).
    # Year 0000 is outside `date`'s range: not a timestamp (timegm raised ValueError for it).
    try:
        days = date(year, month, day).toordinal() - _EPOCH_DAY
    except ValueError:
        return None
    return ((days * 24 + hour) * 60 + minute) * 60 + second


def parse_rfc3339_ns(value: object) -> int | None:
    """Nanoseconds since the epoch for an RFC 3339 (nano) timestamp, or None if it is not one."""
    if not isinstance(value, str) or len(value) < 20:  # a `Sourced` str too (decode.source)
        return None
    key = value[:19]
    base = _cache.get(key)
    if base is None:
        base = _seconds(key)
        if base is None:
            return None
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[key] = base
    rest = value[19:]
    if rest[0] == "." and rest[-1] == "Z":  # the usual form: one slice and an int()
        digits = rest[1:-1]
        if digits.isascii() and digits.isdigit():  # unlike int(): no sign, space or underscore
            return base * 1_000_000_000 + int((digits + "00000000")[:9])
    nanos = 0
    if rest[0] == ".":
        end = 1
        n = len(rest)
        while end < n and "0" <= rest[end] <= "9":
            end += 1
        digits = rest[1:end]
        if not digits:
            return None
        nanos = int((digits + "00000000")[:9])
        rest = rest[end:]
    if rest == "Z":
        offset = 0
    else:
        m = _ZONE.match(rest)
        if m is None:
            return None
        sign, hh, mm = m.groups()
        if int(hh) > 23 or int(mm) > 59:
            return None
        offset = (int(hh) * 3600 + int(mm) * 60) * (1 if sign == "+" else -1)
    return (base - offset) * 1_000_000_000 + nanos


_utc_cache: dict[int, str] = {}
_local_cache: dict[int, str] = {}


def _cached(cache: dict[int, str], secs: int, render: Callable[[int], str]) -> str:
    text = cache.get(secs)
    if text is None:
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        text = cache[secs] = render(secs)
    return text


def format_iso8601_ns(ns: int) -> str:
    """UTC `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`, as Falco's JSON `time` (the `evt.time.iso8601`
    field ends in `+0000` instead)."""
    secs, nanos = divmod(ns, 1_000_000_000)
    head = _cached(_utc_cache, secs, lambda s: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)))
    return f"{head}.{nanos:09d}Z"


def format_local_time_ns(ns: int) -> str:
    """Local `HH:MM:SS.nnnnnnnnn`, as Falco's `evt.time` (the text output prefix)."""
    secs, nanos = divmod(ns, 1_000_000_000)
    head = _cached(_local_cache, secs, lambda s: time.strftime("%H:%M:%S", time.localtime(s)))
    return f"{head}.{nanos:09d}"
