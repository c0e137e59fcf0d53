"""The state store through real boundaries: DynamoDBStore against a moto server on loopback, and the
contract every backend keeps (MemoryStore and DynamoDBStore, one parametrised test each).

The contract is what correlations rely on: bytes come back as written; a write based on a stale
read is refused and changes nothing; concurrent read-modify-write loops that retry on False lose
no update; an item past its expiry reads as absent yet keeps its version, so a writer that read
it earlier still cannot overwrite a newer one; oversized items are refused before any request.

DynamoDB's own failures (throttling, a lost response, a missing table, a denied request) are
injected into a real botocore client with its event hooks: the requests and the error parsing are
botocore's, only the answer is scripted.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from tests.functional.conftest import REGION, Aws

from falconet import state
from falconet.errors import StateError
from falconet.state import MAX_ITEM_BYTES, MemoryStore
from falconet.state.dynamodb import DynamoDBStore

START = 1_767_225_600  # 2026-01-01T00:00:00Z
LATER = 4_102_444_800  # 2100-01-01: alive for every clock, the fake one and the wall


@dataclass
class FakeClock:
    now: float = float(START)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "dynamodb"])
def store(request: pytest.FixtureRequest, clock: FakeClock) -> state.StateStore:
    """Each backend in turn, reading expiry against `clock` (the DynamoDB one with its own lazy
    client, so AWS_ENDPOINT_URL is honoured as boto3 honours it)."""
    if request.param == "memory":
        return MemoryStore(clock=clock)
    return DynamoDBStore(request.getfixturevalue("state_table"), clock=clock)


# ---- the contract of every backend ------------------------------------------------------------


def test_bytes_round_trip_and_each_write_bumps_the_version(store: state.StateStore) -> None:
    every_byte = bytes(range(256)) * 4
    assert store.put("c:1", every_byte, version=0, expires=LATER) is True
    assert store.get_many(["c:1"]) == {"c:1": state.Item(every_byte, 1)}
    assert store.put("c:1", b"", version=1, expires=LATER) is True
    assert store.get_many(["c:1"]) == {"c:1": state.Item(b"", 2)}


def test_an_absent_key_reads_as_no_data_at_version_0(store: state.StateStore) -> None:
    assert store.get_many(["c:nothing"]) == {"c:nothing": state.ABSENT}
    assert store.get_many([]) == {}


@pytest.mark.parametrize(
    "stale_version", [0, 1, 7], ids=["create-over-existing", "one-behind", "ahead"]
)
def test_a_write_from_a_stale_read_is_refused_and_changes_nothing(
    store: state.StateStore, stale_version: int
) -> None:
    assert store.put("c:1", b"first", version=0, expires=LATER)
    assert store.put("c:1", b"second", version=1, expires=LATER)
    assert store.put("c:1", b"lost", version=stale_version, expires=LATER) is False
    assert store.get_many(["c:1"]) == {"c:1": state.Item(b"second", 2)}
    assert store.requests == {"write": 2, "conflict": 1, "read": 1}


def test_get_many_answers_every_key_asked_over_several_requests(store: state.StateStore) -> None:
    stored = [f"c:{i:03d}" for i in range(230)]  # more than one BatchGetItem's 100
    for key in stored:
        assert store.put(key, key.encode(), version=0, expires=LATER)
    absent = [f"c:absent-{i}" for i in range(20)]
    asked = stored + absent + stored[:30] + absent[:5]  # duplicates, interleaved
    found = store.get_many(asked)
    assert set(found) == set(asked)
    assert all(found[key] == state.Item(key.encode(), 1) for key in stored)
    assert all(found[key] == state.ABSENT for key in absent)


def test_an_expired_item_reads_as_absent_but_keeps_its_version(
    store: state.StateStore, clock: FakeClock
) -> None:
    assert store.put("c:1", b"old", version=0, expires=START + 60)
    clock.now = START + 60  # `expires` is the last second the item lives
    before = store.get_many(["c:1"])["c:1"]
    assert before == state.Item(b"old", 1)
    clock.now = START + 61
    after = store.get_many(["c:1"])["c:1"]
    assert after == state.Item(None, 1)
    # A writer that took it for never written, or read it before it expired, cannot overwrite...
    assert store.put("c:1", b"from scratch", version=0, expires=LATER) is False
    # ...while one that read it expired starts it afresh, and then the early reader is stale.
    assert store.put("c:1", b"new", version=after.version, expires=LATER) is True
    assert store.put("c:1", b"stale", version=before.version, expires=LATER) is False
    assert store.get_many(["c:1"]) == {"c:1": state.Item(b"new", 2)}


def test_an_item_over_the_limits_is_refused_before_any_request(store: state.StateStore) -> None:
    with pytest.raises(StateError) as error:
        store.put("c:big", b"x" * (MAX_ITEM_BYTES + 1), version=0, expires=LATER)
    assert str(error.value) == f"state item c:big is {MAX_ITEM_BYTES + 1} bytes, over 350000"
    with pytest.raises(StateError) as error:
        store.put("k" * 1025, b"", version=0, expires=LATER)
    assert str(error.value) == "state key over 1024 bytes"
    assert store.requests == {}
    assert store.put("c:big", b"x" * MAX_ITEM_BYTES, version=0, expires=LATER)  # the limit fits


def increment(store: state.StateStore, key: str, times: int) -> int:
    """Add 1 to the counter at `key` `times` times, re-reading on every conflict; the conflicts."""
    conflicts = 0
    for _ in range(times):
        while True:
            item = store.get_many([key])[key]
            count = int(item.data or b"0")
            if store.put(key, str(count + 1).encode(), version=item.version, expires=LATER):
                break
            conflicts += 1
    return conflicts


def test_concurrent_read_modify_write_loses_no_update(store: state.StateStore) -> None:
    start = threading.Barrier(2)

    def worker() -> None:
        start.wait()
        increment(store, "c:counter", 50)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert store.requests["write"] == 100
    assert store.requests["read"] == 100 + store.requests["conflict"]  # one re-read per conflict
    assert store.get_many(["c:counter"]) == {"c:counter": state.Item(b"100", 100)}


# ---- DynamoDB: shared between processes, and the table's own schema ----------------------------


def _increment_in_a_process(
    table: str, key: str, times: int, start: Any, conflicts: Any
) -> None:  # pragma: no cover - runs in a spawned process
    store = DynamoDBStore(table)
    start.wait(timeout=60)
    conflicts.put(increment(store, key, times))


def test_two_processes_sharing_the_table_lose_no_update(state_table: str) -> None:
    # Separate processes, each with its own boto3 client and no shared lock: the only thing that
    # keeps their updates apart is DynamoDB's conditional write.
    spawn = multiprocessing.get_context("spawn")
    start, conflicts = spawn.Barrier(2), spawn.Queue()
    workers = [
        spawn.Process(
            target=_increment_in_a_process, args=(state_table, "c:counter", 50, start, conflicts)
        )
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0]
    store = DynamoDBStore(state_table)
    assert store.get_many(["c:counter"]) == {"c:counter": state.Item(b"100", 100)}
    reported = [conflicts.get(timeout=5) for _ in workers]  # the retries each worker needed
    assert all(isinstance(count, int) for count in reported)


def test_items_carry_the_ttl_attribute_as_epoch_seconds(aws: Aws, state_table: str) -> None:
    store = DynamoDBStore(state_table)
    assert store.name == f"dynamodb:{state_table}"
    assert store.shared is True
    assert store.put("c:1", b"\x00data", version=0, expires=LATER)
    raw = aws.client("dynamodb").get_item(
        TableName=state_table, Key={"pk": {"S": "c:1"}}, ConsistentRead=True
    )["Item"]
    assert raw == {
        "pk": {"S": "c:1"},
        "v": {"N": "1"},
        "d": {"B": b"\x00data"},
        "x": {"N": str(LATER)},
    }
    ttl = aws.client("dynamodb").describe_time_to_live(TableName=state_table)
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "x"


def test_an_item_falconet_did_not_write_is_a_state_error(aws: Aws, state_table: str) -> None:
    aws.client("dynamodb").put_item(
        TableName=state_table, Item={"pk": {"S": "c:1"}, "v": {"N": "1"}}
    )
    with pytest.raises(StateError) as error:
        DynamoDBStore(state_table).get_many(["c:1"])
    assert str(error.value) == (
        f"state table {state_table!r}: item 'c:1' was not written by falconet "
        "(it needs v (N), d (B) and x (N))"
    )


@pytest.mark.parametrize(
    ("operation", "call"),
    [
        ("BatchGetItem", lambda s: s.get_many(["c:1"])),
        ("PutItem", lambda s: s.put("c:1", b"x", version=0, expires=LATER)),
    ],
    ids=["read", "write"],
)
def test_a_missing_table_is_a_state_error_naming_it(
    aws: Aws, operation: str, call: Callable[[DynamoDBStore], Any]
) -> None:
    store = DynamoDBStore("falconet-missing")  # constructing does no request
    with pytest.raises(StateError) as error:
        call(store)
    assert str(error.value) == (
        "state table 'falconet-missing' does not exist (or is not active yet) in region "
        f"{REGION} (ResourceNotFoundException on {operation})"
    )
    assert error.value.__cause__ is None and error.value.__suppress_context__


# ---- DynamoDB's failures, injected into a real botocore client ---------------------------------


@dataclass
class Injected:
    """A DynamoDB client whose answers a test scripts, and what it was asked."""

    client: Any
    sent: list[str]
    delays: list[float]
    params: list[dict[str, Any]] = field(default_factory=list)

    def record(self, params: dict[str, Any], **_: Any) -> None:
        self.params.append(params)

    def store(self, table: str, **kwargs: Any) -> DynamoDBStore:
        return DynamoDBStore(table, client=self.client, sleep=self.delays.append, **kwargs)


@pytest.fixture
def injected(aws: Aws) -> Iterator[Injected]:
    import boto3
    from botocore.config import Config

    # botocore's own retries off, as in the store's own client: every attempt is the store's.
    client = boto3.client(
        "dynamodb", region_name=REGION, config=Config(retries={"total_max_attempts": 1})
    )
    handle = Injected(client, [], [])

    def count(model: Any, **_: Any) -> None:
        handle.sent.append(model.name)

    client.meta.events.register("before-call.dynamodb", count)
    client.meta.events.register("before-parameter-build.dynamodb", handle.record)
    yield handle


def aws_error(status: int, code: str, message: str = "scripted") -> Callable[..., Any]:
    """A before-send hook answering every request with DynamoDB's JSON error `code`."""
    from botocore.awsrequest import AWSResponse

    class Raw:
        def stream(self, **_: Any) -> Iterator[bytes]:
            yield json.dumps(
                {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}
            ).encode()

    def answer(request: Any, **_: Any) -> AWSResponse:
        headers = {"x-amzn-ErrorType": code, "Content-Type": "application/x-amz-json-1.0"}
        return AWSResponse(request.url, status, headers, Raw())

    return answer


def first_n(n: int, hook: Callable[..., Any]) -> Callable[..., Any]:
    """`hook` for the first `n` calls, then no interference."""
    calls = iter(range(n))

    def maybe(**kwargs: Any) -> Any:
        return hook(**kwargs) if next(calls, None) is not None else None

    return maybe


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "ProvisionedThroughputExceededException"),
        (400, "ThrottlingException"),
        (500, "InternalServerError"),
        (503, "ServiceUnavailable"),
    ],
    ids=["provisioned-throughput", "throttling", "500", "503"],
)
def test_throttling_and_5xx_are_retried_then_succeed(
    injected: Injected, state_table: str, status: int, code: str
) -> None:
    injected.client.meta.events.register(
        "before-send.dynamodb.PutItem", first_n(2, aws_error(status, code))
    )
    store = injected.store(state_table)
    assert store.put("c:1", b"x", version=0, expires=LATER) is True
    assert injected.sent == ["PutItem"] * 3
    assert len(injected.delays) == 2
    assert store.get_many(["c:1"]) == {"c:1": state.Item(b"x", 1)}


def test_retries_are_bounded_and_end_in_a_clear_state_error(
    injected: Injected, state_table: str
) -> None:
    injected.client.meta.events.register(
        "before-send.dynamodb", aws_error(400, "ProvisionedThroughputExceededException")
    )
    store = injected.store(state_table, max_attempts=3)
    with pytest.raises(StateError) as error:
        store.get_many(["c:1"])
    assert str(error.value) == (
        f"state table {state_table!r}: BatchGetItem failed after 3 attempts "
        "(ProvisionedThroughputExceededException)"
    )
    assert error.value.__cause__ is None and error.value.__suppress_context__
    assert injected.sent == ["BatchGetItem"] * 3
    assert all(0 <= delay <= 1.0 for delay in injected.delays)


def test_no_retry_starts_that_the_deadline_cannot_finish(
    injected: Injected, state_table: str
) -> None:
    from falconet.deadline import Deadline

    injected.client.meta.events.register(
        "before-send.dynamodb", aws_error(400, "ProvisionedThroughputExceededException")
    )
    store = injected.store(state_table, max_attempts=4)
    almost_over = Deadline.after(1.0)  # less than one more attempt's worst case (7 s)
    with pytest.raises(StateError, match="no time left for another"):
        store.put("c:1", b"x", version=0, expires=LATER, deadline=almost_over)
    assert injected.sent == ["PutItem"]  # one attempt, no retry


def test_a_connection_failure_is_retried_then_a_state_error(
    aws: Aws, state_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A port nothing listens on: connection refused, every attempt.
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    delays: list[float] = []
    store = DynamoDBStore(state_table, max_attempts=2, sleep=delays.append)
    with pytest.raises(StateError) as error:
        store.put("c:1", b"x", version=0, expires=LATER)
    assert str(error.value) == (
        f"state table {state_table!r}: PutItem failed after 2 attempts (EndpointConnectionError)"
    )
    assert len(delays) == 1


@pytest.mark.parametrize(
    "code", ["AccessDeniedException", "UnrecognizedClientException"], ids=["denied", "bad-key"]
)
def test_a_denied_request_is_a_state_error_at_once(
    injected: Injected, state_table: str, code: str
) -> None:
    injected.client.meta.events.register(
        "before-send.dynamodb", aws_error(400, code, "not authorized to perform: dynamodb:PutItem")
    )
    with pytest.raises(StateError) as error:
        injected.store(state_table).put("c:1", b"x", version=0, expires=LATER)
    assert str(error.value) == (
        f"state table {state_table!r}: PutItem denied ({code}): "
        "not authorized to perform: dynamodb:PutItem"
    )
    assert injected.sent == ["PutItem"]  # no retry: it cannot help


def test_a_write_whose_answer_was_lost_is_not_taken_for_a_conflict(
    injected: Injected, state_table: str
) -> None:
    # The first PutItem reaches the table, then its answer is lost (read timeout): the retry's
    # condition fails on our own write. Reporting False would make the caller re-read, take its
    # own write for another's, and apply its change twice.
    from botocore.exceptions import ReadTimeoutError

    def lose_answer(**_: Any) -> None:
        raise ReadTimeoutError(endpoint_url="http://dynamodb")

    injected.client.meta.events.register("after-call.dynamodb.PutItem", first_n(1, lose_answer))
    store = injected.store(state_table)
    assert store.put("c:1", b"x", version=0, expires=LATER) is True
    assert injected.sent == ["PutItem", "PutItem"]
    assert store.requests == {"write": 1}
    assert store.get_many(["c:1"]) == {"c:1": state.Item(b"x", 1)}


def test_a_lost_answer_then_another_writer_is_still_a_conflict(
    aws: Aws, injected: Injected, state_table: str
) -> None:
    from botocore.exceptions import ReadTimeoutError

    def lose_answer_and_overtake(**_: Any) -> None:
        DynamoDBStore(state_table).put("c:1", b"theirs", version=1, expires=LATER)
        raise ReadTimeoutError(endpoint_url="http://dynamodb")

    injected.client.meta.events.register(
        "after-call.dynamodb.PutItem", first_n(1, lose_answer_and_overtake)
    )
    store = injected.store(state_table)
    assert store.put("c:1", b"ours", version=0, expires=LATER) is False
    assert store.requests == {"conflict": 1}
    assert store.get_many(["c:1"]) == {"c:1": state.Item(b"theirs", 2)}


def _leave_unprocessed(keep: int) -> Callable[..., None]:
    """An after-call hook moving all but `keep` of a BatchGetItem's items to UnprocessedKeys,
    as DynamoDB does when throttled or past its 16 MB response limit."""

    def hook(parsed: dict[str, Any], **_: Any) -> None:
        for table, items in parsed.get("Responses", {}).items():
            left = items[keep:]
            del items[keep:]
            if left:
                keys = [{"pk": item["pk"]} for item in left]
                parsed.setdefault("UnprocessedKeys", {})[table] = {"Keys": keys}

    return hook


def test_unprocessed_keys_are_asked_again(injected: Injected, state_table: str) -> None:
    store = injected.store(state_table)
    keys = [f"c:{i}" for i in range(5)]
    for key in keys:
        store.put(key, key.encode(), version=0, expires=LATER)
    injected.sent.clear()
    injected.client.meta.events.register(
        "after-call.dynamodb.BatchGetItem", first_n(3, _leave_unprocessed(keep=1))
    )
    assert store.get_many([*keys, "c:absent"]) == {
        **{key: state.Item(key.encode(), 1) for key in keys},
        "c:absent": state.ABSENT,
    }
    assert injected.sent == ["BatchGetItem"] * 4


def test_keys_left_unprocessed_again_and_again_are_a_state_error(
    injected: Injected, state_table: str
) -> None:
    store = injected.store(state_table, max_attempts=3)
    store.put("c:1", b"x", version=0, expires=LATER)
    injected.client.meta.events.register(
        "after-call.dynamodb.BatchGetItem", _leave_unprocessed(keep=0)
    )
    with pytest.raises(StateError) as error:
        store.get_many(["c:1"])
    assert str(error.value) == (
        f"state table {state_table!r}: BatchGetItem left 1 key(s) unprocessed in 3 attempts in "
        "a row (throttled)"
    )


def test_reads_are_consistent_and_writes_conditional(injected: Injected, state_table: str) -> None:
    # What no local server can show: another instance's write a moment ago must be seen (an
    # eventually consistent read could miss it and the update based on it would then conflict
    # forever), and a write must be conditional on the version read.
    store = injected.store(state_table)
    store.put("c:1", b"a", version=0, expires=LATER)
    store.put("c:1", b"b", version=1, expires=LATER)
    store.get_many(["c:1"])
    first, second, read = injected.params
    assert first["ConditionExpression"] == "attribute_not_exists(pk)"
    assert (second["ConditionExpression"], second["ExpressionAttributeValues"]) == (
        "v = :v",
        {":v": {"N": "1"}},
    )
    assert read["RequestItems"][state_table]["ConsistentRead"] is True


def test_an_oversized_item_sends_no_request(injected: Injected, state_table: str) -> None:
    with pytest.raises(StateError):
        injected.store(state_table).put("c:1", b"x" * (MAX_ITEM_BYTES + 1), version=0, expires=1)
    assert injected.sent == []
