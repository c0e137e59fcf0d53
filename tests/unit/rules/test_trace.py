"""`falconet explain --rule NAME --event FILE`: why a rule did or did not fire, and it agrees
with what the engine really does."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from falconet import Engine
from falconet.cli import main
from falconet.context import EMPTY_CONTEXT
from tests.conftest import ROOT

EVENTS = sorted((ROOT / "tests" / "data" / "rules").glob("*/*.json"))
SECRET = ROOT / "tests/data/rules/secret-read-by-non-platform-identity/positive.json"


@cache
def bundled(matching: str = "first") -> Engine:
    return Engine.from_paths([ROOT / "rules"], rule_matching=matching, hostname="h")


def _events() -> list[dict[str, Any]]:
    out = []
    for path in EVENTS:
        data = json.loads(path.read_text())
        out.extend(data if isinstance(data, list) else [data])
    return [e for e in out if isinstance(e, dict)]


@pytest.mark.parametrize("matching", ["first", "all"])
def test_why_agrees_with_the_engine_on_every_fixture_event(matching: str) -> None:
    engine = bundled(matching)
    for event in _events():
        fired = {a.rule for a in engine.evaluate(event, EMPTY_CONTEXT)}
        for info in engine.rules:
            why = engine.why(info.name, event)
            assert why.trace[0].startswith("true " if why.matched else "false"), info.name
            assert why.fired == (info.name in fired), (info.name, event.get("auditID"))
            expected = (
                why.matched
                and why.state == "active"
                and why.taken_by is None
                and why.timed
                and (matching == "all" or not fired - {info.name})
            )
            assert why.fired == expected, (info.name, event.get("auditID"), why.verdict())


def test_explain_names_the_earlier_rule_that_took_the_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text(
        "- rule: Any Secret Read\n  desc: d\n  condition: ka.verb=get and "
        "ka.target.resource=secrets\n  output: o\n  priority: WARNING\n  source: k8s_audit\n"
    )
    args = ["explain", "--rules", str(mine), "--rules", str(ROOT / "rules")]
    code = main([*args, "--rule", "Secret Read By Non-Platform Identity", "--event", str(SECRET)])
    out = capsys.readouterr().out
    assert code == 0
    assert "rule 'Secret Read By Non-Platform Identity' (" in out
    assert 'true      ka.target.resource = secrets   [ka.target.resource: "secrets"]' in out
    assert "false       ka.target.subresource exists   [ka.target.subresource: <NA>]" in out
    assert (
        "did not fire: its condition is true, but under rule_matching 'first' the earlier rule "
        "'Any Secret Read' took the event" in out
    )
    assert "alerts raised for this event (rule_matching first): 'Any Secret Read'" in out


def test_explain_a_rule_that_fires_and_one_that_does_not_match(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rule = "Secret Read By Non-Platform Identity"
    assert main(["explain", "--rule", rule, "--event", str(SECRET)]) == 0
    assert f"fired: rule '{rule}' raised an alert" in capsys.readouterr().out
    assert main(["explain", "--rule", "K8s Namespace Deleted", "--event", str(SECRET)]) == 0
    out = capsys.readouterr().out
    assert 'false   ka.verb in (delete, deletecollection)   [ka.verb: "get"]' in out
    assert "did not fire: its condition is false" in out


def test_explain_rule_needs_an_event_and_a_known_rule(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--rule", "X"]) == 2
    assert main(["explain", "--rule", "No Such Rule", "--event", str(SECRET)]) == 1
    assert "no loaded rule is named 'No Such Rule'" in capsys.readouterr().err
