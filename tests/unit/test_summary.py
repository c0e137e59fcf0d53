"""The who/what/when/where line people read in a terminal or a chat message."""

from __future__ import annotations

from typing import Any

from falconet.alerts import Alert
from falconet.summary import alert_summary


def alert(**fields: Any) -> Alert:
    return Alert(
        rule="Privileged Container Created",
        priority="Error",
        output="",
        time="2026-03-11T15:45:00.123456000Z",
        time_ns=0,
        tags=(),
        output_fields=fields,
        uuid="u",
    )


BASE = {
    "ka.user.name": "system:serviceaccount:kube-system:replicaset-controller",
    "ka.verb": "create",
    "ka.target.namespace": "shop",
    "ka.target.resource": "pods",
    "ka.target.name": "web-7d4b9c8f5-x2x9k",
    "ka.response.code": 201,
    "falconet.src.ip": "10.0.3.7",
    "falconet.src.scope": "private",
    "falconet.cluster": "prod-eu",
}


def test_the_line_says_who_what_when_where() -> None:
    line = alert_summary(alert(**BASE))
    assert line == (
        "who=system:serviceaccount:kube-system:replicaset-controller "
        "what=create shop/pods/web-7d4b9c8f5-x2x9k -> 201 when=2026-03-11T15:45:00.123456000Z "
        "where=10.0.3.7 (private) cluster=prod-eu"
    )


def test_a_controllers_pod_names_the_person_behind_it() -> None:
    owned = {
        **BASE,
        "falconet.owner.user": "alice@example.com",
        "falconet.owner.kind": "Deployment",
        "falconet.owner.name": "web",
    }
    assert "replicaset-controller for alice@example.com Deployment/web what=" in alert_summary(
        alert(**owned)
    )
    same = {**BASE, "ka.user.name": "alice@example.com", "falconet.owner.user": "alice@example.com"}
    assert " for " not in alert_summary(alert(**same))  # the person herself: nothing to add


def test_the_event_fills_what_the_alert_lacks() -> None:
    event = {"user": {"username": "bob"}, "verb": "get", "sourceIPs": ["81.2.69.160"]}
    line = alert_summary(alert(), event)
    assert line.startswith("who=bob what=get ? when=")
    assert "where=81.2.69.160 cluster=<NA>" in line  # as Falco prints a missing value
