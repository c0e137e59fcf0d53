"""Time and peak RSS of hostile inputs through the real entry paths, each in a fresh process.

    python bench/decode_hostile.py [--functions DIR] [--case NAME]... [--timeout S] [--keep DIR]

The cases of the hardening issue's item 5 (decompression without a cap), plus variants of them:
each is built (deterministically, once, into a temporary or `--keep` directory), then a child
process builds a `Pipeline` with the bundled rules and no sinks and reads the input the way
production does: a `body` goes through `webhook.handle_request` (the HTTP function), an `object`
is streamed from a file through the pipeline with the limits `Pipeline.scan` uses. The child
reports its wall time, its peak RSS (VmHWM) and what was counted. `--functions` points at another
checkout's `functions/` (e.g. `git archive main functions rules | tar -x -C /tmp/before`) to
measure the code before a change in the same session; `--ratio` sets another inflate ratio limit,
to see what the other limits do with compressed inputs.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
import orjson
from falconet.config import HttpSettings
from falconet.engine import Engine
from falconet.pipeline import Pipeline
from falconet.webhook import handle_request

path, kind, rules, ratio = Path(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
limits = {}
if ratio:  # another inflate ratio for both kinds: what the other limits do without it
    from dataclasses import replace
    from falconet.decode import BODY_LIMITS, OBJECT_LIMITS
    limits = {
        "body_limits": replace(BODY_LIMITS, max_inflate_ratio=ratio),
        "object_limits": replace(OBJECT_LIMITS, max_inflate_ratio=ratio),
    }
pipeline = Pipeline(Engine.from_paths([rules]), [], **limits)
started = time.perf_counter()
if kind == "body":
    response = handle_request(
        pipeline, HttpSettings(max_body=16 << 20), method="POST",
        headers={"content-type": "application/json"}, body=path.read_bytes(), query={},
    )
    status, result = response.status, response.result
else:
    limits = getattr(pipeline, "object_limits", None)
    with path.open("rb") as f:
        result = pipeline.run(f, name=path.name, **({"limits": limits} if limits else {}))
    status = "-"
seconds = time.perf_counter() - started
hwm = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM"))
stats = result.stats if result is not None else None
print(orjson.dumps({
    "seconds": seconds, "rss_mb": hwm / 1024, "status": status,
    "records": stats.records if stats else None, "events": stats.events if stats else None,
    "rejected": dict(stats.rejected) if stats else None,
}).decode())
"""


def _gzip(data: bytes, level: int = 9) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def nested_bomb() -> bytes:
    """170 KB: gzip of 100 gzip members of 1 GiB of blanks each, 100 GiB once inflated twice."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b" " * (1 << 20)
    member = b"".join(compressor.compress(block) for _ in range(1024)) + compressor.flush()
    return _gzip(member * 100)


def records_bomb() -> bytes:
    """16 KB: a gzip body holding one array of 5.6 million empty objects (16.8 MB)."""
    return _gzip(b"[" + b"{}," * 5_600_000 + b"{}]")


def lines_bomb() -> bytes:
    """A gzip body of 20 million JSON lines `0` (40 MB): records without a big document."""
    return _gzip(b"0\n" * 20_000_000)


def document_bomb() -> bytes:
    """61 KB: a gzip object holding one 60 MiB document of 20 million empty objects."""
    return _gzip(b"[" + b"{}," * (20 << 20) + b"{}]")


def awslogs_bomb() -> bytes:
    """A ~90 KB body: a CloudWatch `awslogs` event whose base64 data inflates to a 63 MiB
    document of empty objects."""
    data = base64.b64encode(_gzip(b"[" + b"{}," * (21 << 20) + b"{}]")).decode()
    return b'{"awslogs":{"data":"' + data.encode() + b'"}}'


def empty_members() -> bytes:
    """A 16 MB body of 800,000 empty gzip members: no output, a decompressor each."""
    return gzip.compress(b"", mtime=0) * 800_000


def nested_empty_members() -> bytes:
    """240 KB: gzip of 5 million empty gzip members (100 MB once inflated once)."""
    return _gzip(gzip.compress(b"", mtime=0) * 5_000_000)


# Not compressed: no ratio to exceed, the other limits bound them.
def plain_document() -> bytes:
    """A 60 MiB object: one document of 20 million empty objects."""
    return b"[" + b"{}," * (20 << 20) + b"{}]"


def plain_records() -> bytes:
    """A body just under 16 MiB (FALCONET_MAX_BODY_BYTES): one array of 5.6 million empty
    objects, within the document limit."""
    return b"[" + b"{}," * ((16 << 20) // 3 - 1) + b"{}]"


def plain_lines() -> bytes:
    """A 40 MB object of 20 million JSON lines `0`."""
    return b"0\n" * 20_000_000


# name: (builder, how it is read)
CASES: dict[str, tuple[Callable[[], bytes], str]] = {
    "nested-gzip-object": (nested_bomb, "object"),
    "nested-gzip-body": (nested_bomb, "body"),
    "records-body": (records_bomb, "body"),
    "lines-body": (lines_bomb, "body"),
    "document-object": (document_bomb, "object"),
    "awslogs-body": (awslogs_bomb, "body"),
    "members-body": (empty_members, "body"),
    "members-nested-object": (nested_empty_members, "object"),
    "plain-document-object": (plain_document, "object"),
    "plain-records-body": (plain_records, "body"),
    "plain-lines-object": (plain_lines, "object"),
}


def measure(
    functions: Path, path: Path, kind: str, timeout: float, ratio: int
) -> dict[str, object] | None:
    import orjson

    rules = str(ROOT / "rules")
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(functions), str(path), kind, rules, str(ratio)],
            capture_output=True,
            text=True,
            check=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return None
    result: dict[str, object] = orjson.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=Path, default=ROOT / "functions")
    parser.add_argument("--case", action="append", choices=sorted(CASES))
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per case")
    parser.add_argument("--keep", type=Path, help="keep the built inputs here (reused)")
    parser.add_argument(
        "--ratio", type=int, default=0, help="max inflate ratio for both kinds (default: theirs)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"functions: {args.functions}" + (f", ratio {args.ratio}" if args.ratio else ""))
        print(f"{'case':20} {'input':>9} {'s':>8} {'peak RSS MB':>11} {'status':>6}  counted")
        for name in args.case or list(CASES):
            build, kind = CASES[name]
            path = folder / f"{build.__name__}.bin"
            if not path.exists():
                path.write_bytes(build())
            started = time.perf_counter()
            out = measure(args.functions, path, kind, args.timeout, args.ratio)
            size = f"{path.stat().st_size / 1024:.0f} KB"
            if out is None:
                elapsed = time.perf_counter() - started
                print(f"{name:20} {size:>9} {'>' + format(elapsed, '.0f'):>8} {'?':>11}  timeout")
                continue
            counted = f"records={out['records']} events={out['events']} rejected={out['rejected']}"
            print(
                f"{name:20} {size:>9} {out['seconds']:8.2f} {out['rss_mb']:11.0f} "
                f"{out['status']!s:>6}  {counted}"
            )


if __name__ == "__main__":
    main()
