"""Falco's reading of event JSON (`falconet.decode.source`), alone and behind `decode`: what
orjson refuses and Falco evaluates, and, with `falco_json`, every edge where the two read the same
text differently (duplicate keys, number text, NUL, nesting over 300)."""

from __future__ import annotations

import time

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from falconet.decode import LIMIT_DEPTH, NOT_AUDIT_EVENT, NOT_JSON
from falconet.decode.source import MAX_DEPTH, Sourced, SourceError, read
from falconet.fields.registry import stringify
from tests.unit.decode.wrap import check_accounting, run

HEAD = b'{"kind":"Event","stageTimestamp":"2024-01-01T00:00:00Z","auditID":"a"'


def _line(rest: bytes) -> bytes:
    return HEAD + rest + b"}\n"


def _nested(levels: int, inner: bytes = b"") -> bytes:
    """An event whose requestObject is `levels` nested arrays: the innermost array is at depth
    levels + 1 (the event object is depth 1)."""
    return _line(b',"requestObject":' + b"[" * levels + inner + b"]" * levels)


# --- the reader ----------------------------------------------------------------------------------


def test_the_first_of_duplicate_keys_wins() -> None:
    assert read(b'{"verb":"delete","verb":"get"}') == {"verb": "delete"}
    assert read(b'{"a":{"b":1,"b":{"c":2}},"a":3}') == {"a": {"b": 1}}
    # near miss: distinct keys are all kept, in order
    assert list(read(b'{"verb":"delete","Verb":"get"}').items()) == [
        ("verb", "delete"),
        ("Verb", "get"),
    ]


@pytest.mark.parametrize(
    ("text", "shown"),
    [(b"1.50", "1.50"), (b"2.01e2", "2.01e2"), (b"-0", "-0"), (b"1e400", "1e400")]
    + [(b"123456789012345678901234", "123456789012345678901234")],
)
def test_numbers_keep_their_source_text(text: bytes, shown: str) -> None:
    value = read(b'{"n":' + text + b"}")["n"]
    assert isinstance(value, Sourced)
    assert stringify(value) == shown
    assert stringify(read(b'{"n":[' + text + b',"x"]}')["n"]) == f'[{shown},"x"]'


def test_plain_integers_stay_integers() -> None:
    value = read(b'{"n":443,"m":-7,"z":0}')
    assert value == {"n": 443, "m": -7, "z": 0}
    assert all(type(v) is int for v in value.values())


def test_a_string_is_read_up_to_a_nul_and_printed_whole_inside_an_object() -> None:
    value = read(b'{"user":{"username":"root\\u0000x"}}')
    name = value["user"]["username"]
    assert name == "root"
    assert stringify(name) == "root"
    assert stringify(value["user"]) == '{"username":"root\\u0000x"}'
    # near miss: a string orjson writes as it was written stays a plain string
    plain = read(b'{"u":"a\\tb\\"c\xc3\xa9"}')["u"]
    assert plain == 'a\tb"c\u00e9'
    assert type(plain) is str


def test_an_object_prints_with_the_escapes_it_was_written_with() -> None:
    value = read(b'{"o":{"a":"caf\\u00e9","b":"x\\u0026y\\/z","c":"caf\xc3\xa9"}}')
    assert value["o"]["a"] == "caf\u00e9"  # read alone: the decoded text
    assert value["o"]["b"] == "x&y/z"
    assert stringify(value["o"]["a"]) == "caf\u00e9"
    # inside an object: as written (fastjson's MarshalTo), as Falco prints it
    assert stringify(value["o"]) == '{"a":"caf\\u00e9","b":"x\\u0026y\\/z","c":"caf\u00e9"}'


def test_invalid_utf8_and_lone_surrogates_read_as_replacement_characters() -> None:
    assert read(b'{"u":"bad\xff"}') == {"u": "bad\ufffd"}
    assert read(b'{"u":"x\\ud800y"}') == {"u": "x\ufffdy"}
    assert read('{"u":"caf\u00e9"}'.encode()) == {"u": "caf\u00e9"}  # valid UTF-8 untouched


def test_nesting_is_limited_to_300_levels_as_in_falco() -> None:
    assert MAX_DEPTH == 300
    # the top object is level 1: 299 nested arrays reach level 300, an empty one is fine
    assert read(b'{"a":' + b"[" * 299 + b"]" * 299 + b"}")
    # and a value inside the 300th level is level 301
    for text in (
        b'{"a":' + b"[" * 300 + b"]" * 300 + b"}",
        b'{"a":' + b"[" * 299 + b"1" + b"]" * 299 + b"}",
    ):
        with pytest.raises(SourceError) as caught:
            read(text)
        assert caught.value.reason == LIMIT_DEPTH


def test_hostile_nesting_is_refused_in_linear_time_without_recursion() -> None:
    started = time.perf_counter()
    for text in (b"[" * 1_000_000, b'{"a":' * 500_000):
        with pytest.raises(SourceError) as caught:
            read(text)
        assert caught.value.reason == LIMIT_DEPTH
    assert time.perf_counter() - started < 5  # a bound against hangs, not a speed measurement


@pytest.mark.parametrize(
    "text",
    [b"", b"{", b'{"a":1,}', b"[1,]", b'{"a"}', b"{,}", b"[1 2]", b"01", b"nul", b"}", b"'a'"]
    + [b'{"a":1}x', b'{"a":"\x01"}', b"[1]]", b'{"a" 1}', b"[-]", b"1.", b".5", b"NaN"],
)
def test_what_is_not_json_is_refused(text: bytes) -> None:
    with pytest.raises(SourceError) as caught:
        read(text)
    assert caught.value.reason == NOT_JSON
    assert isinstance(caught.value, orjson.JSONDecodeError)  # every parse error caught is one


def test_its_messages_are_the_ones_the_splitters_rely_on() -> None:
    for cut in (b'{"a":[1,', b'{"a":"x}'):
        with pytest.raises(SourceError, match="^unexpected end of data"):
            read(cut)
    with pytest.raises(SourceError, match="^unexpected content after document"):
        read(b'{"a":1}{"b":2}')


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)


@given(JSON)
def test_it_reads_what_orjson_reads_where_falco_reads_the_same(value: object) -> None:
    for text in (orjson.dumps(value), orjson.dumps(value, option=orjson.OPT_INDENT_2)):
        expected = orjson.loads(text)
        if b"\\u0000" not in text:  # a string with a NUL is read up to it, on purpose
            assert read(text) == expected


# --- behind decode -----------------------------------------------------------------------------


def test_invalid_utf8_is_evaluated_with_replacement_characters() -> None:
    events, _, stats = run(_line(b',"user":{"username":"bad\xff"}') + _line(b',"verb":"get"'))
    assert [e.get("user") for e in events] == [{"username": "bad\ufffd"}, None]
    assert stats.rejected_total == 0
    # near miss: a line that is not JSON is still refused
    events, _, stats = run(b'{"kind":"Event","bad\xff\n')
    assert events == []
    assert stats.rejected == {NOT_JSON: 1}


def test_nesting_past_orjson_is_refused_with_falcos_reason() -> None:
    events, _, stats = run(_nested(2000) + _line(b""))
    assert [e["auditID"] for e in events] == ["a"]
    assert stats.rejected == {LIMIT_DEPTH: 1}
    check_accounting(stats)


def test_without_falco_json_orjson_reads_the_event() -> None:
    events, _, _ = run(_line(b',"verb":"delete","verb":"get","n":1.50'))
    assert events[0]["verb"] == "get"  # orjson keeps the last of duplicate keys
    assert stringify(events[0]["n"]) == "1.5"
    events, _, stats = run(_nested(300))
    assert len(events) == 1  # orjson reads 1024 levels
    assert stats.rejected_total == 0


def test_falco_json_reads_every_event_as_falco_does() -> None:
    data = _line(b',"verb":"delete","verb":"get","n":1.50,"u":"root\\u0000x"') + _nested(300)
    data += _nested(299) + b"[" + _line(b"")[:-1] + b"]\n"
    events, _, stats = run(data, falco_json=True)
    assert len(events) == 3
    first = events[0]
    assert first["verb"] == "delete"
    assert stringify(first["n"]) == "1.50"
    assert first["u"] == "root"
    assert stats.rejected == {LIMIT_DEPTH: 1}  # 300 arrays in the event: too deep
    check_accounting(stats)


def test_falco_json_keeps_the_envelope_framings() -> None:
    pretty = orjson.dumps({"kind": "EventList", "items": [orjson.loads(_line(b""))] * 2}, option=2)
    back_to_back = _line(b"")[:-1] * 3
    for data, count in ((pretty + b"\n" + pretty, 4), (back_to_back, 3), (b"\n\n" + pretty, 2)):
        events, _, stats = run(data, falco_json=True)
        assert len(events) == count
        assert stats.rejected_total == 0
    events, _, stats = run(b'{"kind":"Bogus"}\n', falco_json=True)
    assert stats.rejected == {NOT_AUDIT_EVENT: 1}


def test_falco_json_accepts_a_timestamp_written_with_escapes() -> None:
    line = b'{"kind":"Event","auditID":"a","stageTimestamp":"2024-01-01T00:00:00\\u002e5Z"}\n'
    events, _, stats = run(line, falco_json=True)
    assert [e["stageTimestamp"] for e in events] == ["2024-01-01T00:00:00.5Z"]
    assert stats.rejected_total == 0


@pytest.mark.parametrize("falco_json", [False, True])
def test_invalid_utf8_in_split_documents_is_evaluated(falco_json: bool) -> None:
    doc = b'{\n  "kind": "Event", "stageTimestamp": "2024-01-01T00:00:00Z",\n'
    data = doc + b'  "auditID": "a", "u": "x\xff}{"\n}\n' + doc + b'  "auditID": "b"\n}\n'
    events, _, stats = run(data, falco_json=falco_json)
    assert [(e["auditID"], e.get("u")) for e in events] == [("a", "x\ufffd}{"), ("b", None)]
    assert stats.rejected_total == 0
