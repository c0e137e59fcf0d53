"""A short pass of every fuzz target on each `make test`: its seeds, then mutations of them.

The long, coverage-guided runs are `make fuzz` (tools/fuzz.py); this keeps every target working
and catches what a few hundred mutated inputs already find."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))

import fuzz

INPUTS = 300


@pytest.mark.parametrize("target", fuzz.targets())
def test_a_short_fuzz_pass_finds_nothing(target: str) -> None:
    count, findings = fuzz.mutation_loop(target, seconds=120, seed=1, max_inputs=INPUTS)
    assert not findings, findings
    assert count == INPUTS
