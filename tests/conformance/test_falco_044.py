"""Every case of ../shared/conformance/falco-0.44/cases.json: what a real Falco 0.44.1 did.

Each case is a rules file, the events it ran on, and Falco's outcome in one `rule_matching` mode:
either it refused the rules (exit status and error lines) or it raised alerts (its JSON alerts).
falconet, with its extra output fields off and Falco's host name, must do the same:
- a rules file Falco refused, falconet refuses with its own message, naming the file and the line
  Falco's error points at;
- otherwise the same alerts in the same order, compared on rule, priority, output, output
  fields, time, tags, source and host name.

Rules are loaded once per (file, mode) and events are evaluated in-process through the Engine API,
so the whole file runs in about a second. Cases falconet does not match yet are listed, with the
reason, in `NOT_YET` (strict xfail: a case that starts passing must leave the list); cases where
falconet differs on purpose are in `DELIBERATE`, each with its reason and a test of falconet's own
behaviour.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from falconet import Engine, RuleError
from falconet.decode import DecodeStats, decode
from tests.conftest import SHARED

BASE = SHARED / "conformance" / "falco-0.44"
CASES_FILE = BASE / "cases.json"
CASES: list[dict[str, Any]] = (
    json.loads(CASES_FILE.read_text())["cases"] if CASES_FILE.is_file() else []
)
HOSTNAME = "falco-oracle"  # the host name Falco ran under (cases.json says so)

# Cases falconet does not match yet: id -> why. Strict: a case that passes must leave this list.
NOT_YET: dict[str, str] = {}

# Where falconet's default reading of event JSON (orjson) differs from Falco's (fastjson), README's
# "How event JSON is read": these cases must match Falco exactly under `falco_json` (`scan
# --falco-json`, FALCONET_FALCO_JSON=true), and keep falconet's documented default otherwise
# (`test_default_json_reading`). Case name -> what the default does instead, and why.
FALCO_JSON: dict[str, str] = {
    "r01_nul": "the whole string is compared, NUL and what follows included: nothing after a NUL "
    "is hidden from the rules",
    "r02_dupkeys": "the last of duplicate keys wins, as in the apiserver's own (Go) decoding of a "
    "request body: what the cluster applied is what the rules see",
    "r03_numtext": "a number is its value's text (1.5), not the text it was written with (1.50)",
    "r08_deep": "an event nested over 300 levels is evaluated (orjson reads 1,024): it is not "
    "dropped unseen",
    "r11_object_escapes": "an object printed as text is re-serialised (café, not caf\\u00e9)",
}

# Where falconet differs on purpose whatever the reading: id -> why, each with a test of
# falconet's own behaviour.
DELIBERATE: dict[str, str] = {
    **dict.fromkeys(
        ("r09_long_line/first", "r09_long_line/all"),
        "Falco stops reading a file at a line over 64 KiB and drops the whole batch; falconet "
        "evaluates that line like any other (its decode limits bound the cost) and loses nothing",
    ),
    **dict.fromkeys(
        ("r06_array_bad_elem/first", "r06_array_bad_elem/all"),
        "Falco drops a whole JSON array line when one element is no audit event; falconet counts "
        "the bad element and evaluates the others, so one bad record cannot hide its neighbours",
    ),
}


RESULTS: dict[str, bool] = {}  # read by conftest.py's terminal summary


def _ids(case: dict[str, Any]) -> str:
    return str(case["id"])


@pytest.fixture(autouse=True)
def _utc() -> Iterator[None]:
    """Falco ran in UTC; outputs print local time (`evt.time`), so evaluate in UTC too."""
    import os

    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def falco_rejected(case: dict[str, Any]) -> bool:
    """Whether Falco refused the rules file (rather than failing on the events)."""
    return case["falco_exit"] != 0 and any(
        "Invalid" in line or "schema validation" in line for line in case["falco_errors"]
    )


def falco_error_lines(case: dict[str, Any]) -> tuple[int, int] | None:
    """The 1-based lines where falconet's error may point: Falco's most precise place, or, when
    that is a whole key of the rule (`rule output`), anywhere from the rule's first line to it.
    None when Falco names no place in the file.

    Falco prints item places 0-based (`rule output: (f.yaml:3:10)`) and condition-expression
    places 1-based (`condition expression: ("ka.verb = get and":3:31)`), in the file after a
    `rule condition` place, else in the expanded condition text (not comparable)."""
    found: tuple[int, int] | None = None
    item = None
    in_file = False  # an expression place is in the file after a `rule condition` place
    for text in case["falco_errors"]:
        m = re.search(r"condition expression: \(\".*\":(\d+):\d+\)", text)
        if m:
            if in_file:
                found = (int(m.group(1)), int(m.group(1)))
            continue
        in_file = "rule condition:" in text
        m = re.search(r"rule '.*': \([^()]*:(\d+):\d+\)", text)
        if m:
            item = int(m.group(1)) + 1
        m = re.search(r"rule (?:condition|output): \([^()]*:(\d+):\d+\)", text)
        if m:
            line = int(m.group(1)) + 1
            found = (line, line) if "condition" in text or item is None else (item, line)
    return found


@functools.cache
def _engine(rules: str, matching: str) -> Engine:
    return Engine.from_paths(
        [BASE / rules], rule_matching=matching, extra_fields=[], hostname=HOSTNAME
    )


def _case_name(case: dict[str, Any]) -> str:
    return str(case["id"]).split("/")[0]


def _alerts(case: dict[str, Any], *, falco_json: bool | None = None) -> list[dict[str, Any]]:
    """falconet's alerts for the case, reading JSON as Falco does where the case is about that
    (unless `falco_json` says otherwise)."""
    if falco_json is None:
        falco_json = _case_name(case) in FALCO_JSON
    engine = _engine(case["rules"], case["rule_matching"])
    events = BASE / (case.get("events") or "generic_event.jsonl")
    out: list[dict[str, Any]] = []
    with Path(events).open("rb") as stream:
        read = decode(stream, stats=DecodeStats(), name=events.name, falco_json=falco_json)
        for event, context in read:
            for alert in engine.evaluate(event, context):
                data = alert.to_dict()
                del data["uuid"]  # Falco's alerts have none
                out.append(data)
    return out


def _marks(case: dict[str, Any]) -> Any:
    reason = NOT_YET.get(case["id"])
    if reason is None:
        return pytest.param(case, id=_ids(case))
    return pytest.param(case, id=_ids(case), marks=pytest.mark.xfail(reason=reason, strict=True))


pytestmark = pytest.mark.skipif(
    not CASES, reason="../shared/conformance/falco-0.44 is not beside the repository"
)


@pytest.mark.parametrize("case", [_marks(c) for c in CASES if c["id"] not in DELIBERATE])
def test_same_as_falco(case: dict[str, Any]) -> None:
    RESULTS[case["id"]] = False
    _same_as_falco(case)
    RESULTS[case["id"]] = True


def _same_as_falco(case: dict[str, Any]) -> None:
    if falco_rejected(case):
        with pytest.raises(RuleError) as info:
            _engine.__wrapped__(case["rules"], case["rule_matching"])
        err = info.value
        assert err.file is not None and err.file.endswith(case["rules"]), err
        assert err.line is not None, err
        want = falco_error_lines(case)
        if want is not None:
            low, high = want
            assert low <= err.line <= high, f"falconet: {err}; Falco: {case['falco_errors']}"
        return
    assert _alerts(case) == case["alerts"]


@pytest.mark.parametrize("case", [c for c in CASES if c["id"] in DELIBERATE], ids=_ids)
def test_deliberate_difference(case: dict[str, Any]) -> None:
    """Falco raised nothing for these files (the long line killed the run; the bad element the
    whole array line); falconet alerts on every good event in them."""
    assert case["alerts"] == [], DELIBERATE[case["id"]]
    got = [a["output_fields"]["ka.auditid"] for a in _alerts(case)]
    lines = [line for line in (BASE / case["events"]).read_bytes().splitlines() if line.strip()]
    want: list[str] = []
    for line in lines:
        doc = json.loads(line)
        for item in doc if isinstance(doc, list) else [doc]:
            if isinstance(item, dict) and item.get("kind") == "Event":
                want.append(item["auditID"])
    if case["id"].startswith("r09_long_line"):
        assert case["falco_exit"] != 0 and any(len(line) > 64 * 1024 for line in lines)
    else:
        assert any(isinstance(json.loads(line), list) for line in lines)
    assert want and got == want


@pytest.mark.parametrize("case", [c for c in CASES if _case_name(c) in FALCO_JSON], ids=_ids)
def test_default_json_reading(case: dict[str, Any]) -> None:
    """Without `falco_json`, falconet reads these events its documented way (README): the alerts
    differ from Falco's exactly as FALCO_JSON says."""
    got = _alerts(case, falco_json=False)
    name = _case_name(case)
    assert got != case["alerts"], FALCO_JSON[name]
    if name in ("r01_nul", "r02_dupkeys", "r03_numtext"):
        assert got == [] and len(case["alerts"]) == 1  # Falco's reading matched, the default not
    elif name == "r08_deep":
        assert case["alerts"] == [] and len(got) == 1  # Falco dropped the event unseen
    else:
        assert [a["output"] for a in got] == [
            a["output"].replace("\\u00e9", "\u00e9") for a in case["alerts"]
        ]


def test_every_listed_case_exists() -> None:
    known = {c["id"] for c in CASES}
    assert set(NOT_YET) <= known and set(DELIBERATE) <= known
    assert not set(NOT_YET) & set(DELIBERATE)
    assert {f"{name}/first" for name in FALCO_JSON} <= known
