"""Falco's generic event fields, `evt.*`, for the k8s_audit source (libsinsp's `gen_event` checks
as they apply to plugin events): the event number, the event time in every form Falco prints it,
the source and the plugin name. Not gated on `auditID`.

In an alert's `output_fields`, Falco gives the time texts (`evt.time`, `evt.datetime`, ...) as the
event time in nanoseconds, not as the text the output line shows: `TIME_TEXT_FIELDS` names them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from falconet.fields.registry import (
    BindEnv,
    Event,
    FieldDef,
    Getter,
    Value,
    custom_field,
    register,
)
from falconet.timestamps import format_iso8601_ns, format_local_time_ns, parse_rfc3339_ns


def _event_ns(ev: Event) -> int | None:
    return parse_rfc3339_ns(ev.get("stageTimestamp"))


def _time_field(render: Callable[[int], str | int]) -> Callable[[Event, Any], Value]:
    def get(ev: Event, _a: str | None) -> Value:
        ns = _event_ns(ev)
        return None if ns is None else render(ns)

    return get


def _local_datetime(ns: int, *, with_ns: bool) -> str:
    import time

    secs, nanos = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(secs))
    return f"{text}.{nanos:09d}" if with_ns else text


_EVT_TIME_FIELDS: tuple[tuple[str, str, Callable[[int], str | int], str], ...] = (
    ("evt.time", "The event time, local HH:MM:SS.nnnnnnnnn", format_local_time_ns, "string"),
    (
        "evt.time.s",
        "The event time, local HH:MM:SS",
        lambda ns: format_local_time_ns(ns)[:8],
        "string",
    ),
    (
        "evt.time.iso8601",
        "The event time, UTC ISO 8601 with nanoseconds and offset (+0000)",
        lambda ns: format_iso8601_ns(ns).removesuffix("Z") + "+0000",  # libsinsp's form
        "string",
    ),
    (
        "evt.datetime",
        "The event date and time, local, with nanoseconds",
        lambda ns: _local_datetime(ns, with_ns=True),
        "string",
    ),
    (
        "evt.datetime.s",
        "The event date and time, local, to the second",
        lambda ns: _local_datetime(ns, with_ns=False),
        "string",
    ),
    ("evt.rawtime", "The event time in nanoseconds since the epoch", lambda ns: ns, "number"),
    (
        "evt.rawtime.s",
        "The integer seconds of evt.rawtime",
        lambda ns: ns // 1_000_000_000,
        "number",
    ),
    (
        "evt.rawtime.ns",
        "The fractional nanoseconds of evt.rawtime",
        lambda ns: ns % 1_000_000_000,
        "number",
    ),
)
for _name, _desc, _render, _type in _EVT_TIME_FIELDS:
    custom_field(_name, _desc, _time_field(_render), gated=False, type_=_type)
custom_field("evt.source", "The event source (k8s_audit)", lambda _e, _a: "k8s_audit", gated=False)
custom_field(
    "evt.pluginname",
    "The plugin that produced the event (k8saudit)",
    lambda _e, _a: "k8saudit",
    gated=False,
)
custom_field(
    "evt.is_async", "Whether the event is asynchronous (false)", lambda _e, _a: "false", gated=False
)

# Shown as text in an output line, given as the event time in nanoseconds in `output_fields`.
TIME_TEXT_FIELDS = frozenset(
    ("evt.time", "evt.time.s", "evt.time.iso8601", "evt.datetime", "evt.datetime.s")
)


def _event_number(_arg: str | None, env: BindEnv) -> Getter:
    counter = env.counter
    if counter is None:  # no engine counting (e.g. `falconet fields` coverage): absent
        return lambda _ev, _ctx: None
    return lambda _ev, _ctx: counter.value


register(
    FieldDef(
        "evt.num",
        "The event number: 1 for the first event the engine evaluated (per warm instance in "
        "a function)",
        lambda _arg: lambda _ev, _ctx: None,
        type="number",
        gated=False,
        env_binder=_event_number,
    )
)


def _hostname(_arg: str | None, env: BindEnv) -> Getter:
    hostname = env.hostname
    return lambda _ev, _ctx: hostname


register(
    FieldDef(
        "evt.hostname",
        "The host name alerts carry (FALCONET_HOSTNAME / FALCO_HOSTNAME, else the machine's)",
        lambda _arg: lambda _ev, _ctx: None,
        gated=False,
        env_binder=_hostname,
    )
)
custom_field(
    "evt.asynctype",
    "The type of an asynchronous event (absent: audit events are not asynchronous)",
    lambda _e, _a: None,
    gated=False,
)
