"""The SNS sink: one Falco JSON alert per message, published with `PublishBatch`.

Contract:
- `Message` is exactly the alert's Falco JSON (plus `uuid`), like Falcosidekick's `rawjson: true`,
  so an SQS subscription with raw delivery receives the same body as the SQS sink sends.
- Three `String` message attributes, for subscription filter policies: `priority` (Falco's
  capitalised name), `rule`, and `cluster` when known. Falcosidekick's non-raw mode sends one
  attribute per output field; we do not, because SNS drops messages with more than 10 attributes for
  raw-delivery SQS subscribers.
- FIFO topics (ARN ends in `.fifo`): `MessageGroupId` = cluster, `MessageDeduplicationId` = uuid.
- Deliveries, batching, retries and drops are those of the SQS sink (`_aws.BatchDelivery`), with
  SNS's limits: 10 entries and 256 KiB (bodies and attributes) per request.
"""

from __future__ import annotations

from typing import Any

from falconet.alerts import Alert
from falconet.sinks._aws import BatchSink, region_of_arn
from falconet.sinks.sqs import fifo_fields, sqs_body

# botocore 1.44.8 `sns/2010-03-31/service-2.json`, PublishBatch: "By default, the maximum allowed
# individual message size and the maximum total payload size (the sum of the individual lengths of
# all of the batched messages) are both 256 KiB (262,144 bytes)" and "The combined size of all
# messages in the batch, including each message's body and attributes, must not exceed the topic's
# MaximumMessageSize". A topic can be raised to 1 MiB, but 256 KiB is what every topic accepts.
MAX_BATCH_ENTRIES = 10
MAX_BATCH_BYTES = 262_144 - 1024
ATTRIBUTES_ALLOWANCE = 1024  # the message attributes of an entry (priority, rule, cluster)


def message_attributes(alert: Alert) -> dict[str, dict[str, str]]:
    """The filterable attributes of `alert` (SNS rejects empty values, so those are left out)."""
    values = {"priority": alert.priority, "rule": alert.rule, "cluster": alert.cluster or ""}
    return {
        name: {"DataType": "String", "StringValue": text} for name, text in values.items() if text
    }


class SnsSink(BatchSink):
    """Alerts to one SNS topic (standard or FIFO)."""

    name = "sns"
    service = "sns"
    max_count = MAX_BATCH_ENTRIES
    max_bytes = MAX_BATCH_BYTES
    entry_overhead = ATTRIBUTES_ALLOWANCE

    @property
    def topic_arn(self) -> str:
        return self.target

    def region(self) -> str | None:
        return region_of_arn(self.target)

    def entry(self, alert: Alert) -> dict[str, Any]:
        body = sqs_body(alert)  # SNS -> SQS delivery has SQS's character rules
        entry: dict[str, Any] = {"Message": body, "MessageAttributes": message_attributes(alert)}
        if self.fifo:
            entry.update(fifo_fields(alert, body))
        return entry

    def entry_size(self, entry: dict[str, Any]) -> int:
        size = len(entry["Message"].encode())
        for name, attribute in entry.get("MessageAttributes", {}).items():
            size += len(name.encode()) + len(attribute["DataType"])
            size += len(attribute["StringValue"].encode())
        return size

    def send(self, client: Any, batch: list[dict[str, Any]]) -> Any:
        return client.publish_batch(TopicArn=self.target, PublishBatchRequestEntries=batch)
