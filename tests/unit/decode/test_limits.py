"""Decode limits: what one input may cost, and how what they refuse is counted.

Each hostile input of the hardening issue (a nested gzip bomb, a small body holding millions of
records, a small object holding one huge document) is scaled down here so that it runs in
milliseconds once bounded; `bench/decode_hostile.py` measures the full-size ones.
"""

from __future__ import annotations

import base64
import copy
import gzip
import zlib
from collections.abc import Iterator

import orjson
import pytest

from falconet.decode import (
    BODY_LIMITS,
    LIMIT_DOCUMENT,
    LIMIT_INFLATED,
    LIMIT_LAYERS,
    LIMIT_RATIO,
    LIMIT_RECORDS,
    NOT_AUDIT_EVENT,
    OBJECT_LIMITS,
    DecodeLimits,
    DecodeStats,
    decode,
    decode_value,
)
from falconet.decode.limits import RATIO_FLOOR
from tests.unit.decode.wrap import (
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
LIMITS = {"body": BODY_LIMITS, "object": OBJECT_LIMITS}


def _event(n: int) -> dict:
    return {
        "kind": "Event",
        "auditID": f"id-{n}",
        "verb": "get",
        "stageTimestamp": "2024-06-01T12:00:00.000001Z",
        "requestURI": "/api/v1/namespaces/default/pods/" + "p" * 200,
    }


def _ids(events: list[dict]) -> list[str]:
    return [e["auditID"] for e in events]


def _blanks_member(size: int) -> bytes:
    """One gzip member of `size` blanks, compressed ~1000x."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b" " * (1 << 20)
    out = [compressor.compress(block) for _ in range(size >> 20)]
    return b"".join(out) + compressor.compress(b" " * (size % (1 << 20))) + compressor.flush()


def _chunks(data: bytes, size: int = 65536) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


# -- the cases of the issue ---------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["body", "object"])
def test_a_nested_gzip_bomb_stops_at_the_ratio_limit(kind: str) -> None:
    # The 170 KB that inflates to 100 GiB, scaled down: gzip of 16 members of 64 MiB
    # of blanks (1 GiB), ~3 KB. Before: inflated to the end, nothing counted.
    bomb = gz(_blanks_member(64 << 20) * 16)
    assert len(bomb) < 4096
    events, _, stats = run(bomb, name="bomb.gz", limits=LIMITS[kind])
    assert events == [] and stats.records == 1
    assert stats.rejected == {LIMIT_RATIO: 1}
    problem = stats.problems[0]
    assert problem.position == "bomb.gz:1"
    assert problem.detail.endswith(f"from {len(bomb)}: over 100x")
    assert int(problem.detail.split()[0]) <= RATIO_FLOOR + 2 * (256 << 10)


def test_events_before_a_bomb_are_kept_and_the_stop_is_counted_where_reading_stopped() -> None:
    good = jsonl([_event(n) for n in range(5)])
    data = gz(good) + _blanks_member(256 << 20)  # a bomb member after a good one
    for shape in (data, list(_chunks(data, 1000))):
        events, _, stats = run(shape, name="audit.gz")
        assert _ids(events) == [f"id-{n}" for n in range(5)]
        assert stats.rejected == {LIMIT_RATIO: 1}  # the blank tail it cut is not a record
        assert stats.problems[0].position == "audit.gz:6"  # the first line not read
        check_accounting(stats)


@pytest.mark.parametrize("kind", ["body", "object"])
def test_a_small_gzip_body_of_millions_of_records_is_refused(kind: str) -> None:
    # The 16 KB gzip body of 5.6 million empty objects (548 MB, seconds), scaled down to
    # 560,000: the document is never parsed, the inflater stops at the ratio limit.
    body = gzip.compress(b"[" + b"{}," * 560_000 + b"{}]")
    events, _, stats = run(body, limits=LIMITS[kind])
    assert events == [] and stats.rejected == {LIMIT_RATIO: 1}
    assert stats.records == 1


def test_records_over_the_body_limit_stop_the_input() -> None:
    # Not compressed, so under any ratio: 200,000 one-byte records in a 400 KB body.
    events, _, stats = run(b"0\n" * 200_000, limits=BODY_LIMITS)
    assert events == []
    assert stats.rejected == {NOT_AUDIT_EVENT: 100_000, LIMIT_RECORDS: 1}
    assert stats.records == 100_001
    check_accounting(stats)


def test_a_small_object_holding_one_huge_document_is_refused_unparsed() -> None:
    # The 61 KB object holding a 60 MiB document (2 GB of Python objects), scaled to
    # 20 MiB: over the 16 MiB document limit, dropped while read, never parsed.
    document = b"[" + b"{}," * (7 << 20) + b"{}]"
    assert len(document) > OBJECT_LIMITS.max_document_bytes
    events, _, stats = run(_chunks(document), name="o")
    assert events == [] and stats.rejected == {LIMIT_DOCUMENT: 1}
    assert str(stats.problems[0]) == "o:document 1: document over the size limit " + (
        f"(document over {16 << 20} bytes)"
    )


def test_a_base64_payload_bomb_in_a_body_is_refused() -> None:
    # A 20 KB body whose awslogs.data inflates to 21 MiB: refused by the ratio, never parsed.
    data = base64.b64encode(gzip.compress(b"[" + b"{}," * (7 << 20) + b"{}]")).decode()
    body = orjson.dumps({"awslogs": {"data": data}})
    events, _, stats = run(body, limits=BODY_LIMITS)
    assert events == [] and stats.rejected == {LIMIT_RATIO: 1}
    assert stats.problems[0].detail == "awslogs.data inflates over 100x"


# -- each limit on its own -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("layers", "kind", "refused"),
    [(2, "body", False), (3, "body", True), (3, "object", False), (4, "object", True)],
)
def test_gzip_nesting_limit(layers: int, kind: str, refused: bool) -> None:
    data = jsonl(copy.deepcopy(EVENTS))
    for _ in range(layers):
        data = gz(data)
    events, _, stats = run(data, limits=LIMITS[kind])
    if refused:
        # Before: the innermost gzip was read as text, and counted as lines that are not JSON.
        assert events == [] and stats.rejected == {LIMIT_LAYERS: 1}
        assert stats.problems[0].detail == f"more than {layers - 1} gzip layers"
    else:
        assert events == EVENTS and stats.rejected_total == 0


def test_no_gzip_at_all_when_no_layer_is_allowed() -> None:
    limits = DecodeLimits(max_gzip_layers=0)
    events, _, stats = run(gz(jsonl(EVENTS)), limits=limits)
    assert events == [] and stats.rejected == {LIMIT_LAYERS: 1}
    events, _, stats = run(jsonl(EVENTS), limits=limits)
    assert events == EVENTS


def test_inflated_size_limit_keeps_what_came_before() -> None:
    lines = jsonl([_event(n) for n in range(20_000)])  # ~5.5 MB, compresses well under 100x
    limits = DecodeLimits(max_inflated_bytes=2 << 20)
    events, _, stats = run(gz(lines), limits=limits)
    assert 0 < len(events) < 20_000
    assert _ids(events) == [f"id-{n}" for n in range(len(events))]
    assert stats.rejected == {LIMIT_INFLATED: 1}
    assert stats.problems[0].position == f"t:{len(events) + 1}"
    assert stats.problems[0].detail == f"over {2 << 20} bytes inflated"
    assert sum(len(orjson.dumps(e)) + 1 for e in events) <= 2 << 20
    check_accounting(stats)


def test_the_ratio_is_checked_only_past_its_floor() -> None:
    # A small gzip of blank-padded JSON inflates far over 100x: legitimately.
    padded = orjson.dumps(_event(1)) + b" " * (RATIO_FLOOR // 2) + b"\n"
    events, _, stats = run(gz(padded), limits=BODY_LIMITS)
    assert _ids(events) == ["id-1"] and stats.rejected_total == 0
    assert len(padded) > 100 * len(gz(padded))


@pytest.mark.parametrize(
    "shape", ["lines", "gzip", "array", "eventlist", "documents", "pretty", "export"]
)
def test_record_limit_in_every_framing(shape: str) -> None:
    events = [_event(n) for n in range(10)]
    if shape == "lines":
        data, position = jsonl(events), "t:5"
    elif shape == "gzip":
        data, position = gz(jsonl(events)), "t:5"
    elif shape == "array":
        data, position = orjson.dumps(events), "t:1"
    elif shape == "eventlist":
        data, position = orjson.dumps({"kind": "EventList", "items": events}), "t:1"
    elif shape == "documents":  # back to back, as Firehose writes
        data, position = b"".join(orjson.dumps(e) for e in events), "t:1"
    elif shape == "pretty":
        data = b"\n".join(orjson.dumps(e, option=orjson.OPT_INDENT_2) for e in events)
        position = "t:document 5"
    else:
        data, position = export_lines(events), "t:5"
    got, _, stats = run(data, limits=DecodeLimits(max_records=4))
    assert _ids(got) == ["id-0", "id-1", "id-2", "id-3"]
    assert stats.rejected == {LIMIT_RECORDS: 1} and stats.records == 5
    assert str(stats.problems[0]) == (
        f"{position}: input over the record limit (stopped after 4 records)"
    )


def test_record_limit_counts_envelope_records_and_stops_at_the_next_line() -> None:
    # A Firehose object: one envelope's log events are finished, then the input stops.
    data = firehose_object(copy.deepcopy(EVENTS), per_record=3)
    got, _, stats = run(data, limits=DecodeLimits(max_records=2))
    assert stats.rejected[LIMIT_RECORDS] == 1
    assert stats.records <= 2 + 3 + 1  # the control message, one envelope, the refusal
    check_accounting(stats)
    assert 0 < len(got) <= 3 and _ids(got) == _ids(EVENTS[: len(got)])


def test_record_limit_is_per_input_when_stats_are_shared() -> None:
    stats = DecodeStats()
    limits = DecodeLimits(max_records=3)
    for _ in range(2):  # `falconet scan` shares one DecodeStats across its inputs
        got = [
            e for e, _ in decode(jsonl([_event(n) for n in range(3)]), stats=stats, limits=limits)
        ]
        assert len(got) == 3
    assert stats.rejected_total == 0 and stats.events == 6


def test_record_limit_of_a_value_already_parsed() -> None:
    # A structured CloudEvent's data, parsed by the HTTP layer: run_value decodes it.
    stats = DecodeStats()
    value = {"kind": "EventList", "items": [_event(n) for n in range(5)]}
    got = list(decode_value(value, stats=stats, limits=DecodeLimits(max_records=2)))
    assert [e["auditID"] for e, _ in got] == ["id-0", "id-1"]
    assert stats.rejected == {LIMIT_RECORDS: 1}


def test_awslogs_payload_over_the_document_limit() -> None:
    # Random base64 text does not compress: the ratio allows it, the document limit does not.
    message = base64.b64encode(bytes(range(256)) * 400).decode()
    body = awslogs_event([{"kind": "Event", "x": message}])
    _, _, stats = run(body, limits=DecodeLimits(max_document_bytes=1 << 16))
    assert stats.rejected == {LIMIT_DOCUMENT: 1}
    assert stats.problems[0].detail == "awslogs.data inflates over 65536 bytes"


def test_payloads_share_the_inputs_inflated_budget() -> None:
    # Each payload is small; together they pass the input's limit, and only the excess is refused.
    line = awslogs_event([_event(1)]) + b"\n"
    limits = DecodeLimits(max_inflated_bytes=10_000, max_inflate_ratio=10_000)
    got, _, stats = run(line * 100, limits=limits)
    assert 0 < len(got) < 100
    assert stats.rejected == {LIMIT_INFLATED: 100 - len(got)}
    assert stats.problems[0].detail == "awslogs.data inflates over 10000 bytes"


def test_a_whole_input_over_the_document_limit_is_read_in_chunks() -> None:
    # An in-memory body is parsed in one piece only when it is within the document limit.
    items = [_event(n) for n in range(400)]
    body = orjson.dumps({"kind": "EventList", "items": items})
    limits = DecodeLimits(max_document_bytes=1 << 16)
    assert len(body) > 1 << 16
    events, _, stats = run(body, limits=limits)
    assert events == [] and stats.rejected == {LIMIT_DOCUMENT: 1}
    events, _, stats = run(body)
    assert len(events) == 400


@pytest.mark.parametrize(
    "values",
    [
        {"max_records": 0},
        {"max_inflate_ratio": 0},
        {"max_inflated_bytes": -1},
        {"max_gzip_layers": -1},
        {"max_document_bytes": 1000},
        {"max_records": 1.5},
    ],
)
def test_limits_out_of_range_are_refused(values: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(values))):
        DecodeLimits(**values)


def test_empty_gzip_members_cost_linear_time_and_content_between_them_is_read() -> None:
    # Each member ends with the rest of the inflater's input copied; fed whole chunks, a stream
    # of tiny members copied O(chunk) per member. Empty members around real ones change nothing.
    empty = gzip.compress(b"", mtime=0)
    data = empty * 3000 + gz(jsonl(EVENTS[:2])) + empty * 3000 + gz(jsonl(EVENTS[2:]))
    for size in (1, 7, 4096, len(data)):
        events, _, stats = run(list(_chunks(data, size)) if size < len(data) else data)
        assert events == EVENTS and stats.rejected_total == 0
