"""`make fuzz`: run every fuzz target in tests/fuzz/ for a while and report what was tried.

    python tools/fuzz.py [--seconds N] [--target NAME]... [--jobs J]

Each target runs in its own process. With atheris installed (`pip install atheris`), the run is
coverage-guided (libFuzzer: falconet's modules are instrumented, the corpus grows in
`.fuzz/<target>/corpus`, a finding is written to `.fuzz/<target>/crash-*` with the input that
caused it); without it, a mutation loop over the target's seeds runs instead. Both enforce the
target's per-input time limit (MAX_SECONDS) and a 2 GB memory limit. The summary prints, per
target, the inputs executed and the findings; the exit status is 1 when anything was found.
"""

from __future__ import annotations

import argparse
import importlib
import os
import random
import re
import resource
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FUZZ_DIR = ROOT / "tests" / "fuzz"
OUT = ROOT / ".fuzz"
RSS_LIMIT_MB = 2048


def targets() -> list[str]:
    return sorted(p.stem.removeprefix("fuzz_") for p in FUZZ_DIR.glob("fuzz_*.py"))


def load(name: str, *, instrument: bool = False) -> ModuleType:
    sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]
    if instrument:
        import atheris

        with atheris.instrument_imports(include=["falconet"]):
            return importlib.import_module(f"tests.fuzz.fuzz_{name}")
    return importlib.import_module(f"tests.fuzz.fuzz_{name}")


# -- the mutation loop (no atheris) ---------------------------------------------------------------
def mutate(data: bytes, rng: random.Random, seeds: list[bytes]) -> bytes:
    """One of the classic byte-level mutations, or a splice with another seed."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(7)
        pos = rng.randrange(len(buf) + 1)
        if choice == 0 and buf:  # flip a bit
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif choice == 1:  # insert interesting bytes
            buf[pos:pos] = rng.choice(
                [b"\x00", b"\xff", b"{", b"}", b"[", b"]", b'"', b"\\", b"\n", b"0", b"-1", b"*"]
            )
        elif choice == 2 and buf:  # delete a run
            del buf[pos : pos + rng.randint(1, 16)]
        elif choice == 3 and buf:  # duplicate a run (grows nesting and repetition)
            end = min(len(buf), pos + rng.randint(1, 64))
            buf[pos:pos] = buf[pos:end] * rng.randint(1, 8)
        elif choice == 4 and seeds:  # splice with another seed
            other = rng.choice(seeds)
            cut = rng.randrange(len(other) + 1)
            buf[pos:] = other[cut:]
        elif choice == 5:  # random bytes
            buf[pos:pos] = os.urandom(rng.randint(1, 8))
        elif buf:  # overwrite with a digit run (sizes, indexes, versions)
            digits = str(rng.choice([0, 1, 9, 255, 256, 65535, 2**31, 2**63, 10**20])).encode()
            buf[pos : pos + len(digits)] = digits
    return bytes(buf)


class _Timeout(Exception):
    pass


def _alarm(_signum: int, _frame: Any) -> None:
    raise _Timeout


def mutation_loop(
    name: str, seconds: float, seed: int = 0, max_inputs: int | None = None
) -> tuple[int, list[str]]:
    """(inputs executed, findings) of `seconds` (or `max_inputs`) of mutation fuzzing here."""
    module = load(name)
    fuzz_one = module.fuzz_one
    seeds: list[bytes] = list(getattr(module, "SEEDS", [])) or [b""]
    limit = float(getattr(module, "MAX_SECONDS", 2.0))
    rng = random.Random(seed)
    findings: list[str] = []
    count = 0
    signal.signal(signal.SIGALRM, _alarm)
    end = time.monotonic() + seconds
    corpus = list(seeds)
    while time.monotonic() < end and len(findings) < 5:
        if max_inputs is not None and count >= max_inputs:
            break
        data = corpus[count] if count < len(corpus) else mutate(rng.choice(corpus), rng, seeds)
        signal.setitimer(signal.ITIMER_REAL, limit)
        try:
            fuzz_one(data)
        except _Timeout:
            findings.append(_save(name, data, f"over {limit} s"))
        except Exception:  # a finding: anything the target did not expect
            findings.append(_save(name, data, traceback.format_exc(limit=-3)))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        count += 1
        if count % 50 == 0 and len(corpus) < 512:
            corpus.append(data)  # keep some mutants to mutate further
    return count, findings


def _save(name: str, data: bytes, why: str) -> str:
    folder = OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"crash-{int(time.time() * 1000)}"
    path.write_bytes(data)
    return f"{path.relative_to(ROOT)}: {why.strip().splitlines()[-1] if why.strip() else why}"


# -- one target in a child process ------------------------------------------------------------
def run_child(name: str, seconds: float) -> None:
    """Run in the child: atheris when available, else the mutation loop; print the count."""
    resource.setrlimit(resource.RLIMIT_AS, (RSS_LIMIT_MB << 20, RSS_LIMIT_MB << 20))
    try:
        import atheris
    except ImportError:
        count, findings = mutation_loop(name, seconds)
        print(f"FUZZ {name} executed={count} findings={len(findings)}")
        for finding in findings:
            print(f"FINDING {finding}")
        return
    import atheris

    module = load(name, instrument=True)
    corpus = OUT / name / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(getattr(module, "SEEDS", [])):
        (corpus / f"seed-{i}").write_bytes(data)
    limit = max(1, int(float(getattr(module, "MAX_SECONDS", 2.0)) + 0.999))
    args = [
        sys.argv[0],
        str(corpus),
        f"-max_total_time={int(seconds)}",
        f"-timeout={limit}",
        f"-rss_limit_mb={RSS_LIMIT_MB}",
        "-print_final_stats=1",
        f"-artifact_prefix={OUT / name}/",
        "-max_len=65536",
    ]
    atheris.Setup(args, module.fuzz_one)
    atheris.Fuzz()


def run(name: str, seconds: float) -> tuple[int, list[str]]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, __file__, "--child", name, "--seconds", str(seconds)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=seconds * 3 + 120,
    )
    output = done.stdout + done.stderr
    counted = re.search(r"FUZZ \S+ executed=(\d+)", output) or re.search(
        r"stat::number_of_executed_units:\s*(\d+)", output
    )
    count = int(counted.group(1)) if counted else 0
    findings = re.findall(r"FINDING (.*)", output)
    if done.returncode != 0 and not findings:
        tail = "\n".join(output.strip().splitlines()[-8:])
        findings.append(f"exit {done.returncode} after {time.monotonic() - started:.0f} s:\n{tail}")
    return count, findings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="per target (default 60)")
    parser.add_argument("--target", action="append", choices=targets())
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child, args.seconds)
        return 0
    total = 0
    found = 0
    for name in args.target or targets():
        count, findings = run(name, args.seconds)
        total += count
        found += len(findings)
        print(f"{name:<16} {count:>12,} inputs  {len(findings)} finding(s)")
        for finding in findings:
            print(f"    {finding}")
    print(f"{'total':<16} {total:>12,} inputs  {found} finding(s)")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
