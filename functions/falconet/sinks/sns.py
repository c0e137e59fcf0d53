"""The SNS sink: one Falco JSON alert per message, published with `PublishBatch`.

Contract:
- `Message` is exactly the alert's Falco JSON (plus `uuid`), like Falcosidekick's `rawjson: true`,
  so an SQS subscription with raw delivery receives the same body as the SQS sink sends.
- Three `String` message attributes, for subscription filter policies: `priority` (Falco's
  capitalised name), `rule`, and `cluster` when known. Falcosidekick's non-raw mode sends one
  attribute per output field; we do not, because SNS drops messages with more than 10 attributes for
  raw-delivery SQS subscribers (reference/inputs-and-users.md §3.3).
- FIFO topics (ARN ends in `.fifo`): `MessageGroupId` = cluster, `MessageDeduplicationId` = uuid.
- Batching, retry of `Failed` entries and buffer handling are those of the SQS sink.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from typing import Any

from falconet.alerts import Alert
from falconet.sinks._aws import deliver_batches, make_client, region_of_arn
from falconet.sinks.sqs import DEFAULT_GROUP_ID, fifo_id, sqs_body

# botocore 1.44.8 `sns/2010-03-31/service-2.json`, PublishBatch: "By default, the maximum allowed
# individual message size and the maximum total payload size (the sum of the individual lengths of
# all of the batched messages) are both 256 KiB (262,144 bytes)" and "The combined size of all
# messages in the batch, including each message's body and attributes, must not exceed the topic's
# MaximumMessageSize". A topic can be raised to 1 MiB, but 256 KiB is what every topic accepts.
MAX_BATCH_ENTRIES = 10
MAX_BATCH_BYTES = 262_144 - 1024


def message_attributes(alert: Alert) -> dict[str, dict[str, str]]:
    """The filterable attributes of `alert` (SNS rejects empty values, so those are left out)."""
    values = {"priority": alert.priority, "rule": alert.rule, "cluster": alert.cluster or ""}
    return {
        name: {"DataType": "String", "StringValue": text} for name, text in values.items() if text
    }


def _entry_size(entry: dict[str, Any]) -> int:
    size = len(entry["Message"].encode())
    for name, attribute in entry.get("MessageAttributes", {}).items():
        size += (
            len(name.encode()) + len(attribute["DataType"]) + len(attribute["StringValue"].encode())
        )
    return size


class SnsSink:
    """Alerts to one SNS topic (standard or FIFO)."""

    name = "sns"

    def __init__(self, topic_arn: str, *, max_attempts: int = 5, backoff_base: float = 0.1) -> None:
        self.topic_arn = topic_arn
        self.fifo = topic_arn.endswith(".fifo")
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self._pending: list[Alert] = []
        self._client: Any = None
        self._lock = threading.Lock()

    def _sns(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = make_client("sns", region_of_arn(self.topic_arn))
            return self._client

    def emit(self, alerts: Sequence[Alert]) -> None:
        self._pending.extend(alerts)

    def flush(self) -> None:
        alerts, self._pending = self._pending, []
        if not alerts:
            return
        entries = [(alert.uuid or alert.rule, self._entry(alert)) for alert in alerts]
        client = self._sns()
        deliver_batches(
            f"SNS {self.topic_arn}",
            entries,
            lambda batch: client.publish_batch(
                TopicArn=self.topic_arn, PublishBatchRequestEntries=batch
            ),
            size_of=_entry_size,
            max_count=MAX_BATCH_ENTRIES,
            max_bytes=MAX_BATCH_BYTES,
            max_attempts=self.max_attempts,
            backoff_base=self.backoff_base,
        )

    def _entry(self, alert: Alert) -> dict[str, Any]:
        body = sqs_body(alert)  # SNS -> SQS delivery has SQS's character rules
        entry: dict[str, Any] = {"Message": body, "MessageAttributes": message_attributes(alert)}
        if self.fifo:
            entry["MessageGroupId"] = fifo_id(alert.cluster or DEFAULT_GROUP_ID)
            dedup = alert.uuid or hashlib.sha256(body.encode()).hexdigest()
            entry["MessageDeduplicationId"] = fifo_id(dedup)
        return entry
