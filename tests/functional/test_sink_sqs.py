"""The SQS sink against a moto server: batching by count and size, exactly-once arrival, FIFO
deduplication, and per-entry retry (against a local server speaking the SQS JSON protocol)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from tests.functional.conftest import deliver

from falconet.deadline import Deadline
from falconet.errors import SinkError
from falconet.sinks.sqs import MAX_BATCH_BYTES, SqsSink


def test_many_alerts_arrive_exactly_once(aws, sqs_queue, make_alert, receive_all) -> None:
    alerts = [make_alert(n, rule=f"Rule {n % 3}") for n in range(25)]
    delivery = SqsSink(sqs_queue).open()
    delivery.emit(alerts[:7])
    delivery.emit(alerts[7:])
    queued = aws.client("sqs").get_queue_attributes(
        QueueUrl=sqs_queue, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    assert queued == "20"  # sent as the batches filled, before any flush: nothing held
    delivery.flush()
    assert delivery.tally.delivered == 25

    messages = receive_all(aws.client("sqs"), sqs_queue)
    bodies = [json.loads(m["Body"]) for m in messages]
    assert Counter(b["uuid"] for b in bodies) == Counter(a.uuid for a in alerts)
    assert sorted(bodies, key=lambda b: b["uuid"]) == sorted(
        (a.to_dict() for a in alerts), key=lambda d: d["uuid"]
    )


def test_large_alerts_are_split_by_request_size(aws, sqs_queue, make_alert, receive_all) -> None:
    # 12 alerts of ~200 KiB: 10 per request would be ~2 MiB, twice SQS's 1 MiB batch limit.
    alerts = [make_alert(n, padding=200_000) for n in range(12)]
    assert sum(len(a.to_json()) for a in alerts[:10]) > MAX_BATCH_BYTES
    sink = SqsSink(sqs_queue)
    deliver(sink, alerts)

    bodies = [json.loads(m["Body"]) for m in receive_all(aws.client("sqs"), sqs_queue)]
    assert Counter(b["uuid"] for b in bodies) == Counter(a.uuid for a in alerts)
    assert {b["uuid"]: b for b in bodies} == {a.uuid: a.to_dict() for a in alerts}


def test_an_alert_over_the_limit_is_dropped_alone(
    aws, sqs_queue, make_alert, receive_all, caplog
) -> None:
    small = [make_alert(n) for n in range(3)]
    huge = make_alert(99, padding=1_100_000)
    tally = deliver(SqsSink(sqs_queue), [small[0], huge, *small[1:]])
    received = {json.loads(m["Body"])["uuid"] for m in receive_all(aws.client("sqs"), sqs_queue)}
    assert received == {a.uuid for a in small}
    assert (tally.delivered, tally.dropped) == (3, 1)
    assert tally.reasons == [
        f"sqs {huge.uuid}: {len(huge.to_json())} bytes, over the 1047552-byte limit"
    ]
    assert f"sqs dropped alert {huge.uuid}" in caplog.text


def test_a_failed_delivery_is_not_sent_by_the_next_one(
    aws, sqs_queue, make_alert, receive_all
) -> None:
    url = sqs_queue + "-later"  # no such queue yet: every request fails
    sink = SqsSink(url)
    with pytest.raises(SinkError, match="NonExistentQueue"):
        deliver(sink, [make_alert(1), make_alert(2)])
    aws.client("sqs").create_queue(QueueName=url.rsplit("/", 1)[1])
    deliver(sink, [make_alert(3)])  # the next invocation, on the same warm sink
    bodies = [json.loads(m["Body"]) for m in receive_all(aws.client("sqs"), url)]
    assert [b["uuid"] for b in bodies] == [make_alert(3).uuid]


def test_fifo_queue_drops_a_redelivered_batch(aws, fifo_queue, make_alert, receive_all) -> None:
    alerts = [make_alert(n, cluster="prod-eu" if n % 2 else None) for n in range(12)]
    first = SqsSink(fifo_queue)
    deliver(first, alerts)
    # The same S3 object delivered again (a new invocation, a new sink): same alerts, same uuids.
    again = SqsSink(fifo_queue)
    deliver(again, alerts)

    messages = receive_all(
        aws.client("sqs"), fifo_queue, MessageSystemAttributeNames=["MessageGroupId"]
    )
    assert Counter(json.loads(m["Body"])["uuid"] for m in messages) == Counter(
        a.uuid for a in alerts
    )
    groups = {json.loads(m["Body"])["uuid"]: m["Attributes"]["MessageGroupId"] for m in messages}
    assert groups == {a.uuid: a.cluster or "falconet" for a in alerts}


def test_missing_queue_raises_sink_error(aws, sqs_queue, make_alert) -> None:
    sink = SqsSink(sqs_queue.rsplit("/", 1)[0] + "/no-such-queue")
    with pytest.raises(SinkError, match=r"NonExistentQueue"):
        deliver(sink, [make_alert(1)])


# --- per-entry retry, through a local server that speaks the SQS JSON protocol ---


class FakeSqs:
    """Answers SendMessageBatch like SQS: entries listed in `fail` (by body uuid) are reported as
    `Failed` the given number of times; `SenderFault` entries always fail."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.fail: dict[str, int] = {}
        self.poison: set[str] = set()  # one of these in a request: SQS refuses it whole (400)
        self.down = False  # every request answers 500
        self.sender_fault: set[str] = set()

    def refusal(self, request: dict[str, Any]) -> tuple[int, str, dict[str, Any]] | None:
        """(status, query error code, body) when the whole request fails, else None."""
        self.batches.append(request["Entries"])
        if self.down:
            return 500, "InternalError;Receiver", {"__type": "InternalError", "message": "down"}
        uuids = {json.loads(e["MessageBody"])["uuid"] for e in request["Entries"]}
        if uuids & self.poison:
            body = {
                "__type": "com.amazonaws.sqs#InvalidParameterValue",
                "message": "Message must be shorter than 262144 bytes.",
            }
            return 400, "InvalidParameterValue;Sender", body
        return None

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        entries = request["Entries"]
        successful, failed = [], []
        for entry in entries:
            key = json.loads(entry["MessageBody"])["uuid"]
            if key in self.sender_fault:
                failed.append(
                    {
                        "Id": entry["Id"],
                        "SenderFault": True,
                        "Code": "InvalidMessage",
                        "Message": "bad entry",
                    }
                )
            elif self.fail.get(key, 0) > 0:
                self.fail[key] -= 1
                failed.append(
                    {
                        "Id": entry["Id"],
                        "SenderFault": False,
                        "Code": "InternalError",
                        "Message": "try again",
                    }
                )
            else:
                successful.append(
                    {
                        "Id": entry["Id"],
                        "MessageId": f"m-{len(self.batches)}-{entry['Id']}",
                        "MD5OfMessageBody": hashlib.md5(entry["MessageBody"].encode()).hexdigest(),
                    }
                )
        return {"Successful": successful, "Failed": failed}


@pytest.fixture
def fake_sqs(aws, monkeypatch) -> Iterator[FakeSqs]:
    fake = FakeSqs()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            assert self.headers["X-Amz-Target"] == "AmazonSQS.SendMessageBatch"
            request = json.loads(body)
            refusal = fake.refusal(request)
            if refusal is None:
                status, answer = 200, fake.answer(request)
            else:
                status, code, answer = refusal
            payload = json.dumps(answer).encode()
            self.send_response(status)
            if refusal is not None:
                self.send_header("x-amzn-query-error", code)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", f"http://127.0.0.1:{server.server_address[1]}")
    yield fake
    server.shutdown()
    server.server_close()


QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/alerts"


def test_only_failed_entries_are_retried(fake_sqs, make_alert) -> None:
    alerts = [make_alert(n) for n in range(12)]
    fake_sqs.fail = {alerts[3].uuid: 1, alerts[11].uuid: 2}
    sink = SqsSink(QUEUE, backoff_base=0.001)
    deliver(sink, alerts)

    sent = [[json.loads(e["MessageBody"])["uuid"] for e in batch] for batch in fake_sqs.batches]
    uuids = [a.uuid for a in alerts]
    assert sent == [uuids[:10], [uuids[3]], uuids[10:], [uuids[11]], [uuids[11]]]


def test_entries_still_failing_after_the_last_attempt_raise(fake_sqs, make_alert) -> None:
    alerts = [make_alert(n) for n in range(4)]
    fake_sqs.fail = {alerts[1].uuid: 99}
    fake_sqs.sender_fault = {alerts[2].uuid}
    sink = SqsSink(QUEUE, max_attempts=3, backoff_base=0.001)
    delivery = sink.open()
    delivery.emit(alerts)
    with pytest.raises(SinkError) as caught:
        delivery.flush()

    assert str(caught.value) == (
        f"SQS {QUEUE}: 1 alert(s) not delivered after 3 attempt(s): {alerts[1].uuid}: "
        "InternalError try again"
    )
    sent = [[json.loads(e["MessageBody"])["uuid"] for e in batch] for batch in fake_sqs.batches]
    # The sender fault is dropped, never retried; the transient failure is tried 3 times.
    assert sent == [[a.uuid for a in alerts], [alerts[1].uuid], [alerts[1].uuid]]
    assert (delivery.tally.delivered, delivery.tally.dropped) == (2, 1)
    assert delivery.tally.reasons == [f"sqs {alerts[2].uuid}: InvalidMessage bad entry"]


def test_an_entry_that_spoils_its_request_is_dropped_alone(fake_sqs, make_alert) -> None:
    # SQS refuses a whole request for one entry (e.g. over a queue's lower MaximumMessageSize):
    # before, the batch failed on every retry of the invocation, the others sent again each time.
    alerts = [make_alert(n) for n in range(12)]
    fake_sqs.poison = {alerts[4].uuid}
    tally = deliver(SqsSink(QUEUE, backoff_base=0.001), alerts)

    assert (tally.delivered, tally.dropped) == (11, 1)
    assert tally.reasons[0].startswith(f"sqs {alerts[4].uuid}: InvalidParameterValue")
    sent = [[json.loads(e["MessageBody"])["uuid"] for e in batch] for batch in fake_sqs.batches]
    uuids = [a.uuid for a in alerts]
    assert sent == [uuids[:10], *[[u] for u in uuids[:10]], uuids[10:]]


class FakeClock:
    """Time that passes only when the code sleeps: a deadline test without waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_retries_stop_at_the_deadline(fake_sqs, make_alert) -> None:
    fake_sqs.down = True
    clock = FakeClock()
    # 20 attempts allowed, but each retry must leave room for one call's worst case (7 s):
    # with 10 s left and backoff up to 5 s, the retries stop long before the attempts run out.
    deadline = Deadline.after(10.0, clock=clock, sleeper=clock.sleep)
    sink = SqsSink(QUEUE, max_attempts=20, backoff_base=1.0)
    with pytest.raises(SinkError, match="no time left to retry before the invocation's deadline"):
        deliver(sink, [make_alert(1)], deadline)
    assert 1 <= len(fake_sqs.batches) < 20
    assert clock.now <= 10.0 - 7.0  # never slept into the time the last call may need
    assert len(clock.slept) == len(fake_sqs.batches) - 1


def test_nothing_is_sent_once_the_deadline_has_passed(fake_sqs, make_alert) -> None:
    clock = FakeClock()
    deadline = Deadline.after(-1.0, clock=clock, sleeper=clock.sleep)
    with pytest.raises(SinkError, match="deadline has passed"):
        deliver(SqsSink(QUEUE), [make_alert(n) for n in range(3)], deadline)
    assert fake_sqs.batches == []
