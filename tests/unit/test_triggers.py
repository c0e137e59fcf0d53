"""falconet.triggers: which bucket objects an S3, SQS, SNS, EventBridge or GCS trigger names."""

from __future__ import annotations

import json
from typing import Any

import pytest

from falconet.storage import ObjectRef
from falconet.triggers import Ignored, gcs_object, objects_in_event, s3_object, sqs_records
from tests.conftest import shared_path

FIREHOSE_KEY = (
    "firehose/2024/06/01/12/"
    "k8s-audit-stream-1-2024-06-01-12-05-33-0b9c8a1e-2f4d-4c6b-9a3e-7d1f2e3c4b5a"
)


def record(key: str, event: str = "ObjectCreated:Put", bucket: str = "audit") -> dict[str, Any]:
    return {
        "eventSource": "aws:s3",
        "awsRegion": "eu-west-1",
        "eventName": event,
        "s3": {"bucket": {"name": bucket}, "object": {"key": key}},
    }


def test_a_direct_notification_decodes_its_form_encoded_keys() -> None:
    refs = objects_in_event({"Records": [record("a+b/c%3Ad.gz"), record("x.gz")]})
    assert refs == [
        ObjectRef("s3", "audit", "a b/c:d.gz", "eu-west-1"),
        ObjectRef("s3", "audit", "x.gz", "eu-west-1"),
    ]


def test_removals_and_test_events_are_ignored_with_a_reason() -> None:
    assert objects_in_event({"Records": [record("k", "ObjectRemoved:Delete")]}) == [
        Ignored("ObjectRemoved:Delete event")
    ]
    assert objects_in_event({"Service": "Amazon S3", "Event": "s3:TestEvent"}) == [
        Ignored("s3:TestEvent")
    ]
    assert objects_in_event({"Records": [{"s3": {}, "eventName": "ObjectCreated:Put"}]}) == [
        Ignored("S3 record without bucket/key")
    ]


def test_wrapped_in_sns_in_sqs() -> None:
    note = {"Records": [record("k.gz")]}
    sns = {"Type": "Notification", "Message": json.dumps(note)}
    event = {"Records": [{"eventSource": "aws:sqs", "messageId": "m", "body": json.dumps(sns)}]}
    assert objects_in_event(event) == [ObjectRef("s3", "audit", "k.gz", "eu-west-1")]
    assert sqs_records(event) == event["Records"]
    assert sqs_records(note) is None


def test_eventbridge_and_its_detail_alone() -> None:
    event = {
        "detail-type": "Object Created",
        "source": "aws.s3",
        "region": "eu-west-1",
        "account": "111122223333",
        "detail": {"bucket": {"name": "audit"}, "object": {"key": "k"}},
    }
    ref = ObjectRef("s3", "audit", "k", "eu-west-1", "111122223333")
    assert objects_in_event(event) == [ref]
    assert s3_object(event) == ref
    assert s3_object(json.dumps(event["detail"])) == ObjectRef("s3", "audit", "k")
    deleted = {**event, "detail-type": "Object Deleted"}
    assert objects_in_event(deleted) == [Ignored("EventBridge Object Deleted")]


def test_gcs_object_finalized_data() -> None:
    assert gcs_object({"bucket": "b", "name": "cluster=x/a.gz"}) == ObjectRef(
        "gs", "b", "cluster=x/a.gz"
    )
    assert gcs_object('{"bucket": "b", "name": "n"}') == ObjectRef("gs", "b", "n")
    assert gcs_object({"bucket": "b"}) is None
    assert gcs_object(b"not json") is None


@pytest.mark.shared
@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        (
            "synthetic-eventbridge-object-created.json",
            ObjectRef("s3", "example-k8s-audit", FIREHOSE_KEY, "eu-west-1", "111122223333"),
        ),
        (
            "synthetic-lambda-sqs-event-wrapping-s3.json",
            ObjectRef("s3", "example-k8s-audit", FIREHOSE_KEY, "eu-west-1"),
        ),
        (
            "synthetic-sns-envelope-wrapping-s3.json",
            ObjectRef("s3", "example-k8s-audit", FIREHOSE_KEY, "eu-west-1"),
        ),
        (
            "synthetic-s3-notification-urlencoded-key.json",
            ObjectRef(
                "s3",
                "example-k8s-audit",
                "audit exports/2024-06-01T12:00:00Z/kube-apiserver-audit 1.gz",
                "eu-west-1",
            ),
        ),
        ("synthetic-s3-test-event.json", Ignored("s3:TestEvent")),
    ],
)
def test_the_shared_trigger_samples(sample: str, expected: ObjectRef | Ignored) -> None:
    event = json.loads(shared_path("samples", "s3-events", sample).read_text())
    assert objects_in_event(event) == [expected]
