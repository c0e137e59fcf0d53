import pytest

from falconet.timestamps import format_iso8601_ns, parse_rfc3339_ns


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
