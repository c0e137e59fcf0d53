"""falconet's own fields, `falconet.*` (Falco has none of these): where an event came from.

The client address and its scope and location (`falconet.src.*`, the location from a GeoIP
database bound once per engine through `BindEnv`), and the cluster, account, region and origin of
the batch (`falconet.cluster`, ... from the `EventContext` the decoder built), and the workload
behind the event's object (`falconet.owner.*`, from the `EventContext` the pipeline's attribution
derived for the event: absent when attribution is off or the owner is not known)."""

from __future__ import annotations

import functools
from collections.abc import Callable

from falconet.context import EventContext
from falconet.fields.k8saudit import ANNOTATIONS
from falconet.fields.registry import (
    MISSING,
    BindEnv,
    Event,
    FieldDef,
    Getter,
    InlineRead,
    Value,
    custom_field,
    register,
    stringify,
    walk,
)


def _src_ip(ev: Event, _a: str | None) -> str | None:
    ips = ev.get("sourceIPs")
    if type(ips) is not list or not ips:
        return None
    return stringify(ips[0])


custom_field(
    "falconet.src.ip",
    "The client address: the first entry of the event's sourceIPs",
    _src_ip,
    gated=False,
    extension=True,
)
for _attr, _desc in (
    ("cluster", "The cluster the event came from (envelope, annotation or caller)"),
    ("account", "The cloud account (AWS account, GCP project, Azure subscription)"),
    ("region", "The cloud region, when the envelope or trigger says it"),
    ("origin", "Where the batch came from: bucket and key, webhook, CloudEvent source"),
):

    def _ctx_attr(ev: Event, ctx: EventContext, _a: str | None, attr: str = _attr) -> Value:
        value = getattr(ctx, attr)
        if value is None and attr == "cluster":
            cluster = walk(ev, (ANNOTATIONS, "cluster_name"))
            return None if cluster is MISSING else stringify(cluster)
        return value  # type: ignore[no-any-return]

    custom_field(
        f"falconet.{_attr}",
        _desc,
        lambda _e, _a: None,
        gated=False,
        extension=True,
        ctx_fn=_ctx_attr,
        inline=InlineRead(
            ((ANNOTATIONS, None), ("cluster_name", None)) if _attr == "cluster" else (),
            context=_attr,
        ),
    )


for _attr, _desc in (
    (
        "user",
        "Who last created or changed the top workload behind the event's object (a person, "
        "else the controller or GitOps tool that wrote it): docs/attribution.md",
    ),
    ("kind", "The kind of that workload: Deployment, CronJob, DaemonSet, StatefulSet, ..."),
    ("name", "The name of that workload (in the event's namespace)"),
):

    def _owner_attr(_ev: Event, ctx: EventContext, _a: str | None, attr: str = _attr) -> Value:
        return getattr(ctx, "owner_" + attr)  # type: ignore[no-any-return]

    custom_field(
        f"falconet.owner.{_attr}",
        _desc,
        lambda _e, _a: None,
        gated=False,
        extension=True,
        ctx_fn=_owner_attr,
        inline=InlineRead((), context="owner_" + _attr),
    )


def _geo_binder(attr: str) -> Callable[[str | None, BindEnv], Getter]:
    def binder(_arg: str | None, env: BindEnv) -> Getter:
        geo = env.geoip
        if attr == "scope":
            from falconet.ipscope import ip_scope, quad_scope  # not geoip: see ipscope

            # A dotted quad costs less than a cache look-up; other forms are parsed once each.
            cached = functools.lru_cache(maxsize=4096)(ip_scope)

            def scope(ev: Event, _ctx: EventContext) -> str | None:
                ip = _src_ip(ev, None)
                return None if ip is None else (quad_scope(ip) or cached(ip))

            return scope
        if geo is None or not geo.enabled:
            return lambda _ev, _ctx: None

        def get(ev: Event, _ctx: EventContext) -> str | None:
            source = geo.resolve(_src_ip(ev, None))
            location = source.location if source is not None else None
            if location is None:
                return None
            value = getattr(location, attr)
            return None if value is None else str(value)

        return get

    return binder


for _attr, _desc in (
    ("scope", "The scope of falconet.src.ip: public, private, loopback, link-local, shared, ..."),
    ("country", "The ISO country code of falconet.src.ip (needs a GeoIP database)"),
    ("city", "The city of falconet.src.ip (needs a GeoIP City database)"),
    ("asn", "The autonomous system number of falconet.src.ip (needs a GeoIP ASN database)"),
):
    register(
        FieldDef(
            f"falconet.src.{_attr}",
            _desc,
            lambda _a: lambda _e, _c: None,
            gated=False,
            extension=True,
            env_binder=_geo_binder(_attr),
        )
    )
