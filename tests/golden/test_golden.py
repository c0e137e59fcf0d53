"""Golden outputs of the `falconet` command: what users see must not change by accident.

Each case runs the real command (`python -m falconet ...`, fresh process, TZ=UTC) and compares its
stdout and stderr, byte for byte after two normalisations (the host name in alerts, the elapsed
time in the scan summary), with `tests/data/golden/<case>.txt`. They cover the generated code
(`explain`), every diagnostic (`validate`) and every alert (`scan --json`) over the repository's own
samples and, when `../shared` is present, its samples, Falco's traces and the Falco 0.44 cases.

A deliberate change of output is recorded by running the suite with FALCONET_UPDATE_GOLDEN=1 and
reviewing the diff of `tests/data/golden/` in the commit.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, SHARED

GOLDEN = ROOT / "tests" / "data" / "golden"
UPDATE = os.environ.get("FALCONET_UPDATE_GOLDEN") == "1"
UPSTREAM_RULES = "../shared/conformance/falco-plugins-k8saudit/v0.18.0/k8s_audit_rules.yaml"
TRACES = "../shared/conformance/falco-legacy-tests/test/trace_files/k8s_audit"
FALCO_044 = "../shared/conformance/falco-0.44"


Runs = tuple[tuple[str, ...], ...]  # falconet argument lists, run in order


@dataclass(frozen=True)
class Case:
    name: str
    runs: Callable[[], Runs]  # called only when the case runs (its inputs may be in ../shared)
    shared: bool = False  # needs ../shared

    def __str__(self) -> str:
        return self.name


def _glob(pattern: str, base: str = ".") -> tuple[str, ...]:
    """Paths relative to the repository root (so outputs name them the same on every machine)."""
    root = ROOT / base  # not resolved: ../shared may be a symbolic link
    return tuple(
        str(Path(base) / p.relative_to(root)) for p in sorted(root.glob(pattern)) if p.is_file()
    )


def _repo_inputs() -> tuple[str, ...]:
    return (
        "examples/audit-batch.json",
        *_glob("tests/data/decode/*"),
        *_glob("tests/data/routine/*.json"),
        *_glob("tests/data/rules/*/*.json"),
    )


def _shared_rules() -> Runs:
    return tuple(
        ("validate", path)
        for path in (
            UPSTREAM_RULES,
            *_glob("**/*.yaml", "../shared/conformance/falco-legacy-rules"),
            *_glob("**/*rules*.yaml", "../shared/conformance/falcosecurity-rules"),
            *_glob("*.yaml", FALCO_044),
        )
    )


def _falco_044_scans() -> Runs:
    runs = []
    for rules in _glob("r*.yaml", FALCO_044):
        events = rules[: -len(".yaml")] + ".jsonl"
        for matching in ("first", "all"):
            runs.append(("scan", "--json", "--rule-matching", matching, "--rules", rules, events))
    return tuple(runs)


def _traces(*options: str) -> Callable[[], Runs]:
    return lambda: (("scan", "--json", *options, *_glob("*.json", TRACES)),)


CASES = (
    Case("explain-bundled", lambda: (("explain",),)),
    Case("fields", lambda: (("fields",), ("fields", "--json"))),
    Case(
        "validate-bundled",
        lambda: (("validate", "rules/"), ("validate", *_glob("tests/data/*.yaml"))),
    ),
    # The detections, every alert (--no-suppress); the suppression policies on their own case.
    Case(
        "scan-bundled-repo-inputs",
        lambda: (("scan", "--json", "--no-suppress", *_repo_inputs()),),
    ),
    Case(
        "scan-bundled-repo-inputs-all",
        lambda: (("scan", "--json", "--no-suppress", "--rule-matching", "all", *_repo_inputs()),),
    ),
    Case("scan-bundled-repo-inputs-suppressed", lambda: (("scan", "--json", *_repo_inputs()),)),
    Case("scan-text-explain", lambda: (("scan", "--explain", "examples/audit-batch.json"),)),
    Case("explain-upstream", lambda: (("explain", "--rules", UPSTREAM_RULES),), shared=True),
    Case("validate-shared-rules", _shared_rules, shared=True),
    Case("scan-upstream-traces", _traces("--rules", UPSTREAM_RULES), shared=True),
    Case("scan-bundled-traces", _traces("--no-suppress"), shared=True),
    Case(
        "scan-bundled-traces-all", _traces("--no-suppress", "--rule-matching", "all"), shared=True
    ),
    Case(
        "scan-bundled-shared-samples",
        lambda: (("scan", "--json", "--no-suppress", "../shared/samples"),),
        True,
    ),
    Case("scan-falco-044", _falco_044_scans, shared=True),
)


_HOSTNAME = re.compile(rb'"hostname":"[^"]*"')
_ELAPSED = re.compile(rb" alerts in \d+\.\d\ds$", re.MULTILINE)


def run_case(case: Case) -> bytes:
    """The case's transcript: for each run, its arguments, exit status, stdout and stderr."""
    env = {**os.environ, "TZ": "UTC", "PYTHONPATH": str(ROOT / "functions")}
    for name in list(env):
        if name.startswith("FALCONET_") and name != "FALCONET_UPDATE_GOLDEN":
            del env[name]
    out = bytearray()
    for args in case.runs():
        done = subprocess.run(
            [sys.executable, "-m", "falconet", *args],
            capture_output=True,
            cwd=ROOT,
            env=env,
            timeout=300,
            check=False,
        )
        stdout = _HOSTNAME.sub(b'"hostname":"<host>"', done.stdout)
        stderr = _ELAPSED.sub(b" alerts in <elapsed>s", done.stderr)
        out += b"$ falconet " + " ".join(args).encode() + b"\n"
        out += f"exit {done.returncode}\n--- stdout\n".encode() + stdout
        out += b"--- stderr\n" + stderr + b"\n"
    return bytes(out)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_golden_output(case: Case) -> None:
    if case.shared and not SHARED.is_dir():
        pytest.skip("../shared (conformance data and samples) is not beside the repository")
    path = GOLDEN / f"{case.name}.txt"
    actual = run_case(case)
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(actual)
        return
    assert path.is_file(), f"no golden output {path}: run with FALCONET_UPDATE_GOLDEN=1"
    expected = path.read_bytes()
    if actual != expected:
        diff = _first_difference(expected, actual)
        pytest.fail(f"{case.name}: output differs from {path.relative_to(ROOT)}\n{diff}")


def _first_difference(expected: bytes, actual: bytes) -> str:
    old, new = expected.splitlines(), actual.splitlines()
    for n, (a, b) in enumerate(zip(old, new, strict=False), 1):
        if a != b:
            return f"line {n}:\n- {a[:400]!r}\n+ {b[:400]!r}"
    return f"lengths differ: {len(old)} lines expected, {len(new)} lines now"


def test_every_golden_file_belongs_to_a_case() -> None:
    names = {case.name for case in CASES}
    stale = sorted(p.name for p in GOLDEN.glob("*.txt") if p.stem not in names)
    assert not stale, f"golden files without a case (delete them): {stale}"
