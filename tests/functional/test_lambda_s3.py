"""`handle_s3` end to end on a moto server: S3 object in, alerts out to SQS / SNS.

The handler, the S3 reader and the sinks are the production code; boto3 reaches moto only through
AWS_ENDPOINT_URL (see conftest.py).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.conftest import ROOT
from tests.functional.conftest import REGION, Aws

import lambda_handlers
from falconet.runtime import reset_runtime

RULES = ROOT / "tests" / "data" / "functional_rules.yaml"
ITEMS = json.loads((ROOT / "examples" / "audit-batch.json").read_text())["items"]
EXPECTED = ["Test Cluster Admin Binding", "Test Exec", "Test Namespace Deleted"]
KEY = "cluster=prod-eu/2026/03/11/audit 15:45.log.gz"  # a space and a colon: encoded in events


def jsonl(items: list[dict[str, Any]], *, garbage: bool = False) -> bytes:
    lines = [json.dumps(i) for i in items]
    if garbage:
        lines.insert(2, '{"kind": "Event", "verb": broken json')
    return gzip.compress(("\n".join(lines) + "\n").encode())


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    def apply(**env: str) -> None:
        monkeypatch.setenv("FALCONET_RULES", str(RULES))
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        reset_runtime()

    yield apply
    reset_runtime()


def s3_notification(bucket: str, key: str) -> dict[str, Any]:
    encoded = key.replace(" ", "+").replace(":", "%3A")
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": encoded, "size": 1},
                },
            }
        ]
    }


def via_sqs(note: dict[str, Any], message_id: str = "m-1") -> dict[str, Any]:
    return {
        "Records": [{"messageId": message_id, "eventSource": "aws:sqs", "body": json.dumps(note)}]
    }


def via_sns(note: dict[str, Any]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": "n-1",
                    "TopicArn": "arn:aws:sns:x:1:t",
                    "Message": json.dumps(note),
                },
            }
        ]
    }


def via_eventbridge(bucket: str, key: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "e-1",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "region": REGION,
        "resources": [],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": key, "size": 1},
            "reason": "PutObject",
        },
    }


TRIGGERS: dict[str, Callable[[str, str], dict[str, Any]]] = {
    "direct": s3_notification,
    "sqs": lambda b, k: via_sqs(s3_notification(b, k)),
    "sns": lambda b, k: via_sns(s3_notification(b, k)),
    "sns-in-sqs": lambda b, k: via_sqs(
        {"Type": "Notification", "Message": json.dumps(s3_notification(b, k))}
    ),
    "eventbridge": via_eventbridge,
}


@pytest.mark.parametrize("trigger", list(TRIGGERS))
def test_object_alerts_reach_sqs_exactly(
    trigger: str,
    aws: Aws,
    audit_bucket: str,
    sqs_queue: str,
    configure: Callable[..., None],
    receive_all: Callable[..., list[dict[str, Any]]],
) -> None:
    aws.client("s3").put_object(Bucket=audit_bucket, Key=KEY, Body=jsonl(ITEMS))
    configure(FALCONET_SQS_QUEUE_URL=sqs_queue)
    answer = lambda_handlers.handle_s3(TRIGGERS[trigger](audit_bucket, KEY))
    if trigger in ("sqs", "sns-in-sqs"):
        assert answer == {"batchItemFailures": []}
    else:
        assert answer["alerts"] == 3 and answer["events"] == 6
    messages = receive_all(aws.client("sqs"), sqs_queue)
    alerts = [json.loads(m["Body"]) for m in messages]
    assert sorted(a["rule"] for a in alerts) == EXPECTED
    assert {a["output_fields"]["falconet.cluster"] for a in alerts} == {"prod-eu"}
    assert {a["output_fields"]["falconet.origin"] for a in alerts} == {f"s3://{audit_bucket}/{KEY}"}


def test_alerts_reach_a_queue_subscribed_to_the_topic(
    aws: Aws,
    audit_bucket: str,
    sqs_queue: str,
    sns_topic: str,
    configure: Callable[..., None],
    receive_all: Callable[..., list[dict[str, Any]]],
) -> None:
    sqs = aws.client("sqs")
    arn = sqs.get_queue_attributes(QueueUrl=sqs_queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    aws.client("sns").subscribe(
        TopicArn=sns_topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"}
    )
    aws.client("s3").put_object(Bucket=audit_bucket, Key=KEY, Body=jsonl(ITEMS))
    configure(FALCONET_SNS_TOPIC_ARN=sns_topic)
    lambda_handlers.handle_s3(s3_notification(audit_bucket, KEY))
    alerts = [json.loads(m["Body"]) for m in receive_all(sqs, sqs_queue)]
    assert sorted(a["rule"] for a in alerts) == EXPECTED


def test_fifo_queue_deduplicates_a_redelivered_object(
    aws: Aws,
    audit_bucket: str,
    fifo_queue: str,
    configure: Callable[..., None],
    receive_all: Callable[..., list[dict[str, Any]]],
) -> None:
    aws.client("s3").put_object(Bucket=audit_bucket, Key=KEY, Body=jsonl(ITEMS))
    configure(FALCONET_SQS_QUEUE_URL=fifo_queue)
    note = s3_notification(audit_bucket, KEY)
    lambda_handlers.handle_s3(note)
    lambda_handlers.handle_s3(note)  # S3 delivers at least once: the same object again
    messages = receive_all(
        aws.client("sqs"), fifo_queue, MessageSystemAttributeNames=["MessageGroupId"]
    )
    alerts = [json.loads(m["Body"]) for m in messages]
    assert sorted(a["rule"] for a in alerts) == EXPECTED
    assert {m["Attributes"]["MessageGroupId"] for m in messages} == {"prod-eu"}


def test_malformed_line_is_counted_and_the_rest_evaluated(
    aws: Aws,
    audit_bucket: str,
    sqs_queue: str,
    configure: Callable[..., None],
    receive_all: Callable[..., list[dict[str, Any]]],
    capfd: pytest.CaptureFixture[str],
) -> None:
    aws.client("s3").put_object(Bucket=audit_bucket, Key=KEY, Body=jsonl(ITEMS, garbage=True))
    configure(FALCONET_SQS_QUEUE_URL=sqs_queue)
    capfd.readouterr()
    answer = lambda_handlers.handle_s3(s3_notification(audit_bucket, KEY))
    assert answer["events"] == 6
    assert answer["rejected"] == 1
    assert answer["rejected_by_reason"] == {"not JSON": 1}
    alerts = [json.loads(m["Body"]) for m in receive_all(aws.client("sqs"), sqs_queue)]
    assert sorted(a["rule"] for a in alerts) == EXPECTED
    log = [
        json.loads(line)
        for line in capfd.readouterr().err.splitlines()
        if line.startswith('{"falconet"')
    ]
    assert len(log) == 1 and log[0]["rejected"] == 1 and log[0]["alerts"] == 3
    assert any(":3" in p for p in log[0]["problems"])  # the position of the bad line


def test_an_object_is_decoded_under_the_object_limits_of_the_settings(
    aws: Aws, audit_bucket: str, configure: Callable[..., None]
) -> None:
    # Nested gzip and 6 records: within the object limits set, past the body limits set.
    body = gzip.compress(jsonl(ITEMS))
    aws.client("s3").put_object(Bucket=audit_bucket, Key=KEY, Body=body)
    configure(
        FALCONET_OBJECT_MAX_RECORDS="4",
        FALCONET_BODY_MAX_RECORDS="1",
        FALCONET_BODY_MAX_GZIP_LAYERS="1",
    )
    answer = lambda_handlers.handle_s3(s3_notification(audit_bucket, KEY))
    assert answer["events"] == 4
    assert answer["rejected_by_reason"] == {"input over the record limit": 1}
    assert answer["problems"] == [
        f"s3://{audit_bucket}/{KEY}:5: input over the record limit (stopped after 4 records)"
    ]


def test_test_event_is_acknowledged(configure: Callable[..., None], aws: Aws) -> None:
    configure()
    answer = lambda_handlers.handle_s3(
        {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}
    )
    assert answer["events"] == 0 and answer["alerts"] == 0


def test_sqs_message_for_a_failing_object_is_reported(
    aws: Aws,
    audit_bucket: str,
    sqs_queue: str,
    configure: Callable[..., None],
) -> None:
    aws.client("s3").put_object(Bucket=audit_bucket, Key=KEY, Body=jsonl(ITEMS))
    configure(FALCONET_SQS_QUEUE_URL=sqs_queue.replace("alerts-", "missing-"))
    event = via_sqs(s3_notification(audit_bucket, KEY), "m-42")
    assert lambda_handlers.handle_s3(event) == {"batchItemFailures": [{"itemIdentifier": "m-42"}]}


def test_cluster_from_object_metadata(
    aws: Aws,
    audit_bucket: str,
    sqs_queue: str,
    configure: Callable[..., None],
    receive_all: Callable[..., list[dict[str, Any]]],
) -> None:
    key = "2026/03/11/audit.log.gz"  # no cluster= in the key: the uploader set metadata instead
    aws.client("s3").put_object(
        Bucket=audit_bucket, Key=key, Body=jsonl(ITEMS), Metadata={"cluster": "meta-cluster"}
    )
    configure(FALCONET_SQS_QUEUE_URL=sqs_queue)
    lambda_handlers.handle_s3(s3_notification(audit_bucket, key))
    alerts = [json.loads(m["Body"]) for m in receive_all(aws.client("sqs"), sqs_queue)]
    assert sorted(a["rule"] for a in alerts) == EXPECTED
    assert {a["output_fields"]["falconet.cluster"] for a in alerts} == {"meta-cluster"}


@pytest.mark.parametrize("trigger", ["direct", "sqs"])
def test_an_object_deleted_since_its_notification_is_acknowledged(
    trigger: str,
    aws: Aws,
    audit_bucket: str,
    configure: Callable[..., None],
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A retry could never succeed: the object is named as gone and nothing is failed."""
    configure()
    capfd.readouterr()
    answer = lambda_handlers.handle_s3(TRIGGERS[trigger](audit_bucket, "cluster=x/gone.log.gz"))
    if trigger == "sqs":
        assert answer == {"batchItemFailures": []}
    else:
        assert answer["status"] == "ok" and answer["events"] == 0
    (log,) = [json.loads(x) for x in capfd.readouterr().err.splitlines() if x.startswith("{")]
    assert log["ignored"] == [f"s3://{audit_bucket}/cluster=x/gone.log.gz no longer exists"]
    assert "error" not in log


def test_a_missing_bucket_is_gone_too(configure: Callable[..., None], aws: Aws) -> None:
    configure()
    answer = lambda_handlers.handle_s3(s3_notification("no-such-bucket-falconet", "a.log"))
    assert answer["ignored"] == ["s3://no-such-bucket-falconet/a.log no longer exists"]
