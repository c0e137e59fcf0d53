"""Evaluation semantics through the public API: missing fields, operators, rule matching, alerts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from falconet import Engine
from falconet.errors import ConfigError

HEADER = "- required_engine_version: 15\n"


def event(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse",
        "auditID": "11111111-2222-3333-4444-555555555555",
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/demo",
        "verb": "delete",
        "user": {"username": "alice@example.com", "groups": ["dev", "system:authenticated"]},
        "sourceIPs": ["81.2.69.160"],
        "userAgent": "kubectl/v1.30.0",
        "objectRef": {"resource": "namespaces", "name": "demo", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": "2026-03-11T15:45:00.000000Z",
        "stageTimestamp": "2026-03-11T15:45:00.123456Z",
        "annotations": {
            "authorization.k8s.io/decision": "allow",
            "authorization.k8s.io/reason": "",
        },
    }
    base.update(overrides)
    return base


def engine(tmp_path: Path, rules: str, **kwargs: Any) -> Engine:
    path = tmp_path / "rules.yaml"
    path.write_text(HEADER + rules)
    return Engine.from_paths([path], hostname="test-host", **kwargs)


def rule(
    name: str, condition: str, output: str = "hit user=%ka.user.name", priority: str = "WARNING"
) -> str:
    return (
        f"- rule: {name}\n  desc: test\n  condition: >\n    {condition}\n"
        f"  output: {output}\n  priority: {priority}\n  source: k8s_audit\n  tags: [b, a]\n"
    )


def fired(e: Engine, ev: dict[str, Any]) -> list[str]:
    names = [a.rule for a in e.evaluate(ev)]
    assert names == e.matches_reference(ev), "fast engine and reference evaluator disagree"
    return names


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("ka.target.namespace != kube-system", False),  # absent: != is false
        ("not ka.target.namespace = kube-system", True),
        ("ka.target.namespace exists", False),
        ("not ka.target.subresource exists", True),
        ("ka.impuser.name in (bob)", False),
        ("not ka.impuser.name in (bob)", True),
        ("ka.target.namespace contains kube", False),
        ("ka.req.pod.containers.image in (nginx)", False),  # absent list: in is not vacuous
        ("not ka.req.pod.containers.image intersects (nginx)", True),
    ],
)
def test_missing_field_semantics(tmp_path: Path, condition: str, expected: bool) -> None:
    e = engine(tmp_path, rule("R", condition))
    assert fired(e, event()) == (["R"] if expected else [])


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("ka.verb=delete", True),
        ("ka.verb==delete", True),
        ("ka.verb!=get", True),
        ("ka.response.code >= 200 and ka.response.code < 300", True),
        ("ka.response.code > 400", False),
        ("ka.user.name contains example", True),
        ("ka.user.name icontains EXAMPLE", True),
        ("ka.user.name startswith alice", True),
        ("ka.user.name endswith .com", True),
        ("ka.user.name glob '*@example.com'", True),
        ("ka.user.name glob 'ALICE*'", False),
        ("ka.user.name iglob 'ALICE*'", True),
        ("ka.uri glob '/api/*/demo'", True),  # * crosses /
        ("ka.user.name glob '[a-c]lice@*'", True),
        ("ka.user.name regex 'alice@.*'", True),
        ("ka.user.name regex 'alice'", False),  # anchored at both ends
        ("ka.uri pmatch (/api/v1/namespaces)", True),
        ("ka.uri pmatch (/api/v1/name)", False),
        ("ka.uri pmatch (/api/*/namespaces)", True),
        ("ka.verb in (create, delete)", True),
        ("ka.verb intersects (delete)", True),
        ("ka.user.groups in (dev, system:authenticated, other)", True),  # every value in set
        ("ka.user.groups in (dev)", False),
        ("ka.user.groups intersects (dev)", True),
        ("ka.user.groups exists", True),
        ("ka.auth.reason = ''", True),  # present and empty
        ("jevt.value[/sourceIPs/0] = 81.2.69.160", True),
        ("jevt.value[/responseStatus/code] = 200", True),
        ("jevt.value[/nope] exists", False),
        ("tolower(ka.user.name) = alice@example.com", True),
        ("toupper(ka.verb) = DELETE", True),
        ("ka.user.name = val(ka.user.name)", True),
        ("ka.user.name = val(ka.impuser.name)", False),
        ("jevt.rawtime exists", True),
        ("jevt.rawtime = 0", False),
        ("evt.rawtime > 0", True),
    ],
)
def test_operators(tmp_path: Path, condition: str, expected: bool) -> None:
    e = engine(tmp_path, rule("R", condition))
    assert fired(e, event()) == (["R"] if expected else [])


def test_null_is_the_string_null_and_present(tmp_path: Path) -> None:
    e = engine(tmp_path, rule("R", "ka.impuser.name = null"))
    assert fired(e, event(impersonatedUser={"username": None})) == ["R"]


def test_ka_fields_need_audit_id(tmp_path: Path) -> None:
    e = engine(tmp_path, rule("R", "ka.verb=delete") + rule("J", "jevt.value[/verb]=delete"))
    ev = event()
    del ev["auditID"]
    assert fired(e, ev) == ["J"]


def test_first_match_in_position_order(tmp_path: Path) -> None:
    text = rule("Specific", "ka.verb=delete and ka.target.resource=namespaces") + rule(
        "Generic", "ka.verb=delete"
    )
    assert fired(engine(tmp_path, text), event()) == ["Specific"]
    assert fired(engine(tmp_path, text, rule_matching="all"), event()) == ["Specific", "Generic"]


def test_redefinition_keeps_position(tmp_path: Path) -> None:
    text = rule("A", "ka.verb=get") + rule("B", "ka.verb=delete") + rule("A", "ka.verb=delete")
    assert fired(engine(tmp_path, text), event()) == ["A"]


def test_min_priority_drops_rules_entirely(tmp_path: Path) -> None:
    text = rule("Low", "ka.verb=delete", priority="INFO") + rule("High", "ka.verb=delete")
    assert fired(engine(tmp_path, text), event()) == ["Low"]
    assert fired(engine(tmp_path, text, min_priority="warning"), event()) == ["High"]


def test_disabled_rules_do_not_run(tmp_path: Path) -> None:
    text = (
        rule("A", "ka.verb=delete") + "- rule: A\n  enabled: false\n" + rule("B", "ka.verb=delete")
    )
    assert fired(engine(tmp_path, text), event()) == ["B"]


def test_lists_substitute_textually_and_exceptions_apply(tmp_path: Path) -> None:
    text = (
        "- list: admins\n  items: [alice@example.com, root]\n"
        + rule("R", "ka.verb=delete and ka.user.name in (admins)")
        + "  exceptions:\n  - name: demo_ns\n    fields: [ka.target.name]\n    values: [[demo]]\n"
    )
    e = engine(tmp_path, text)
    assert fired(e, event()) == []
    assert fired(e, event(objectRef={"resource": "namespaces", "name": "prod"})) == ["R"]


def test_override_append_condition_and_replace_priority(tmp_path: Path) -> None:
    text = rule("R", "ka.verb=delete") + (
        "- rule: R\n  condition: and ka.target.name=other\n  priority: ERROR\n"
        "  override:\n    condition: append\n    priority: replace\n"
    )
    e = engine(tmp_path, text)
    assert fired(e, event()) == []
    alerts = e.evaluate(event(objectRef={"resource": "namespaces", "name": "other"}))
    assert [a.priority for a in alerts] == ["Error"]


def test_event_without_valid_timestamp_raises_no_alert(tmp_path: Path) -> None:
    e = engine(tmp_path, rule("R", "ka.verb=delete"))
    assert e.evaluate(event(stageTimestamp="yesterday")) == []


def test_bad_settings_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="rule_matching"):
        engine(tmp_path, rule("R", "ka.verb=get"), rule_matching="some")
    with pytest.raises(ConfigError, match="min_priority"):
        engine(tmp_path, rule("R", "ka.verb=get"), min_priority="loud")
    with pytest.raises(ConfigError, match="unknown extra field"):
        engine(tmp_path, rule("R", "ka.verb=get"), extra_fields=["ka.nope"])


@pytest.mark.parametrize("op", ["in", "intersects", "pmatch"])
def test_empty_lists_match_nothing(tmp_path: Path, op: str) -> None:
    text = (
        "- list: empty\n  items: []\n"
        + rule("R", f"ka.verb {op} (empty)")
        + rule("N", f"not ka.verb {op} (empty)")
    )
    e = engine(tmp_path, text, rule_matching="all")
    assert fired(e, event()) == ["N"]
    ev = event()
    del ev["verb"]
    assert fired(e, ev) == ["N"]
