"""Input decoding: bytes or a stream in, audit events out, every bad record counted.

Public contract (entry points and the pipeline use only this):

    stats = DecodeStats()
    for event, context in decode(data, stats=stats, context=EventContext(cluster="prod")):
        ...

`data` is `bytes`, a binary file object (read in chunks: memory stays bounded) or an iterable of
byte chunks. Every yielded `event` is a plain `dict` holding one `audit.k8s.io` Event whose
`stageTimestamp` parses; `context` says where it came from (cluster, account, region, origin),
taken from the envelope and completed from the caller's `context`. Records that are not evaluated
are counted in `stats` under a named reason, and the first few are kept with their position.
Nothing here raises for a bad record; `decode` never executes or opens anything named by its input.
"""

from __future__ import annotations

from falconet.decode.stats import (
    BAD_TIMESTAMP,
    NOT_AUDIT_EVENT,
    NOT_JSON,
    TOO_LARGE,
    DecodeStats,
    Problem,
)
from falconet.decode.stream import MAX_EVENT_BYTES, decode

__all__ = [
    "BAD_TIMESTAMP",
    "MAX_EVENT_BYTES",
    "NOT_AUDIT_EVENT",
    "NOT_JSON",
    "TOO_LARGE",
    "DecodeStats",
    "Problem",
    "decode",
]
