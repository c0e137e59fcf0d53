import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from falconet.timestamps import (
    format_iso8601_ns,
    format_local_time_ns,
    format_times,
    parse_rfc3339_ns,
    reset_local_zone,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-11T15:45:00Z", 1773243900_000000000),
        ("2026-03-11T15:45:00.123456Z", 1773243900_123456000),
        ("2026-03-11T15:45:00.123456789Z", 1773243900_123456789),
        ("2026-03-11T16:45:00.5+01:00", 1773243900_500000000),
    ],
)
def test_parse_rfc3339_nano(text: str, expected: int) -> None:
    assert parse_rfc3339_ns(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        None,
        17,
        "",
        "2026-03-11",
        "2026-13-11T15:45:00Z",
        "2026-02-30T15:45:00Z",
        "2026-03-11T15:45:00",
        "2026-03-11T15:45:00.Z",
        "2026-03-11 15:45:00Z",
        "2026-03-11T15:45:00+0100",
    ],
)
def test_rejects_what_go_rejects(text: object) -> None:
    assert parse_rfc3339_ns(text) is None


def test_format_iso8601_roundtrip() -> None:
    ns = parse_rfc3339_ns("2026-03-11T15:45:00.000000042Z")
    assert ns is not None
    assert format_iso8601_ns(ns) == "2026-03-11T15:45:00.000000042Z"


# --- the arithmetic parser and formatter against datetime ----------------------------------------
# Parsing and formatting are arithmetic (an alert costs a parse and two renderings, and caches keyed
# by the second miss when batches are unsorted). These properties pin them to what `datetime` and
# the C library say, for every form: fractions of any length, offsets, leap days, the first and last
# years, and text that is almost a timestamp.

_STAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.([0-9]+))?(?:Z|([+-])(\d{2}):(\d{2}))"
)
_EPOCH = datetime(1970, 1, 1)


def _reference_ns(value: object) -> int | None:
    """What falconet has always accepted (Go's RFC3339Nano, with Python's `\\d` in the date and the
    zone), computed with `datetime`."""
    if not isinstance(value, str):
        return None
    m = _STAMP.fullmatch(value)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        moment = datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    offset = 0
    if m[8]:
        hh, mm = int(m[9]), int(m[10])
        if hh > 23 or mm > 59:
            return None
        offset = (hh * 3600 + mm * 60) * (1 if m[8] == "+" else -1)
    seconds = (moment - _EPOCH) // timedelta(seconds=1) - offset
    return seconds * 1_000_000_000 + int(((m[7] or "") + "000000000")[:9])


_two = st.integers(0, 99).map(lambda n: f"{n:02d}")
_stamps = st.builds(
    lambda year, month, day, hour, minute, second, fraction, zone: (
        f"{year}-{month}-{day}T{hour}:{minute}:{second}{fraction}{zone}"
    ),
    st.one_of(st.integers(0, 9999).map(lambda n: f"{n:04d}"), st.sampled_from(["2024", "0001"])),
    st.one_of(st.integers(0, 13).map(lambda n: f"{n:02d}"), _two),
    st.one_of(st.integers(0, 32).map(lambda n: f"{n:02d}"), st.just("29")),
    st.one_of(st.integers(0, 24).map(lambda n: f"{n:02d}"), _two),
    st.one_of(st.integers(0, 60).map(lambda n: f"{n:02d}"), _two),
    st.one_of(st.integers(0, 61).map(lambda n: f"{n:02d}"), _two),
    st.one_of(st.just(""), st.just("."), st.from_regex(r"\A\.[0-9]{1,14}\Z")),
    st.one_of(
        st.sampled_from(["Z", "", "z", "+00:00", "-00:00", "+0100", "+01:00Z"]),
        st.builds(lambda s, h, m: f"{s}{h}:{m}", st.sampled_from("+-"), _two, _two),
    ),
)


def _mutated(stamp: str, where: int, what: str) -> str:
    where %= len(stamp) + 1
    return stamp[:where] + what + stamp[where + 1 :]


@given(
    st.one_of(
        _stamps,
        st.builds(_mutated, _stamps, st.integers(0, 40), st.sampled_from(list("0 -:.T+Z٣") + [""])),
        st.text(max_size=40),
    )
)
def test_parse_agrees_with_datetime(text: str) -> None:
    assert parse_rfc3339_ns(text) == _reference_ns(text)


_SECONDS = st.integers(
    (datetime(1, 1, 1) - _EPOCH) // timedelta(seconds=1),
    (datetime(9999, 12, 31, 23, 59, 59) - _EPOCH) // timedelta(seconds=1),
)


@given(_SECONDS, st.integers(0, 999_999_999))
def test_format_agrees_with_datetime_and_parses_back(seconds: int, nanos: int) -> None:
    ns = seconds * 1_000_000_000 + nanos
    moment = _EPOCH + timedelta(seconds=seconds)
    # The C library's %Y, which this replaced, does not pad years below 1000.
    expected = f"{moment.year}-{moment:%m-%dT%H:%M:%S}.{nanos:09d}Z"
    assert format_iso8601_ns(ns) == expected
    assert format_times(ns)[0] == expected
    if moment.year >= 1000:
        assert parse_rfc3339_ns(expected) == ns


@contextmanager
def _zone(name: str) -> Iterator[None]:
    saved = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    reset_local_zone()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()
        reset_local_zone()


# Zones with daylight saving, half-hour and 45-minute offsets, a half-hour DST shift, historical
# local mean time (offsets in seconds), and leap seconds counted in the clock (right/).
ZONES = [
    "UTC",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "Africa/Abidjan",
    "Europe/Amsterdam",
    "right/Europe/Paris",
]


@pytest.mark.skipif(not Path("/usr/share/zoneinfo/right/UTC").exists(), reason="no tzdata")
@pytest.mark.parametrize("zone", ZONES)
@settings(max_examples=300)
@given(seconds=_SECONDS, nanos=st.integers(0, 999_999_999), near=st.booleans())
def test_local_time_agrees_with_the_c_library(
    zone: str, seconds: int, nanos: int, near: bool
) -> None:
    if near:  # around the DST changes of recent years
        seconds = 1_700_000_000 + seconds % 300_000_000
    with _zone(zone):
        ns = seconds * 1_000_000_000 + nanos
        expected = f"{time.strftime('%H:%M:%S', time.localtime(seconds))}.{nanos:09d}"
        assert format_local_time_ns(ns) == expected
        assert format_times(ns)[1] == expected


def test_times_outside_years_1_to_9999_are_rendered_as_before() -> None:
    first = (datetime(1, 1, 1) - _EPOCH) // timedelta(seconds=1)
    assert format_iso8601_ns((first - 1) * 1_000_000_000) == "0-12-31T23:59:59.000000000Z"
    assert parse_rfc3339_ns("0001-01-01T00:00:00+00:01") == (first - 60) * 1_000_000_000
    assert format_iso8601_ns(parse_rfc3339_ns("9999-12-31T23:59:59-00:01") or 0) == (
        "10000-01-01T00:00:59.000000000Z"
    )


@pytest.mark.skipif(not Path("/usr/share/zoneinfo/right/UTC").exists(), reason="no tzdata")
@pytest.mark.parametrize(
    ("zone", "instant"),
    [
        ("right/UTC", 1_483_228_826),  # the leap second 2016-12-31T23:59:60, counted by the clock
        ("Africa/Abidjan", -1_830_383_032),  # local mean time (-0:16:08) ends, mid quarter hour
        ("America/New_York", 1_772_953_200),  # 2026-03-08 02:00 EST -> 03:00 EDT
        ("Australia/Lord_Howe", 1_775_921_400),  # 2026-04-05: the half-hour shift back
        ("America/St_Johns", 544_591_860),  # 1987: DST began at 00:01 local, mid quarter hour
        ("Antarctica/Casey", 1_601_740_860),  # 2020: +08 -> +11 one minute past a quarter
    ],
)
def test_local_time_every_second_around_a_change(zone: str, instant: int) -> None:
    with _zone(zone):
        for seconds in range(instant - 1000, instant + 1000):
            expected = f"{time.strftime('%H:%M:%S', time.localtime(seconds))}.000000007"
            assert format_local_time_ns(seconds * 1_000_000_000 + 7) == expected, seconds
