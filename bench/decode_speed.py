"""Cost of decoding as a ratio to bare `orjson.loads` of the same lines.

    python bench/decode_speed.py [--events 100000] [--rounds 5]

Variants, interleaved round-robin, median of the rounds (the machines are shared and noisy):
* `orjson.loads`: every line of the uncompressed JSON lines, already split (the unit).
* `decode jsonl.gz`: gunzip + split + parse + checks: the S3 function's hot path. Target <= 1.8x
  (the inflater in use, isal, a dependency, or zlib without it, is printed: it is worth ~0.35x).
* `decode jsonl`: the same without gzip.
* `decode firehose`: concatenated gzip members of CloudWatch envelopes (EKS via Firehose).
* `decode eventlist`: webhook bodies of 400 events (the apiserver's default batch), one
  `decode` call each, as the HTTP function does.
* `decode eventlist 2MB`: bodies of 1,600 events, past `detect.HEAD_LIMIT` (DOCUMENTS framing).
"""

from __future__ import annotations

import argparse
import gzip
import io
import statistics
import time
from collections.abc import Callable
from itertools import islice

import orjson

import decode_corpus
from falconet.decode import DecodeStats, compression, decode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    events = list(islice(decode_corpus.events(), args.events))
    lines = [orjson.dumps(e) for e in events]
    plain = b"\n".join(lines) + b"\n"
    gzipped = gzip.compress(plain, 6, mtime=0)
    firehose = io.BytesIO()
    decode_corpus.write_firehose(firehose, len(plain))
    firehose_bytes = firehose.getvalue()
    bodies = [
        orjson.dumps({"kind": "EventList", "items": events[i : i + 400]})
        for i in range(0, len(events), 400)
    ]
    big_bodies = [
        orjson.dumps({"kind": "EventList", "items": events[i : i + 1600]})
        for i in range(0, len(events), 1600)
    ]
    del events

    def bare() -> int:
        loads = orjson.loads
        n = 0
        for line in lines:
            loads(line)
            n += 1
        return n

    def decoder(data: bytes) -> Callable[[], int]:
        def run() -> int:
            stats = DecodeStats()
            n = sum(1 for _ in decode(data, stats=stats))
            assert stats.rejected_total == 0
            return n

        return run

    def webhook(bodies: list[bytes]) -> Callable[[], int]:
        def run() -> int:
            n = 0
            for body in bodies:
                stats = DecodeStats()
                n += sum(1 for _ in decode(body, stats=stats))
                assert stats.rejected_total == 0
            return n

        return run

    variants: dict[str, Callable[[], int]] = {
        "orjson.loads": bare,
        "decode jsonl.gz": decoder(gzipped),
        "decode jsonl": decoder(plain),
        "decode firehose": decoder(firehose_bytes),
        "decode eventlist": webhook(bodies),
        "decode eventlist 2MB": webhook(big_bodies),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    counts: dict[str, int] = {}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            start = time.perf_counter()
            counts[name] = fn()
            times[name].append(time.perf_counter() - start)
    unit = statistics.median(times["orjson.loads"])
    inflater = "isal" if compression.backend() is not compression.ZLIB else "zlib"
    print(
        f"{len(lines)} events, {len(plain) / 1e6:.1f} MB raw, {len(gzipped) / 1e6:.1f} MB gzip; "
        f"median of {args.rounds} interleaved rounds; gzip inflated with {inflater}"
    )
    print(f"{'variant':20} {'events':>8} {'us/event':>9} {'x orjson':>9} {'ratios per round'}")
    for name, samples in times.items():
        per_round = [t / u for t, u in zip(samples, times["orjson.loads"], strict=True)]
        median = statistics.median(samples)
        print(
            f"{name:20} {counts[name]:8d} {median / counts[name] * 1e6:9.2f} "
            f"{statistics.median(per_round):9.2f}  {' '.join(f'{r:.2f}' for r in per_round)}"
        )
    print(f"(unit: orjson.loads = {unit / len(lines) * 1e6:.2f} us/event)")


if __name__ == "__main__":
    main()
