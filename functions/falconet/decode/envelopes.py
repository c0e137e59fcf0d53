"""The envelopes the decoder peels, in the order `Reader.value` tries them.

====================================  =============================================================
a JSON object with                    what it is, and who reads it
====================================  =============================================================
`messageType`, `logEvents`            CloudWatch Logs subscription envelope (`cloudwatch`)
`awslogs.data`                        Lambda subscription event: base64 gzip envelope (`cloudwatch`)
`protoPayload`                        GKE Cloud Logging LogEntry (`gke`)
`records: [...]`                      AKS diagnostic settings via Event Hub (`aks`)
`category`, `properties`              one AKS record, a `PT1H.json` line (`aks`)
`message.data`                        Pub/Sub push body or Eventarc `MessagePublishedData`
`specversion` and `data`              a structured-mode CloudEvent: its data
====================================  =============================================================

(`Event`, `EventList` and arrays are recognised before any envelope.) A new input format is one
module and one row here; `stream` hands this table to every `Reader`.
"""

from __future__ import annotations

from typing import Any

from falconet.decode import aks, cloudwatch, gke
from falconet.decode.records import Envelope, Reader


def _has_message_data(value: dict[str, Any]) -> bool:
    message = value.get("message")
    return type(message) is dict and "data" in message


ENVELOPES: tuple[Envelope, ...] = (
    (
        lambda v: "logEvents" in v and "messageType" in v,
        lambda r, v, where, n, ctx, depth: cloudwatch.read_envelope(r, v, where, depth),
    ),
    (
        lambda v: "awslogs" in v,
        lambda r, v, where, n, ctx, depth: cloudwatch.read_awslogs(r, v, where, depth),
    ),
    (
        lambda v: "protoPayload" in v,
        lambda r, v, where, n, ctx, depth: gke.read_log_entry(r, v, where, n),
    ),
    (
        lambda v: type(v.get("records")) is list,
        lambda r, v, where, n, ctx, depth: aks.read_records(r, v["records"], where, depth),
    ),
    (
        lambda v: "category" in v and "properties" in v,
        lambda r, v, where, n, ctx, depth: aks.read_record(r, v, where, depth, ""),
    ),
    (_has_message_data, Reader.pubsub),
    (lambda v: "specversion" in v and ("data" in v or "data_base64" in v), Reader.cloudevent),
)
