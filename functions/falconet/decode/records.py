"""From one parsed JSON value to audit events: envelope recognition and the per-event checks.

A `Reader` is made per input, with the table of envelopes it peels (`falconet.decode.envelopes`,
passed in, so the envelope readers depend on this module and never the other way). Framing (lines,
documents, export lines) hands it parsed values; `Reader.value` recognises what a value is: an
`Event` (`accept`), an `EventList` or an array (each item), else the first envelope of the table
whose test matches, which peels it and hands what is inside back to `Reader.value`.

Every leaf record ends in exactly one place: an event handed on, or a count in `DecodeStats`.
Deliberate difference from Falco: an array or EventList with one bad element loses that element
only (Falco's parser discards the whole line). Envelopes nest at most `MAX_DEPTH` deep, so no input
can drive the recursion to a `RecursionError`. The input's `Budget` (`falconet.decode.limits`)
bounds its records (checked before each array item) and what its base64 payloads inflate to.
"""

from __future__ import annotations

import base64
import binascii
import gc
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson

from falconet.context import EventContext
from falconet.decode import source
from falconet.decode.compression import GZIP_MAGIC, CorruptGzip, inflate_bounded
from falconet.decode.limits import MIN_DOCUMENT_BYTES, OBJECT_LIMITS, Budget
from falconet.decode.partial import BodyPlan
from falconet.decode.stats import (
    BAD_ENVELOPE,
    BAD_TIMESTAMP,
    LIMIT_DOCUMENT,
    LIMIT_RECORDS,
    NOT_AUDIT_EVENT,
    TOO_LARGE,
    DecodeStats,
    reason_of,
)
from falconet.timestamps import parse_rfc3339_ns

Event = dict[str, Any]
Decoded = Iterator[tuple[Event, EventContext]]
# An envelope: a test of a JSON object, and the reader of what it holds
# (reader, value, where, raw_len, ctx, depth) -> events.
Envelope = tuple[
    Callable[[dict[str, Any]], bool],
    Callable[["Reader", dict[str, Any], int, int, EventContext, int], Decoded],
]

MAX_EVENT_BYTES = 262_144  # the k8saudit plugin's maxEventSize: larger (compact) events are dropped
MAX_DEPTH = 8  # envelope and array nesting; real inputs use at most 4
MAX_CONTEXTS = 1024  # envelope contexts cached per input (one per cluster, normally one or two)


# Documents parsed with the collector paused (see `loads`); shorter lines are not measured against
# `max_document_bytes` either, which is never smaller.
GC_PAUSE_BYTES = MIN_DOCUMENT_BYTES
# "YYYY-MM-DDTHH:MM" prefixes known to be a real date and time (bounded: cleared when full). By
# the minute, not the second: events unsorted across a day (several batches, many sources) have
# 86,400 distinct seconds, and a cache of seconds then missed for nearly every event.
VALID_PREFIXES: set[str] = set()
_PREFIXES_MAX = 4096


def valid_timestamp(value: object) -> bool:
    """`parse_rfc3339_ns(value) is not None`, 4x faster for the usual `...SS.ffffffZ` form.

    Why: the stageTimestamp check runs once per event, and the full parse (1.5 us, its fraction
    read digit by digit) cost 0.4x an `orjson.loads` of a whole event; decoding only needs to
    know that the value parses. Any other form (offsets) goes to the full parser, and a test
    checks that both always agree. The two hot loops (`stream._lines_of_events`,
    `Reader.items`) inline this fast path for the UTC forms (`metav1.MicroTime`'s six digits,
    Falco's nine, none: minute in `VALID_PREFIXES`, seconds 00-59, ASCII digits, `Z`) before
    calling this: the call costs as much as the check.
    """
    if type(value) is not str or len(value) < 20:
        return parse_rfc3339_ns(value) is not None
    prefix = value[:16]
    if prefix not in VALID_PREFIXES:
        if value[16] != ":" or parse_rfc3339_ns(prefix + ":00Z") is None:
            return parse_rfc3339_ns(value) is not None
        if len(VALID_PREFIXES) >= _PREFIXES_MAX:
            VALID_PREFIXES.clear()
        VALID_PREFIXES.add(prefix)
    if (
        value[16] == ":"
        and value[17] < "6"
        and value[-1] == "Z"
        and value.isascii()
        and value[17:19].isdigit()
        and (len(value) == 20 or (value[19] == "." and value[20:-1].isdigit()))
    ):
        return True
    return parse_rfc3339_ns(value) is not None


# What orjson refuses that Falco's parser reads (`falconet.decode.source`): invalid UTF-8, lone
# surrogates, numbers past a double's range, nesting past 1024 (which the reader then refuses
# with its own reason).
_BAD_UTF8 = "str is not valid UTF-8"
_FALCO_READS = (
    _BAD_UTF8,
    "no low surrogate",
    "invalid high surrogate",
    "invalid low surrogate",
    "number is infinity",
    "depth limit exceeded",
)


def reread(data: bytes | bytearray | str, exc: orjson.JSONDecodeError) -> Any:
    """The value of a text orjson refused with `exc`, read as Falco reads it, when Falco reads
    such a text (invalid UTF-8 shown as U+FFFD, ...); else raises `exc` again. The reader's
    own refusals (`source.SourceError`, a `JSONDecodeError` with a `reason`) propagate.

    Invalid UTF-8 alone needs no more than its replacement: orjson reads the repaired text (a
    text that is not JSON either fails there as fast as it did: the document splitter tries a
    cut document up to 16 times). What orjson refuses after that goes to the Python reader."""
    message = str(exc)
    if not message.startswith(_FALCO_READS):
        raise exc
    if message.startswith(_BAD_UTF8) and not isinstance(data, str):
        text = bytes(data).decode("utf-8", "replace")
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as again:
            if not str(again).startswith(_FALCO_READS):
                raise
        return source.read(text)
    return source.read(data)


def loads(data: bytes | bytearray | str) -> Any:
    """`orjson.loads`, with the cyclic GC paused for documents over 64 KiB.

    Why: one big document (an EventList, a JSON array file) creates 10^4-10^6 containers in one
    call, and each allocation threshold triggers a GC pass over the growing heap: 3x slower on a
    32 MB EventList, 1.5x on a 400-event webhook body (bench/decode_speed.py). Parsed JSON cannot
    form reference cycles, so pausing the collector for the call loses nothing.
    What orjson refuses and Falco reads goes to `reread`. Raises `orjson.JSONDecodeError`.
    """
    if len(data) < GC_PAUSE_BYTES:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            return reread(data, exc)
    enabled = gc.isenabled()
    gc.disable()
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return reread(data, exc)
    finally:
        if enabled:
            gc.enable()


def annotate_cluster(event: dict[str, Any], cluster: str) -> None:
    """Record the cluster in `annotations.cluster_name` (what `ka.cluster.name` reads) unless
    the event names one itself."""
    annotations = event.get("annotations")
    if annotations is None:
        event["annotations"] = {"cluster_name": cluster}
    elif type(annotations) is dict and "cluster_name" not in annotations:
        annotations["cluster_name"] = cluster


class Reader:
    """Decoding state of one input: its name, the caller's context, the counters, the budget."""

    __slots__ = (
        "_contexts",
        "bodies",
        "budget",
        "context",
        "envelopes",
        "falco_json",
        "name",
        "parse",
        "stats",
        "unit",
    )

    def __init__(
        self,
        stats: DecodeStats,
        context: EventContext,
        name: str,
        envelopes: Sequence[Envelope] = (),
        budget: Budget | None = None,
        *,
        falco_json: bool = False,
    ) -> None:
        self.stats = stats
        # How every JSON text of the input is parsed: orjson (Falco's reading only for what
        # orjson refuses), or Falco's reading throughout (`falconet.decode.source`).
        self.falco_json = falco_json
        self.parse: Callable[[bytes | bytearray | str], Any] = source.read if falco_json else loads
        self.budget = budget or Budget(OBJECT_LIMITS, stats.records)
        self.envelopes = envelopes
        self.context = context
        self.name = name
        self.unit = ""  # "" for line numbers, "document " in DOCUMENTS framing
        # What the events' consumer reads (`falconet.decode.partial`); None: decode them whole.
        self.bodies: BodyPlan | None = None
        self._contexts: dict[tuple[str | None, str | None, str | None], EventContext] = {}

    # --- accounting -------------------------------------------------------------------------
    def position(self, where: int, sub: str = "") -> str:
        return f"{self.name}:{self.unit}{where}" + (f" {sub}" if sub else "")

    def reject(self, reason: str, where: int, detail: str = "", sub: str = "") -> None:
        """Count one leaf record as rejected."""
        self.stats.records += 1
        self.stats.reject(reason, self.position(where, sub), detail)

    def skip(self, reason: str, count: int = 1) -> None:
        """Count `count` leaf records as skipped."""
        self.stats.records += count
        self.stats.skip(reason, count)

    def refuse_records(self, where: int) -> None:
        """The input reached its record limit at `where` (the first record not read): stop it."""
        budget = self.budget
        budget.refuse(LIMIT_RECORDS, f"stopped after {budget.limits.max_records} records")
        self.stopped(where)

    def stopped(self, where: int) -> None:
        """Count the limit that stopped the input, if one did, at `where` (the first record not
        read), once: the framing calls this when it reaches the end of what it was given."""
        budget = self.budget
        if budget.stop is not None and not budget.counted:
            budget.counted = True
            reason, detail = budget.stop
            self.reject(reason, where, detail)

    def context_for(
        self, cluster: str | None, account: str | None = None, region: str | None = None
    ) -> EventContext:
        """The context of an envelope: its own values, the caller's for the rest (cached)."""
        key = (cluster, account, region)
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = EventContext(cluster=cluster, account=account, region=region).with_defaults(
                self.context
            )
            if len(self._contexts) >= MAX_CONTEXTS:
                self._contexts.clear()
            self._contexts[key] = ctx
        return ctx

    # --- events -------------------------------------------------------------------------------
    def accept(self, event: Event, where: int, raw_len: int, ctx: EventContext) -> bool:
        """Count `event` as a record and check it; True if it is to be handed on.

        `raw_len` bounds the event's compact size from above (the line or message it came from):
        only when it exceeds the limit is the event re-serialised to measure it.
        """
        stats = self.stats
        stats.records += 1
        if not valid_timestamp(event.get("stageTimestamp")):
            stats.reject(BAD_TIMESTAMP, self.position(where), snippet(event.get("auditID", "")))
            return False
        if raw_len > MAX_EVENT_BYTES:
            try:
                size = len(orjson.dumps(event))
            except orjson.JSONEncodeError:  # nested past orjson's 255 levels: not an audit event
                size = raw_len
            if size > MAX_EVENT_BYTES:
                detail = f"{size} bytes, auditID {snippet(event.get('auditID', ''))}"
                stats.reject(TOO_LARGE, self.position(where), detail)
                return False
        cluster = ctx.cluster
        if cluster:
            annotate_cluster(event, cluster)
        stats.events += 1
        return True

    # --- envelopes ----------------------------------------------------------------------------
    def value(
        self, value: Any, where: int, raw_len: int, ctx: EventContext, depth: int = 0
    ) -> Decoded:
        """Every audit event inside one parsed JSON value; the rest counted."""
        if type(value) is dict:
            kind = value.get("kind")
            if kind == "Event":
                if self.accept(value, where, raw_len, ctx):
                    yield value, ctx
                return
            if depth >= MAX_DEPTH:
                self.reject(NOT_AUDIT_EVENT, where, f"envelopes nested over {MAX_DEPTH} deep")
                return
            if kind == "EventList":
                items = value.get("items")
                if type(items) is not list:
                    self.reject(NOT_AUDIT_EVENT, where, "EventList without an items array")
                    return
                yield from self.items(items, where, raw_len, ctx, depth)
                return
            yield from self._envelope(value, where, raw_len, ctx, depth)
            return
        if type(value) is list:
            if depth >= MAX_DEPTH:
                self.reject(NOT_AUDIT_EVENT, where, f"arrays nested over {MAX_DEPTH} deep")
                return
            yield from self.items(value, where, raw_len, ctx, depth)
            return
        self.reject(NOT_AUDIT_EVENT, where, snippet(value))

    def items(
        self, items: list[Any], where: int, raw_len: int, ctx: EventContext, depth: int
    ) -> Decoded:
        """Events of an array or EventList: the webhook path, so `accept` is inlined.

        The items' compact sizes add up to at most `raw_len`: items are measured (re-serialised)
        only while the bytes not yet accounted for could still hold an event over the limit.
        The stageTimestamp check inlines `valid_timestamp`'s fast path for the MicroTime form.
        """
        stats = self.stats
        room = self.budget.max_records - stats.records
        over = len(items) > room
        if over:
            items = items[: max(0, room)]
        cluster = ctx.cluster
        budget = raw_len
        limit = MAX_EVENT_BYTES
        prefixes = VALID_PREFIXES
        valid_ts = valid_timestamp
        dumps = orjson.dumps
        for item in items:
            if type(item) is dict and item.get("kind") == "Event":
                ts = item.get("stageTimestamp")
                if not (
                    type(ts) is str
                    and len(ts) >= 20
                    and ts[:16] in prefixes
                    and ts[16] == ":"
                    and ts[17] < "6"
                    and ts[-1] == "Z"
                    and ts.isascii()
                    and ts[17:19].isdigit()
                    and (len(ts) == 20 or (ts[19] == "." and ts[20:-1].isdigit()))
                ) and not valid_ts(ts):
                    yield from self.value(item, where, raw_len, ctx, depth + 1)  # counts it
                    continue
            else:
                yield from self.value(item, where, raw_len, ctx, depth + 1)
                continue
            if budget > limit:
                try:
                    size = len(dumps(item))
                except orjson.JSONEncodeError:  # nested past orjson's 255 levels
                    size = budget
                budget -= size
                if size > limit:
                    audit_id = snippet(item.get("auditID"))
                    self.reject(TOO_LARGE, where, f"{size} bytes, auditID {audit_id}")
                    continue
            stats.records += 1
            if cluster:
                annotate_cluster(item, cluster)
            stats.events += 1
            yield item, ctx
        if over:
            self.refuse_records(where)

    def _envelope(
        self, value: dict[str, Any], where: int, raw_len: int, ctx: EventContext, depth: int
    ) -> Decoded:
        for matches, read in self.envelopes:
            if matches(value):
                yield from read(self, value, where, raw_len, ctx, depth)
                return
        self.reject(NOT_AUDIT_EVENT, where, snippet(value))

    def pubsub(
        self, value: dict[str, Any], where: int, raw_len: int, ctx: EventContext, depth: int
    ) -> Decoded:
        """A Pub/Sub push body or Eventarc MessagePublishedData: `message.data` is base64 text
        (of a LogEntry, usually)."""
        payload = self.unbase64(value["message"].get("data"), where, "message.data")
        if payload is not None:
            yield from self.document(payload, where, ctx, depth + 1)

    def cloudevent(
        self, event: dict[str, Any], where: int, raw_len: int, ctx: EventContext, depth: int
    ) -> Decoded:
        """A structured-mode CloudEvent: its `data` (JSON, JSON text) or `data_base64`."""
        if "data_base64" in event:
            payload = self.unbase64(event["data_base64"], where, "data_base64")
            if payload is not None:
                yield from self.document(payload, where, ctx, depth + 1)
            return
        data = event["data"]
        if type(data) is str:
            yield from self.document(data.encode(), where, ctx, depth + 1)
        else:
            yield from self.value(data, where, raw_len, ctx, depth + 1)

    # --- helpers for providers ----------------------------------------------------------------
    def unbase64(self, data: Any, where: int, what: str) -> bytes | None:
        """`data` base64-decoded and gunzipped if gzip; None (counted) if it is not that, or if
        it inflates past the input's budget or the size of a document."""
        if type(data) is not str:
            self.reject(BAD_ENVELOPE, where, f"{what} is not a string")
            return None
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            self.reject(BAD_ENVELOPE, where, f"{what}: {exc}")
            return None
        if not raw.startswith(GZIP_MAGIC):
            return raw  # no bigger than the document that holds it
        budget = self.budget
        room, reason, detail = budget.inflate_room(len(raw))
        limit = budget.limits.max_document_bytes
        if limit <= room:
            room, reason, detail = limit, LIMIT_DOCUMENT, f"over {limit} bytes"
        try:
            payload = inflate_bounded(raw, room)
        except CorruptGzip as exc:
            self.reject(BAD_ENVELOPE, where, f"{what}: {exc}")
            return None
        if payload is None:
            self.reject(reason, where, f"{what} inflates {detail}")
            return None
        budget.compressed += len(raw)
        budget.inflated += len(payload)
        return payload

    def document(self, payload: bytes, where: int, ctx: EventContext, depth: int) -> Decoded:
        """Audit events in one JSON text found inside an envelope."""
        try:
            value = self.parse(payload)
        except orjson.JSONDecodeError as exc:
            self.reject(reason_of(exc), where, str(exc))
            return
        yield from self.value(value, where, len(payload), ctx, depth)


def snippet(value: Any) -> str:
    """At most 80 characters of a parsed JSON value, for a problem's detail.

    Never `repr` or `str` of a container: orjson parses 1024 levels deep, and Python's repr of
    a value nested 1000 deep raises RecursionError. orjson writes only 255
    levels: deeper values are named, not shown."""
    if type(value) is str:
        return value[:80]
    try:
        return orjson.dumps(value)[:80].decode(errors="replace")
    except orjson.JSONEncodeError:
        return f"a {type(value).__name__} nested over 255 levels"
