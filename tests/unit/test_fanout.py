"""The fan-out's pure parts: which objects a window keeps, how messages are batched at SQS's
limits, and a run's counters in a MemoryStore (the same code as on DynamoDB)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from falconet.errors import ConfigError
from falconet.fanout import (
    BATCH_BYTES,
    FanOutError,
    Listed,
    batches,
    check_run_id,
    in_window,
    key_span,
    notification,
)
from falconet.state import MemoryStore
from falconet.state.runs import ObjectOutcome, RunProgress
from falconet.triggers import objects_in_event, run_of


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("key", "start", "end"),
    [
        ("cluster=prod/2026/03/11/x.gz", "2026-03-11T00:00", "2026-03-12T00:00"),
        ("cluster=prod/2026/03/11/05/x.gz", "2026-03-11T05:00", "2026-03-11T06:00"),
        ("logs/dt=2026-03-11/hour=23/x.gz", "2026-03-11T23:00", "2026-03-12T00:00"),
        ("year=2026/month=03/day=11/x.gz", "2026-03-11T00:00", "2026-03-12T00:00"),
    ],
)
def test_a_key_names_the_day_or_hour_it_holds(key: str, start: str, end: str) -> None:
    assert key_span(key) == (ts(start), ts(end))


def test_keys_without_a_real_date_name_none() -> None:
    assert key_span("cluster=prod/audit-1234567.gz") is None
    assert key_span("2026/02/31/x.gz") is None  # no such day


def test_the_window_keeps_objects_that_may_hold_events_in_it() -> None:
    since, until = ts("2026-03-11T00:00"), ts("2026-03-12T00:00")
    day = Listed("b", "c/2026/03/11/x.gz", None, 1)
    before = Listed("b", "c/2026/03/10/x.gz", None, 1)
    after = Listed("b", "c/2026/03/12/x.gz", None, 1)
    assert [in_window(i, since, until) for i in (day, before, after)] == [True, False, False]
    # Undated keys go by their time: written before --since holds only older events; written
    # well after --until (past the lateness allowed) holds only newer ones.
    old = Listed("b", "x.gz", ts("2026-03-10T23:59"), 1)
    late = Listed("b", "x.gz", ts("2026-03-12T00:30"), 1)
    later = Listed("b", "x.gz", ts("2026-03-12T01:00"), 1)
    assert [in_window(i, since, until) for i in (old, late, later)] == [False, True, False]
    assert in_window(old, None, None)


def test_batches_hold_ten_messages_and_stay_under_256_kib() -> None:
    small = [b"x" * 100] * 25
    assert [len(b) for b in batches(small, "r")] == [10, 10, 5]
    big = [b"y" * 60_000] * 9  # four fit in 256 KiB, not five
    sizes = [len(b) for b in batches(big, "r")]
    assert sizes == [4, 4, 1]
    for batch in batches(big, "r"):
        assert sum(len(e["MessageBody"]) for e in batch) <= BATCH_BYTES
        assert [e["Id"] for e in batch] == [str(i) for i in range(len(batch))]
    with pytest.raises(FanOutError, match="over SQS"):
        list(batches([b"z" * BATCH_BYTES], "r"))


def test_a_message_is_an_s3_notification_the_handler_reads_back() -> None:
    item = Listed("bucket", "cluster=prod/2026/03/11/a b+c.gz", None, 5)
    body = notification(item, "eu-west-1")
    (ref,) = objects_in_event(json.loads(body))
    assert ref.url == "s3://bucket/cluster=prod/2026/03/11/a b+c.gz"
    assert ref.region == "eu-west-1"


def test_run_ids_are_checked_and_read_only_from_their_attribute() -> None:
    assert check_run_id("2026-03.backtest_1") == "2026-03.backtest_1"
    for bad in ("", "a/b", "x" * 65, "run id", "é"):
        with pytest.raises(ConfigError):
            check_run_id(bad)
    record = {"messageAttributes": {"falconet.run": {"stringValue": "r-1", "dataType": "String"}}}
    assert run_of(record) == "r-1"
    assert run_of({"messageAttributes": {"falconet.run": {"stringValue": "../x"}}}) is None
    assert run_of({"body": "{}"}) is None


def test_counters_count_each_object_once_and_follow_its_status() -> None:
    runs = RunProgress(MemoryStore())
    runs.start("r", 3, ["s3://b/p/"])
    outcome = ObjectOutcome(events=10, alerts=2, by_rule={"R": 2}, by_priority={"Warning": 2})
    assert runs.record_done("r", "s3://b/p/1", outcome)
    assert not runs.record_done("r", "s3://b/p/1", outcome)  # delivered twice: counted once
    runs.record_failure("r", "s3://b/p/2", "boom", final=False, receives=1)
    status = runs.status("r")
    assert (status.done, status.failed, status.events, status.alerts) == (1, 0, 10, 2)
    runs.record_failure("r", "s3://b/p/2", "boom again", final=True, receives=3)
    runs.record_failure("r", "s3://b/p/3", "gone", final=True, receives=1)
    status = runs.status("r")
    assert status.failed == 2 and status.finished
    assert status.failures == {"s3://b/p/2": "boom again", "s3://b/p/3": "gone"}
    # A re-run that does the failed object moves it from failed to done.
    assert runs.record_done("r", "s3://b/p/2", outcome)
    status = runs.status("r")
    assert (status.done, status.failed, status.by_rule) == (2, 1, {"R": 4})
    assert set(status.failures) == {"s3://b/p/3"}
    # A late failure of a done object changes nothing.
    runs.record_failure("r", "s3://b/p/1", "late", final=True, receives=3)
    assert runs.status("r").failed == 1
    assert runs.done_objects("r", ["s3://b/p/1", "s3://b/p/3", "s3://b/p/9"]) == {"s3://b/p/1"}


def test_the_follow_line_says_done_failed_rate_and_eta() -> None:
    from falconet.fanout import status_line
    from falconet.state.runs import RunStatus

    status = RunStatus("r", total=100, done=40, failed=10, events=5000, alerts=7)
    assert status_line(status, 2.5) == (
        "falconet: run r: 50/100 objects (50%), 40 done, 10 failed, 5000 events, 7 alerts, "
        "2.5 objects/s, ETA 0m20s"
    )
    assert not status.finished
    assert "ETA" not in status_line(RunStatus("r", total=2, done=2), 1.0)


def test_follow_names_failed_objects_on_one_safe_line_each(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An object key or an error text with a newline or an escape sequence cannot forge lines
    (or terminal control) in `--follow`'s report of failures."""
    from falconet.fanout import tell_end
    from falconet.state.runs import RunStatus

    status = RunStatus(
        "r1",
        total=2,
        done=1,
        failed=1,
        failures={"s3://b/a\nfalconet: all 2 objects done\x1b[2J": "gzip\tbroken"},
    )
    assert tell_end(status, as_json=False) is True
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "falconet: failed: s3://b/a\\nfalconet: all 2 objects done\\u001b[2J: gzip\\tbroken",
        "falconet: 1 object(s) failed",
    ]
