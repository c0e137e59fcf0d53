"""The SNS sink against a moto server: raw Falco JSON to an SQS subscription with raw delivery, and
the message attributes proven by a subscription filter policy on `priority`."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from tests.functional.conftest import deliver

from falconet.errors import SinkError
from falconet.sinks.sns import SnsSink, message_attributes


def _subscribe(aws, topic_arn: str, filter_policy: dict | None = None, raw: bool = True) -> str:
    sqs = aws.client("sqs")
    queue_url = sqs.create_queue(QueueName=f"sub-{abs(hash((topic_arn, str(filter_policy))))}")[
        "QueueUrl"
    ]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    attributes = {"RawMessageDelivery": "true" if raw else "false"}
    if filter_policy is not None:
        attributes["FilterPolicy"] = json.dumps(filter_policy)
    aws.client("sns").subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes=attributes
    )
    return str(queue_url)


def test_alerts_reach_raw_and_filtered_subscribers(aws, sns_topic, make_alert, receive_all) -> None:
    every = _subscribe(aws, sns_topic)
    urgent = _subscribe(aws, sns_topic, {"priority": ["Critical", "Error"]})
    prod = _subscribe(aws, sns_topic, {"cluster": ["prod-eu"]})
    priorities = ["Warning", "Critical", "Notice", "Error"]
    alerts = [
        make_alert(n, priority=priorities[n % 4], cluster="prod-eu" if n % 3 else "staging")
        for n in range(23)
    ]
    sink = SnsSink(sns_topic)
    deliver(sink, alerts)

    sqs = aws.client("sqs")
    all_bodies = [json.loads(m["Body"]) for m in receive_all(sqs, every)]
    assert Counter(b["uuid"] for b in all_bodies) == Counter(a.uuid for a in alerts)
    assert {b["uuid"]: b for b in all_bodies} == {a.uuid: a.to_dict() for a in alerts}

    urgent_uuids = [json.loads(m["Body"])["uuid"] for m in receive_all(sqs, urgent)]
    assert Counter(urgent_uuids) == Counter(
        a.uuid for a in alerts if a.priority in ("Critical", "Error")
    )
    prod_uuids = [json.loads(m["Body"])["uuid"] for m in receive_all(sqs, prod)]
    assert Counter(prod_uuids) == Counter(a.uuid for a in alerts if a.cluster == "prod-eu")


def test_large_alerts_are_split_under_the_sns_limit(
    aws, sns_topic, make_alert, receive_all
) -> None:
    every = _subscribe(aws, sns_topic)
    alerts = [make_alert(n, padding=60_000) for n in range(9)]  # 9 x 60 KB > 256 KiB
    sink = SnsSink(sns_topic)
    deliver(sink, alerts)
    uuids = [json.loads(m["Body"])["uuid"] for m in receive_all(aws.client("sqs"), every)]
    assert Counter(uuids) == Counter(a.uuid for a in alerts)


def test_attributes_leave_out_an_unknown_cluster(make_alert) -> None:
    assert message_attributes(make_alert(1, cluster=None, priority="Error")) == {
        "priority": {"DataType": "String", "StringValue": "Error"},
        "rule": {"DataType": "String", "StringValue": "K8s Namespace Deleted"},
    }


def test_missing_topic_raises_sink_error(aws, sns_topic, make_alert) -> None:
    sink = SnsSink(sns_topic + "-gone")
    with pytest.raises(SinkError, match="NotFound"):
        deliver(sink, [make_alert(1)])


def test_fifo_topic_deduplicates_a_redelivered_batch(aws, make_alert, receive_all) -> None:
    sns, sqs = aws.client("sns"), aws.client("sqs")
    topic = sns.create_topic(Name="alerts.fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
    queue_url = sqs.create_queue(QueueName="sub.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    alerts = [make_alert(n) for n in range(12)]
    for _ in range(2):  # the same batch published twice, as a retried invocation would
        sink = SnsSink(topic)
        deliver(sink, alerts)
    messages = receive_all(sqs, queue_url, MessageSystemAttributeNames=["MessageGroupId"])
    assert Counter(json.loads(m["Body"])["uuid"] for m in messages) == Counter(
        a.uuid for a in alerts
    )
    assert {m["Attributes"]["MessageGroupId"] for m in messages} == {"prod-eu"}
