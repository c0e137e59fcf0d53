"""`decode`: bytes, a file object or chunks in; audit events out, in input order, memory bounded.

The pipeline per input: `compression.iter_chunks` -> `compression.gunzip` (multi-member, nested)
-> `detect` (framing, once per input, from the first line) -> split into lines or documents ->
`orjson.loads` -> `records.Reader` (envelopes, per-event checks, accounting).

Two hot paths, with their per-event checks inlined. The S3 function reading gzip JSON lines of
Events (`_lines_of_events`): inflate 256 KiB pieces (with isal when installed), iterate a `BytesIO`
of each piece, `orjson.loads` per line, `kind == "Event"` and the stageTimestamp check per event,
no re-serialisation unless the line is over the size limit. The webhook's EventList body: one
in-memory chunk, one line, one parse, then `Reader.items`. Every other shape goes through
`Reader.value`. A line or document longer than the limits' `max_document_bytes` is counted and
dropped while it is read, so one huge line cannot exhaust memory; an in-memory input is held whole
up to that size. The records of an input are counted against its `max_records` before each line and
document; a limit that stops the input (`falconet.decode.limits`) is counted where reading stopped,
and the line or document it cut is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from io import BytesIO
from itertools import chain
from typing import Protocol

import orjson

from falconet.context import EMPTY_CONTEXT, EventContext
from falconet.decode import source
from falconet.decode.cloudwatch import read_export_line
from falconet.decode.compression import Input, gunzip, iter_chunks, whole_input
from falconet.decode.detect import BLANKS, Framing, back_to_back, detect, read_head
from falconet.decode.envelopes import ENVELOPES
from falconet.decode.limits import OBJECT_LIMITS, Budget, DecodeLimits
from falconet.decode.partial import BodyPlan, read_line
from falconet.decode.records import (
    GC_PAUSE_BYTES,
    MAX_EVENT_BYTES,
    VALID_PREFIXES,
    Decoded,
    Event,
    Reader,
    annotate_cluster,
    reread,
    valid_timestamp,
)
from falconet.decode.stats import LIMIT_DOCUMENT, NOT_JSON, DecodeStats, reason_of

__all__ = ["MAX_EVENT_BYTES", "Decoder", "Event", "decode", "decode_value"]

# Where a document may end in DOCUMENTS framing: a closing bracket followed (after blanks) by the
# next document's opening one. A match inside a string is caught because the candidate then fails
# to parse with "unexpected end of data", and the next candidate is tried.
_BOUNDARY = re.compile(rb"[}\]][ \t\r\n]*(?=[{\[])")
_RESCAN = 4096  # bytes of the buffer tail searched again when a chunk arrives
# Boundaries tried inside one document before giving it up. Each try parses the document so far,
# so a crafted document full of `}{` inside strings would otherwise cost quadratic time; real
# documents need one try, rarely two.
_MAX_MISSES = 16
_UNKNOWN_SIZE = 1 << 62  # the length of a value parsed elsewhere: measure every event


class Decoder(Protocol):
    """What the pipeline calls: `decode` below, or any drop-in replacement."""

    def __call__(
        self,
        data: Input,
        *,
        stats: DecodeStats,
        context: EventContext = ...,
        name: str = ...,
        limits: DecodeLimits = ...,
        falco_json: bool = ...,
        bodies: BodyPlan | None = ...,
    ) -> Iterator[tuple[Event, EventContext]]: ...


def decode(
    data: Input,
    *,
    stats: DecodeStats,
    context: EventContext = EMPTY_CONTEXT,
    name: str = "<input>",
    limits: DecodeLimits = OBJECT_LIMITS,
    falco_json: bool = False,
    bodies: BodyPlan | None = None,
) -> Iterator[tuple[Event, EventContext]]:
    """Yield `(event, context)` for every audit event in `data`; count the rest in `stats`.

    Never raises for bad input: every record that is not yielded is counted in `stats` under a
    named reason (see `falconet.decode.stats`), including what `limits` refuse (an HTTP body is
    decoded under `BODY_LIMITS`). Errors from reading `data` itself propagate.

    `falco_json`: read every JSON text exactly as Falco's k8saudit plugin does (first of
    duplicate keys, numbers as written, strings up to a NUL, nesting up to 300 levels:
    `falconet.decode.source`), ~20x slower to decode. Without it, orjson reads them, and
    Falco's reading is used only for what orjson refuses (invalid UTF-8, ...).

    `bodies`: what the consumer of the events reads (`Engine.body_plan`). With it, a JSON line
    holding one event is decoded without its `requestObject` and `responseObject` unless the plan
    says they are read for its verb and resource (`falconet.decode.partial`): everything the
    consumer reads is as `orjson.loads` gives it, at about half the cost. Not with `falco_json`.
    """
    budget = Budget(limits, stats.records)
    size = limits.max_document_bytes
    whole = whole_input(data, size)  # not None: `head` below is the entire input
    chunks = gunzip(iter_chunks(data if whole is None else whole, size), stats, name, budget)
    head, blank_lines = read_head(chunks)  # blank lines dropped before the head
    reader = Reader(stats, context, name, ENVELOPES, budget, falco_json=falco_json)
    reader.bodies = None if falco_json else bodies
    if not head.strip(BLANKS):
        reader.stopped(blank_lines + 1)
        return
    framing = detect(head)
    chunks = chain((head,), chunks)
    if framing is Framing.LINES:
        yield from _lines_of_events(_line_batches(chunks, budget), reader, blank_lines)
    elif framing is Framing.EXPORT:
        yield from _export_lines(_lines(chunks, budget), reader, blank_lines)
    else:
        reader.unit = "document "
        if whole is not None:
            # A webhook body over HEAD_LIMIT, a pretty-printed file: when the entire input is
            # one document, one parse. Splitting it first scanned every byte with the boundary
            # regex, 1.5x the parse itself (a 2.4 MB EventList decoded at 4.5x orjson.loads).
            try:
                value = reader.parse(head)
            except orjson.JSONDecodeError:
                pass  # several documents, or a damaged one: the splitter tells which
            else:
                yield from reader.value(value, 1, len(head), reader.context)
                return
        yield from _documents(chunks, reader, compact=back_to_back(head))


def decode_value(
    value: object,
    *,
    stats: DecodeStats,
    context: EventContext = EMPTY_CONTEXT,
    name: str = "<input>",
    size: int | None = None,
    limits: DecodeLimits = OBJECT_LIMITS,
) -> Iterator[tuple[Event, EventContext]]:
    """Yield the audit events in one JSON value already parsed (a structured CloudEvent, the data
    the functions framework parsed): read as a document of `decode`'s input would be, without
    serialising it again to parse it a second time, under `limits` (its records, its base64
    payloads).

    `size` is the length of the text it was parsed from; when it is not known, every event is
    measured against `MAX_EVENT_BYTES` (one serialisation each)."""
    reader = Reader(stats, context, name, ENVELOPES, Budget(limits, stats.records))
    reader.unit = "document "
    yield from reader.value(value, 1, _UNKNOWN_SIZE if size is None else size, context)


def _line_batches(chunks: Iterator[bytes], budget: Budget) -> Iterator[Iterable[bytes] | None]:
    """The lines of `chunks`, one batch of complete lines per chunk; None for an over-long line.

    Every line keeps its `\\n` (orjson ignores it; only the input's last line may lack one). A
    line longer than the budget's `max_document_bytes` is dropped while it is read, and None stands
    in for it. When a limit stopped the input, its unfinished last line is dropped (it was cut).
    Why batches: the consumer loops over a `BytesIO` of each chunk directly, whose iteration
    finds line ends with memchr, where `bytes.split` tests byte by byte (0.12x of a parse per
    1.7 KB line, 4x the cost) and a generator per line costs a resume per event.
    """
    limit = budget.limits.max_document_bytes
    parts: list[bytes] = []  # the unfinished last line, in pieces (joined once: no quadratic +=)
    size = 0
    dropping = False  # inside an over-long line: discard up to its newline
    for chunk in chunks:
        end = chunk.rfind(b"\n") + 1  # just past the last complete line; 0: none ends here
        if end:
            start = 0
            if dropping or parts:  # the unfinished line ends in this chunk
                start = chunk.find(b"\n") + 1
                if dropping:
                    yield None
                    dropping = False
                else:
                    parts.append(chunk[:start])
                    yield (b"".join(parts),)
            if start < end:
                yield BytesIO(chunk if start == 0 and end == len(chunk) else chunk[start:end])
            parts = [chunk[end:]] if end < len(chunk) else []
            size = len(chunk) - end
        elif not dropping:
            parts.append(chunk)
            size += len(chunk)
        if size > limit:
            parts = []
            size = 0
            dropping = True
    if dropping:
        yield None
    elif parts and budget.stop is None:
        yield (b"".join(parts),)


def _lines(chunks: Iterator[bytes], budget: Budget) -> Iterator[bytes | None]:
    """Lines of `chunks` (without `\\n`); None in place of a line over the size limit."""
    for batch in _line_batches(chunks, budget):
        if batch is None:
            yield None
            continue
        for line in batch:
            yield line[:-1] if line.endswith(b"\n") else line


def _lines_of_events(
    batches: Iterator[Iterable[bytes] | None], reader: Reader, number: int
) -> Decoded:
    # The common case (one Event per line) is inlined here; anything else goes to the Reader.
    stats = reader.stats
    max_records = reader.budget.max_records
    max_line = reader.budget.limits.max_document_bytes
    context = reader.context
    cluster = context.cluster
    parse = reader.parse
    fast_loads = source.read if reader.falco_json else orjson.loads
    plan = reader.bodies  # decode events without the bodies nothing reads (`partial.read_line`)
    fast_from = GC_PAUSE_BYTES if plan is None else plan.min_bytes  # the lines it takes
    decode_error = orjson.JSONDecodeError
    valid_ts = valid_timestamp
    prefixes = VALID_PREFIXES
    limit = MAX_EVENT_BYTES
    for batch in batches:
        if batch is None:
            number += 1
            if stats.records >= max_records:
                reader.refuse_records(number)
                return
            reader.reject(LIMIT_DOCUMENT, number, f"line over {max_line} bytes")
            continue
        for line in batch:
            number += 1
            if stats.records >= max_records:
                reader.refuse_records(number)
                return
            size = len(line)  # the line's newline included: still a bound of the event's size
            try:
                if size < GC_PAUSE_BYTES:  # <= MIN_DOCUMENT_BYTES: no need to measure it
                    value = None
                    if size >= fast_from and plan is not None:
                        value = read_line(line, plan)
                    if value is None:  # no plan, or the line takes the full path
                        value = fast_loads(line)
                elif size > max_line:  # a complete line in one big chunk (a whole input)
                    reader.reject(LIMIT_DOCUMENT, number, f"line over {max_line} bytes")
                    continue
                else:
                    value = parse(line)
            except decode_error as exc:
                yield from _unparsed(line, exc, reader, number)
                continue
            if type(value) is dict and value.get("kind") == "Event" and size <= limit:
                ts = value.get("stageTimestamp")
                # valid_timestamp's fast path for the MicroTime form, inlined (see there)
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
                    reader.accept(value, number, size, context)  # counts the rejection
                    continue
                stats.records += 1
                if cluster:
                    annotate_cluster(value, cluster)
                stats.events += 1
                yield value, context
            elif (
                type(value) is dict
                and value.get("kind") == "EventList"
                and type(items := value.get("items")) is list
            ):
                yield from reader.items(items, number, size, context, 0)  # a webhook body
            else:
                yield from reader.value(value, number, size, context)
    reader.stopped(number + 1)


def _unparsed(line: bytes, exc: orjson.JSONDecodeError, reader: Reader, number: int) -> Decoded:
    """A line the parser refused: several documents (`}{`, a small Firehose object), a text
    Falco reads though orjson does not (`records.reread`), or a rejected record."""
    if _after_document(exc):
        yield from _documents((line,), reader, compact=True, line=number)
        return
    try:
        value = reread(line, exc)
    except orjson.JSONDecodeError as refused:
        if line.strip(BLANKS):
            reader.reject(reason_of(refused), number, str(refused))
        return
    yield from reader.value(value, number, len(line), reader.context)


def _export_lines(lines: Iterator[bytes | None], reader: Reader, number: int) -> Decoded:
    stats = reader.stats
    max_records = reader.budget.max_records
    size = reader.budget.limits.max_document_bytes
    for line in lines:
        number += 1
        if stats.records >= max_records:
            reader.refuse_records(number)
            return
        if line is None or len(line) > size:
            reader.reject(LIMIT_DOCUMENT, number, f"line over {size} bytes")
        elif line.strip(BLANKS):
            yield from read_export_line(reader, line, number)
    reader.stopped(number + 1)


def _documents(chunks: Iterable[bytes], reader: Reader, *, compact: bool, line: int = 0) -> Decoded:
    """Split a stream of JSON documents (pretty-printed, or `}{` back to back) and decode each.

    `compact` (the head showed `}{`, as Firehose writes): boundaries are found with `bytes.find`,
    3x faster than the general regex. Should a document then turn out to be followed by blanks
    and another one, the stream falls back to the regex, which also finds `}` blanks `{`.
    `line`: the documents are one line of a JSON-lines input (positions name it), not the input.
    """
    splitter = _Splitter(reader, compact, line)
    budget = reader.budget
    for chunk in chunks:
        yield from splitter.feed(chunk)
        if budget.counted:  # the input reached its record limit
            return
    if line or budget.stop is None:  # else a limit stopped the input: its last document was cut
        yield from splitter.finish()
    if not line:
        reader.stopped(splitter.number + 1)


class _Splitter:
    __slots__ = (
        "buffer",
        "compact",
        "dropping",
        "line",
        "misses",
        "number",
        "reader",
        "scan",
        "start",
    )

    def __init__(self, reader: Reader, compact: bool, line: int) -> None:
        self.line = line  # splitting one line of a JSON-lines input: positions name that line
        self.reader = reader
        self.compact = compact
        self.buffer = bytearray()
        self.start = 0  # where the current document begins in `buffer`
        self.scan = 0  # where to look for the next boundary
        self.number = 0  # documents seen, for positions
        self.dropping = False  # the document outgrew the size limit: skip to the next boundary
        self.misses = 0  # boundaries that turned out to be inside the current document

    def feed(self, chunk: bytes) -> Decoded:
        self.buffer += chunk
        yield from self._split()
        buffer = self.buffer
        if self.start:
            del buffer[: self.start]
            self.scan -= self.start
            self.start = 0
        self.scan = max(self.scan, len(buffer) - _RESCAN)
        limit = self.reader.budget.limits.max_document_bytes
        if len(buffer) > limit and not self.dropping:
            self.reader.reject(LIMIT_DOCUMENT, self._next(), f"document over {limit} bytes")
            self.dropping = True
        if self.dropping:
            del buffer[: max(0, len(buffer) - _RESCAN)]
            self.scan = 0

    def finish(self) -> Decoded:
        if self.dropping:
            return
        rest = bytes(self.buffer[self.start :]).strip(BLANKS)
        if not rest or self._full():
            return
        try:
            value = self.reader.parse(rest)
        except orjson.JSONDecodeError as exc:
            if self.compact and _after_document(exc):
                self.compact = False  # blanks between documents: split again with the regex
                self.scan = self.start
                yield from self._split()
                yield from self.finish()  # not compact any more: a second failure is final
                return
            self.reader.reject(reason_of(exc), self._next(), str(exc))
            return
        yield from self.reader.value(value, self._next(), len(rest), self.reader.context)
        self.start = len(self.buffer)

    def _split(self) -> Decoded:
        buffer = self.buffer
        reader = self.reader
        while True:
            if self._full():
                return
            if self.compact:
                end = buffer.find(b"}{", self.scan) + 1
                if not end:
                    return
                self.scan = end
            else:
                match = _BOUNDARY.search(buffer, self.scan)
                if match is None:
                    return
                end = match.start() + 1
                self.scan = match.end()
            if self.dropping:
                self.dropping = False
                self.start = self.scan
                continue
            document = bytes(buffer[self.start : end])
            limit = reader.budget.limits.max_document_bytes
            if len(document) > limit:  # possible when one chunk held it whole
                reader.reject(LIMIT_DOCUMENT, self._next(), f"document over {limit} bytes")
                self.start = self.scan
                self.misses = 0
                continue
            try:
                value = reader.parse(document)
            except orjson.JSONDecodeError as exc:
                if str(exc).startswith("unexpected end of data"):
                    self.misses += 1
                    if self.misses < _MAX_MISSES:
                        continue  # the boundary was inside a string: try the next one
                    detail = f"no end of document within {_MAX_MISSES} possible boundaries"
                    reader.reject(NOT_JSON, self._next(), detail)
                elif self.compact and _after_document(exc):
                    self.compact = False  # blanks between documents: use the regex from here
                    self.scan = self.start
                    self.misses = 0
                    continue
                else:
                    reader.reject(reason_of(exc), self._next(), str(exc))
                self.start = self.scan
                self.misses = 0
                continue
            self.start = self.scan
            self.misses = 0
            yield from reader.value(value, self._next(), len(document), reader.context)

    def _next(self) -> int:
        """Position of the next document: its number, or the line being split."""
        self.number += 1
        return self.line or self.number

    def _full(self) -> bool:
        """Whether the input has reached its record limit (counted once, at the next document)."""
        reader = self.reader
        if reader.stats.records < reader.budget.max_records:
            return False
        reader.refuse_records(self.line or self.number + 1)
        return True


def _after_document(exc: orjson.JSONDecodeError) -> bool:
    return str(exc).startswith("unexpected content after document")
