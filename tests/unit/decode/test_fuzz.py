"""Fuzz-style properties: no input crashes, hangs or escapes the accounting of the decoder."""

from __future__ import annotations

import copy
import gzip
import zlib

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from falconet.decode import LIMIT_DEPTH, LIMIT_RATIO, NOT_AUDIT_EVENT, NOT_JSON, DecodeLimits
from tests.unit.decode.wrap import (
    aks_eventhub,
    awslogs_event,
    check_accounting,
    export_lines,
    firehose_object,
    gz,
    jsonl,
    load_events,
    run,
)

EVENTS = load_events()
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SEEDS = [
    jsonl(EVENTS),
    gz(jsonl(EVENTS)),
    firehose_object(copy.deepcopy(EVENTS)),
    awslogs_event(copy.deepcopy(EVENTS)),
    export_lines(EVENTS),
    aks_eventhub(copy.deepcopy(EVENTS)),
    orjson.dumps({"kind": "EventList", "items": EVENTS}, option=orjson.OPT_INDENT_2),
]


def _decode_ok(data: bytes | list[bytes]) -> None:
    events, _, stats = run(data)
    check_accounting(stats)
    assert len(events) == stats.events
    for event in events:
        assert event["kind"] == "Event"


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes(data: bytes) -> None:
    _decode_ok(data)


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_behind_a_gzip_magic(data: bytes) -> None:
    _decode_ok(b"\x1f\x8b" + data)


@FUZZ
@given(st.sampled_from(SEEDS), st.data())
def test_truncated_and_mutated_real_inputs(seed: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(seed)))
    flips = data.draw(
        st.lists(st.tuples(st.integers(0, len(seed) - 1), st.integers(0, 255)), max_size=4)
    )
    mutated = bytearray(seed[:cut])
    for position, value in flips:
        if position < len(mutated):
            mutated[position] = value
    chunk = data.draw(st.integers(1, 5000))
    _decode_ok([bytes(mutated[i : i + chunk]) for i in range(0, len(mutated), chunk)])


@FUZZ
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "kind",
                        "items",
                        "records",
                        "logEvents",
                        "messageType",
                        "message",
                        "data",
                        "protoPayload",
                        "awslogs",
                        "category",
                        "properties",
                        "log",
                        "resource",
                        "specversion",
                        "x",
                    ]
                ),
                children,
                max_size=5,
            )
        ),
        max_leaves=30,
    )
)
def test_random_json_shaped_like_envelopes(value: object) -> None:
    _decode_ok(orjson.dumps(value))


def test_deep_nesting_never_raises_recursion_error() -> None:
    for depth in (10, 200, 1000, 1024, 1025, 5000, 100_000):
        for opener, closer in ((b"[", b"]"), (b'{"kind":"EventList","items":[', b"]}")):
            doc = opener * depth + closer * depth
            events, _, stats = run(doc)
            assert events == []
            assert set(stats.rejected) <= {NOT_JSON, NOT_AUDIT_EVENT, LIMIT_DEPTH}
            if depth > 1024:  # past orjson's limit: Falco's reader names the reason
                assert set(stats.rejected) == {LIMIT_DEPTH}
            check_accounting(stats)
            # the same inside envelopes
            _decode_ok(orjson.dumps({"awslogs": {"data": ""}})[:0] + gz(doc))


_DEEP = b"[" * 1000 + b"]" * 1000
_TS = b'"stageTimestamp":"2024-01-01T00:00:00Z"'


@pytest.mark.parametrize(
    "line",
    [
        b'{"x":' + _DEEP + b"}",  # not an audit event: the detail shows a snippet of it
        b'{"kind":"Event","auditID":' + _DEEP + b"}",  # no stageTimestamp: the detail is its id
        b'{"kind":"Event",' + _TS + b',"auditID":' + _DEEP + b',"x":"' + b"a" * 300_000 + b'"}',
        b'{"kind":"EventList","items":[{"kind":"Event",'
        + _TS
        + b',"auditID":'
        + _DEEP
        + b',"x":"'
        + b"a" * 300_000
        + b'"}]}',
        b'{"messageType":' + _DEEP + b',"logEvents":[]}',
    ],
    ids=["snippet", "bad-timestamp", "too-large", "too-large-item", "message-type"],
)
def test_a_value_nested_1000_deep_in_a_problems_detail_never_raises(line: bytes) -> None:
    # Found reading the decoders for their fuzz target: the details of these problems were the
    # value's repr or str, which raise RecursionError 1000 levels deep (orjson parses to 1024).
    events, _, stats = run(line)
    assert events == [] and stats.rejected_total == 1
    assert "nested over 255 levels" in stats.problems[0].detail
    check_accounting(stats)


def test_deep_nesting_inside_an_event_over_the_size_limit() -> None:
    # orjson serialises at most 255 levels: measuring such an event must not raise.
    inner: object = "x" * 300_000
    for _ in range(300):
        inner = [inner]
    event = {"kind": "Event", "stageTimestamp": "2024-01-01T00:00:00Z", "requestObject": inner}
    line = b'{"kind":"Event","stageTimestamp":"2024-01-01T00:00:00Z","requestObject":' + (
        b"[" * 300 + b'"' + b"x" * 300_000 + b'"' + b"]" * 300 + b"}"
    )
    assert orjson.loads(line) == event
    events, _, stats = run(line)
    assert events == [] and stats.rejected_total == 1


def test_huge_line_without_newline_is_bounded(monkeypatch) -> None:
    from falconet.decode import detect

    monkeypatch.setattr(detect, "HEAD_LIMIT", 1 << 16)
    chunks = (b'{"kind":"Event","a":"' if i == 0 else b"a" * 65536 for i in range(200))
    events, _, stats = run(chunks, limits=DecodeLimits(max_document_bytes=1 << 20))
    assert events == [] and stats.rejected_total == 1
    check_accounting(stats)


def test_gzip_bomb_streams() -> None:
    # 200 MB of blanks compress to ~200 KB (1000x): over the default ratio, the input stops there;
    # allowed a higher ratio, it is inflated in pieces and the member after it is read.
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b" " * (1 << 20)
    bomb = b"".join(compressor.compress(block) for _ in range(200)) + compressor.flush()
    data = bomb + gzip.compress(jsonl(EVENTS[:1]))
    events, _, stats = run(data)
    assert events == [] and stats.rejected == {LIMIT_RATIO: 1}
    events, _, stats = run(data, limits=DecodeLimits(max_inflate_ratio=2000))
    assert len(events) == 1 and stats.rejected_total == 0
    check_accounting(stats)


_TIMESTAMP_PARTS = st.sampled_from(
    [
        "2024-06-01T12:00:01",
        "2024-02-30T12:00:01",
        "2024-06-01T24:00:00",
        "2024-06-01 12:00:01",
        "٢٠٢٤-06-01T12:00:01",
        "1999-12-31T23:59:59",
        "2024-06-01T12:00:60",
        "2024-06-01T12:00:5٥",
        "2024-06-01T12:00:6x",
    ]
)
_TIMESTAMP_TAILS = st.sampled_from(
    [
        "Z",
        ".Z",
        ".1Z",
        ".123456Z",
        ".123456789123Z",
        ".12a4Z",
        ".١٢Z",
        "+02:00",
        ".5+02:00",
        ".5-25:00",
        "z",
        ".123456",
        "",
        ".123456ZZ",
    ]
)


@FUZZ
@given(
    st.one_of(
        st.tuples(_TIMESTAMP_PARTS, _TIMESTAMP_TAILS).map("".join),
        st.text(max_size=40),
        st.none(),
        st.integers(),
    )
)
def test_fast_timestamp_check_agrees_with_the_full_parser(value: object) -> None:
    from falconet.decode.records import valid_timestamp
    from falconet.timestamps import parse_rfc3339_ns

    assert valid_timestamp(value) == (parse_rfc3339_ns(value) is not None)


@FUZZ
@given(st.tuples(_TIMESTAMP_PARTS, _TIMESTAMP_TAILS).map("".join), st.booleans())
def test_decoders_inline_timestamp_checks_agree_with_the_full_parser(
    value: str, in_list: bool
) -> None:
    # The two hot loops inline valid_timestamp's fast path: JSON lines, and an EventList's items.
    from falconet.decode import DecodeStats, decode
    from falconet.timestamps import parse_rfc3339_ns

    event = {"kind": "Event", "auditID": "a", "stageTimestamp": value}
    body = {"kind": "EventList", "items": [event]} if in_list else event
    data = orjson.dumps(body) + b"\n"
    for _ in range(2):  # the second time, the minute is in the cache
        events = list(decode(data, stats=DecodeStats()))
        assert bool(events) == (parse_rfc3339_ns(value) is not None)


@pytest.mark.parametrize("head_limit", [None, 64])
def test_many_boundaries_inside_strings_cost_linear_time(monkeypatch, head_limit) -> None:
    # 20,000 `}{` inside one 600 KB string: trying each as a document end would parse ~6 GB.
    from falconet.decode import detect

    if head_limit:
        monkeypatch.setattr(detect, "HEAD_LIMIT", head_limit)
    crafted = b'{"kind":"Event","x":"' + b"}{ padding " * 20_000 + b'"}'
    good = orjson.dumps({**EVENTS[0]})
    events, _, stats = run(crafted + good)
    assert events == [EVENTS[0]]
    assert stats.rejected[NOT_JSON] >= 1
    check_accounting(stats)
