"""Bytes in, bytes out: chunking any input and undoing gzip, streamed and bounded.

`iter_chunks` turns `bytes`, a binary file object or an iterable of byte chunks into chunks of at
most `CHUNK` bytes read on demand (an in-memory input that is not gzip is passed on whole).
`gunzip` recognises gzip by its magic bytes (never by a file name), inflates every member of a
multi-member stream (Firehose concatenates one gzip member per record), and peels a second layer
when the first one inflates to gzip again (Firehose compression on top of CloudWatch Logs' own
gzip). Output comes in pieces of at most `INFLATED_CHUNK` bytes, so memory stays bounded whatever
the compression ratio. Corrupt or truncated compressed data is counted as one rejected record
(`BAD_COMPRESSION`); everything inflated before the damage is still used. `inflate_bounded` is the
in-memory variant for small base64 payloads (`awslogs.data`, Pub/Sub `data`), refusing to grow
past a limit so a compression bomb costs nothing.

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

from falconet.decode.stats import BAD_COMPRESSION, DecodeStats

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
_MAX_LAYERS = 3  # gzip inside gzip inside gzip: more is an attack, not a pipeline

Input = bytes | bytearray | memoryview | IO[bytes] | Iterable[bytes]


def whole_input(data: Input) -> bytes | None:
    """`data` as one `bytes` if it is in memory, not gzip and at most `WHOLE` bytes, else None.

    `iter_chunks` then yields it as its only chunk, so the decoder holds the entire input.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        return None
    view = memoryview(data)
    if view.nbytes > WHOLE or view[:2] == GZIP_MAGIC:
        return None
    return data if type(data) is bytes else view.tobytes()


def iter_chunks(data: Input) -> Iterator[bytes]:
    """Chunks of `data`, read lazily from a file object or passed through from an iterable."""
    if isinstance(data, bytes | bytearray | memoryview):
        whole = whole_input(data)
        if whole is not None:
            if whole:
                yield whole
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
        if chunk:
            yield bytes(chunk)


def _peek(chunks: Iterator[bytes], size: int) -> bytes:
    head = b""
    while len(head) < size:
        nxt = next(chunks, None)
        if nxt is None:
            break
        head += nxt
    return head


def gunzip(chunks: Iterator[bytes], stats: DecodeStats, name: str) -> Iterator[bytes]:
    """Inflate `chunks` if (and as often as) they start with the gzip magic, else pass them on."""
    for _ in range(_MAX_LAYERS):
        head = _peek(chunks, len(GZIP_MAGIC))
        if not head.startswith(GZIP_MAGIC):
            if head:
                yield head
            yield from chunks
            return
        chunks = _inflate(head, chunks, stats, name)
    yield from chunks


def _damaged(stats: DecodeStats, name: str, detail: str) -> None:
    stats.records += 1
    stats.reject(BAD_COMPRESSION, f"{name}: compressed stream", detail)


class _Inflater(Protocol):
    """What `_inflate` uses of a `zlib.decompressobj` (and of isal's drop-in)."""

    @property
    def eof(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    @property
    def unconsumed_tail(self) -> bytes: ...
    def decompress(self, data: bytes, max_length: int = ..., /) -> bytes: ...
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


def _inflate(
    pending: bytes, chunks: Iterator[bytes], stats: DecodeStats, name: str
) -> Iterator[bytes]:
    new_inflater, errors = backend()
    inflater = new_inflater()
    while True:
        if pending:
            try:
                out = inflater.decompress(pending, INFLATED_CHUNK)
            except errors as exc:
                _damaged(stats, name, str(exc))
                return
            if out:
                yield out
            if inflater.eof:  # end of one member: another one may follow (Firehose)
                rest = inflater.unused_data
                if len(rest) < len(GZIP_MAGIC):
                    rest += _peek(chunks, len(GZIP_MAGIC))
                if not rest:
                    return
                if not rest.startswith(GZIP_MAGIC):
                    if rest.strip(b"\x00") or any(c.strip(b"\x00") for c in chunks):
                        _damaged(stats, name, "data after the last gzip member")
                    return  # zero padding after the last member is harmless
                inflater = new_inflater()
                pending = rest
                continue
            pending = inflater.unconsumed_tail
            if pending:
                continue
        nxt = next(chunks, None)
        if nxt is None:
            break
        pending = nxt
    try:
        tail = inflater.flush()
    except errors as exc:  # pragma: no cover - flush after decompress raises nothing in practice
        _damaged(stats, name, str(exc))
        return
    if tail:
        yield tail
    if not inflater.eof:
        _damaged(stats, name, "gzip stream ends before its trailer")


def inflate_bounded(data: bytes, limit: int) -> bytes | None:
    """`data` gunzipped (all members) if it is gzip, else `data`; None if it inflates past `limit`.

    Raises `zlib.error` for corrupt data.
    """
    if not data.startswith(GZIP_MAGIC):
        return data
    parts: list[bytes] = []
    size = 0
    pending = data
    while pending.startswith(GZIP_MAGIC):
        inflater = zlib.decompressobj(wbits=_GZIP_WBITS)
        out = inflater.decompress(pending, limit + 1 - size)
        size += len(out)
        if size > limit:
            return None
        parts.append(out)
        if not inflater.eof:
            raise zlib.error("gzip data ends before its trailer")
        pending = inflater.unused_data
    if pending.strip(b"\x00"):
        raise zlib.error("data after the last gzip member")
    return b"".join(parts)
