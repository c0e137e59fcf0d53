"""`falconet scan` decodes files and objects under the object limits of the settings."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

SAMPLE = "examples/audit-batch.json"  # one EventList of 6 events


def scan(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "falconet", "scan", SAMPLE, SAMPLE],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "functions"), **env},
        check=False,
    )


def test_the_record_limit_applies_to_each_input() -> None:
    done = scan({"FALCONET_OBJECT_MAX_RECORDS": "2", "FALCONET_BODY_MAX_RECORDS": "1"})
    assert done.returncode == 0, done.stderr
    problem = f"{SAMPLE}:document 1: input over the record limit (stopped after 2 records)"
    assert done.stderr.count(problem) == 2
    assert "4 events evaluated, 2 records rejected" in done.stderr


def test_a_bad_limit_fails_naming_its_variable() -> None:
    done = scan({"FALCONET_OBJECT_MAX_DOCUMENT_BYTES": "1k"})
    assert done.returncode == 1
    assert done.stderr.strip().endswith(
        "falconet: error: FALCONET_OBJECT_MAX_DOCUMENT_BYTES must be a whole number, got '1k'"
    )
