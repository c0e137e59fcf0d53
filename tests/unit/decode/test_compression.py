"""gzip streams through both inflaters: python-isal (the `fast` extra) when installed, and zlib."""

from __future__ import annotations

import copy
import zlib

import pytest

from falconet.decode import BAD_COMPRESSION, OBJECT_LIMITS, DecodeStats, compression
from falconet.decode.limits import Budget
from tests.unit.decode.wrap import check_accounting, gz, jsonl, load_events, run

EVENTS = load_events()


@pytest.fixture(params=["zlib", "isal"])
def backend(request, monkeypatch) -> str:
    if request.param == "isal":
        chosen = compression.isal_backend()
        if chosen is None:
            pytest.skip("python-isal cannot be imported here (a dependency; zlib is used instead)")
    else:
        chosen = compression.ZLIB
    monkeypatch.setattr(compression, "_backend", chosen)
    return request.param


def test_the_backend_in_use_is_the_one_chosen(backend: str) -> None:
    make, errors = compression.backend()
    assert type(make()).__module__.startswith("isal" if backend == "isal" else "zlib")
    assert zlib.error in errors


def test_default_backend_is_isal_when_installed(monkeypatch) -> None:
    monkeypatch.setattr(compression, "_backend", None)
    expected = compression.isal_backend() or compression.ZLIB
    assert (compression.backend()[1]) == expected[1]


@pytest.mark.usefixtures("backend")
@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
def test_multi_member_and_nested_gzip(chunk: int) -> None:
    events = copy.deepcopy(EVENTS)
    members = b"".join(gz(jsonl([e])) for e in events)  # Firehose: a member per record
    for data in (members, gz(members), gz(gz(jsonl(events)))):
        got, _, stats = run([data[i : i + chunk] for i in range(0, len(data), chunk)])
        assert got == EVENTS
        assert stats.rejected_total == 0


@pytest.mark.usefixtures("backend")
def test_large_stream_inflates_in_bounded_pieces() -> None:
    # Far more than one inflated piece: line boundaries fall anywhere in the pieces.
    events = [copy.deepcopy(e) for _ in range(300) for e in EVENTS]
    for n, event in enumerate(events):
        event["auditID"] = f"id-{n}"
    data = gz(jsonl(events))
    budget = Budget(OBJECT_LIMITS)
    pieces = list(compression.gunzip(iter([data]), DecodeStats(), "t", budget))
    assert budget.inflated == sum(map(len, pieces)) and budget.compressed == len(data)
    assert len(pieces) > 2 and max(map(len, pieces)) <= compression.INFLATED_CHUNK
    got, _, stats = run(data)
    assert [e["auditID"] for e in got] == [e["auditID"] for e in events]
    check_accounting(stats)


@pytest.mark.usefixtures("backend")
def test_damaged_streams_are_counted_and_what_came_before_kept() -> None:
    data = gz(jsonl(copy.deepcopy(EVENTS)))
    corrupt = bytearray(data)
    corrupt[len(data) // 2 : len(data) // 2 + 16] = b"\xff" * 16
    for damaged in (data[: len(data) // 2], bytes(corrupt), data + b"garbage"):
        got, _, stats = run(damaged)
        assert stats.rejected[BAD_COMPRESSION] == 1
        assert stats.rejected_total - 1 <= 1  # at most the line cut by the damage
        assert got == EVENTS[: len(got)]
        check_accounting(stats)
    got, _, stats = run(data + b"\x00" * 100)  # zero padding after the last member is harmless
    assert got == EVENTS and stats.rejected_total == 0
