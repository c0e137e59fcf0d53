"""Input decoding: bytes or a stream in, audit events out, every bad record counted.

Public contract (entry points and the pipeline use only this):

    stats = DecodeStats()
    for event, context in decode(data, stats=stats, context=EventContext(cluster="prod")):
        ...

`data` is `bytes`, a binary file object (read in chunks: memory stays bounded) or an iterable of
byte chunks. The format is detected from the content, never from a name: gzip (one member, several
concatenated, or gzip inside gzip), then JSON lines, JSON documents (pretty-printed, EventList,
arrays, CloudWatch envelopes back to back) or CloudWatch export lines; inside those, every envelope
listed in `falconet.decode.records` (EKS, GKE, AKS, webhook, Pub/Sub, CloudEvents). See
`docs/inputs.md`.

Every yielded `event` is a plain `dict` holding one `audit.k8s.io` Event whose `stageTimestamp`
parses and whose compact JSON is at most `MAX_EVENT_BYTES`, in input order; `context` says where it
came from (cluster, account, region, origin), taken from the envelope and completed from the
caller's `context`. When the context names a cluster and the event has no
`annotations.cluster_name`, it is added (so `ka.cluster.name` works). Records that are not
evaluated are counted in `stats` under a named reason, and the first few are kept with their
position. Nothing here raises for a bad record; `decode` never executes or opens anything named by
its input. What one input may cost (inflated bytes, compression ratio, gzip layers, records, the
size of one document) is bounded by `limits` (`falconet.decode.limits`: `OBJECT_LIMITS` by
default, `BODY_LIMITS` for an HTTP body); what they refuse is counted under `LIMIT_*` reasons.
"""

from __future__ import annotations

from falconet.decode.limits import BODY_LIMITS, OBJECT_LIMITS, DecodeLimits
from falconet.decode.stats import (
    BAD_COMPRESSION,
    BAD_ENVELOPE,
    BAD_TIMESTAMP,
    LIMIT_DEPTH,
    LIMIT_DOCUMENT,
    LIMIT_INFLATED,
    LIMIT_LAYERS,
    LIMIT_RATIO,
    LIMIT_RECORDS,
    NOT_AUDIT_EVENT,
    NOT_JSON,
    SKIP_CATEGORY,
    SKIP_CONTROL,
    SKIP_NOT_K8S,
    SKIP_STREAM,
    TOO_LARGE,
    TRUNCATED,
    DecodeStats,
    Problem,
)
from falconet.decode.stream import (
    MAX_EVENT_BYTES,
    Decoder,
    decode,
    decode_value,
)

__all__ = [
    "BAD_COMPRESSION",
    "BAD_ENVELOPE",
    "BAD_TIMESTAMP",
    "BODY_LIMITS",
    "LIMIT_DEPTH",
    "LIMIT_DOCUMENT",
    "LIMIT_INFLATED",
    "LIMIT_LAYERS",
    "LIMIT_RATIO",
    "LIMIT_RECORDS",
    "MAX_EVENT_BYTES",
    "NOT_AUDIT_EVENT",
    "OBJECT_LIMITS",
    "NOT_JSON",
    "SKIP_CATEGORY",
    "SKIP_CONTROL",
    "SKIP_NOT_K8S",
    "SKIP_STREAM",
    "TOO_LARGE",
    "TRUNCATED",
    "DecodeLimits",
    "DecodeStats",
    "Decoder",
    "Problem",
    "decode",
    "decode_value",
]
