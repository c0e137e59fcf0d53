"""`falconet validate` warns about rules first-match never lets fire, and only about those."""

from __future__ import annotations

from pathlib import Path

import pytest

from falconet import Engine
from falconet.cli import main
from falconet.rules.loader import load_rules
from falconet.rules.shadow import shadow_warnings, shadowed
from tests.conftest import ROOT

BUNDLED = ROOT / "rules"
HEADER = "- required_engine_version: 15\n"


def rule(name: str, condition: str, enabled: bool = True) -> str:
    return (
        f"- rule: {name}\n  desc: d\n  condition: {condition}\n  output: o %ka.user.name\n"
        f"  priority: WARNING\n  source: k8s_audit\n  enabled: {str(enabled).lower()}\n"
    )


def pairs(tmp_path: Path, *rules: str) -> list[tuple[str, str]]:
    path = tmp_path / "rules.yaml"
    path.write_text(HEADER + "".join(rules))
    loaded, ruleset = load_rules([path])
    assert not ruleset.errors, ruleset.errors
    return [(s.later.name, s.earlier.name) for s in shadowed(loaded)]


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ("ka.verb=get", "ka.verb=get and ka.target.namespace=a"),
        ("ka.verb in (get, list)", "ka.target.namespace=a and ka.verb=get"),
        ("ka.verb in (get, list)", "ka.verb in (list, get)"),
        ("ka.response.code startswith 2", "ka.response.code=200"),
        ("ka.user.name startswith sys", 'ka.user.name startswith "system:"'),
        ("ka.target.name exists", "ka.target.name contains x"),
        ("(ka.verb=get or ka.verb=list)", "ka.verb=list and ka.target.name=n"),
        ("not ka.user.name in (a, b)", "(not ka.user.name in (a, b)) and ka.verb=get"),
    ],
    ids=["conjunct", "in-subset", "same-set", "prefix-of-value", "prefix", "exists", "or", "not"],
)
def test_shadowed(tmp_path: Path, earlier: str, later: str) -> None:
    assert pairs(tmp_path, rule("E", earlier), rule("L", later)) == [("L", "E")]


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ("ka.verb=get and ka.target.namespace=a", "ka.verb=get"),  # E is narrower
        ("ka.verb in (get)", "ka.verb in (get, list)"),
        ("ka.user.name startswith sys", "ka.user.name in (system:a, bob)"),
        ("ka.response.code startswith 2", "ka.response.code in (200, 404)"),
        ("not ka.user.name in (a, b)", "not ka.user.name in (a)"),  # not reasoned about
        ("ka.user.name=a or ka.verb=get", "ka.target.name=n"),
        # transformers are compared structurally only
        ("tolower(ka.user.name)=a", "ka.user.name=a"),
    ],
)
def test_not_shadowed(tmp_path: Path, earlier: str, later: str) -> None:
    assert pairs(tmp_path, rule("E", earlier), rule("L", later)) == []


def test_order_matters(tmp_path: Path) -> None:
    assert (
        pairs(tmp_path, rule("L", "ka.verb=get and ka.target.name=n"), rule("E", "ka.verb=get"))
        == []
    )


def test_disabled_rules_shadow_nothing_and_are_not_reported(tmp_path: Path) -> None:
    assert pairs(tmp_path, rule("E", "ka.verb=get", False), rule("L", "ka.verb=get")) == []
    assert pairs(tmp_path, rule("E", "ka.verb=get"), rule("L", "ka.verb=get", False)) == []


def test_silenced_rules_take_no_part(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(HEADER + rule("E", "ka.verb=get") + rule("L", "ka.verb=get"))
    loaded, _ = load_rules([path])
    assert shadow_warnings(loaded, {"E"}) == []
    assert len(shadow_warnings(loaded)) == 1


def test_the_bundled_rules_shadow_none_of_their_own(capsys: pytest.CaptureFixture[str]) -> None:
    # (Two opt-in rules are off by the same never-true switch, so one "shadows" the other; the
    # later one is silenced by a correlation, so it takes no part in first-match.)
    assert main(["validate", str(BUNDLED)]) == 0
    assert "never raises an alert" not in capsys.readouterr().err


COPIED = """- rule: Payments Secret Read
  desc: d
  condition: >
    falconet_complete and ka.verb=get and falconet_r_secret and ka.response.code=200
    and not falconet_platform_identity and ka.target.namespace=payments
  output: x %ka.user.name
  priority: WARNING
  source: k8s_audit
"""


def test_a_user_rule_shadowed_by_a_bundled_one_is_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(COPIED)
    assert main(["validate", str(BUNDLED), str(path)]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if str(path) in line]
    assert len(warnings) == 1
    assert warnings[0].startswith(
        f"{path}:1:3: warning: rule 'Payments Secret Read': never raises an alert under "
        "rule_matching 'first': every event it matches also matches the earlier rule "
        f"'Secret Read By Non-Platform Identity' ({BUNDLED}/k8s_audit_rules.yaml:"
    )
    assert "--rule-matching all" in warnings[0]
    assert "override: {exceptions: append}" in warnings[0]
    assert "loaded before" in warnings[0]


def test_the_warning_is_true_and_its_fixes_work(tmp_path: Path) -> None:
    """The event goes to the earlier rule; `all`, or loading the rule first, lets it fire."""
    import orjson

    event = orjson.loads(
        (ROOT / "tests/data/rules/secret-read-by-non-platform-identity/positive.json").read_bytes()
    )
    event["objectRef"]["namespace"] = "payments"
    mine = tmp_path / "mine.yaml"
    mine.write_text(COPIED)

    def fired(paths: list[Path], matching: str = "first") -> list[str]:
        engine = Engine.from_paths(paths, rule_matching=matching, hostname="h")
        return [a.rule for a in engine.evaluate(event)]

    assert fired([BUNDLED, mine]) == ["Secret Read By Non-Platform Identity"]
    assert "Payments Secret Read" in fired([BUNDLED, mine], "all")
    assert fired([mine, BUNDLED]) == ["Payments Secret Read"]
