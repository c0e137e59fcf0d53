"""RFC 3339 timestamps with nanoseconds, as the k8saudit plugin reads and Falco prints them.

The plugin parses `stageTimestamp` with Go's `time.RFC3339Nano` layout and drops the event when that
fails; the parsed time is the event time (`jevt.rawtime`, `evt.time`, the alert's `time`).

Parsing and formatting are on the per-alert path and must stay cheap whatever order the events come
in (merged batches are not sorted) and however many days they span, so both are arithmetic on the
digits (no regex, `datetime` or `strftime` for the ASCII forms), with small caches keyed by the
minute: a day has 1,440 of them, so a batch spread over a day still hits. Text that is not the
plain ASCII form (digits of other scripts, which `\\d` and `int()` accept) and times outside years
1-9999 take the general path below, which gives the same answers as always.
"""

from __future__ import annotations

import re
import time
from datetime import date

_PREFIX = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\Z")
_ZONE = re.compile(r"([+-])(\d{2}):(\d{2})\Z")
_CACHE_MAX = 4096
_EPOCH_DAY = date(1970, 1, 1).toordinal()
_DIGITS = frozenset("0123456789")
_UNSEEN = -(10**15)  # not a cached value: a minute start and an offset are never this
# Seconds since the epoch at the start of each "YYYY-MM-DDTHH:MM" seen (None: not a valid one).
_minutes: dict[str, int | None] = {}
_DAYS_BEFORE_MONTH = (0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)


def _days(year: int, month: int, day: int) -> int | None:
    """Days from 1970-01-01 to a valid proleptic Gregorian date of years 1-9999, else None (what
    `date(year, month, day)` accepts)."""
    if not (1 <= year <= 9999 and 1 <= month <= 12 and day >= 1):
        return None
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if day > (29 if leap and month == 2 else _MONTH_DAYS[month]):
        return None
    y = year - 1
    return (
        y * 365
        + y // 4
        - y // 100
        + y // 400
        + _DAYS_BEFORE_MONTH[month]
        + (month > 2 and leap)
        + day
        - 719163  # 719163: days from 0001-01-01 to 1970-01-01
    )


_MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _minute(key: str) -> int | None:
    """Epoch seconds of an ASCII "YYYY-MM-DDTHH:MM", or None when it is not a valid one."""
    if (
        len(key) != 16
        or key[4] != "-"
        or key[7] != "-"
        or key[10] != "T"
        or key[13] != ":"
        or not _DIGITS.issuperset(key[:4] + key[5:7] + key[8:10] + key[11:13] + key[14:16])
    ):
        return None
    hour, minute = int(key[11:13]), int(key[14:16])
    if hour > 23 or minute > 59:
        return None
    days = _days(int(key[:4]), int(key[5:7]), int(key[8:10]))
    return None if days is None else (days * 24 + hour) * 3600 + minute * 60


def parse_rfc3339_ns(value: object) -> int | None:
    """Nanoseconds since the epoch for an RFC 3339 (nano) timestamp, or None if it is not one."""
    if type(value) is not str:
        if not isinstance(value, str):  # a `Sourced` str (decode.source) is read as its text
            return None
        value = str.__str__(value)
    if len(value) < 20:
        return None
    key = value[:16]
    base = _minutes.get(key, _UNSEEN)
    if base == _UNSEEN:
        base = _minute(key)
        if len(_minutes) >= _CACHE_MAX:
            _minutes.clear()
        _minutes[key] = base
    sec = value[17:19]
    if base is None or value[16] != ":" or not _DIGITS.issuperset(sec):
        return _parse_general(value)  # other digits than ASCII, or not a timestamp
    base += int(sec)
    if sec > "59":
        return None
    rest = value[19:]
    if rest[-1] == "Z":
        if rest == "Z":
            return base * 1_000_000_000
        digits = rest[1:-1]
        if rest[0] == "." and digits and _DIGITS.issuperset(digits):  # the usual form
            return base * 1_000_000_000 + int((digits + "00000000")[:9])
    elif len(rest) >= 6 and rest[-6] in "+-" and rest[-3] == ":":
        zone = rest[-5:-3] + rest[-2:]
        fraction = rest[:-6]
        digits = fraction[1:]
        if _DIGITS.issuperset(zone) and (
            not fraction or (fraction[0] == "." and digits and _DIGITS.issuperset(digits))
        ):
            hh, mm = int(zone[:2]), int(zone[2:])
            if hh > 23 or mm > 59:
                return None
            offset = hh * 3600 + mm * 60
            nanos = int((digits + "00000000")[:9]) if digits else 0
            if rest[-6] == "+":
                offset = -offset
            return (base + offset) * 1_000_000_000 + nanos
    return _parse_general(value)


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


def _parse_general(value: str) -> int | None:
    """`parse_rfc3339_ns` for any text: the forms the arithmetic path leaves out (digits of other
    scripts, which Python's `\\d` and `int()` accept) and everything that is not a timestamp."""
    base = _seconds(value[:19])
    if base is None:
        return None
    rest = value[19:]
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


# --------------------------------------------------------------------------------------------
# Formatting

_FIRST_SECOND = -62135596800  # 0001-01-01T00:00:00Z
_END_SECOND = 253402300800  # 10000-01-01T00:00:00Z


def _civil(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a day number counted from 1970-01-01 (proleptic Gregorian)."""
    z = days + 719468  # shifted to 0000-03-01, so a leap day is the last of its "year"
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def _utc_minute(minute: int) -> str:
    days, rest = divmod(minute, 1440)
    year, month, day = _civil(days)
    # glibc's %Y does not pad years below 1000: the same text as the strftime this replaces.
    return f"{year}-{month:02d}-{day:02d}T{rest // 60:02d}:{rest % 60:02d}"


def format_iso8601_ns(ns: int) -> str:
    """UTC `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`, as Falco's JSON `time` (the `evt.time.iso8601`
    field ends in `+0000` instead)."""
    return format_times(ns)[0]


def format_local_time_ns(ns: int) -> str:
    """Local `HH:MM:SS.nnnnnnnnn`, as Falco's `evt.time` (the text output prefix)."""
    return format_times(ns)[1]


def format_times(ns: int) -> tuple[str, str]:
    """`(format_iso8601_ns(ns), format_local_time_ns(ns))`: an alert needs both (its `time` and
    its output line's prefix), and they share the work."""
    secs, nanos = divmod(ns, 1_000_000_000)
    heads = _minute_heads.get(secs // 60)
    if heads is None:
        if not _FIRST_SECOND <= secs < _END_SECOND:
            return f"{_strftime_utc(secs)}.{nanos:09d}Z", f"{_strftime_local(secs)}.{nanos:09d}"
        if len(_minute_heads) >= _CACHE_MAX:
            _minute_heads.clear()
        heads = _minute_heads[secs // 60] = (_utc_minute(secs // 60), _local_minute(secs // 60))
    tail = f"{_SECONDS[secs % 60]}{nanos:09d}"
    utc, local_head = heads
    if local_head is None:  # the local offset changes inside this minute's quarter hour
        return f"{utc}{tail}Z", f"{_strftime_local(secs)}.{nanos:09d}"
    return f"{utc}{tail}Z", local_head + tail


_SECONDS = tuple(f":{s:02d}." for s in range(60))


def _strftime_utc(secs: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))


def _strftime_local(secs: int) -> str:
    return time.strftime("%H:%M:%S", time.localtime(secs))


# Local time: the UTC offset of each quarter hour, when one offset holds for the whole quarter (its
# first and last seconds render as that offset says: no zone change and no leap second inside, a
# whole number of minutes); else None, and those seconds are rendered by `strftime` one by one.
_QUARTER = 900
_local_offsets: dict[int, int | None] = {}
_minute_heads: dict[int, tuple[str, str | None]] = {}  # minute -> ("YYYY-MM-DDTHH:MM", "HH:MM")


def _hms(secs: int) -> str:
    rest = secs % 86400
    return f"{rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}"


def _quarter_offset(quarter: int) -> int | None:
    first = quarter * _QUARTER
    last = first + _QUARTER - 1
    try:
        offset = time.localtime(first).tm_gmtoff
        if offset is None or offset % 60:
            return None
        for s in (first, last):
            if _strftime_local(s) != _hms(s + offset):
                return None
    except (OverflowError, OSError, ValueError):
        return None
    return offset


def _local_minute(minute: int) -> str | None:
    quarter = minute * 60 // _QUARTER
    offset = _local_offsets.get(quarter, _UNSEEN)
    if offset == _UNSEEN:
        if len(_local_offsets) >= _CACHE_MAX:
            _local_offsets.clear()
        offset = _local_offsets[quarter] = _quarter_offset(quarter)
    if offset is None:
        return None
    return _hms(minute * 60 + offset)[:5]


def reset_local_zone() -> None:
    """Forget the local offsets learnt (after `time.tzset()` changed the zone)."""
    _local_offsets.clear()
    _minute_heads.clear()
