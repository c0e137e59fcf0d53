"""Operator helpers: glob translation and the per-value memo of expensive string checks."""

from __future__ import annotations

import re

import pytest

from falconet.rules import operators
from falconet.rules.operators import glob_matcher, memoized, pmatch_matcher


def test_memoized_checks_each_distinct_value_once_and_keeps_results() -> None:
    calls: list[str] = []

    def predicate(value: str) -> re.Match[str] | None:
        calls.append(value)
        return re.search("nmap|sqlmap", value)

    check = memoized(predicate)
    values = ["kubectl/v1.30", "nmap 7.94", "kubectl/v1.30", "nmap 7.94", "curl/8"]
    assert [check(v) for v in values] == [False, True, False, True, False]
    assert calls == ["kubectl/v1.30", "nmap 7.94", "curl/8"]


def test_memoized_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(operators, "MEMO_SIZE", 3)
    calls: list[str] = []
    check = memoized(lambda v: calls.append(v) or v.startswith("a"))
    for v in ["a1", "b1", "a2", "b2", "a1"]:
        check(v)
    assert calls == ["a1", "b1", "a2", "b2", "a1"]  # cleared when full, then recomputed


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("*", "a/b/c", True),  # * crosses '/' (fnmatch without FNM_PATHNAME)
        ("a?c", "abc", True),
        ("[!a]bc", "abc", False),
        ("[[:digit:]]x", "7x", True),
        ("\\*", "*", True),
        ("\\*", "a", False),
    ],
)
def test_glob(pattern: str, value: str, expected: bool) -> None:
    assert (glob_matcher(pattern)(value) is not None) is expected


def test_pmatch_is_a_path_prefix_match() -> None:
    match = pmatch_matcher(("/etc", "/var/run/*.sock"))
    assert match("/etc") and match("/etc/shadow")
    assert not match("/etcd")
    assert match("/var/run/docker.sock")
