"""A first decoder: JSON lines of Events, EventLists or arrays, optionally gzip, streamed.

Chunks are gunzipped with `zlib.decompressobj` (several concatenated gzip members included) and
split into lines per chunk, so memory is bounded by the longest line, not the input size.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from typing import IO, Any

import orjson

from falconet.context import EMPTY_CONTEXT, EventContext
from falconet.decode.stats import BAD_TIMESTAMP, NOT_AUDIT_EVENT, NOT_JSON, TOO_LARGE, DecodeStats
from falconet.timestamps import parse_rfc3339_ns

MAX_EVENT_BYTES = 262_144  # the k8saudit plugin's maxEventSize: larger events are dropped
CHUNK = 1 << 16
_GZIP_MAGIC = b"\x1f\x8b"

Event = dict[str, Any]


def _chunks(data: bytes | IO[bytes] | Iterable[bytes]) -> Iterator[bytes]:
    if isinstance(data, bytes | bytearray | memoryview):
        yield bytes(data)
        return
    read = getattr(data, "read", None)
    if read is not None:
        while chunk := read(CHUNK):
            yield chunk
        return
    yield from data


def _gunzip(chunks: Iterator[bytes]) -> Iterator[bytes]:
    first = b""
    for chunk in chunks:
        first += chunk
        if len(first) >= 2:
            break
    if not first.startswith(_GZIP_MAGIC):
        if first:
            yield first
        yield from chunks
        return
    inflater = zlib.decompressobj(wbits=31)
    pending = first
    while True:
        while pending:
            out = inflater.decompress(pending, CHUNK)
            if out:
                yield out
            if inflater.eof:  # next gzip member (Firehose concatenates them)
                pending = inflater.unused_data
                inflater = zlib.decompressobj(wbits=31)
                if not pending.startswith(_GZIP_MAGIC[:1]):
                    pending = b""
            else:
                pending = inflater.unconsumed_tail
        nxt = next(chunks, None)
        if nxt is None:
            break
        pending = nxt
    tail = inflater.flush()
    if tail:
        yield tail


def _lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    rest = b""
    for chunk in chunks:
        lines = (rest + chunk).split(b"\n") if rest else chunk.split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


def _events_of(value: Any, stats: DecodeStats, position: str) -> Iterator[Event]:
    if isinstance(value, list):
        for item in value:
            yield from _events_of(item, stats, position)
        return
    if isinstance(value, dict):
        kind = value.get("kind")
        if kind == "Event":
            stats.records += 1
            if parse_rfc3339_ns(value.get("stageTimestamp")) is None:
                stats.reject(BAD_TIMESTAMP, position, str(value.get("auditID", "")))
                return
            yield value
            return
        if kind == "EventList" and isinstance(value.get("items"), list):
            yield from _events_of(value["items"], stats, position)
            return
    stats.records += 1
    stats.reject(NOT_AUDIT_EVENT, position, orjson.dumps(value)[:80].decode(errors="replace"))


def decode(
    data: bytes | IO[bytes] | Iterable[bytes],
    *,
    stats: DecodeStats,
    context: EventContext = EMPTY_CONTEXT,
    name: str = "<input>",
) -> Iterator[tuple[Event, EventContext]]:
    """Yield `(event, context)` for every audit event in `data`; count the rest in `stats`."""
    loads = orjson.loads
    for number, line in enumerate(_lines(_gunzip(_chunks(data))), 1):
        if not line.strip():
            continue
        position = f"{name}:{number}"
        if len(line) > MAX_EVENT_BYTES and line.lstrip()[:1] == b"{":
            stats.records += 1
            stats.reject(TOO_LARGE, position, f"{len(line)} bytes")
            continue
        try:
            value = loads(line)
        except orjson.JSONDecodeError as exc:
            stats.records += 1
            stats.reject(NOT_JSON, position, str(exc))
            continue
        for event in _events_of(value, stats, position):
            stats.events += 1
            if context.cluster and "cluster_name" not in (event.get("annotations") or {}):
                annotations = event.get("annotations")
                if isinstance(annotations, dict):
                    annotations["cluster_name"] = context.cluster
                elif annotations is None:
                    event["annotations"] = {"cluster_name": context.cluster}
            yield event, context
