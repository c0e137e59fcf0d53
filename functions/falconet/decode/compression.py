"""Bytes in, bytes out: chunking any input and undoing gzip, streamed and bounded.

`iter_chunks` turns `bytes`, a binary file object or an iterable of byte chunks into chunks of at
most `CHUNK` bytes read on demand (an in-memory input that is not gzip is passed on whole, up to a
size). `gunzip` recognises gzip by its magic bytes (never by a file name), inflates every member
of a multi-member stream (Firehose concatenates one gzip member per record), and peels another
layer when one inflates to gzip again (Firehose compression on top of CloudWatch Logs' own gzip).
Output comes in pieces of at most `INFLATED_CHUNK` bytes, so memory stays bounded whatever the
compression ratio, and every layer's output is charged to the input's `Budget`: past the inflated
size, the ratio or the number of layers its `DecodeLimits` allow, the stream stops and the budget
holds the refusal (`falconet.decode.limits`). Corrupt or truncated compressed data is counted as
one rejected record (`BAD_COMPRESSION`); everything inflated before the damage or the limit is
still used. `inflate_bounded` is the in-memory variant for base64 payloads (`awslogs.data`,
Pub/Sub `data`), refusing to grow past a limit so a compression bomb costs nothing.

Streams are inflated with python-isal (a dependency; vendored into the Lambda zips) when it can be
imported: its `isal_zlib.decompressobj` is a drop-in for zlib's and inflated the benchmark's gzip
JSON lines 2.5x faster (0.2x an `orjson.loads` of the same events instead of 0.6x). Where it
cannot be imported (a platform without its wheel), zlib.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Protocol

from falconet.decode.limits import Budget
from falconet.decode.stats import BAD_COMPRESSION, LIMIT_LAYERS, DecodeStats

# 64 KiB: the chunk size measured fastest for zlib.decompressobj (0.71x orjson.loads).
CHUNK = 1 << 16
# An in-memory input that is not gzip is passed on whole up to this size (Falco's webhook limit
# is 12 MiB): it is in memory already, and copying it into 64 KiB pieces only for `read_head`
# and the line splitter to glue them together again cost 0.1x a parse of a 400-event body.
WHOLE = 16 << 20
# Inflated pieces: 256 KiB rather than 64 KiB took a quarter off the inflate cost (fewer calls and
# fewer copies of the unconsumed input: zlib 0.61x -> 0.52x of an orjson.loads, isal 0.28x -> 0.2x).
INFLATED_CHUNK = 1 << 18
GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 31  # zlib: expect a gzip header and trailer
# Compressed bytes given to one inflate call after a small member: the rest of the call's input
# is copied into `unused_data` when a member ends, so feeding whole chunks to a stream of tiny
# members cost O(chunk) per member (a 16 MiB body of empty members: ~30 GB of copying). The feed
# starts at twice the last member's size and doubles while a member goes on.
_MIN_FEED = 256

Input = bytes | bytearray | memoryview | IO[bytes] | Iterable[bytes]


def whole_input(data: Input, limit: int = WHOLE) -> bytes | None:
    """`data` as one `bytes` if it is in memory, not gzip and at most `limit` (and `WHOLE`)
    bytes, else None.

    `iter_chunks` then yields it as its only chunk, so the decoder holds the entire input.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        return None
    view = memoryview(data)
    if view.nbytes > min(limit, WHOLE) or view[:2] == GZIP_MAGIC:
        return None
    return data if type(data) is bytes else view.tobytes()


def iter_chunks(data: Input, whole: int = WHOLE) -> Iterator[bytes]:
    """Chunks of `data`, read lazily from a file object or passed through from an iterable; an
    in-memory input that `whole_input(data, whole)` accepts is one chunk."""
    if isinstance(data, bytes | bytearray | memoryview):
        entire = whole_input(data, whole)
        if entire is not None:
            if entire:
                yield entire
            return
        view = memoryview(data)
        for start in range(0, len(view), CHUNK):
            yield bytes(view[start : start + CHUNK])
        return
    read = getattr(data, "read", None)
    if read is not None:
        while chunk := read(CHUNK):
            yield chunk
        return
    for chunk in data:
        if len(chunk) > INFLATED_CHUNK:  # a caller's big chunk: in pieces, as a file is read
            view = memoryview(chunk)
            for start in range(0, len(view), CHUNK):
                yield bytes(view[start : start + CHUNK])
        elif chunk:
            yield bytes(chunk)


def _peek(chunks: Iterator[bytes], size: int) -> bytes:
    head = b""
    while len(head) < size:
        nxt = next(chunks, None)
        if nxt is None:
            break
        head += nxt
    return head


def gunzip(
    chunks: Iterator[bytes], stats: DecodeStats, name: str, budget: Budget
) -> Iterator[bytes]:
    """Inflate `chunks` if (and as often as) they start with the gzip magic, else pass them on.

    Stops, with the refusal in `budget.stop`, past the budget's gzip layers, inflated size or
    compression ratio."""
    head = _peek(chunks, len(GZIP_MAGIC))
    layers = 0
    while head.startswith(GZIP_MAGIC):
        if layers == budget.limits.max_gzip_layers:
            budget.refuse(LIMIT_LAYERS, f"more than {layers} gzip layers")
            return
        if not layers:
            budget.compressed += len(head)
            chunks = _counted(chunks, budget)
        chunks = _inflate(head, chunks, stats, name, budget)
        layers += 1
        head = _peek(chunks, len(GZIP_MAGIC))
    if head:
        yield head
    yield from chunks


def _counted(chunks: Iterator[bytes], budget: Budget) -> Iterator[bytes]:
    """`chunks`, their sizes added to the compressed bytes read."""
    for chunk in chunks:
        budget.compressed += len(chunk)
        yield chunk


def _damaged(stats: DecodeStats, name: str, detail: str) -> None:
    stats.records += 1
    stats.reject(BAD_COMPRESSION, f"{name}: compressed stream", detail)


class _Inflater(Protocol):
    """What `_members` uses of a `zlib.decompressobj` (and of isal's drop-in)."""

    @property
    def eof(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    @property
    def unconsumed_tail(self) -> bytes: ...
    def decompress(self, data: bytes | memoryview, max_length: int = ..., /) -> bytes: ...
    def flush(self, length: int = ..., /) -> bytes: ...


# A factory of gzip decompressors and the errors they raise.
Backend = tuple[Callable[[], _Inflater], tuple[type[Exception], ...]]
ZLIB: Backend = (lambda: zlib.decompressobj(wbits=_GZIP_WBITS), (zlib.error,))
_backend: Backend | None = None  # chosen on the first gzip stream


def isal_backend() -> Backend | None:
    """python-isal's drop-in decompressor, or None when it is not installed."""
    try:
        isal_zlib = importlib.import_module("isal.isal_zlib")
    except ImportError:
        return None
    return (lambda: isal_zlib.decompressobj(wbits=_GZIP_WBITS), (zlib.error, isal_zlib.error))


def backend() -> Backend:
    """isal when installed, else zlib. Decided on the first gzip stream, so the webhook's cold
    start (no gzip) never pays the 1 ms import."""
    global _backend  # noqa: PLW0603 - decided once per process
    if _backend is None:
        _backend = isal_backend() or ZLIB
    return _backend


class CorruptGzip(Exception):
    """Compressed data that does not inflate: corrupt, cut short, or followed by other data."""


def _inflate(
    first: bytes, chunks: Iterator[bytes], stats: DecodeStats, name: str, budget: Budget
) -> Iterator[bytes]:
    """`_members`, charged to `budget` (stopping past its limits) and with damage counted."""
    try:
        for out in _members(first, chunks):
            if budget.charge(len(out)):
                return
            yield out
    except CorruptGzip as exc:
        # Counted once: a layer reading this one's output then sees its input end early.
        if budget.stop is None and not budget.damaged:
            budget.damaged = True
            _damaged(stats, name, str(exc))


def _members(first: bytes, chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The inflated bytes of the gzip members in `first` and then `chunks`, back to back, in
    pieces of at most `INFLATED_CHUNK` bytes. Raises `CorruptGzip`; zero padding after the last
    member is harmless."""
    new_inflater, errors = backend()
    inflater = new_inflater()
    buf, pos = first, 0  # the compressed bytes at hand, and how far they are consumed
    feed = 0  # compressed bytes per call (0: all at hand); see _MIN_FEED
    member = 0  # compressed bytes of the current member so far
    while True:
        if pos >= len(buf):
            nxt = next(chunks, None)
            if nxt is None:
                break
            buf, pos = nxt, 0
            continue
        end = len(buf) if not feed else min(len(buf), pos + feed)
        data = buf if pos == 0 and end == len(buf) else memoryview(buf)[pos:end]
        try:
            out = inflater.decompress(data, INFLATED_CHUNK)
        except errors as exc:
            raise CorruptGzip(str(exc)) from None
        eof = inflater.eof
        used = len(data) - len(inflater.unused_data if eof else inflater.unconsumed_tail)
        pos += used
        member += used
        if out:
            yield out
        if not eof:
            if feed and pos == end:
                feed *= 2  # a member longer than the last one: grow back to whole chunks
            continue
        # End of one member: another one may follow (Firehose writes one per record).
        if len(buf) - pos < len(GZIP_MAGIC):
            buf, pos = buf[pos:] + _peek(chunks, len(GZIP_MAGIC)), 0
        if pos == len(buf):
            return
        if not buf.startswith(GZIP_MAGIC, pos):
            if buf[pos:].strip(b"\x00") or any(c.strip(b"\x00") for c in chunks):
                raise CorruptGzip("data after the last gzip member")
            return  # zero padding after the last member is harmless
        inflater = new_inflater()
        feed = max(_MIN_FEED, 2 * member)
        member = 0
    try:
        tail = inflater.flush()
    except errors as exc:  # pragma: no cover - flush after decompress raises nothing in practice
        raise CorruptGzip(str(exc)) from None
    if tail:
        yield tail
    if not inflater.eof:
        raise CorruptGzip("gzip stream ends before its trailer")


def inflate_bounded(data: bytes, limit: int) -> bytes | None:
    """`data` gunzipped (all members) if it is gzip, else `data`; None if it inflates past `limit`.

    Raises `CorruptGzip` for corrupt data.
    """
    if not data.startswith(GZIP_MAGIC):
        return data
    parts: list[bytes] = []
    size = 0
    chunks = iter_chunks(data, whole=0)  # fed in CHUNK pieces: `unconsumed_tail` is a copy
    for out in _members(next(chunks), chunks):
        size += len(out)
        if size > limit:
            return None
        parts.append(out)
    return b"".join(parts)
