"""JSON lines, documents, gzip framing and the per-event checks (timestamp, size, order)."""

from __future__ import annotations

import copy
import gzip

import orjson
import pytest

from falconet.decode import (
    BAD_COMPRESSION,
    BAD_TIMESTAMP,
    LIMIT_DOCUMENT,
    MAX_EVENT_BYTES,
    NOT_AUDIT_EVENT,
    NOT_JSON,
    TOO_LARGE,
    DecodeLimits,
)
from tests.unit.decode.wrap import check_accounting, gz, jsonl, load_events, run

EVENTS = load_events()


def _event(n: int, **extra: object) -> dict:
    return {
        "kind": "Event",
        "auditID": f"id-{n}",
        "stage": "ResponseComplete",
        "verb": "get",
        "stageTimestamp": "2024-06-01T12:00:00.000001Z",
        **extra,
    }


def test_order_is_preserved_across_mixed_shapes() -> None:
    lines = [
        orjson.dumps(_event(1)),
        orjson.dumps([_event(2), _event(3)]),
        orjson.dumps({"kind": "EventList", "items": [_event(4), _event(5)]}),
        orjson.dumps(_event(6)),
    ]
    events, _, stats = run(b"\n".join(lines))
    assert [e["auditID"] for e in events] == [f"id-{i}" for i in range(1, 7)]
    assert stats.records == 6
    check_accounting(stats)


def test_bad_lines_are_counted_with_their_position_and_the_rest_kept() -> None:
    data = b"\n".join(
        [
            orjson.dumps(_event(1)),
            b"{not json",
            b"",
            b"   ",
            orjson.dumps({"kind": 0}),  # Falco's fal_01_003 regression fixture
            orjson.dumps(_event(2, stageTimestamp="yesterday")),
            orjson.dumps({k: v for k, v in _event(3).items() if k != "stageTimestamp"}),
            orjson.dumps(_event(4)),
        ]
    )
    events, _, stats = run(data, name="audit.log")
    assert [e["auditID"] for e in events] == ["id-1", "id-4"]
    assert stats.rejected == {NOT_JSON: 1, NOT_AUDIT_EVENT: 1, BAD_TIMESTAMP: 2}
    assert [p.position for p in stats.problems] == [
        "audit.log:2",
        "audit.log:5",
        "audit.log:6",
        "audit.log:7",
    ]
    assert stats.problems[2].detail == "id-2"
    check_accounting(stats)


def test_one_bad_element_costs_only_that_element() -> None:
    # Deliberate difference from Falco, which drops the whole line.
    array = [_event(1), {"kind": "Pod"}, 42, _event(2, stageTimestamp=None), _event(3)]
    events, _, stats = run(orjson.dumps(array))
    assert [e["auditID"] for e in events] == ["id-1", "id-3"]
    assert stats.rejected == {NOT_AUDIT_EVENT: 2, BAD_TIMESTAMP: 1}
    check_accounting(stats)


def test_eventlist_without_items_is_not_an_audit_event() -> None:
    _, _, stats = run(orjson.dumps({"kind": "EventList", "items": "x"}))
    assert stats.rejected == {NOT_AUDIT_EVENT: 1}


def _big_event(n: int, size: int) -> dict:
    return _event(n, requestObject={"data": "x" * size})


@pytest.mark.parametrize("wrap", ["line", "array", "eventlist", "pretty"])
def test_size_limit_is_on_the_compact_event(wrap: str) -> None:
    small = _big_event(1, MAX_EVENT_BYTES - 400)  # just under the limit once compact
    big = _big_event(2, MAX_EVENT_BYTES)
    assert len(orjson.dumps(small)) <= MAX_EVENT_BYTES < len(orjson.dumps(big))
    if wrap == "line":
        data = jsonl([small, big, _event(3)])
    elif wrap == "array":
        data = orjson.dumps([small, big, _event(3)])
    elif wrap == "eventlist":
        data = orjson.dumps({"kind": "EventList", "items": [small, big, _event(3)]})
    else:  # indentation makes the document bigger than the limit, not the event
        data = orjson.dumps([small, _event(3)], option=orjson.OPT_INDENT_2)
    events, _, stats = run(data)
    expected = ["id-1", "id-3"]
    assert [e["auditID"] for e in events] == expected
    assert stats.rejected == ({} if wrap == "pretty" else {TOO_LARGE: 1})
    check_accounting(stats)


def test_multi_member_gzip_with_member_boundaries_anywhere() -> None:
    events = copy.deepcopy(EVENTS)
    data = b"".join(gz(jsonl([e])) for e in events)
    for size in (1, 2, 3, 1000):
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        got, _, stats = run(chunks)
        assert got == EVENTS
        assert stats.rejected_total == 0


def test_gzip_member_may_end_mid_line() -> None:
    text = jsonl(copy.deepcopy(EVENTS))
    cut = len(text) // 2 + 3
    got, _, _ = run(gz(text[:cut]) + gz(text[cut:]))
    assert got == EVENTS


def test_truncated_gzip_keeps_what_came_before_and_counts_the_damage() -> None:
    data = gz(jsonl(copy.deepcopy(EVENTS) * 50))
    got, _, stats = run(data[: len(data) * 2 // 3])
    assert 0 < len(got) < 200
    assert got == (EVENTS * 50)[: len(got)]
    assert stats.rejected[BAD_COMPRESSION] == 1
    check_accounting(stats)


def test_corrupt_gzip_is_counted() -> None:
    data = bytearray(gz(jsonl(copy.deepcopy(EVENTS))))
    data[20:40] = b"\xff" * 20
    _, _, stats = run(bytes(data))
    assert stats.rejected[BAD_COMPRESSION] == 1
    check_accounting(stats)


def test_garbage_after_gzip_is_counted_and_zero_padding_is_not() -> None:
    data = gz(jsonl(copy.deepcopy(EVENTS)))
    got, _, stats = run(data + b"\x00" * 100)
    assert got == EVENTS and stats.rejected_total == 0
    got, _, stats = run(data + b"trailing junk")
    assert got == EVENTS and stats.rejected == {BAD_COMPRESSION: 1}


def test_format_is_detected_from_content_not_name() -> None:
    data = gz(jsonl(copy.deepcopy(EVENTS)))
    got, _, _ = run(data, name="audit.log")  # gzip without a .gz name
    assert got == EVENTS
    got, _, stats = run(gzip.decompress(data), name="audit.log.gz")  # plain with a .gz name
    assert got == EVENTS and stats.rejected_total == 0


@pytest.mark.parametrize("shape", ["chunks", "bytes"])
def test_line_over_the_document_limit_is_dropped_while_read(shape: str) -> None:
    huge = b'{"kind":"Event","x":"' + b"a" * 500_000 + b'"}'
    data = jsonl([_event(1)]) + huge + b"\n" + jsonl([_event(2)])
    chunks = [data[i : i + 4096] for i in range(0, len(data), 4096)]
    limits = DecodeLimits(max_document_bytes=100_000)
    # In memory, an input over the limit is not held whole: it is read in chunks too.
    got, _, stats = run(chunks if shape == "chunks" else data, limits=limits)
    assert [e["auditID"] for e in got] == ["id-1", "id-2"]
    assert stats.rejected == {LIMIT_DOCUMENT: 1}
    assert str(stats.problems[0]) == "t:2: document over the size limit (line over 100000 bytes)"


def test_concatenated_documents_with_braces_inside_strings() -> None:
    # `}{` inside a string must not split a document.
    first = _event(1, requestURI="/x?q=}{", annotations={"a": "}{]["})
    data = orjson.dumps(first) + orjson.dumps(_event(2)) + b"\n\n" + orjson.dumps(_event(3))
    got, _, stats = run(data)
    assert [e["auditID"] for e in got] == ["id-1", "id-2", "id-3"]
    assert got[0] == first
    assert stats.rejected_total == 0


@pytest.mark.parametrize(("head_limit", "position"), [(None, "t:1"), (16, "t:document 2")])
def test_damaged_document_in_a_stream_is_counted_and_the_next_ones_kept(
    monkeypatch, head_limit: int | None, position: str
) -> None:
    # Short input: one line split into documents; past HEAD_LIMIT: DOCUMENTS framing.
    from falconet.decode import detect

    if head_limit:
        monkeypatch.setattr(detect, "HEAD_LIMIT", head_limit)
    data = orjson.dumps(_event(1)) + b'{"kind":"Event",,}' + orjson.dumps(_event(2))
    got, _, stats = run(data)
    assert [e["auditID"] for e in got] == ["id-1", "id-2"]
    assert stats.rejected == {NOT_JSON: 1}
    assert stats.problems[0].position == position


def test_truncated_last_document_is_counted() -> None:
    data = orjson.dumps(_event(1)) + orjson.dumps(_event(2))[:-5]
    got, _, stats = run(data)
    assert [e["auditID"] for e in got] == ["id-1"]
    assert stats.rejected == {NOT_JSON: 1}


def test_empty_inputs() -> None:
    for data in (b"", b"\n\n  \n", gz(b""), [], [b""]):
        got, _, stats = run(data)
        assert got == [] and stats.records == 0


def test_legacy_text_format_is_rejected_per_line() -> None:
    data = b'AUDIT: id="1" stage="ResponseComplete" ip="1.2.3.4" method="get"\n' * 3
    got, _, stats = run(data)
    assert got == [] and stats.rejected == {NOT_JSON: 3}


@pytest.mark.parametrize("chunk", [1, 2, 100])
def test_positions_count_leading_blank_lines(chunk: int) -> None:
    data = b"\n \n\n" + b"{bad\n" + orjson.dumps(_event(1)) + b"\n"
    got, _, stats = run([data[i : i + chunk] for i in range(0, len(data), chunk)])
    assert [e["auditID"] for e in got] == ["id-1"]
    assert [p.position for p in stats.problems] == ["t:4"]


@pytest.mark.parametrize("chunk", [1, 2, 3, 100])
def test_only_json_blanks_are_dropped_before_the_first_line(chunk: int) -> None:
    # Found by fuzzing: a \v (not JSON whitespace) was dropped with the blanks before the head
    # when it arrived in a chunk of its own, and refused with its line when it did not.
    data = b"\t\x0b\t2\n" + orjson.dumps(_event(1)) + b"\n"
    for given in (data, [data[i : i + chunk] for i in range(0, len(data), chunk)]):
        got, _, stats = run(given)
        assert [e["auditID"] for e in got] == ["id-1"]
        assert stats.rejected == {NOT_JSON: 1} and stats.problems[0].position == "t:1"
    got, _, stats = run([b" ", b"\x0c", b" "])
    assert got == [] and stats.rejected == {NOT_JSON: 1}


@pytest.mark.parametrize(
    ("separators", "tail", "fragments"),
    [
        ([b"", b"\n\n", b""], b"", 0),  # compact first, blanks later: falls back to the regex
        ([b"", b"", b" \r\n "], b"", 0),
        ([b"", b"", b""], b"x", 1),  # garbage after the last document
        ([b"", b"", b""], b"}{", 2),  # "<doc 4>}" and "{"
    ],
)
def test_back_to_back_documents_with_mixed_separators(
    separators: list, tail: bytes, fragments: int
) -> None:
    docs = [orjson.dumps(_event(i)) for i in range(1, 5)]
    data = docs[0]
    for sep, doc in zip(separators, docs[1:], strict=True):
        data += sep + doc
    data += tail
    for chunk in (3, 64, len(data)):
        got, _, stats = run([data[i : i + chunk] for i in range(0, len(data), chunk)])
        ids = [e["auditID"] for e in got]
        if tail:
            assert ids == ["id-1", "id-2", "id-3"]  # the last one shares its text with garbage
            assert stats.rejected == {NOT_JSON: fragments}
        else:
            assert ids == ["id-1", "id-2", "id-3", "id-4"]
            assert stats.rejected_total == 0
        check_accounting(stats)


@pytest.mark.parametrize("chunk", [1, 2, 4096])
@pytest.mark.parametrize("pretty", [False, True])
def test_utf8_byte_order_mark_is_ignored(chunk: int, pretty: bool) -> None:
    body = orjson.dumps(EVENTS, option=orjson.OPT_INDENT_2) if pretty else jsonl(EVENTS)
    data = b"\xef\xbb\xbf" + body
    got, _, stats = run([data[i : i + chunk] for i in range(0, len(data), chunk)])
    assert got == EVENTS and stats.rejected_total == 0


@pytest.mark.parametrize("where", [0, 200, 399])
@pytest.mark.parametrize("chunked", [False, True])
def test_large_eventlist_with_one_oversized_item(where: int, chunked: bool) -> None:
    # A 400-event webhook body well over the limit: items are measured only while the bytes not
    # yet accounted for could hold an event over it, which must still catch the one that is.
    items = [_event(n, requestURI="/api/v1/" + "p" * 1500) for n in range(400)]
    items[where] = _big_event(where, MAX_EVENT_BYTES)
    body = orjson.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items})
    assert len(body) > 3 * MAX_EVENT_BYTES
    data = [body[i : i + 65536] for i in range(0, len(body), 65536)] if chunked else body
    events, _, stats = run(data)
    assert [e["auditID"] for e in events] == [f"id-{n}" for n in range(400) if n != where]
    assert stats.rejected == {TOO_LARGE: 1}
    assert stats.problems[0].detail.startswith(f"{len(orjson.dumps(items[where]))} bytes")
    check_accounting(stats)


@pytest.mark.parametrize("size", [MAX_EVENT_BYTES - 1, MAX_EVENT_BYTES, MAX_EVENT_BYTES + 1])
@pytest.mark.parametrize("newline", [b"", b"\n", b"\r\n"])
def test_size_limit_is_exact_at_the_boundary(size: int, newline: bytes) -> None:
    # Lines keep their newline while decoded: the limit is still on the compact event alone.
    event = _event(1)
    event["requestObject"] = {"data": ""}
    event["requestObject"]["data"] = "x" * (size - len(orjson.dumps(event)))
    assert len(orjson.dumps(event)) == size
    events, _, stats = run(orjson.dumps(event) + newline)
    assert len(events) == (size <= MAX_EVENT_BYTES)
    assert stats.rejected == ({} if size <= MAX_EVENT_BYTES else {TOO_LARGE: 1})


def test_lines_are_read_the_same_whatever_the_chunking() -> None:
    lines = [
        orjson.dumps(_event(1)),
        b"",
        b"{bad",
        b"  ",
        orjson.dumps(_event(2)) + b"\r",
        orjson.dumps({"kind": "EventList", "items": [_event(3), _event(4)]}),
        orjson.dumps(_event(5)) + orjson.dumps(_event(6)),  # two documents on one line
        orjson.dumps(_event(7, stageTimestamp="2024-02-30T12:00:00.000001Z")),
        orjson.dumps(_event(8)),
    ]
    data = b"\n".join(lines)  # the last line has no newline
    expected = ["id-1", "id-2", "id-3", "id-4", "id-5", "id-6", "id-8"]
    for chunk in (1, 2, 7, 100, 4096, len(data)):
        for shape in ("chunks", "bytes", "gzip"):
            if shape == "bytes" and chunk != len(data):
                continue
            pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
            events, _, stats = run(
                data if shape == "bytes" else gz(data) if shape == "gzip" else pieces
            )
            assert [e["auditID"] for e in events] == expected, (chunk, shape)
            assert stats.rejected == {NOT_JSON: 1, BAD_TIMESTAMP: 1}
            assert [p.position for p in stats.problems] == ["t:3", "t:8"]
            check_accounting(stats)


_TIMESTAMPS = [
    "2024-06-01T12:00:00.000001Z",
    "2024-06-01T12:00:00.123456789Z",
    "2024-06-01T12:00:00Z",
    "2024-06-01T12:00:00.5+02:00",
    "2024-02-30T12:00:00.000001Z",  # no such day
    "2024-06-01T24:00:00.000001Z",
    "2024-06-01T12:00:00.00000aZ",
    "2024-06-01T12:00:00.١٢٣٤٥٦Z",  # non-ASCII digits: 27 characters, not a timestamp
    "2024-06-01T12:00:00,000001Z",
    "2024-06-01T12:00:00.000001z",
    "2024-06-01 12:00:00.000001Z",
    "",
    None,
    20240601,
]


@pytest.mark.parametrize("wrap", ["lines", "eventlist"])
def test_timestamp_checks_of_the_hot_loops_agree_with_the_parser(wrap: str) -> None:
    from falconet.timestamps import parse_rfc3339_ns

    events = [_event(n, stageTimestamp=ts) for n, ts in enumerate(_TIMESTAMPS * 2)]
    if wrap == "lines":
        data = jsonl(events)
    else:
        data = orjson.dumps({"kind": "EventList", "items": events})
    got, _, stats = run(data)
    valid = [e["auditID"] for e in events if parse_rfc3339_ns(e["stageTimestamp"]) is not None]
    assert [e["auditID"] for e in got] == valid
    assert stats.rejected == {BAD_TIMESTAMP: len(events) - len(valid)}


@pytest.mark.parametrize("pretty", [False, True])
def test_one_document_in_memory_past_the_head_limit_is_parsed_once(monkeypatch, pretty) -> None:
    # A webhook body over HEAD_LIMIT (DOCUMENTS framing) or a pretty-printed file, whole in
    # memory: one parse, no boundary scan (which cost 1.5x the parse). Strings full of `} {`
    # would each have been a boundary to try.
    from falconet.decode import detect, stream

    monkeypatch.setattr(detect, "HEAD_LIMIT", 64)

    def no_splitting(*args: object, **kwargs: object) -> None:
        raise AssertionError("split into documents")

    items = [_event(n, requestURI="/x?q=" + "} {" * 20) for n in range(30)]
    items.insert(7, {"kind": "Event", "auditID": "no-timestamp"})
    option = orjson.OPT_INDENT_2 if pretty else 0
    data = orjson.dumps({"kind": "EventList", "items": items}, option=option)
    with monkeypatch.context() as patch:
        patch.setattr(stream, "_documents", no_splitting)
        events, _, stats = run(data)
    assert [e["auditID"] for e in events] == [f"id-{n}" for n in range(30)]
    assert stats.rejected == {BAD_TIMESTAMP: 1}
    assert stats.problems[0].position == "t:document 1"
    # Two documents: the single parse fails and the splitter takes over, as before.
    data = orjson.dumps({"kind": "EventList", "items": [_event(1), _event(2)]}, option=option)
    events, _, stats = run(data + b"\n" + orjson.dumps(_event(3), option=option))
    assert [e["auditID"] for e in events] == ["id-1", "id-2", "id-3"]
    assert stats.rejected_total == 0


@pytest.mark.parametrize("chunk", [1, 8, 64, 4096])
def test_documents_are_split_the_same_whether_read_whole_or_in_pieces(chunk: int) -> None:
    # Found by fuzzing: back to back (`}{`) was judged on the head, which is the whole input in
    # memory but only the first line and the rest of its chunk when read in pieces; a damaged
    # stream was then split at different places.
    data = b'{"x":\n1} ' + orjson.dumps(_event(1)) + b"\xff" + orjson.dumps(_event(2))
    data += orjson.dumps(_event(3))
    whole = run(data)
    pieces = run([data[i : i + chunk] for i in range(0, len(data), chunk)])
    assert [e["auditID"] for e in whole[0]] == [e["auditID"] for e in pieces[0]] == ["id-3"]
    assert whole[2].rejected == pieces[2].rejected == {NOT_AUDIT_EVENT: 1, NOT_JSON: 1}
