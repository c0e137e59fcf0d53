"""Run the differential check (compiled engine vs reference evaluator) over many seeds.

    python tools/differential.py [--seconds N] [--start SEED] [--rules R] [--events E]

Each seed is a generated rules file and a batch of events (tests/fuzz/differential.py); every
(rule, event) pair is evaluated by both engines in `first` and `all` matching. Runs seeds from
--start until --seconds have passed (default 600: some 10 million pairs), prints the rate as it
goes and every disagreement with its seed (rerun one with `--start SEED --seconds 0`, which
checks that seed alone). Exit status 1 when anything disagreed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]

from tests.fuzz.differential import check  # noqa: E402 - after the path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--rules", type=int, default=40)
    parser.add_argument("--events", type=int, default=40)
    args = parser.parse_args(argv)
    started = time.monotonic()
    seed, pairs, failures = args.start, 0, 0
    while True:
        found, compared = check(seed, rules=args.rules, events=args.events)
        pairs += compared
        for line in found:
            print(line, flush=True)
        failures += len(found)
        seed += 1
        elapsed = time.monotonic() - started
        if seed % 50 == 0:
            print(
                f"{seed - args.start} seeds, {pairs:,} pairs, {pairs / elapsed:,.0f}/s", flush=True
            )
        if elapsed >= args.seconds:
            break
    print(
        f"done: {seed - args.start} seeds, {pairs:,} (rule, event) pairs, {failures} disagreements"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
