"""A correlation alert: Falco's JSON shape, the group's values, `falconet.correlation.*`.

`rule` is the correlation's title, `priority` its level's, `output` names the group values, the
count and the window, `time` is the last contributing event's, and `uuid` is derived from the
correlation, the group and the window, so a retried invocation repeats it (docs/correlations.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from falconet.alerts import SOURCE, Alert, render_value, stable_uuid
from falconet.correlate.model import Correlation
from falconet.correlate.windows import NS, Geometry, Window
from falconet.timestamps import format_iso8601_ns, format_local_time_ns


def correlation_alert(
    correlation: Correlation,
    geometry: Geometry,
    values: Sequence[str | None],
    window: Window,
    *,
    group: str,
    hostname: str,
    iso_prefix: bool,
) -> Alert:
    """The alert of `correlation` firing for the group `values` (state key `group`) on
    `window`: Falco's shape, the group values and falconet.correlation.* in output_fields, a
    uuid from the correlation, the group and the window (a retry repeats it)."""
    first_seen = correlation.type == "first_seen"
    fields: dict[str, Any] = dict(zip(correlation.group_by, values, strict=True))
    start_ns = window.first_ns if first_seen else geometry.start_ns(window.start)
    end_ns = start_ns + (
        correlation.timespan * NS if first_seen else geometry.k * geometry.granularity * NS
    )
    fields.update(
        {
            "evt.time": window.last_ns,
            "falconet.correlation.name": correlation.label,
            "falconet.correlation.type": correlation.type,
            "falconet.correlation.count": window.count,
            "falconet.correlation.first_time": format_iso8601_ns(window.first_ns),
            "falconet.correlation.last_time": format_iso8601_ns(window.last_ns),
            "falconet.correlation.window_start": format_iso8601_ns(start_ns),
            "falconet.correlation.window_end": format_iso8601_ns(end_ns),
            "falconet.correlation.rules": [
                r for i, r in enumerate(correlation.rules) if window.rules >> i & 1
            ],
            "falconet.correlation.audit_ids": list(window.audit_ids),
        }
    )
    if correlation.type == "value_count":
        fields["falconet.correlation.field"] = correlation.value_field
        fields["falconet.correlation.values"] = list(window.values)
    shown = " ".join(
        f"{g}={render_value(v)}" for g, v in zip(correlation.group_by, values, strict=True)
    )
    if first_seen:
        detail = f"first seen, not in the previous {_span(correlation.timespan)}"
    else:
        detail = (
            f"count={window.count} ({correlation.condition}) within "
            f"{_span(correlation.timespan)}, from {format_iso8601_ns(window.first_ns)} to "
            f"{format_iso8601_ns(window.last_ns)}"
        )
    message = f"{correlation.title} ({shown + ' ' if shown else ''}{detail})"
    iso = format_iso8601_ns(window.last_ns)
    prefix = iso if iso_prefix else format_local_time_ns(window.last_ns)
    return Alert(
        correlation.title,
        correlation.priority,
        f"{prefix}: {correlation.priority} {message}",
        iso,
        window.last_ns,
        correlation.tags,
        dict(sorted(fields.items())),
        stable_uuid("correlation", correlation.key, group, str(window.start)),
        hostname,
        SOURCE,
        message,
    )


def _span(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
