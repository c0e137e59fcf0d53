"""Fuzz targets, `tests/fuzz/fuzz_<name>.py`: run by `make fuzz` (tools/fuzz.py) and briefly by CI.

A target module defines:

    def fuzz_one(data: bytes) -> None:
        '''Feed `data` to one part of falconet. Return normally when falconet handled the input
        (including by raising one of its documented errors, which the target catches); anything
        else escaping (a traceback, a hang, a memory blow-up) is a finding.'''

    SEEDS: list[bytes]          # optional: inputs to start from (a corpus of real shapes)
    MAX_SECONDS = 2.0           # optional: one input slower than this is a finding (a hang)

`make fuzz` runs every target coverage-guided with atheris (libFuzzer) when it is installed, else
with a mutation loop, for FUZZ_SECONDS each; tests/fuzz/test_targets.py runs each target over its
seeds and a few hundred mutations on every `make test`.
"""
