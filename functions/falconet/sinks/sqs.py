"""The SQS sink: one Falco JSON alert per message, sent with `SendMessageBatch`.

Contract:
- `open(deadline)` starts one invocation's delivery (`falconet.sinks._aws.BatchDelivery`): each
  request goes as soon as it holds 10 entries or 1 MiB, so memory stays flat; a failed invocation's
  unsent alerts die with its delivery and are never sent by the next invocation.
- Each message body is exactly `alert.to_json()` (Falco's JSON plus `uuid`), so Falcosidekick-style
  consumers read it unchanged.
- FIFO queues (URL ends in `.fifo`): `MessageGroupId` = the alert's cluster (ordering per cluster),
  `MessageDeduplicationId` = the alert uuid, so a re-delivered S3 object or a retried invocation
  within SQS's 5-minute window is dropped by SQS itself.
- Entries SQS reports as `Failed` are retried with backoff, a bounded number of times and never past
  the deadline, then `SinkError`; `SenderFault` entries, and an entry that makes SQS refuse its
  whole request, are dropped (counted, logged) and the others delivered.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import urlsplit

from falconet.alerts import Alert
from falconet.sinks._aws import BatchSink

# botocore 1.44.8 `sqs/2012-11-05/service-2.json`, SendMessageBatch: "The maximum allowed individual
# message size and the maximum total payload size (the sum of the individual lengths of all of the
# batched messages) are both 1 MiB 1,048,576 bytes." (It was 256 KiB until 2025.) CreateQueue:
# "MaximumMessageSize ... Default: 1,048,576 bytes (1 MiB)"; a queue created earlier, or with a
# lower MaximumMessageSize, needs FALCONET_MAX_ALERT_BYTES at or under its value. We leave 1 KiB
# of headroom for the entry fields SQS may count with the body.
MAX_BATCH_ENTRIES = 10
MAX_BATCH_BYTES = 1_048_576 - 1024

DEFAULT_GROUP_ID = "falconet"  # FIFO group for alerts whose cluster is unknown

# SendMessageBatch model text: bodies may only hold #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD and the
# astral planes. JSON escapes every control character below #x20 and orjson refuses lone surrogates,
# so only U+FFFE and U+FFFF can slip through from audit data; escaping them keeps the JSON identical
# in meaning and stops one crafted object name from poisoning a whole batch.
_NOT_XML_CHARS = re.compile("[\ufffe\uffff]")
# MessageGroupId / MessageDeduplicationId: up to 128 of a-z A-Z 0-9 and ASCII punctuation.
_NOT_ID_CHARS = re.compile(r"[^!-~]")


def sqs_body(alert: Alert) -> str:
    """The message body for `alert`: its Falco JSON, made safe for SQS's character set."""
    text = alert.to_json().decode()
    return _NOT_XML_CHARS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def fifo_id(value: str) -> str:
    """`value` reduced to what SQS/SNS accept as a FIFO group or deduplication id."""
    return _NOT_ID_CHARS.sub("_", value)[:128]


def region_of_queue_url(url: str) -> str | None:
    """`https://sqs.eu-west-1.amazonaws.com/...` -> `eu-west-1`; None for other hosts."""
    host = urlsplit(url).hostname or ""
    parts = host.split(".")
    if len(parts) >= 4 and parts[0] == "sqs" and "amazonaws" in parts:
        return parts[1]
    return None


def fifo_fields(alert: Alert, body: str) -> dict[str, str]:
    """FIFO group (the cluster) and deduplication id (the uuid) of an SQS/SNS entry."""
    # An alert without uuid (never from the engine) still deduplicates on its content.
    dedup = alert.uuid or hashlib.sha256(body.encode()).hexdigest()
    return {
        "MessageGroupId": fifo_id(alert.cluster or DEFAULT_GROUP_ID),
        "MessageDeduplicationId": fifo_id(dedup),
    }


class SqsSink(BatchSink):
    """Alerts to one SQS queue (standard or FIFO)."""

    name = "sqs"
    service = "sqs"
    max_count = MAX_BATCH_ENTRIES
    max_bytes = MAX_BATCH_BYTES

    @property
    def queue_url(self) -> str:
        return self.target

    def region(self) -> str | None:
        return region_of_queue_url(self.target)

    def entry(self, alert: Alert) -> dict[str, Any]:
        body = sqs_body(alert)
        entry: dict[str, Any] = {"MessageBody": body}
        if self.fifo:
            entry.update(fifo_fields(alert, body))
        return entry

    def entry_size(self, entry: dict[str, Any]) -> int:
        return len(entry["MessageBody"].encode())

    def send(self, client: Any, batch: list[dict[str, Any]]) -> Any:
        return client.send_message_batch(QueueUrl=self.target, Entries=batch)
