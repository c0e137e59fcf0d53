"""The decoders (`falconet.decode.decode`, `decode_value`): any bytes, in any chunking, under any
limits.

The first byte chooses how the rest is handed over (in memory, in chunks of a size taken from the
second byte, as a file, or parsed first and given to `decode_value`) and under which limits (an
HTTP body's, an object's, or tiny ones so that every limit is reached). Whatever the input, the
decoder must return normally, account for every record (`records == events + rejected +
skipped`), hand on only audit events that passed the checks, count an input-stopping refusal at
most once, and decode an input the same way whether it arrives whole or in pieces (unless a
limit measured on the pieces as they were read stopped it).
"""

from __future__ import annotations

import base64
import copy
import io
from collections.abc import Iterator
from typing import Any

import orjson

from falconet.context import EventContext
from falconet.decode import (
    BAD_COMPRESSION,
    BODY_LIMITS,
    LIMIT_LAYERS,
    LIMIT_RECORDS,
    MAX_EVENT_BYTES,
    OBJECT_LIMITS,
    DecodeLimits,
    DecodeStats,
    decode,
    decode_value,
)
from falconet.decode.partial import SKIM, SKIP, WHOLE, BodyPlan
from falconet.decode.records import valid_timestamp
from tests.conftest import SHARED
from tests.unit.decode.wrap import (
    aks_eventhub,
    aks_pt1h,
    awslogs_event,
    cwl_envelope,
    export_lines,
    firehose_object,
    gz,
    jsonl,
    load_events,
    log_entry,
)

MAX_SECONDS = 2.0
TINY = DecodeLimits(
    max_inflated_bytes=1 << 16,
    max_inflate_ratio=2,
    max_gzip_layers=1,
    max_records=3,
    max_document_bytes=1 << 16,
)
LIMITS = (BODY_LIMITS, OBJECT_LIMITS, TINY)
_STOPS_ONCE = (BAD_COMPRESSION, LIMIT_LAYERS, LIMIT_RECORDS)


def _seeds() -> list[bytes]:
    events = load_events()
    entry = log_entry()
    shapes = [
        jsonl(events),
        gz(jsonl(events)),
        gz(gz(jsonl(events))),
        b"".join(gz(jsonl([e])) for e in events),
        firehose_object(copy.deepcopy(events)),
        awslogs_event(copy.deepcopy(events)),
        export_lines(events),
        aks_eventhub(copy.deepcopy(events)),
        aks_pt1h(copy.deepcopy(events)),
        orjson.dumps({"kind": "EventList", "items": events}),
        orjson.dumps({"kind": "EventList", "items": events}, option=orjson.OPT_INDENT_2),
        orjson.dumps(events),
        b"".join(orjson.dumps(cwl_envelope([orjson.dumps(e).decode()])) for e in events),
        orjson.dumps(entry) + b"\n",
        orjson.dumps({"message": {"data": _b64(orjson.dumps(entry))}, "subscription": "s"}),
        orjson.dumps({"specversion": "1.0", "id": "1", "source": "s", "type": "t", "data": events}),
        b"\xef\xbb\xbf\n\n" + jsonl(events[:2]),
        # values nested near orjson's limits (255 to write, 1024 to read)
        b'{"kind":"Event","auditID":' + b"[" * 300 + b"]" * 300 + b"}\n",
        b'{"messageType":{"a":' + b"[" * 300 + b"]" * 300 + b'},"logEvents":[]}',
        b'{"kind":"EventList","items":[' + b"[" * 600 + b"]" * 600 + b"]}",
        # where Falco's reading differs from orjson's (decode.source): duplicate keys, number
        # text, a NUL, escapes, invalid UTF-8, a lone surrogate, nesting past 300
        b'{"kind":"Event","stageTimestamp":"2024-01-01T00:00:00Z","auditID":"a","verb":"delete",'
        b'"verb":"get","n":[1.50,2.01e2,-0,123456789012345678901234,1e400],"u":"r\\u0000x",'
        b'"o":{"a":"caf\\u00e9\\/","b":"bad\xff","c":"\\ud800"}}\n',
        b'{"kind":"Event","stageTimestamp":"2024-01-01T00:00:00Z","auditID":"b","r":'
        + b"[" * 299
        + b"]" * 299
        + b"}\n",
    ]
    for folder in ("eks", "aks", "gke"):
        path = SHARED / "samples" / folder
        if path.is_dir():
            shapes += [p.read_bytes() for p in sorted(path.iterdir()) if p.suffix != ".yaml"]
    shapes = [s for s in shapes if len(s) < 60_000]
    return [bytes([mode]) + bytes([7]) + s for s in shapes for mode in (0, 5, 10, 3, 0x40, 0x42)]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


SEEDS = _seeds()


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


def _run(
    data: Any,
    limits: DecodeLimits,
    value: bool = False,
    falco_json: bool = False,
    bodies: BodyPlan | None = None,
) -> tuple[list[Any], DecodeStats]:
    stats = DecodeStats()
    context = EventContext(origin="fuzz")
    if value:
        pairs = decode_value(data[0], stats=stats, context=context, size=data[1], limits=limits)
    else:
        pairs = decode(
            data,
            stats=stats,
            context=context,
            name="f",
            limits=limits,
            falco_json=falco_json,
            bodies=bodies,
        )
    events = [event for event, _ in pairs]
    _check(events, stats)
    return events, stats


def _check(events: list[Any], stats: DecodeStats) -> None:
    if stats.records != stats.events + stats.rejected_total + stats.skipped_total:
        raise AssertionError(f"records not accounted for: {stats.to_dict()}")
    if len(events) != stats.events:
        raise AssertionError(f"{len(events)} events handed on, {stats.events} counted")
    for reason in _STOPS_ONCE:
        if stats.rejected[reason] > 1:
            raise AssertionError(f"{reason!r} counted {stats.rejected[reason]} times")
    for event in events:
        if type(event) is not dict or event.get("kind") != "Event":
            raise AssertionError(f"not an audit event: {str(event)[:200]}")
        if not valid_timestamp(event.get("stageTimestamp")):
            raise AssertionError(f"invalid stageTimestamp handed on: {str(event)[:200]}")
        try:
            size = len(orjson.dumps(event))
        except orjson.JSONEncodeError:  # nested past orjson's 255 levels: not measurable
            continue
        if size > MAX_EVENT_BYTES + _annotation(event):
            raise AssertionError(f"an event of {size} bytes handed on")


def _annotation(event: dict[str, Any]) -> int:
    """Bytes the cluster annotation may add to an event after its size was checked."""
    annotations = event.get("annotations")
    if type(annotations) is not dict or "cluster_name" not in annotations:
        return 0
    return len(orjson.dumps({"annotations": {"cluster_name": annotations["cluster_name"]}}))


def fuzz_one(data: bytes) -> None:
    mode = data[0] if data else 0
    chunk = (data[1] if len(data) > 1 else 0) + 1
    body = data[2:]
    limits = LIMITS[mode % len(LIMITS)]
    shape = (mode // len(LIMITS)) % 4
    if shape == 3:  # parsed first, as the HTTP layer parses a structured CloudEvent
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        _run((value, len(body) if mode & 0x80 else None), limits, value=True)
        return
    falco_json = bool(mode & 0x40)  # every text read as Falco reads it (decode.source)
    given: Any = body if shape == 0 else io.BytesIO(body) if shape == 1 else _pieces(body, chunk)
    events, stats = _run(given, limits, falco_json=falco_json)
    if _cut(stats):
        return
    if not falco_json:
        _same_with_plans(body, limits, events, stats)
    # The same input in pieces of another size must give the same events and counts.
    others, other = _run(_pieces(body, chunk * 13 % 4096 + 1), limits, falco_json=falco_json)
    if _cut(other):
        return
    if others != events or (other.records, other.rejected, other.skipped) != (
        stats.records,
        stats.rejected,
        stats.skipped,
    ):
        raise AssertionError(f"whole and in pieces differ: {stats.to_dict()} vs {other.to_dict()}")


def _plan(level: int) -> BodyPlan:
    plan = BodyPlan(min_bytes=0)  # every line, however short
    if level != SKIP:
        plan.add(None, None, managed=level == WHOLE)
    return plan


def _same_with_plans(body: bytes, limits: DecodeLimits, events: list[Any], stats: Any) -> None:
    """Decoding only what a plan says is read (`decode.partial`) gives the same counts and the
    same events, bar the bodies (SKIP) or their managedFields (SKIM) the plan leaves out (on the
    JSON-lines path; events in envelopes are decoded whole). The
    documented exception: an unread body orjson refuses (`1e400`) sends the whole event to
    Falco's reading on the full path (its strings are then `Sourced`, not plain)."""
    for level in (WHOLE, SKIM, SKIP):
        planned, other = _run(body, limits, bodies=_plan(level))
        counts = (other.records, other.rejected, other.skipped)
        if counts != (stats.records, stats.rejected, stats.skipped):
            raise AssertionError(f"plan {level}: {other.to_dict()} vs {stats.to_dict()}")
        for got, full in zip(planned, events, strict=True):
            if got != full and got != _left(copy.deepcopy(full), level) and not _falco_read(full):
                raise AssertionError(f"plan {level}: {str(got)[:200]} vs {str(full)[:200]}")


def _left(event: dict[str, Any], level: int) -> dict[str, Any]:
    for name in ("requestObject", "responseObject"):
        if name in event and level == SKIP:
            del event[name]
        elif name in event and level == SKIM:
            part = event[name]
            if type(part) is dict and type(part.get("metadata")) is dict:
                part["metadata"].pop("managedFields", None)
    return event


def _falco_read(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str) and type(item) is not str:
            return True
        if type(item) is dict:
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)
    return False


def _cut(stats: DecodeStats) -> bool:
    """Whether the input was cut where the pieces fell: a limit stopped it (measured on what had
    been read), or its gzip is damaged (what a damaged inflate call had produced is lost)."""
    return BAD_COMPRESSION in stats.rejected or any(
        reason.startswith("input over") for reason in stats.rejected
    )
