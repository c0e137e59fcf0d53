"""Delivery through the real handlers and pipeline, on a moto server: an oversize alert reaches
every sink, alerts leave as they are found, and each invocation owns its deliveries, its counters
and its time.

Each test here failed before alerts were fitted, delivered as they go and bounded by a deadline:
- an exec with a 140,000-character command: SNS refused the 281 KB alert, the invocation failed on
  every retry (and with the Lambda sink nothing was delivered);
- every sink held all of an object's alerts until the end;
- a failed invocation's alerts were sent by the next one; a failed request's log line had no
  counters; retries ignored the function's remaining time.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from tests.conftest import ROOT
from tests.functional.conftest import REGION, Aws
from tests.functional.test_lambda_s3 import s3_notification

import lambda_handlers
from falconet import pipeline as pipeline_module
from falconet.alerts import Alert
from falconet.engine import Engine
from falconet.errors import SinkError
from falconet.pipeline import Pipeline
from falconet.runtime import reset_runtime
from falconet.sinks.sns import SnsSink
from falconet.sinks.sqs import SqsSink

RULES = ROOT / "tests" / "data" / "functional_rules.yaml"
ITEMS = json.loads((ROOT / "examples" / "audit-batch.json").read_text())["items"]
EXEC = next(item for item in ITEMS if "/exec?" in item["requestURI"])
SNS_MESSAGE_LIMIT = 262_144


def huge_exec(length: int = 140_000) -> dict[str, Any]:
    item = copy.deepcopy(EXEC)
    item["auditID"] = "0b5e4c1e-0000-4000-8000-0000000000ff"
    item["requestURI"] = item["requestURI"].replace("command=sh", "command=" + "x" * length)
    return item


def event_list(items: Sequence[dict[str, Any]]) -> bytes:
    return json.dumps(
        {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}
    ).encode()


def namespace_deletions(count: int, first: int = 0) -> list[dict[str, Any]]:
    deletion = next(item for item in ITEMS if item["verb"] == "delete")
    items = []
    for n in range(first, first + count):
        item = copy.deepcopy(deletion)
        item["auditID"] = f"00000000-0000-4000-8000-{n:012d}"
        items.append(item)
    return items


def subscribe(aws: Aws, topic_arn: str) -> str:
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="topic-subscriber")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    aws.client("sns").subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"}
    )
    return str(url)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.from_paths([RULES])


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    def apply(**env: str) -> None:
        monkeypatch.setenv("FALCONET_RULES", str(RULES))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        reset_runtime()

    yield apply
    reset_runtime()


class LambdaContext:
    """What Lambda hands a handler, as far as falconet reads it."""

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def log_lines(capfd: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    err = capfd.readouterr().err
    return [json.loads(line) for line in err.splitlines() if line.startswith('{"falconet"')]


# --- item 2: one oversize alert ------------------------------------------------------------------


def test_an_exec_with_a_huge_command_reaches_every_sink(
    aws: Aws,
    audit_bucket: str,
    sqs_queue: str,
    sns_topic: str,
    configure: Callable[..., None],
    receive_all: Callable[..., list[dict[str, Any]]],
    capfd: pytest.CaptureFixture[str],
) -> None:
    subscriber = subscribe(aws, sns_topic)
    key = "cluster=prod-eu/huge-exec.json"
    body = "\n".join(json.dumps(item) for item in [*ITEMS, huge_exec()])
    aws.client("s3").put_object(Bucket=audit_bucket, Key=key, Body=body.encode())
    configure(FALCONET_SQS_QUEUE_URL=sqs_queue, FALCONET_SNS_TOPIC_ARN=sns_topic)
    note = s3_notification(audit_bucket, key)

    answer = lambda_handlers.handle_s3(note, LambdaContext(60_000))

    assert answer["alerts"] == 4 and answer["truncated"] == 1
    assert answer["delivered"] == {"sqs": 4, "sns": 4}
    sqs = aws.client("sqs")
    for queue in (sqs_queue, subscriber):
        messages = [m["Body"] for m in receive_all(sqs, queue)]
        assert len(messages) == 4
        (exec_alert,) = [m for m in messages if "0b5e4c1e" in m]
        assert len(exec_alert.encode()) <= SNS_MESSAGE_LIMIT
        alert = json.loads(exec_alert)
        fields = alert["output_fields"]
        assert fields["ka.auditid"] == "0b5e4c1e-0000-4000-8000-0000000000ff"
        assert "…[truncated 1" in fields["ka.uri.param[command]"]
        assert "…[truncated 1" in alert["output"]
    (line,) = log_lines(capfd)
    assert line["truncated"] == 1 and "error" not in line


def test_the_lambda_sink_delivers_the_whole_invocation(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, http_receiver: Any
) -> None:
    # Before: the 281 KB alert could not fit one payload, and nothing of the invocation went out.
    from falconet.sinks.lambda_invoke import LambdaSink

    http_receiver.statuses = [202]
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", http_receiver.url.rstrip("/"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    pipeline = Pipeline(engine, [LambdaSink("falconet-notify")])

    result = pipeline.run(event_list([*ITEMS, huge_exec()]))

    sent = [a for r in http_receiver.requests for a in json.loads(r.body)["alerts"]]
    assert sorted(a["rule"] for a in sent) == sorted(result.alerts_by_rule.elements())
    assert len(sent) == 4 and result.truncated == 1
    assert all(len(r.body) <= 262_144 for r in http_receiver.requests)


# --- item 4: deliver as you go ----------------------------------------------------------------


class QueueWatcher:
    """A sink placed after the SQS sink: each time it is handed alerts, it notes how many messages
    the queue already holds and how many alerts the pipeline has handed out so far."""

    name = "watcher"
    max_alert_bytes = None

    def __init__(self, aws: Aws, queue_url: str) -> None:
        self.sqs = aws.client("sqs")
        self.queue_url = queue_url
        self.handed = 0
        self.seen: list[tuple[int, int]] = []  # (alerts handed out, messages in the queue)
        self.tally = SimpleNamespace(sink="watcher", delivered=0, dropped=0, reasons=[])

    def open(self, deadline: Any = None) -> QueueWatcher:
        return self

    def emit(self, alerts: Sequence[Alert]) -> None:
        self.handed += len(alerts)
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        self.seen.append((self.handed, int(attributes["ApproximateNumberOfMessages"])))

    def flush(self) -> None:
        pass


def test_alerts_reach_the_queue_while_the_input_is_still_being_read(
    engine: Engine, aws: Aws, sqs_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline_module, "EMIT_CHUNK", 50)  # hand-overs every 50 alerts
    watcher = QueueWatcher(aws, sqs_queue)
    pipeline = Pipeline(engine, [SqsSink(sqs_queue), watcher])  # type: ignore[list-item]

    result = pipeline.run(event_list(namespace_deletions(125)))

    # At every hand-over the queue already holds all but the last partial batch (< 10 alerts):
    # the SQS delivery holds one request's worth, never the object's alerts.
    assert watcher.seen == [(50, 40), (100, 90), (125, 120)]
    assert result.alerts == 125 and result.delivered["sqs"] == 125


# --- item 6: each invocation owns its deliveries, counters and time -------------------------------


def test_a_failed_invocation_leaks_nothing_into_the_next(
    engine: Engine,
    aws: Aws,
    sqs_queue: str,
    sns_topic: str,
    receive_all: Callable[..., list[dict[str, Any]]],
) -> None:
    subscriber = subscribe(aws, sns_topic)
    later = sqs_queue + "-later"  # does not exist yet: the first invocation's SQS sink fails
    pipeline = Pipeline(engine, [SqsSink(later), SnsSink(sns_topic)])

    with pytest.raises(SinkError):
        pipeline.run(event_list(namespace_deletions(3)))
    sqs = aws.client("sqs")
    receive_all(sqs, subscriber)  # whatever the failed invocation got out is not the point here

    sqs.create_queue(QueueName=later.rsplit("/", 1)[1])
    pipeline.run(event_list(namespace_deletions(2, first=100)))

    # The second invocation delivers its own two alerts, and nothing of the first one.
    topic_ids = sorted(json.loads(m["Body"])["uuid"] for m in receive_all(sqs, subscriber))
    queue_ids = sorted(json.loads(m["Body"])["uuid"] for m in receive_all(sqs, later))
    assert len(topic_ids) == 2 and topic_ids == queue_ids


def test_a_failed_request_answers_and_logs_its_counters(
    sqs_queue: str, configure: Callable[..., None], capfd: pytest.CaptureFixture[str]
) -> None:
    configure(FALCONET_SQS_QUEUE_URL=sqs_queue + "-missing")
    capfd.readouterr()
    event = {
        "version": "2.0",
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": "POST", "path": "/"}},
        "body": event_list(ITEMS).decode(),
        "isBase64Encoded": False,
    }

    answer = lambda_handlers.handle_http(event, LambdaContext(30_000))

    assert answer["statusCode"] == 503
    body = json.loads(answer["body"])
    assert body["events"] == 6 and body["alerts"] == 3
    (line,) = log_lines(capfd)
    assert line["level"] == "error" and line["status"] == 503
    assert line["events"] == 6 and line["alerts"] == 3
    assert line["alerts_by_rule"] == {
        "Test Namespace Deleted": 1,
        "Test Exec": 1,
        "Test Cluster Admin Binding": 1,
    }


def test_retries_end_within_the_functions_remaining_time(
    sqs_queue: str,
    configure: Callable[..., None],
    http_receiver: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # SQS answers 500 to everything. With 2 s left, no retry can end in time (one attempt may
    # take 7 s): the handler gives up after the first attempt and answers 503 while it can.
    http_receiver.statuses = [500]
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", http_receiver.url.rstrip("/"))
    configure(FALCONET_SQS_QUEUE_URL="https://sqs.us-east-1.amazonaws.com/123456789012/alerts")
    event = {
        "version": "2.0",
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": "POST", "path": "/"}},
        "body": event_list(ITEMS).decode(),
        "isBase64Encoded": False,
    }

    answer = lambda_handlers.handle_http(event, LambdaContext(2_000))

    assert answer["statusCode"] == 503
    assert "no time left to retry" in json.loads(answer["body"])["error"]
    assert len(http_receiver.requests) == 1
