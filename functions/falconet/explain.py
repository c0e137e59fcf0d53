"""A short who / what / when / where line for an alert, for people reading a terminal or chat.

who=alice@example.com (groups: dev,system:authenticated) what=delete namespaces/demo -> 200
when=2026-03-11T15:45:00.123456Z where=81.2.69.160 (Paris, FR) cluster=prod-eu
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from falconet.alerts import Alert


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def explain_line(alert: Alert, event: Mapping[str, Any]) -> str:
    """Who did what, when and from where, from the alert's fields and its audit event."""
    user = _mapping(event.get("user"))
    who = _text(user.get("username")) or "<unknown>"
    groups = user.get("groups")
    if isinstance(groups, list) and groups:
        who += f" (groups: {','.join(str(g) for g in groups)})"
    imp = event.get("impersonatedUser")
    if isinstance(imp, dict) and imp.get("username"):
        who += f" as {imp['username']}"
    ref = _mapping(event.get("objectRef"))
    target = "/".join(
        str(p) for p in (ref.get("namespace"), ref.get("resource"), ref.get("name")) if p
    )
    if ref.get("subresource"):
        target += f"/{ref['subresource']}"
    status = event.get("responseStatus")
    code = status.get("code") if isinstance(status, dict) else None
    what = f"{event.get('verb', '?')} {target or event.get('requestURI', '?')}"
    if code is not None:
        what += f" -> {code}"
    fields = alert.output_fields
    ip = _text(fields.get("falconet.src.ip"))
    if ip is None:
        ips = event.get("sourceIPs")
        ip = str(ips[0]) if isinstance(ips, list) and ips else "<unknown>"
    place = [p for p in (fields.get("falconet.src.city"), fields.get("falconet.src.country")) if p]
    scope = fields.get("falconet.src.scope")
    where = ip
    if place:
        where += f" ({', '.join(str(p) for p in place)})"
    elif scope and scope != "public":
        where += f" ({scope})"
    cluster = alert.cluster or "<unknown>"
    when = _text(event.get("stageTimestamp")) or alert.time
    return f"who={who} what={what} when={when} where={where} cluster={cluster}"
