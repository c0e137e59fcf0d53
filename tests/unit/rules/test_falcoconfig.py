"""Falco's configuration for adapting a shared ruleset (falco.yaml's `rules:`, `append_output`,
`static_fields`), and falconet's default extra fields turned off: through the engine, the
settings the functions read and the `falconet scan` command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from falconet import Engine, cli
from falconet.config import Settings
from falconet.errors import ConfigError
from falconet.rules.falcoconfig import load_falco_config, parse_falco_config

RULES = """
- rule: Create
  desc: d
  condition: ka.verb = create
  output: created %ka.target.name
  priority: WARNING
  source: k8s_audit
  tags: [k8s, write]
- rule: Any verb
  desc: d
  condition: ka.verb exists
  output: verb %ka.verb
  priority: NOTICE
  source: k8s_audit
  tags: [k8s]
- rule: Pods
  desc: d
  condition: ka.target.resource = pods
  output: pod %ka.target.name
  priority: INFO
  source: k8s_audit
  enabled: false
"""

EVENT: dict[str, Any] = {
    "kind": "Event",
    "auditID": "a1",
    "stage": "ResponseComplete",
    "verb": "create",
    "user": {"username": "alice"},
    "objectRef": {"resource": "pods", "namespace": "default", "name": "p1"},
    "stageTimestamp": "2026-03-11T15:45:02.100000Z",
}


def _engine(tmp_path: Path, config: str, env: dict[str, str] | None = None) -> Engine:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    path = tmp_path / "falco.yaml"
    path.write_text(config)
    return Engine.from_paths(
        [rules],
        rule_matching="all",
        extra_fields=[],
        hostname="h",
        falco_config=load_falco_config(path, env or {}),
    )


def _fired(engine: Engine) -> list[str]:
    return [a.rule for a in engine.evaluate(EVENT)]


@pytest.mark.parametrize(
    ("commands", "fired"),
    [
        ("", ["Create", "Any verb"]),  # Pods is disabled in its file
        ("- disable: {rule: '*'}\n- enable: {tag: write}", ["Create"]),
        ("- enable: {rule: Pods}", ["Create", "Any verb", "Pods"]),
        ("- enable: {rule: 'P*'}\n- disable: {tag: k8s}", ["Pods"]),
        ("- disable: {tag: k8s}\n- enable: {rule: 'Any *'}", ["Any verb"]),
        ("- enable: {rule: '*o*'}\n- disable: {rule: 'Create'}", ["Any verb", "Pods"]),
        ("- disable: {rule: 'No such rule'}", ["Create", "Any verb"]),  # matches none: fine
        ("- disable: {tag: nosuchtag}", ["Create", "Any verb"]),
    ],
)
def test_rules_enable_and_disable_in_order(tmp_path: Path, commands: str, fired: list[str]) -> None:
    engine = _engine(tmp_path, "rules:\n" + commands if commands else "")
    assert _fired(engine) == fired
    assert [r.name for r in engine.rules if r.enabled] == fired  # `falconet rules` says so too


def test_append_output_and_static_fields(tmp_path: Path) -> None:
    config = """
append_output:
  - match: {tags: [write]}
    extra_output: "by %ka.user.name"
    extra_fields:
      - ka.target.namespace
      - who: "user ${WHO_PREFIX}%ka.user.name"
  - match: {rule: Any verb}
    extra_output: "(ns %ka.target.namespace)"
  - match: {source: syscall}
    extra_output: "never for k8s_audit"
  - match: {tags: [k8s, nosuch]}
    extra_output: "never: a tag is missing"
  - extra_fields:
      - who: "last entry wins"
      - ka.verb: "a rule's own field keeps its key"
static_fields:
  env: prod
  region: "${REGION}"
  flag: true
"""
    engine = _engine(tmp_path, config, {"WHO_PREFIX": "=", "REGION": "eu-1"})
    create, any_verb = engine.evaluate(EVENT)
    assert create.message == "created p1 by alice"
    assert dict(create.output_fields) == {
        "env": "prod",
        "evt.time": 1773243902100000000,
        "ka.target.name": "p1",
        "ka.target.namespace": "default",
        "ka.user.name": "alice",  # from the appended output
        "ka.verb": "a rule's own field keeps its key",  # not the rule's: Create prints no verb
        "flag": "true",
        "region": "eu-1",
        "who": "last entry wins",
    }
    assert any_verb.message == "verb create (ns default)"
    assert any_verb.output_fields["ka.verb"] == "create"  # its own output field keeps the key
    assert any_verb.output_fields["who"] == "last entry wins"
    assert "ka.user.name" not in any_verb.output_fields
    assert list(create.output_fields) == sorted(create.output_fields)  # Falco's key order


ALIAS_BOMB = (
    "a0: &a0 ["
    + ", ".join(["xxxxxxxxxx"] * 10)
    + "]\n"
    + "".join(f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 10) + "]\n" for n in range(1, 8))
)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("rules: {disable: x}", "'rules' must be a list"),
        ("rules:\n- stop: {rule: x}", "rules entry 1: 'stop' is not 'enable' or 'disable'"),
        ("rules:\n- enable: {name: x}", "rules entry 1: 'enable' takes one of"),
        ("append_output:\n- extra_output: '%ka.nosuch'", "entry 1: extra_output: unknown field"),
        ("append_output:\n- extra_fields: [ka.nosuch]", "unknown field 'ka.nosuch'"),
        ("append_output:\n- extra_fields: [{k: '%'}]", "extra field 'k': '%' is not followed"),
        ("append_output:\n- match: {verb: get}", "'match' takes 'source', 'rule' and 'tags'"),
        ("append_output:\n- extra: x", "unknown key 'extra'"),
        ("static_fields: [a]", "'static_fields' must be a mapping"),
        ("static_fields: {a: [1]}", "static field 'a' must be a key and a scalar value"),
        ("- not a mapping", "a Falco configuration is a mapping of keys"),
        ("rules: [", ":2:1: YAML syntax error"),
        (ALIAS_BOMB, "YAML aliases expand"),  # bounded as a rules file is
    ],
)
def test_bad_configuration_names_the_file_and_entry(
    tmp_path: Path, config: str, message: str
) -> None:
    path = tmp_path / "falco.yaml"
    path.write_text(config)
    with pytest.raises(ConfigError) as info:
        load_falco_config(path, {})
    assert str(path) in str(info.value) and message in str(info.value)


def test_other_falco_yaml_keys_are_ignored() -> None:
    document = {"json_output": True, "plugins": [{"name": "k8saudit"}], "rules_files": ["x"]}
    assert parse_falco_config(document, "f", {}).selection == ()


def test_settings_read_the_functions_variables(tmp_path: Path) -> None:
    path = tmp_path / "falco.yaml"
    path.write_text("rules:\n- disable: {tag: k8s}\nstatic_fields: {site: '${SITE}'}\n")
    settings = Settings(
        {
            "FALCONET_FALCO_CONFIG": str(path),
            "FALCONET_EXTRA_FIELDS": "none",
            "SITE": "lab",
        }
    ).engine
    assert settings.extra_fields == ()
    assert settings.falco_config is not None
    assert settings.falco_config.static_fields == (("site", "lab"),)
    with pytest.raises(ConfigError, match="FALCONET_FALCO_CONFIG: '/nonexistent' is not a file"):
        _ = Settings({"FALCONET_FALCO_CONFIG": "/nonexistent"}).engine


def test_scan_with_falco_config_and_no_extra_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "UTC")
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    config = tmp_path / "falco.yaml"
    config.write_text("rules:\n- disable: {rule: 'Any*'}\nstatic_fields: {team: sec}\n")
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(EVENT) + "\n")
    argv = ["scan", "--json", "--rules", str(rules), "--rule-matching", "all", str(events)]
    assert cli.main([*argv, "--no-extra-fields", "--falco-config", str(config)]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    alert = json.loads(line)
    assert alert["rule"] == "Create"
    assert alert["output_fields"] == {
        "evt.time": 1773243902100000000,
        "ka.target.name": "p1",
        "team": "sec",
    }
    assert cli.main(argv) == 0  # without: both rules, and falconet's default extra fields
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(x)["rule"] for x in lines] == ["Create", "Any verb"]
    assert "ka.user.name" in json.loads(lines[0])["output_fields"]


def test_the_documented_example_loads_and_works(tmp_path: Path) -> None:
    """docs/rules.md's falco.yaml example, as written, on a rule tagged k8s."""
    import re

    from tests.conftest import ROOT

    doc = (ROOT / "docs" / "rules.md").read_text()
    (example,) = re.findall(r"```yaml\n(# falco.yaml\n.*?)```", doc, flags=re.S)
    engine = _engine(tmp_path, example, {"ENV": "prod"})
    alert, other = engine.evaluate(EVENT)
    assert [alert.rule, other.rule] == ["Create", "Any verb"]  # tagged k8s; Pods is not
    assert alert.output_fields["team"] == "sec-prod"
    assert alert.output_fields["deployment"] == "prod-eu"
    assert alert.message == "created p1 cluster=<NA>"


@pytest.mark.parametrize(
    "variable",
    [
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_CLIENT_SECRET",
        "IDENTITY_HEADER",
        "FALCONET_WEBHOOK_TOKEN",
        "FALCONET_NOTIFY_URL",
    ],
)
@pytest.mark.parametrize(
    "config",
    [
        "static_fields: {leak: '${%s}'}",
        "append_output:\n- extra_output: 'x ${%s}'",
        "append_output:\n- extra_fields: [{leak: '${%s}'}]",
    ],
)
def test_a_credential_is_never_expanded_into_alerts(
    tmp_path: Path, variable: str, config: str
) -> None:
    """A falco.yaml from others must not copy the function's credentials into every alert (and
    so to every sink): `${VAR}` of a credential or of a falconet setting is refused by name."""
    path = tmp_path / "falco.yaml"
    path.write_text(config % variable)
    with pytest.raises(ConfigError) as info:
        load_falco_config(path, {variable: "s3cr3t-value"})
    assert str(path) in str(info.value) and f"${{{variable}}}" in str(info.value)
    assert "s3cr3t-value" not in str(info.value)


def test_ordinary_variables_are_still_expanded(tmp_path: Path) -> None:
    path = tmp_path / "falco.yaml"
    path.write_text("static_fields: {region: '${AWS_REGION}', host: '${HOSTNAME}'}\n")
    config = load_falco_config(path, {"AWS_REGION": "eu-west-1", "HOSTNAME": "h1"})
    assert config.static_fields == (("region", "eu-west-1"), ("host", "h1"))


@pytest.mark.parametrize(
    ("glob", "name", "matched"),
    [
        ("*", "", True),
        ("Any *", "Any verb", True),
        ("*verb", "Any verb", True),
        ("A*y*b", "Any verb", True),
        ("*n*n*", "Any verb", False),
        ("Any", "Any verb", False),
        ("a*a", "a", False),
        ("*.*", "a.b", True),  # no character but `*` is special
        ("x\n*", "x\ny", True),
        ("*a" * 12 + "*b", "a" * 60, False),  # a backtracking regex took hours on this one
        ("*a" * 12 + "*", "a" * 60, True),
    ],
)
def test_rule_name_globs_match_in_linear_time(glob: str, name: str, matched: bool) -> None:
    """A falco.yaml from others names rules by glob: `*a*a*...*b` once made the regex behind it
    backtrack for hours per rule name (the cold start hung); the match is now done part by part."""
    from falconet.rules.falcoconfig import Selection
    from falconet.rules.model import Position, Rule

    rule = Rule(name, 0, "c", None, "o", "d", 4, True, (), Position("f", 1, 1))  # type: ignore[arg-type]
    assert Selection(enable=False, rule=glob).matches(rule) is matched
