"""The `ka.*` fields of the request and its objects: Falco's k8saudit plugin, field by field.

Who (`ka.user.*`, `ka.impuser.name`), what (`ka.verb`, `ka.uri*`, `ka.target.*`), the outcome
(`ka.response.*`, `ka.auth.*`), bindings, roles, services and configmaps in the request object.
Pod specs (containers, volumes) are in `falconet.fields.pods`.

Upstream extraction quirks are reproduced on purpose where they change which alerts fire; each is
marked `QUIRK` and listed in the README.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from falconet.fields.registry import (
    ARG_INDEX,
    ARG_KEY,
    MISSING,
    Event,
    InlineRead,
    Value,
    custom_field,
    index_arg,
    nonempty,
    pick,
    scalar_field,
    string_list,
    stringify,
    walk,
)

ANNOTATIONS = "annotations"
scalar_field("ka.auditid", ("auditID",), "The unique id of the audit event")
scalar_field(
    "ka.stage", ("stage",), "Stage of the request (e.g. RequestReceived, ResponseComplete)"
)
scalar_field(
    "ka.auth.decision",
    (ANNOTATIONS, "authorization.k8s.io/decision"),
    "The authorization decision (annotation authorization.k8s.io/decision)",
)
scalar_field(
    "ka.auth.reason",
    (ANNOTATIONS, "authorization.k8s.io/reason"),
    "The authorization reason (annotation authorization.k8s.io/reason)",
)
scalar_field(
    "ka.auth.openshift.decision",
    (ANNOTATIONS, "authentication.openshift.io/decision"),
    "The OpenShift authentication decision",
)
scalar_field(
    "ka.auth.openshift.username",
    (ANNOTATIONS, "authentication.openshift.io/username"),
    "The OpenShift authenticated user name",
)
scalar_field(
    "ka.validations.admission.policy.failure",
    (ANNOTATIONS, "validation.policy.admission.k8s.io/validation_failure"),
    "The failures of a validating admission policy, as JSON text",
)
scalar_field(
    "ka.security.pod.violations",
    (ANNOTATIONS, "pod-security.kubernetes.io/audit-violations"),
    "The Pod Security admission violations of the request",
)
scalar_field(
    "ka.cluster.name",
    (ANNOTATIONS, "cluster_name"),
    "The cluster name (annotation cluster_name; falconet fills it from the envelope or the caller)",
)
scalar_field("ka.user.name", ("user", "username"), "The user name performing the request")
scalar_field("ka.impuser.name", ("impersonatedUser", "username"), "The impersonated user name")
scalar_field("ka.verb", ("verb",), "The action being performed")
scalar_field("ka.uri", ("requestURI",), "The request URI as sent from client to server")
scalar_field("ka.target.name", ("objectRef", "name"), "The target object name")
scalar_field("ka.target.namespace", ("objectRef", "namespace"), "The target object namespace")
scalar_field("ka.target.resource", ("objectRef", "resource"), "The target object resource")
scalar_field("ka.target.subresource", ("objectRef", "subresource"), "The target object subresource")
scalar_field("ka.resp.name", ("responseObject", "metadata", "name"), "The response object name")
scalar_field("ka.response.code", ("responseStatus", "code"), "The response code")
scalar_field(
    "ka.response.reason",
    ("responseStatus", "reason"),
    "The response reason (usually present only for failures)",
)
scalar_field("ka.useragent", ("userAgent",), "The user agent of the client who made the request")
scalar_field(
    "ka.req.binding.role",
    ("requestObject", "roleRef", "name"),
    "When the request object is a (cluster) role binding, the role being bound",
)
scalar_field(
    "ka.req.configmap.name",
    ("objectRef", "name"),
    "If the request object is a configmap, the configmap name",
)
scalar_field("ka.req.service.type", ("requestObject", "spec", "type"), "The service type")
scalar_field("ka.req.pod.host_ipc", ("requestObject", "spec", "hostIPC"), "The pod's hostIPC flag")
scalar_field(
    "ka.req.pod.host_network",
    ("requestObject", "spec", "hostNetwork"),
    "The pod's hostNetwork flag",
)
scalar_field(
    "ka.req.container.host_network",
    ("requestObject", "spec", "hostNetwork"),
    "Deprecated alias of ka.req.pod.host_network",
)
scalar_field("ka.req.pod.host_pid", ("requestObject", "spec", "hostPID"), "The pod's hostPID flag")
scalar_field(
    "ka.req.pod.run_as_user",
    ("requestObject", "spec", "securityContext", "runAsUser"),
    "The runAsUser of the pod security context",
)
scalar_field(
    "ka.req.pod.run_as_group",
    ("requestObject", "spec", "securityContext", "runAsGroup"),
    "The runAsGroup of the pod security context",
)
scalar_field(
    "ka.req.pod.fs_group",
    ("requestObject", "spec", "securityContext", "fsGroup"),
    "The fsGroup of the pod security context",
)


custom_field(
    "ka.user.groups",
    "The groups to which the user belongs",
    lambda ev, _a: string_list(walk(ev, ("user", "groups"))),
    is_list=True,
    inline=InlineRead((("user", None), ("groups", None)), as_list=True),
)
custom_field(
    "ka.req.pod.supplemental_groups",
    "The supplementalGroups of the pod security context",
    lambda ev, _a: string_list(
        walk(ev, ("requestObject", "spec", "securityContext", "supplementalGroups"))
    ),
    is_list=True,
)


# -- ka.uri.param: Go's url.ParseQuery, first value of the key --------------------------------

_HEXDIGITS = frozenset("0123456789abcdefABCDEF")


def _go_query_unescape(text: str) -> str | None:
    """Go's `url.QueryUnescape`: '+' is a space, %XX a byte; a bad escape is an error (None)."""
    if "%" not in text and "+" not in text:
        return text
    out = bytearray()
    raw = text.encode()
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == 0x25:  # %
            pair = raw[i + 1 : i + 3]
            if len(pair) != 2 or not set(pair.decode("latin-1")) <= _HEXDIGITS:
                return None
            out.append(int(pair, 16))
            i += 3
        elif c == 0x2B:  # +
            out.append(0x20)
            i += 1
        else:
            out.append(c)
            i += 1
    return out.decode("utf-8", errors="replace")


def _uri_param(ev: Event, key: str | None) -> str | None:
    uri = walk(ev, ("requestURI",))
    if not isinstance(uri, str):  # a `Sourced` string too (decode.source)
        return None
    query = uri.partition("#")[0].partition("?")[2]
    found: str | None = None
    for part in query.split("&"):
        if not part:
            continue
        if ";" in part:  # QUIRK: Go rejects ';' separators; any query error makes the field absent
            return None
        k, _, v = part.partition("=")
        k2 = _go_query_unescape(k)
        v2 = _go_query_unescape(v)
        if k2 is None or v2 is None:
            return None
        if found is None and k2 == key:
            found = v2  # QUIRK: a repeated key yields only its first value
    return found


custom_field(
    "ka.uri.param",
    "The first value of a query parameter of the request URI (ka.uri.param[command])",
    _uri_param,
    arg=ARG_KEY,
)


def _target_pod_name(ev: Event, _a: str | None) -> str | None:
    ref = ev.get("objectRef")
    if type(ref) is not dict or ref.get("resource") != "pods" or ref.get("subresource"):
        return None
    v = walk(ev, ("responseObject", "metadata", "name"))
    return None if v is MISSING else stringify(v)


custom_field(
    "ka.target.pod.name",
    "The name of the pod the request targets (pods without subresource, from the response)",
    _target_pod_name,
)


# -- ka.sourceips: QUIRK, reads requestObject.rules[*].sourceIPs ----------------------------


def _sourceips(ev: Event, arg: str | None) -> list[str] | None:
    # QUIRK: upstream reads the wrong path, so on real events this is always absent.
    rules = walk(ev, ("requestObject", "rules"))
    if type(rules) is not list:
        return None
    picked = pick(rules, index_arg(arg))
    if picked is None:
        return None
    out = []
    for rule in picked:
        v = rule.get("sourceIPs", MISSING) if type(rule) is dict else MISSING
        if v is not MISSING:
            out.append(stringify(v))
    return nonempty(out)


custom_field(
    "ka.sourceips",
    "Upstream's source IPs field (reads requestObject.rules[].sourceIPs: see falconet.src.ip)",
    _sourceips,
    is_list=True,
    arg=ARG_INDEX,
)

# -- role bindings ----------------------------------------------------------------------------


def _subjects(ev: Event) -> list[Any] | None:
    subjects = walk(ev, ("requestObject", "subjects"))
    return subjects if type(subjects) is list else None


def _binding_subjects(ev: Event, _a: str | None) -> list[str] | None:
    subjects = _subjects(ev)
    return None if subjects is None else nonempty([stringify(s) for s in subjects])


def _subject_names(kind: str, *, with_namespace: bool = False) -> Callable[[Event, Any], Value]:
    def get(ev: Event, _a: str | None) -> list[str] | None:
        subjects = _subjects(ev)
        if subjects is None:
            return None
        out = []
        for s in subjects:
            if type(s) is not dict or s.get("kind") != kind or "name" not in s:
                continue
            if with_namespace:
                if "namespace" not in s:
                    continue
                out.append(f"{stringify(s['namespace'])}:{stringify(s['name'])}")
            else:
                out.append(stringify(s["name"]))
        return nonempty(out)

    return get


custom_field(
    "ka.req.binding.subjects",
    "When the request object is a (cluster) role binding, its subjects as JSON text",
    _binding_subjects,
    is_list=True,
)
custom_field(
    "ka.req.binding.subjects.user_names",
    "The names of the User subjects of a (cluster) role binding",
    _subject_names("User"),
    is_list=True,
)
custom_field(
    "ka.req.binding.subjects.serviceaccount_names",
    "The names of the ServiceAccount subjects of a (cluster) role binding",
    _subject_names("ServiceAccount"),
    is_list=True,
)
custom_field(
    "ka.req.binding.subjects.serviceaccount_ns_names",
    "The namespace:name of the ServiceAccount subjects of a (cluster) role binding",
    _subject_names("ServiceAccount", with_namespace=True),
    is_list=True,
)
custom_field(
    "ka.req.binding.subjects.group_names",
    "The names of the Group subjects of a (cluster) role binding",
    _subject_names("Group"),
    is_list=True,
)
custom_field(
    "ka.req.binding.subject.has_name",
    'Deprecated; upstream always returns "true"',
    lambda _ev, _a: "true",  # QUIRK: documented as N/A upstream, the code returns "true"
    arg=ARG_KEY,
)


def _configmap_obj(ev: Event, _a: str | None) -> str | None:
    data = walk(ev, ("requestObject", "data"))
    return None if data is MISSING else stringify(data)


custom_field(
    "ka.req.configmap.obj",
    "If the request object is a configmap, its data as JSON text",
    _configmap_obj,
)

# -- roles and services --------------------------------------------------------------------------


def _role_rules(ev: Event, _a: str | None) -> list[str] | None:
    rules = walk(ev, ("requestObject", "rules"))
    if type(rules) is not list:
        return None
    return nonempty([stringify(r) for r in rules])


def _role_rules_attr(attr: str) -> Callable[[Event, Any], Value]:
    def get(ev: Event, arg: str | None) -> list[str] | None:
        rules = walk(ev, ("requestObject", "rules"))
        if type(rules) is not list:
            return None
        picked = pick(rules, index_arg(arg))
        if picked is None:
            return None
        out: list[str] = []
        for r in picked:
            values = r.get(attr) if type(r) is dict else None
            if type(values) is list:
                out.extend(stringify(v) for v in values)
        return nonempty(out)

    return get


custom_field(
    "ka.req.role.rules", "The rules of a (cluster) role, as JSON text", _role_rules, is_list=True
)
for _attr in ("apiGroups", "nonResourceURLs", "verbs", "resources"):
    custom_field(
        f"ka.req.role.rules.{_attr}",
        f"The {_attr} of the rules of a (cluster) role",
        _role_rules_attr(_attr),
        is_list=True,
        arg=ARG_INDEX,
    )


def _service_ports(ev: Event, _a: str | None) -> list[str] | None:
    ports = walk(ev, ("requestObject", "spec", "ports"))
    # QUIRK: the array ends the path, so the whole array is one JSON-text element.
    return None if ports is MISSING else [stringify(ports)]


custom_field(
    "ka.req.service.ports",
    "The service's ports (the whole array as one JSON value)",
    _service_ports,
    is_list=True,
    arg=ARG_INDEX,
)
