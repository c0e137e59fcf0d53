"""What one input may cost the decoder: inflated bytes, compression ratio, gzip layers, records,
and the size of one line or document held in memory and parsed.

    decode(stream, stats=stats, limits=OBJECT_LIMITS)   # a bucket object: big, streamed
    decode(body, stats=stats, limits=BODY_LIMITS)       # an HTTP body: bounded much tighter

Why: decompression multiplies what an input costs. A 170 KB gzip of gzip inflates to 100 GiB
(minutes of CPU); a 16 KB gzip body holds 5.6 million records (seconds of CPU); a 61 KB gzip object
holds one 60 MiB document of empty objects, which parses into 2 GB of Python objects (a real audit
document parses into ~5x its size, a crafted one into up to ~37x: `bench/decode_hostile.py`). Each
limit below bounds one of those; what a limit refuses is counted under its own reason
(`falconet.decode.stats`), never raised. A refusal that stops the input (`LIMIT_INFLATED`,
`LIMIT_RATIO`, `LIMIT_LAYERS`, `LIMIT_RECORDS`) counts one record, at the position where reading
stopped; the rest of the input is not read. Events decoded before it are kept.

`Budget` is the state of one input against its limits, shared by the framing (`stream`), the
inflater (`compression`) and the envelope readers (`records`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from falconet.decode.stats import LIMIT_INFLATED, LIMIT_RATIO

# The compression ratio is checked once this many bytes have been inflated: a small gzip member
# of blank-padded JSON legitimately inflates 100x and more, and costs nothing.
RATIO_FLOOR = 1 << 20
# The smallest `max_document_bytes`: shorter lines are parsed without being measured (the hot
# loop measures only the lines it parses with the collector paused, `records.GC_PAUSE_BYTES`).
MIN_DOCUMENT_BYTES = 1 << 16


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """The limits one input is decoded under (the defaults are `OBJECT_LIMITS`'s).

    * `max_inflated_bytes`: bytes inflated from gzip, every layer and every base64 payload
      (`awslogs.data`, Pub/Sub `message.data`) of the input together.
    * `max_inflate_ratio`: inflated bytes per compressed byte read, checked past `RATIO_FLOOR`
      (audit JSON compresses ~10:1; deflate can reach 1032:1, and 10^6:1 nested).
    * `max_gzip_layers`: gzip inside gzip (Firehose compression over CloudWatch's gzip is 2).
    * `max_records`: records of the input (lines, items, log events); checked before each line,
      document and array item, so one envelope's records are finished before it stops.
    * `max_document_bytes`: one line or document, held in memory and parsed (also the largest
      base64 payload inflated). A line or document over it is dropped while it is read.
    """

    max_inflated_bytes: int = 16 << 30
    max_inflate_ratio: int = 100
    max_gzip_layers: int = 3
    max_records: int = 10_000_000
    max_document_bytes: int = 16 << 20

    @classmethod
    def like(cls, values: object) -> DecodeLimits:
        """The limits of any object with these fields (`config.InputLimits`, read from the
        environment). Raises ValueError for a value out of range."""
        return cls(**{item.name: getattr(values, item.name) for item in fields(cls)})

    def __post_init__(self) -> None:
        for item in fields(self):
            name = item.name
            value = getattr(self, name)
            least = {"max_gzip_layers": 0, "max_document_bytes": MIN_DOCUMENT_BYTES}.get(name, 1)
            if type(value) is not int or value < least:
                raise ValueError(f"{name} must be an integer of at least {least}, got {value!r}")


# A bucket object: legitimately large (the benchmark streams a 1 GB object, 670,000 events).
# 16 GiB inflated is ~11 million events of real audit JSON, minutes of a function's time.
OBJECT_LIMITS = DecodeLimits()
# An HTTP body (the apiserver's webhook batches 400 events by default, ~1 MB; Falco accepts
# bodies up to 12 MiB; falconet's FALCONET_MAX_BODY_BYTES is 16 MiB, before inflating).
BODY_LIMITS = DecodeLimits(
    max_inflated_bytes=64 << 20,
    max_inflate_ratio=100,
    max_gzip_layers=2,
    max_records=100_000,
    max_document_bytes=16 << 20,
)


class Budget:
    """One input's consumption of its `DecodeLimits`, and the refusal that stopped it, if any.

    `stop` holds `(reason, detail)` once a limit has stopped the input. The inflater sets it and
    ends its stream; the framing then drops the unfinished line or document the stop cut and
    counts the refusal (one record, where reading stopped) when it reaches the end of what it was
    given (`Reader.stopped`). A record limit is counted where it is found (`counted`).
    """

    __slots__ = (
        "compressed",
        "counted",
        "damaged",
        "inflated",
        "limits",
        "max_records",
        "stop",
    )

    def __init__(self, limits: DecodeLimits, records: int = 0) -> None:
        self.limits = limits
        self.inflated = 0  # bytes inflated so far: every layer, every payload
        self.compressed = 0  # compressed bytes read so far (what was inflated)
        # The `stats.records` at which the input stops: stats may be shared by several inputs.
        self.max_records = records + limits.max_records
        self.stop: tuple[str, str] | None = None
        self.counted = False  # the stop is counted in the stats
        self.damaged = False  # corrupt compressed data was counted (once per input)

    def refuse(self, reason: str, detail: str) -> None:
        """Stop the input for `reason` (the first refusal wins)."""
        if self.stop is None:
            self.stop = (reason, detail)

    def charge(self, inflated: int) -> bool:
        """Add `inflated` bytes; True (and the input stopped) if that passes a limit."""
        self.inflated += inflated
        limits = self.limits
        if self.inflated > limits.max_inflated_bytes:
            self.refuse(LIMIT_INFLATED, f"over {limits.max_inflated_bytes} bytes inflated")
            return True
        ratio = limits.max_inflate_ratio
        if self.inflated > RATIO_FLOOR and self.inflated > ratio * self.compressed:
            self.refuse(
                LIMIT_RATIO,
                f"{self.inflated} bytes inflated from {self.compressed}: over {ratio}x",
            )
            return True
        return False

    def inflate_room(self, compressed: int) -> tuple[int, str, str]:
        """How many more bytes `compressed` more bytes may inflate to, and the reason and
        detail of the limit that sets it."""
        limits = self.limits
        by_size = limits.max_inflated_bytes - self.inflated
        by_ratio = (
            max(RATIO_FLOOR, limits.max_inflate_ratio * (self.compressed + compressed))
            - self.inflated
        )
        if by_size <= by_ratio:
            return max(0, by_size), LIMIT_INFLATED, f"over {limits.max_inflated_bytes} bytes"
        return max(0, by_ratio), LIMIT_RATIO, f"over {limits.max_inflate_ratio}x"
