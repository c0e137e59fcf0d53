"""falconet.alerts: Falco's JSON shape, output formatting, deterministic ids, reading back."""

from __future__ import annotations

import copy
from pathlib import Path

from falconet import Alert, EventContext
from falconet.alerts import render_value
from tests.unit.test_engine import engine, event, rule


def test_alert_shape_and_formatting(tmp_path: Path) -> None:
    out = (
        "K8s Namespace Deleted (user=%ka.user.name ns=%ka.target.name groups=%ka.user.groups "
        "imp=%ka.impuser.name ip=%jevt.value[/sourceIPs/0] cmd=%ka.uri.param[command])"
    )
    e = engine(
        tmp_path, rule("Namespace Deleted", "ka.verb=delete", output=out), time_format_iso8601=True
    )
    (alert,) = e.evaluate(event(), EventContext(cluster="prod-eu"))
    assert alert.message == (
        "K8s Namespace Deleted (user=alice@example.com ns=demo groups=(dev,system:authenticated) "
        "imp=<NA> ip=81.2.69.160 cmd=<NA>)"
    )
    assert alert.output == "2026-03-11T15:45:00.123456000Z: Warning " + alert.message
    d = alert.to_dict()
    assert list(d) == [
        "hostname",
        "output",
        "output_fields",
        "priority",
        "rule",
        "source",
        "tags",
        "time",
        "uuid",
    ]
    assert d["time"] == "2026-03-11T15:45:00.123456000Z"
    assert d["tags"] == ["a", "b"]
    assert d["source"] == "k8s_audit"
    assert d["hostname"] == "test-host"
    fields = d["output_fields"]
    assert fields["ka.user.groups"] == ["dev", "system:authenticated"]
    assert fields["ka.impuser.name"] is None
    assert fields["jevt.value[/sourceIPs/0]"] == "81.2.69.160"
    assert fields["ka.uri.param[command]"] is None
    assert fields["evt.time.iso8601"] == 1773243900123456000
    assert fields["falconet.cluster"] == "prod-eu"
    assert fields["falconet.src.ip"] == "81.2.69.160"
    assert list(fields) == sorted(fields)


def test_uuid_is_deterministic_per_rule_and_event(tmp_path: Path) -> None:
    e = engine(
        tmp_path, rule("A", "ka.verb=delete") + rule("B", "ka.verb=delete"), rule_matching="all"
    )
    first = [a.uuid for a in e.evaluate(event())]
    again = [a.uuid for a in e.evaluate(copy.deepcopy(event()))]
    other = [a.uuid for a in e.evaluate(event(auditID="another"))]
    assert first == again
    assert len(set(first)) == 2
    assert not set(first) & set(other)


def test_control_characters_cannot_forge_lines(tmp_path: Path) -> None:
    e = engine(tmp_path, rule("R", "ka.verb=delete"))
    ev = event(user={"username": "eve\nFAKE: Critical alert"})
    (alert,) = e.evaluate(ev)
    assert "\n" not in alert.output
    assert "eve\\nFAKE" in alert.output


def test_an_alert_read_back_from_a_queue_is_the_same_alert(tmp_path: Path) -> None:
    e = engine(tmp_path, rule("R", "ka.verb=delete"))
    (alert,) = e.evaluate(event(), EventContext(cluster="prod-eu"))
    again = Alert.from_dict(alert.to_dict())
    assert again == alert
    assert again.cluster == "prod-eu"


def test_values_as_falco_prints_them() -> None:
    assert render_value(None) == "<NA>"
    assert render_value(["a", "b"]) == "(a,b)"
    long = render_value(["x" * 600, "y" * 600])
    assert len(long.encode()) == 1023 and long.startswith("(x")  # Falco's 1024-byte buffer
