"""Operator helpers: glob translation and the per-value memo of expensive string checks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from falconet import Engine
from falconet.rules import operators
from falconet.rules.operators import (
    RegexError,
    compile_regex,
    glob_matcher,
    memoized,
    pmatch_matcher,
    regex_matcher,
)


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


# -- regex: RE2 as Falco uses it (libsinsp: re2::RE2::POSIX, matched ANCHOR_BOTH) ------------------


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("alice@.*", "alice@example.com", True),
        ("alice", "alice@example.com", False),  # the whole value must match
        ("[[:alpha:]]+-[0-9]+", "web-42", True),  # POSIX classes
        ("(get|list)+", "getlistget", True),
        (".", "\n", False),  # a dot does not match a newline
        ("a$\n^b", "a\nb", True),  # POSIX mode: ^ and $ also match at line breaks, as in Falco
        ("caf.", "café", True),  # UTF-8: a dot is one character, not one byte
        ("x.+", "x\ud800", True),  # a lone surrogate is matched as U+FFFD, not an exception
    ],
)
def test_regex_is_re2_full_match(pattern: str, value: str, expected: bool) -> None:
    assert regex_matcher(pattern)(value) is expected


def test_regex_runs_in_linear_time_on_a_catastrophic_pattern() -> None:
    # With Python's backtracking `re`, this plausible e-mail pattern took 3.5 s for a 26-character
    # value and doubled with each character (this test never finished before RE2): RE2 answers
    # in time linear in the value, whatever the pattern.
    matcher = regex_matcher("([a-z0-9]+[.-]?)+@corp[.]com")
    assert matcher("a" * 100 + "!") is False
    assert matcher("a" * 100 + "@corp.com") is True


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("kubectl/v\\d+", "invalid escape sequence: \\d"),  # no Perl classes in POSIX mode
        ("\\bword", "invalid escape sequence: \\b"),
        ("(a)\\1", "invalid escape sequence: \\1"),  # no backreferences
        ("a(?=b)", "no argument for repetition operator: ?"),  # no lookaround
        ("(?i)admin", "no argument for repetition operator: ?"),  # no flags
        ("a{1001}", "invalid repetition size: {1001}"),
        ("(unclosed", "missing ): (unclosed"),
    ],
)
def test_patterns_re2_rejects_are_errors(pattern: str, message: str) -> None:
    with pytest.raises(RegexError) as info:
        compile_regex(pattern)
    assert str(info.value) == message


# -- glob: fnmatch semantics, without catastrophic backtracking ------------------------------------


def naive_glob_regex(pattern: str) -> str:
    """The translation used until the linear one: each star a `.*` (the oracle)."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append(".*")
            i += 1
        elif c == "?":
            out.append(".")
            i += 1
        elif c == "[" and (translated := operators._glob_set(pattern, i)) is not None:
            out.append(translated[0])
            i = translated[1]
        elif c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


@settings(max_examples=1000, deadline=None)
@given(
    pattern=st.text(alphabet="ab*?[]!-\\/", max_size=12),
    value=st.text(alphabet="ab/-*[\\", max_size=12),
    ignore_case=st.booleans(),
)
def test_glob_matches_as_the_naive_translation_did(
    pattern: str, value: str, ignore_case: bool
) -> None:
    flags = re.DOTALL | (re.IGNORECASE | re.ASCII if ignore_case else 0)
    expected = re.fullmatch(naive_glob_regex(pattern), value, flags) is not None
    assert (glob_matcher(pattern, ignore_case=ignore_case)(value) is not None) is expected


def test_glob_runs_in_linear_time_on_a_plausible_pattern() -> None:
    # With a `.*` per star, an 8 KB URI took 0.3 s against this pattern, growing with the cube of
    # its length (this 80 KB one: about five minutes).
    matcher = glob_matcher("*/namespaces/*/pods/*/exec*")
    uri = "/namespaces/x/pods/y" * 4000
    assert matcher(uri) is None
    assert matcher(uri + "/exec?command=sh") is not None
    assert glob_matcher("*a*a*a*a*a*b")("a" * 100_000) is None


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("[z-a]", "a", False),  # a reversed range is empty, as in glibc (re raised at build)
        ("[z-a]", "z", False),
        ("[z-ab]", "b", True),
        ("x[!z-a]", "x-", True),
        ("[a-[:digit:]]", "-", True),  # a class cannot end a range: a, '-' and the digits
        ("[a-[:digit:]]", "7", True),
        ("[a-[:digit:]]", "b", False),
        ("[\\z-\\a]c", "ac", False),
    ],
)
def test_glob_reversed_ranges_are_empty(pattern: str, value: str, expected: bool) -> None:
    assert (glob_matcher(pattern)(value) is not None) is expected


def test_a_glob_with_a_reversed_range_loads_and_builds(tmp_path: Path) -> None:
    # Found by fuzzing: the rule loaded, then building the engine raised re.error.
    path = tmp_path / "r.yaml"
    path.write_text(
        '- rule: R\n  desc: d\n  condition: ka.user.name glob "[z-a]*" or ka.uri pmatch '
        "(/a/[z-a])\n  output: o\n  priority: WARNING\n  source: k8s_audit\n"
    )
    engine = Engine.from_paths([path], hostname="test")
    event = {"auditID": "a", "stageTimestamp": "2026-03-11T15:45:00Z", "user": {"username": "z"}}
    assert engine.evaluate(event) == []


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("*UNI*", "adv-user-unicode", True),  # ASCII letters fold both ways
        ("*uni*", "ADV-USER-UNICODE", True),
        ("*ÜNÏ*", "ADV-USER-ÜNÏCODE", True),  # the same non-ASCII letters match
        ("*ÜNÏ*", "adv-user-ünïcode", False),  # but do not fold: fnmatch's C-locale tolower
        ("*ünï*", "ADV-USER-ÜNÏCODE", False),
        ("*K*", "\u212a", False),  # the Kelvin sign is not a K
        ("*ſ*", "S", False),  # nor the long s an S
    ],
)
def test_iglob_folds_ascii_letters_only_as_falco(pattern: str, value: str, expected: bool) -> None:
    assert (glob_matcher(pattern, ignore_case=True)(value) is not None) is expected
