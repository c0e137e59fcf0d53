"""`decode`: bytes, a file object or chunks in; audit events out, in input order, memory bounded.

The pipeline per input: `compression.iter_chunks` -> `compression.gunzip` (multi-member, nested)
-> `detect` (framing, once per input, from the first line) -> split into lines or documents ->
`orjson.loads` -> `records.Reader` (envelopes, per-event checks, accounting).

Hot path (the S3 function reading gzip JSON lines of Events): inflate 64 KiB chunks, `bytes.split`
per chunk, `orjson.loads` per line, `kind == "Event"` and the cached `parse_rfc3339_ns` per event,
no re-serialisation unless the line is over the size limit. Every other shape goes through
`Reader.value`. A line or document longer than `MAX_RECORD_BYTES` is counted and dropped while it
is read, so one huge line cannot exhaust memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import chain
from typing import Protocol

import orjson

from falconet.context import EMPTY_CONTEXT, EventContext
from falconet.decode.cloudwatch import read_export_line
from falconet.decode.compression import Input, gunzip, iter_chunks
from falconet.decode.detect import Framing, detect, read_head
from falconet.decode.records import (
    MAX_EVENT_BYTES,
    MAX_RECORD_BYTES,
    Decoded,
    Event,
    Reader,
)
from falconet.decode.stats import NOT_JSON, TRUNCATED, DecodeStats
from falconet.timestamps import parse_rfc3339_ns

__all__ = ["MAX_EVENT_BYTES", "MAX_RECORD_BYTES", "Decoder", "Event", "decode"]

# Where a document may end in DOCUMENTS framing: a closing bracket followed (after blanks) by the
# next document's opening one. A match inside a string is caught because the candidate then fails
# to parse with "unexpected end of data", and the next candidate is tried.
_BOUNDARY = re.compile(rb"[}\]][ \t\r\n]*(?=[{\[])")
_RESCAN = 4096  # bytes of the buffer tail searched again when a chunk arrives


class Decoder(Protocol):
    """What the pipeline calls: `decode` below, or any drop-in replacement."""

    def __call__(
        self, data: Input, *, stats: DecodeStats, context: EventContext = ..., name: str = ...
    ) -> Iterator[tuple[Event, EventContext]]: ...


def decode(
    data: Input,
    *,
    stats: DecodeStats,
    context: EventContext = EMPTY_CONTEXT,
    name: str = "<input>",
) -> Iterator[tuple[Event, EventContext]]:
    """Yield `(event, context)` for every audit event in `data`; count the rest in `stats`.

    Never raises for bad input: every record that is not yielded is counted in `stats` under a
    named reason (see `falconet.decode.stats`). Errors from reading `data` itself propagate.
    """
    chunks = gunzip(iter_chunks(data), stats, name)
    head, blank_lines = read_head(chunks)  # blank lines dropped before the head
    if not head.strip():
        return
    framing = detect(head)
    reader = Reader(stats, context, name)
    chunks = chain((head,), chunks)
    if framing is Framing.LINES:
        yield from _lines_of_events(_lines(chunks), reader, blank_lines)
    elif framing is Framing.EXPORT:
        for number, line in enumerate(_lines(chunks), blank_lines + 1):
            if line is None:
                reader.reject(TRUNCATED, number, f"line over {MAX_RECORD_BYTES} bytes")
            elif line.strip():
                yield from read_export_line(reader, line, number)
    else:
        reader.unit = "document "
        yield from _documents(chunks, reader)


def _lines(chunks: Iterator[bytes]) -> Iterator[bytes | None]:
    """Lines of `chunks` (without `\\n`); None in place of a line over `MAX_RECORD_BYTES`."""
    parts: list[bytes] = []  # the unfinished last line, in pieces (joined once: no quadratic +=)
    size = 0
    dropping = False  # inside an over-long line: discard up to its newline
    for chunk in chunks:
        lines = chunk.split(b"\n")
        tail = lines.pop()
        if lines:  # the unfinished line ends in this chunk
            if dropping:
                yield None
                dropping = False
                del lines[0]
            elif parts:
                parts.append(lines[0])
                lines[0] = b"".join(parts)
            yield from lines
            parts = [tail] if tail else []
            size = len(tail)
        elif not dropping:
            parts.append(tail)
            size += len(tail)
        if size > MAX_RECORD_BYTES:
            parts = []
            size = 0
            dropping = True
    if dropping:
        yield None
    elif parts:
        yield b"".join(parts)


def _lines_of_events(lines: Iterator[bytes | None], reader: Reader, number: int) -> Decoded:
    # The common case (one Event per line) is inlined here; anything else goes to the Reader.
    stats = reader.stats
    context = reader.context
    cluster = context.cluster
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    parse_ts = parse_rfc3339_ns
    limit = MAX_EVENT_BYTES
    for line in lines:
        number += 1
        if not line:
            if line is None:
                reader.reject(TRUNCATED, number, f"line over {MAX_RECORD_BYTES} bytes")
            continue
        try:
            value = loads(line)
        except decode_error as exc:
            if line.strip():
                reader.reject(NOT_JSON, number, str(exc))
            continue
        if type(value) is dict and value.get("kind") == "Event" and len(line) <= limit:
            if parse_ts(value.get("stageTimestamp")) is None:
                reader.accept(value, number, len(line), context)  # counts the rejection
                continue
            stats.records += 1
            if cluster:
                annotations = value.get("annotations")
                if annotations is None:
                    value["annotations"] = {"cluster_name": cluster}
                elif type(annotations) is dict and "cluster_name" not in annotations:
                    annotations["cluster_name"] = cluster
            stats.events += 1
            yield value, context
        else:
            yield from reader.value(value, number, len(line), context)


def _documents(chunks: Iterator[bytes], reader: Reader) -> Decoded:
    """Split a stream of JSON documents (pretty-printed, or `}{` back to back) and decode each."""
    context = reader.context
    buffer = bytearray()
    start = 0  # where the current document begins in `buffer`
    scan = 0  # where to look for the next boundary
    number = 0
    dropping = False  # the current document outgrew MAX_RECORD_BYTES: skip to the next boundary
    for chunk in chunks:
        buffer += chunk
        while (match := _BOUNDARY.search(buffer, scan)) is not None:
            end = match.start() + 1
            scan = match.end()
            if dropping:
                dropping = False
                start = scan
                continue
            document = bytes(buffer[start:end])
            try:
                value = orjson.loads(document)
            except orjson.JSONDecodeError as exc:
                if str(exc).startswith("unexpected end of data"):
                    continue  # the boundary was inside a string: try the next one
                number += 1
                reader.reject(NOT_JSON, number, str(exc))
                start = scan
                continue
            number += 1
            start = scan
            yield from reader.value(value, number, len(document), context)
        if start:
            del buffer[:start]
            scan -= start
            start = 0
        scan = max(scan, len(buffer) - _RESCAN)
        if len(buffer) > MAX_RECORD_BYTES and not dropping:
            number += 1
            reader.reject(TRUNCATED, number, f"document over {MAX_RECORD_BYTES} bytes")
            dropping = True
        if dropping:
            keep = min(len(buffer), _RESCAN)
            del buffer[: len(buffer) - keep]
            scan = 0
    if dropping:
        return
    rest = bytes(buffer[start:]).strip()
    if rest:
        number += 1
        try:
            value = orjson.loads(rest)
        except orjson.JSONDecodeError as exc:
            reader.reject(NOT_JSON, number, str(exc))
            return
        yield from reader.value(value, number, len(rest), context)
