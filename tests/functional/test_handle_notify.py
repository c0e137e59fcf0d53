"""`handle_notify` end to end: alerts sent through the SQS (or SNS) sink to moto, the real SQS
records read back, and delivery to a local HTTP receiver that answers 200, then 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from tests.functional.conftest import deliver

import lambda_handlers
from falconet.errors import SinkError
from falconet.notify import format_alert
from falconet.runtime import reset_runtime
from falconet.sinks.sns import SnsSink
from falconet.sinks.sqs import SqsSink


@pytest.fixture
def notify_env(http_receiver, monkeypatch) -> Iterator[None]:
    monkeypatch.setenv("FALCONET_NOTIFY_URL", http_receiver.url)
    monkeypatch.delenv("FALCONET_NOTIFY_FORMAT", raising=False)
    reset_runtime()  # a new cold start reads the new settings
    yield
    reset_runtime()


def _sqs_event(messages: list[dict]) -> dict:
    """The event Lambda's SQS event source mapping builds from received messages."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:alerts",
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


def test_delivers_each_alert_as_one_line(
    aws, sqs_queue, make_alert, receive_all, http_receiver, notify_env
) -> None:
    alerts = [make_alert(n, priority="Critical" if n else "Warning") for n in range(3)]
    sink = SqsSink(sqs_queue)
    deliver(sink, alerts)
    messages = receive_all(aws.client("sqs"), sqs_queue)

    result = lambda_handlers.handle_notify(_sqs_event(messages), None)

    assert result == {"batchItemFailures": []}
    texts = sorted(json.loads(r.body)["text"] for r in http_receiver.requests)
    assert texts == sorted(format_alert(a) for a in alerts)
    assert "[Critical] K8s Namespace Deleted: Namespace deleted (user=alice ns=team-1) " in texts[0]


def test_reports_the_messages_the_receiver_refused(
    aws, sqs_queue, make_alert, receive_all, http_receiver, notify_env
) -> None:
    alerts = [make_alert(n) for n in range(3)]
    sink = SqsSink(sqs_queue)
    deliver(sink, alerts)
    messages = receive_all(aws.client("sqs"), sqs_queue)
    event = _sqs_event(messages)
    event["Records"].append({**event["Records"][0], "messageId": "garbage", "body": "{oops"})
    http_receiver.statuses = [200, 500]  # the first POST succeeds, every later one fails

    result = lambda_handlers.handle_notify(event, None)

    expected = [{"itemIdentifier": m["MessageId"]} for m in messages[1:]]
    assert sorted(result["batchItemFailures"], key=str) == sorted(
        [*expected, {"itemIdentifier": "garbage"}], key=str
    )
    by_uuid = {a.uuid: a for a in alerts}
    first, second = (by_uuid[json.loads(m["Body"])["uuid"]] for m in messages[:2])
    # One success; the second message used all 4 attempts; the third was not tried (endpoint down).
    assert [json.loads(r.body)["text"] for r in http_receiver.requests] == [
        format_alert(first),
        *[format_alert(second)] * 4,
    ]


def test_reads_sns_envelopes_from_a_non_raw_subscription(
    aws, sns_topic, make_alert, receive_all, http_receiver, notify_env
) -> None:
    sqs = aws.client("sqs")
    queue_url = sqs.create_queue(QueueName="envelopes")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    aws.client("sns").subscribe(TopicArn=sns_topic, Protocol="sqs", Endpoint=queue_arn)
    alerts = [make_alert(n) for n in range(2)]
    sink = SnsSink(sns_topic)
    deliver(sink, alerts)
    messages = receive_all(sqs, queue_url)
    assert all(json.loads(m["Body"])["Type"] == "Notification" for m in messages)

    result = lambda_handlers.handle_notify(_sqs_event(messages), None)

    assert result == {"batchItemFailures": []}
    texts = sorted(json.loads(r.body)["text"] for r in http_receiver.requests)
    assert texts == sorted(format_alert(a) for a in alerts)


def test_direct_async_invoke_from_the_lambda_sink(
    make_alert, http_receiver, notify_env, monkeypatch
) -> None:
    monkeypatch.setenv("FALCONET_NOTIFY_FORMAT", "falco")
    alerts = [make_alert(n) for n in range(2)]
    event = {"alerts": [a.to_dict() for a in alerts]}

    assert lambda_handlers.handle_notify(event, None) == {"batchItemFailures": []}
    assert [json.loads(r.body) for r in http_receiver.requests] == [a.to_dict() for a in alerts]

    http_receiver.statuses = [500]
    with pytest.raises(SinkError, match="2 alert"):
        lambda_handlers.handle_notify(event, None)


def test_one_structured_log_line_per_invocation(
    http_receiver: Any, make_alert: Any, capfd: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    monkeypatch.setenv("FALCONET_NOTIFY_URL", http_receiver.url)
    reset_runtime()
    capfd.readouterr()
    event = {"Records": [{"messageId": "m1", "body": make_alert(1).to_json().decode()}]}
    assert lambda_handlers.handle_notify(event, None) == {"batchItemFailures": []}
    lines = [json.loads(x) for x in capfd.readouterr().err.splitlines() if x.startswith("{")]
    assert [line["falconet"] for line in lines] == ["handle_notify"]
    reset_runtime()
