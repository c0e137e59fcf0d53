"""An alert's summary: a who / what / when / where line for people reading a terminal or chat.

    who=alice@example.com (groups: dev,system:authenticated) what=delete namespaces/demo -> 200
    when=2026-03-11T15:45:00.123456Z where=81.2.69.160 (Paris, FR) cluster=prod-eu

An alert on a controller's pod names the person behind it (`falconet.owner.*`):
`who=system:serviceaccount:kube-system:replicaset-controller for alice@example.com Deployment/web`.

Built from the alert's `output_fields` (the engine adds the who/what fields to every alert by
default, see `engine.DEFAULT_EXTRA_FIELDS`), so the notify function can print it from a queued
alert; with the audit event at hand (`falconet scan --summary`), the event fills any gap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from falconet.alerts import Alert


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _facts(alert: Alert, event: Mapping[str, Any] | None) -> dict[str, Any]:
    """The who/what/where facts, from output_fields first, then from the event."""
    fields = alert.output_fields
    ev = event or {}
    user = _mapping(ev.get("user"))
    ref = _mapping(ev.get("objectRef"))
    status = _mapping(ev.get("responseStatus"))
    ips = ev.get("sourceIPs")

    def pick(key: str, fallback: Any) -> Any:
        value = fields.get(key)
        return fallback if value is None else value

    return {
        "user": pick("ka.user.name", user.get("username")),
        "groups": pick("ka.user.groups", user.get("groups")),
        "impersonated": pick(
            "ka.impuser.name", _mapping(ev.get("impersonatedUser")).get("username")
        ),
        "verb": pick("ka.verb", ev.get("verb")),
        "namespace": pick("ka.target.namespace", ref.get("namespace")),
        "resource": pick("ka.target.resource", ref.get("resource")),
        "name": pick("ka.target.name", ref.get("name")),
        "subresource": pick("ka.target.subresource", ref.get("subresource")),
        "code": pick("ka.response.code", status.get("code")),
        "uri": pick("ka.uri", ev.get("requestURI")),
        "ip": pick("falconet.src.ip", ips[0] if isinstance(ips, list) and ips else None),
        "when": alert.time,
    }


def alert_summary(alert: Alert, event: Mapping[str, Any] | None = None) -> str:
    """Who did what, when and from where (see the module docstring)."""
    f = _facts(alert, event)
    who = str(f["user"] or "<NA>")
    if isinstance(f["groups"], list) and f["groups"]:
        who += f" (groups: {','.join(str(g) for g in f['groups'])})"
    if f["impersonated"]:
        who += f" as {f['impersonated']}"
    owner = alert.output_fields.get("falconet.owner.user")
    if owner and owner != f["user"]:
        kind = alert.output_fields.get("falconet.owner.kind")
        name = alert.output_fields.get("falconet.owner.name")
        behind = f" {kind}/{name}" if kind and name else ""
        who += f" for {owner}{behind}"  # the person behind a controller (falconet.owner.*)
    target = "/".join(str(p) for p in (f["namespace"], f["resource"], f["name"]) if p)
    if f["subresource"]:
        target += f"/{f['subresource']}"
    what = f"{f['verb'] or '?'} {target or f['uri'] or '?'}"
    if f["code"] is not None:
        what += f" -> {f['code']}"
    fields = alert.output_fields
    where = str(f["ip"] or "<NA>")
    place = [
        str(p) for p in (fields.get("falconet.src.city"), fields.get("falconet.src.country")) if p
    ]
    scope = fields.get("falconet.src.scope")
    if place:
        where += f" ({', '.join(place)})"
    elif scope and scope != "public":
        where += f" ({scope})"
    return f"who={who} what={what} when={f['when']} where={where} cluster={alert.cluster or '<NA>'}"
