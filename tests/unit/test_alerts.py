"""falconet.alerts: Falco's JSON shape, output formatting, deterministic ids, reading back."""

from __future__ import annotations

import copy
from pathlib import Path

import orjson

from falconet import Alert, EventContext
from falconet.alerts import _cut_list, fit, render_value, text_line, wire_size
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


def test_control_characters_stay_in_the_alert_and_cannot_forge_lines(tmp_path: Path) -> None:
    e = engine(tmp_path, rule("R", "ka.verb=delete"))
    ev = event(user={"username": "eve\nFAKE: Critical\talert"})
    (alert,) = e.evaluate(ev)
    # As Falco: the alert holds the value as it is (its JSON escapes it) ...
    assert "eve\nFAKE: Critical\talert" in alert.output
    assert b"eve\\nFAKE: Critical\\talert" in alert.to_json()
    # ... and a text line of it is one line.
    line = text_line(alert.output)
    assert "\n" not in line
    assert "\t" not in line
    assert "eve\\nFAKE: Critical\\talert" in line
    assert text_line("plain") == "plain"


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


# --- fitting an alert to the sinks' size limit -----------------------------------------------

SNS_LIMIT = 262_144 - 2048


def _exec_alert(tmp_path: Path, command: str) -> Alert:
    out = "Exec (user=%ka.user.name pod=%ka.target.name command=%ka.uri.param[command])"
    e = engine(tmp_path, rule("Exec", "ka.target.subresource=exec", output=out))
    uri = f"/api/v1/namespaces/demo/pods/web/exec?container=web&stdout=true&command={command}"
    ev = event(
        verb="create",
        requestURI=uri,
        objectRef={"resource": "pods", "name": "web", "namespace": "demo", "subresource": "exec"},
    )
    (alert,) = e.evaluate(ev, EventContext(cluster="prod-eu"))
    return alert


def test_an_alert_within_the_limit_is_left_alone(tmp_path: Path) -> None:
    alert = _exec_alert(tmp_path, "id")
    assert fit(alert, SNS_LIMIT, audit_id="a-1") is alert


def test_a_huge_command_is_cut_with_a_marker_and_the_audit_id(tmp_path: Path) -> None:
    alert = _exec_alert(tmp_path, "x" * 140_000)
    assert wire_size(alert) > 280_000  # the 281 KB alert, refused by SNS

    fitted = fit(alert, SNS_LIMIT, audit_id="11111111-2222-3333-4444-555555555555")

    assert fitted is not None and wire_size(fitted) <= SNS_LIMIT
    assert SNS_LIMIT - wire_size(fitted) < 1024  # as much kept as fits
    assert (fitted.uuid, fitted.rule, fitted.priority, fitted.time) == (
        alert.uuid,
        alert.rule,
        alert.priority,
        alert.time,
    )
    fields = fitted.output_fields
    assert fields["ka.auditid"] == "11111111-2222-3333-4444-555555555555"
    assert list(fields) == sorted(fields)
    command = fields["ka.uri.param[command]"]
    kept, marker = command.split("…")
    assert set(kept) == {"x"} and len(kept) > 100_000
    assert marker == f"[truncated {140_000 - len(kept)} bytes]"
    # The output line cuts the same value in place: its structure and the end survive.
    assert fitted.output.endswith(f"command={command})")
    assert fitted.output.startswith(alert.output[: alert.output.index("Exec (")])
    assert fitted.output.endswith(fitted.message)
    assert fields["ka.user.name"] == alert.output_fields["ka.user.name"]
    # A consumer reads it back as the same alert it received.
    assert Alert.from_dict(orjson.loads(fitted.to_json())) == fitted


def test_multibyte_values_are_cut_between_characters(tmp_path: Path) -> None:
    alert = _exec_alert(tmp_path, "é" * 70_000 + "\ufffe" * 10_000)
    fitted = fit(alert, 100_000)
    assert fitted is not None and wire_size(fitted) <= 100_000
    fitted.to_json().decode()  # valid UTF-8
    assert "…[truncated " in fitted.output_fields["ka.uri.param[command]"]


def test_long_lists_keep_their_first_items_and_count_the_rest() -> None:
    assert _cut_list(["a" * 10, "b" * 10, "c" * 10], 25) == [
        "a" * 10,
        "b" * 10,
        "…[truncated 1 more items, 10 bytes]",
    ]
    assert _cut_list(["a" * 100], 10) == ["a" * 10 + "…[truncated 90 bytes]"]


def test_an_alert_that_cannot_fit_at_all_is_none(tmp_path: Path) -> None:
    assert fit(_exec_alert(tmp_path, "x" * 1000), 200) is None


def test_output_widths_pad_and_cut_and_zero_is_no_width(tmp_path: Path) -> None:
    out = "'[%8ka.verb][%3ka.target.resource][%0ka.target.name][%1024ka.verb]'"
    e = engine(tmp_path, rule("R", "ka.verb=delete", output=out))
    (alert,) = e.evaluate(event())
    # Falco's formatter: a width pads or cuts the value; %0 is no width (it printed '' here).
    assert alert.message == "[delete  ][nam][demo][" + "delete".ljust(1024) + "]"


def test_output_index_arguments_read_the_container_asked(tmp_path: Path) -> None:
    out = "'ports=%ka.req.pod.containers.host_port[1]'"
    e = engine(tmp_path, rule("R", "ka.verb=create", output=out))
    pod = {
        "spec": {
            "containers": [
                {"name": "a", "ports": [{"containerPort": 80}]},
                {"name": "b", "ports": [{"containerPort": 81}, {"hostPort": 8443}]},
            ]
        }
    }
    (alert,) = e.evaluate(event(verb="create", requestObject=pod))
    # as Falco 0.44 (k8saudit 0.18): the index picks the container, whose every port counts
    assert alert.message == "ports=(81,8443)"


def test_an_event_nested_past_orjsons_writer_still_gets_a_stable_id() -> None:
    from falconet.alerts import _uuid_base, _uuid_of

    def deep(inner: bytes) -> dict:
        return orjson.loads(b'{"kind":"Event","r":' + b"[" * 280 + inner + b"]" * 280 + b"}")

    base = _uuid_base("R")
    first = _uuid_of(base, deep(b"1"), None)
    assert first == _uuid_of(base, deep(b"1"), None)
    assert first != _uuid_of(base, deep(b"2"), None)
