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

from falconet.errors import SinkError
from falconet.sinks.sqs import MAX_BATCH_BYTES, SqsSink


def test_many_alerts_arrive_exactly_once(aws, sqs_queue, make_alert, receive_all) -> None:
    alerts = [make_alert(n, rule=f"Rule {n % 3}") for n in range(25)]
    sink = SqsSink(sqs_queue)
    sink.emit(alerts[:7])
    sink.emit(alerts[7:])
    sink.flush()

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
    sink.emit(alerts)
    sink.flush()

    bodies = [json.loads(m["Body"]) for m in receive_all(aws.client("sqs"), sqs_queue)]
    assert Counter(b["uuid"] for b in bodies) == Counter(a.uuid for a in alerts)
    assert {b["uuid"]: b for b in bodies} == {a.uuid: a.to_dict() for a in alerts}


def test_an_alert_over_the_limit_fails_alone(aws, sqs_queue, make_alert, receive_all) -> None:
    small = [make_alert(n) for n in range(3)]
    huge = make_alert(99, padding=1_100_000)
    sink = SqsSink(sqs_queue)
    sink.emit([small[0], huge, *small[1:]])
    with pytest.raises(SinkError, match=rf"1 alert\(s\) not delivered: {huge.uuid}: larger than"):
        sink.flush()
    received = {json.loads(m["Body"])["uuid"] for m in receive_all(aws.client("sqs"), sqs_queue)}
    assert received == {a.uuid for a in small}


def test_buffer_is_empty_after_a_failed_flush(aws, sqs_queue, make_alert, receive_all) -> None:
    sink = SqsSink(sqs_queue)
    sink.emit([make_alert(1, padding=1_100_000)])
    with pytest.raises(SinkError):
        sink.flush()
    sink.emit([make_alert(2)])
    sink.flush()  # only the new alert is sent: a warm container never resends an old failure
    bodies = [json.loads(m["Body"]) for m in receive_all(aws.client("sqs"), sqs_queue)]
    assert [b["uuid"] for b in bodies] == [make_alert(2).uuid]


def test_fifo_queue_drops_a_redelivered_batch(aws, fifo_queue, make_alert, receive_all) -> None:
    alerts = [make_alert(n, cluster="prod-eu" if n % 2 else None) for n in range(12)]
    first = SqsSink(fifo_queue)
    first.emit(alerts)
    first.flush()
    # The same S3 object delivered again (a new invocation, a new sink): same alerts, same uuids.
    again = SqsSink(fifo_queue)
    again.emit(alerts)
    again.flush()

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
    sink.emit([make_alert(1)])
    with pytest.raises(SinkError, match=r"request failed after botocore's retries, 1 alert"):
        sink.flush()


# --- per-entry retry, through a local server that speaks the SQS JSON protocol ---


class FakeSqs:
    """Answers SendMessageBatch like SQS: entries listed in `fail` (by body uuid) are reported as
    `Failed` the given number of times; `SenderFault` entries always fail."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.fail: dict[str, int] = {}
        self.sender_fault: set[str] = set()

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        entries = request["Entries"]
        self.batches.append(entries)
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
            payload = json.dumps(fake.answer(json.loads(body))).encode()
            self.send_response(200)
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
    sink.emit(alerts)
    sink.flush()

    sent = [[json.loads(e["MessageBody"])["uuid"] for e in batch] for batch in fake_sqs.batches]
    uuids = [a.uuid for a in alerts]
    assert sent == [uuids[:10], [uuids[3]], uuids[10:], [uuids[11]], [uuids[11]]]


def test_entries_still_failing_after_the_last_attempt_raise(fake_sqs, make_alert) -> None:
    alerts = [make_alert(n) for n in range(4)]
    fake_sqs.fail = {alerts[1].uuid: 99}
    fake_sqs.sender_fault = {alerts[2].uuid}
    sink = SqsSink(QUEUE, max_attempts=3, backoff_base=0.001)
    sink.emit(alerts)
    with pytest.raises(SinkError) as caught:
        sink.flush()

    assert str(caught.value) == (
        f"SQS {QUEUE}: 2 alert(s) not delivered: {alerts[2].uuid}: InvalidMessage bad entry; "
        f"{alerts[1].uuid}: InternalError try again"
    )
    sent = [[json.loads(e["MessageBody"])["uuid"] for e in batch] for batch in fake_sqs.batches]
    # The sender fault is never retried; the transient failure is tried max_attempts times.
    assert sent == [[a.uuid for a in alerts], [alerts[1].uuid], [alerts[1].uuid]]
