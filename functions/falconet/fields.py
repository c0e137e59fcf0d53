"""The field registry: every field a condition or output may name, in one place.

Each `FieldDef` has a name, a type (`string`, or `number` for the numeric `evt.*` fields),
whether it is a list, its argument form, a description, and an extractor. The compiler and
`falconet fields` both read this registry; nothing else knows how a field is extracted.

Values follow Falco's string view of the k8saudit and json plugins (falco-semantics.md §A):
- a field is *absent* (`None`) when its path is missing, when the plugin would return an error, and
  when a list field would be empty; every comparison on an absent field is false;
- JSON strings are their text; every other JSON value is its compact JSON text (`null` -> "null");
- list fields yield a non-empty `list[str]`.
- every `ka.*` field is absent when the event has no top-level `auditID` (the plugin's gate).

Upstream extraction quirks are reproduced on purpose where they change which alerts fire; each is
marked `QUIRK` below and listed in the README.

Extractors are bound once per field use (`FieldDef.bind(arg)`) so argument parsing happens at load
time; the bound getter takes `(event, context)` and never raises for any event content.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, NamedTuple

import orjson

from falconet.context import EventContext
from falconet.timestamps import format_iso8601_ns, format_local_time_ns, parse_rfc3339_ns

Value = str | list[str] | int | None
Event = Mapping[str, Any]
Getter = Callable[[Event, EventContext], Any]

# Argument forms
ARG_NONE: Final = "none"
ARG_INDEX: Final = "index"  # optional [n], digits without a leading zero
ARG_KEY: Final = "key"  # required [text]

_MISSING: Final = object()
_INDEX_RE = re.compile(r"0|[1-9][0-9]*\Z")


class ArgumentError(ValueError):
    """A field argument is missing, unexpected or malformed."""


def stringify(value: Any) -> str:
    """Falco's string view of a JSON value (strings as text, anything else as compact JSON)."""
    if type(value) is str:
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if type(value) is int:
        return str(value)
    return orjson.dumps(value).decode()


def _walk(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if type(obj) is not dict:
            return _MISSING
        obj = obj.get(key, _MISSING)
        if obj is _MISSING:
            return _MISSING
    return obj


# --------------------------------------------------------------------------------------------
# Field definitions


# BindEnv and FieldDef are written out rather than frozen dataclasses: the two dataclasses cost
# ~1.8 ms of `exec` at every import (a cold start). Same constructors, immutability, value
# equality, hashing and repr.
_set = object.__setattr__  # how the constructors write their slots past `__setattr__`


def stringify_or_none(value: Any) -> str | None:
    """`stringify`, with the registry's missing marker as None (absent)."""
    return None if value is _MISSING else stringify(value)


Step = tuple[str, int | None]  # a key; with an int, also an array index (a JSON pointer's digits)


class InlineRead(NamedTuple):
    """How generated code may read a field in place, giving exactly what its getter gives.

    `steps` walk the event from the top (each through an object key, or for a pointer's decimal
    part an array index); the value found is a string, the JSON text of a non-string, or None
    when absent. `context`: an `EventContext` attribute tried first (the steps are the fallback,
    possibly none). `as_list`: a JSON array of scalars read as a non-empty list of strings.
    """

    steps: tuple[Step, ...]
    context: str | None = None
    as_list: bool = False

    @property
    def plain(self) -> tuple[str, ...] | None:
        """The path, when this is a plain scalar read through object keys only."""
        if self.context or self.as_list or any(i is not None for _, i in self.steps):
            return None
        return tuple(k for k, _ in self.steps) or None


def value_expr(read: str) -> str:
    """Python expression text for a field's value from `read`, the expression reading the raw JSON
    value (the missing marker when absent). For generated code whose namespace binds `M` (the
    marker), `S` (`stringify_or_none`), `type`, `str` and `int`: a string as it is, an int
    `str()`-ed in C (response codes), anything else through `stringify`."""
    return (
        f"(_v if type(_v := {read}) is str else "
        "(str(_v) if type(_v) is int else (None if _v is M else S(_v))))"
    )


class _Frozen:
    """Value semantics over `_FIELDS`, and no assignment after construction."""

    __slots__ = ()
    _FIELDS: tuple[str, ...] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._FIELDS)

    def __eq__(self, other: Any) -> bool:
        if other.__class__ is self.__class__:
            return self._values() == other._values()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._FIELDS)
        return f"{type(self).__qualname__}({values})"

    def __reduce__(self) -> tuple[Any, ...]:  # copy and pickle, past `__setattr__`
        return (type(self), self._values())

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field '{name}': {type(self).__name__} is frozen")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field '{name}': {type(self).__name__} is frozen")


class BindEnv(_Frozen):
    """What some extension fields need besides the event: set once per engine.

    `geoip` is a `falconet.geoip.GeoIP` (typed loosely so this module stays import-light).
    """

    __slots__ = ("geoip",)
    _FIELDS = __slots__

    geoip: Any

    def __init__(self, geoip: Any = None) -> None:
        _set(self, "geoip", geoip)


EMPTY_ENV: Final = BindEnv()


class FieldDef(_Frozen):
    __slots__ = (
        "name",
        "desc",
        "binder",
        "is_list",
        "arg",
        "type",
        "path",
        "gated",
        "extension",
        "env_binder",
        "inline",
    )
    _FIELDS = __slots__

    name: str
    desc: str
    binder: Callable[[str | None], Getter]
    is_list: bool
    arg: str
    type: str
    path: tuple[str, ...] | None  # simple scalar path
    gated: bool  # absent unless the event has `auditID` (all ka.* fields)
    extension: bool  # a falconet field, not a Falco one
    env_binder: Callable[[str | None, BindEnv], Getter] | None
    inline: InlineRead | None  # an in-place read for extension and list fields (`inline_read`)

    def __init__(
        self,
        name: str,
        desc: str,
        binder: Callable[[str | None], Getter],
        is_list: bool = False,
        arg: str = ARG_NONE,
        type: str = "string",  # noqa: A002 - the field's public name
        path: tuple[str, ...] | None = None,
        gated: bool = True,
        extension: bool = False,
        env_binder: Callable[[str | None, BindEnv], Getter] | None = None,
        inline: InlineRead | None = None,
    ) -> None:
        _set(self, "name", name)
        _set(self, "desc", desc)
        _set(self, "binder", binder)
        _set(self, "is_list", is_list)
        _set(self, "arg", arg)
        _set(self, "type", type)
        _set(self, "path", path)
        _set(self, "gated", gated)
        _set(self, "extension", extension)
        _set(self, "env_binder", env_binder)
        _set(self, "inline", inline)

    def raw_getter(self, arg: str | None, env: BindEnv = EMPTY_ENV) -> Getter:
        """The getter without the auditID gate (for callers that checked the gate already)."""
        if self.env_binder is not None:
            return self.env_binder(arg, env)
        return self.binder(arg)

    def inline_read(self, arg: str | None) -> InlineRead | None:
        """How generated code may read this field (with `arg`) in place, or None when only the
        getter knows (the compiler and the alert code both ask here)."""
        if self.inline is not None:
            return self.inline
        if self.path is not None:
            return InlineRead(tuple((key, None) for key in self.path))
        if self.name in ("jevt.value", "json.value"):
            parts = _pointer_parts(arg)
            if parts:  # the empty pointer is the whole event: the getter's job
                return InlineRead(
                    tuple((p, int(p) if p.isdigit() and p.isascii() else None) for p in parts)
                )
        return None

    def bind(self, arg: str | None, env: BindEnv = EMPTY_ENV) -> Getter:
        """A getter for this field with `arg` parsed once. Raises ArgumentError."""
        if self.arg == ARG_NONE and arg is not None:
            raise ArgumentError(f"field '{self.name}' does not take an argument")
        if self.arg == ARG_KEY and arg is None:
            raise ArgumentError(f"field '{self.name}' requires an argument")
        if self.arg == ARG_INDEX and arg is not None and not _INDEX_RE.match(arg):
            raise ArgumentError(f"field '{self.name}' takes a numeric index argument, got '{arg}'")
        getter = self.raw_getter(arg, env)
        if not self.gated:
            return getter

        def gated(ev: Event, ctx: EventContext) -> Any:
            return getter(ev, ctx) if "auditID" in ev else None

        return gated


REGISTRY: dict[str, FieldDef] = {}


def _register(field: FieldDef) -> None:
    REGISTRY[field.name] = field


def path_getter(path: tuple[str, ...]) -> Getter:
    """A getter for a scalar at a fixed path, specialised by path length (the hot fields)."""
    if len(path) == 1:
        (k0,) = path

        def get1(ev: Event, _ctx: EventContext) -> str | None:
            v = ev.get(k0, _MISSING)
            return v if type(v) is str else (None if v is _MISSING else stringify(v))

        return get1
    if len(path) == 2:
        k0, k1 = path

        def get2(ev: Event, _ctx: EventContext) -> str | None:
            o = ev.get(k0)
            v = o.get(k1, _MISSING) if type(o) is dict else _MISSING
            return v if type(v) is str else (None if v is _MISSING else stringify(v))

        return get2

    def get(ev: Event, _ctx: EventContext) -> str | None:
        v = _walk(ev, path)
        return v if type(v) is str else (None if v is _MISSING else stringify(v))

    return get


def _scalar(name: str, path: tuple[str, ...], desc: str) -> None:
    _register(FieldDef(name, desc, lambda _arg: path_getter(path), path=path))


def _custom(
    name: str,
    desc: str,
    fn: Callable[[Event, str | None], Value],
    *,
    is_list: bool = False,
    arg: str = ARG_NONE,
    gated: bool = True,
    type_: str = "string",
    extension: bool = False,
    ctx_fn: Callable[[Event, EventContext, str | None], Value] | None = None,
    inline: InlineRead | None = None,
) -> None:
    def binder(a: str | None) -> Getter:
        if ctx_fn is not None:
            cfn = ctx_fn
            return lambda ev, ctx: cfn(ev, ctx, a)
        return lambda ev, _ctx: fn(ev, a)

    _register(
        FieldDef(
            name,
            desc,
            binder,
            is_list=is_list,
            arg=arg,
            type=type_,
            gated=gated,
            extension=extension,
            inline=inline,
        )
    )


def _nonempty(values: list[str]) -> list[str] | None:
    return values or None


# -- audit event basics ----------------------------------------------------------------------

_ANNOTATION = "annotations"
_scalar("ka.auditid", ("auditID",), "The unique id of the audit event")
_scalar("ka.stage", ("stage",), "Stage of the request (e.g. RequestReceived, ResponseComplete)")
_scalar(
    "ka.auth.decision",
    (_ANNOTATION, "authorization.k8s.io/decision"),
    "The authorization decision (annotation authorization.k8s.io/decision)",
)
_scalar(
    "ka.auth.reason",
    (_ANNOTATION, "authorization.k8s.io/reason"),
    "The authorization reason (annotation authorization.k8s.io/reason)",
)
_scalar(
    "ka.auth.openshift.decision",
    (_ANNOTATION, "authentication.openshift.io/decision"),
    "The OpenShift authentication decision",
)
_scalar(
    "ka.auth.openshift.username",
    (_ANNOTATION, "authentication.openshift.io/username"),
    "The OpenShift authenticated user name",
)
_scalar(
    "ka.validations.admission.policy.failure",
    (_ANNOTATION, "validation.policy.admission.k8s.io/validation_failure"),
    "The failures of a validating admission policy, as JSON text",
)
_scalar(
    "ka.security.pod.violations",
    (_ANNOTATION, "pod-security.kubernetes.io/audit-violations"),
    "The Pod Security admission violations of the request",
)
_scalar(
    "ka.cluster.name",
    (_ANNOTATION, "cluster_name"),
    "The cluster name (annotation cluster_name; falconet fills it from the envelope or the caller)",
)
_scalar("ka.user.name", ("user", "username"), "The user name performing the request")
_scalar("ka.impuser.name", ("impersonatedUser", "username"), "The impersonated user name")
_scalar("ka.verb", ("verb",), "The action being performed")
_scalar("ka.uri", ("requestURI",), "The request URI as sent from client to server")
_scalar("ka.target.name", ("objectRef", "name"), "The target object name")
_scalar("ka.target.namespace", ("objectRef", "namespace"), "The target object namespace")
_scalar("ka.target.resource", ("objectRef", "resource"), "The target object resource")
_scalar("ka.target.subresource", ("objectRef", "subresource"), "The target object subresource")
_scalar("ka.resp.name", ("responseObject", "metadata", "name"), "The response object name")
_scalar("ka.response.code", ("responseStatus", "code"), "The response code")
_scalar(
    "ka.response.reason",
    ("responseStatus", "reason"),
    "The response reason (usually present only for failures)",
)
_scalar("ka.useragent", ("userAgent",), "The user agent of the client who made the request")
_scalar(
    "ka.req.binding.role",
    ("requestObject", "roleRef", "name"),
    "When the request object is a (cluster) role binding, the role being bound",
)
_scalar(
    "ka.req.configmap.name",
    ("objectRef", "name"),
    "If the request object is a configmap, the configmap name",
)
_scalar("ka.req.service.type", ("requestObject", "spec", "type"), "The service type")
_scalar("ka.req.pod.host_ipc", ("requestObject", "spec", "hostIPC"), "The pod's hostIPC flag")
_scalar(
    "ka.req.pod.host_network",
    ("requestObject", "spec", "hostNetwork"),
    "The pod's hostNetwork flag",
)
_scalar(
    "ka.req.container.host_network",
    ("requestObject", "spec", "hostNetwork"),
    "Deprecated alias of ka.req.pod.host_network",
)
_scalar("ka.req.pod.host_pid", ("requestObject", "spec", "hostPID"), "The pod's hostPID flag")
_scalar(
    "ka.req.pod.run_as_user",
    ("requestObject", "spec", "securityContext", "runAsUser"),
    "The runAsUser of the pod security context",
)
_scalar(
    "ka.req.pod.run_as_group",
    ("requestObject", "spec", "securityContext", "runAsGroup"),
    "The runAsGroup of the pod security context",
)
_scalar(
    "ka.req.pod.fs_group",
    ("requestObject", "spec", "securityContext", "fsGroup"),
    "The fsGroup of the pod security context",
)


def _string_list(value: Any) -> list[str] | None:
    if type(value) is not list:
        return None
    return _nonempty([stringify(v) for v in value])


_custom(
    "ka.user.groups",
    "The groups to which the user belongs",
    lambda ev, _a: _string_list(_walk(ev, ("user", "groups"))),
    is_list=True,
    inline=InlineRead((("user", None), ("groups", None)), as_list=True),
)
_custom(
    "ka.req.pod.supplemental_groups",
    "The supplementalGroups of the pod security context",
    lambda ev, _a: _string_list(
        _walk(ev, ("requestObject", "spec", "securityContext", "supplementalGroups"))
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
    uri = _walk(ev, ("requestURI",))
    if type(uri) is not str:
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


_custom(
    "ka.uri.param",
    "The first value of a query parameter of the request URI (ka.uri.param[command])",
    _uri_param,
    arg=ARG_KEY,
)


def _target_pod_name(ev: Event, _a: str | None) -> str | None:
    ref = ev.get("objectRef")
    if type(ref) is not dict or ref.get("resource") != "pods" or ref.get("subresource"):
        return None
    v = _walk(ev, ("responseObject", "metadata", "name"))
    return None if v is _MISSING else stringify(v)


_custom(
    "ka.target.pod.name",
    "The name of the pod the request targets (pods without subresource, from the response)",
    _target_pod_name,
)


def _index(arg: str | None) -> int | None:
    return None if arg is None else int(arg)


# -- ka.sourceips: QUIRK, reads requestObject.rules[*].sourceIPs ----------------------------


def _sourceips(ev: Event, arg: str | None) -> list[str] | None:
    # QUIRK: upstream reads the wrong path, so on real events this is always absent.
    rules = _walk(ev, ("requestObject", "rules"))
    if type(rules) is not list:
        return None
    picked = _pick(rules, _index(arg))
    if picked is None:
        return None
    out = []
    for rule in picked:
        v = rule.get("sourceIPs", _MISSING) if type(rule) is dict else _MISSING
        if v is not _MISSING:
            out.append(stringify(v))
    return _nonempty(out)


def _pick(items: list[Any], index: int | None) -> list[Any] | None:
    if index is None:
        return items
    if index >= len(items):
        return None
    return [items[index]]


_custom(
    "ka.sourceips",
    "Upstream's source IPs field (reads requestObject.rules[].sourceIPs: see falconet.src.ip)",
    _sourceips,
    is_list=True,
    arg=ARG_INDEX,
)

# -- role bindings ----------------------------------------------------------------------------


def _subjects(ev: Event) -> list[Any] | None:
    subjects = _walk(ev, ("requestObject", "subjects"))
    return subjects if type(subjects) is list else None


def _binding_subjects(ev: Event, _a: str | None) -> list[str] | None:
    subjects = _subjects(ev)
    return None if subjects is None else _nonempty([stringify(s) for s in subjects])


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
        return _nonempty(out)

    return get


_custom(
    "ka.req.binding.subjects",
    "When the request object is a (cluster) role binding, its subjects as JSON text",
    _binding_subjects,
    is_list=True,
)
_custom(
    "ka.req.binding.subjects.user_names",
    "The names of the User subjects of a (cluster) role binding",
    _subject_names("User"),
    is_list=True,
)
_custom(
    "ka.req.binding.subjects.serviceaccount_names",
    "The names of the ServiceAccount subjects of a (cluster) role binding",
    _subject_names("ServiceAccount"),
    is_list=True,
)
_custom(
    "ka.req.binding.subjects.serviceaccount_ns_names",
    "The namespace:name of the ServiceAccount subjects of a (cluster) role binding",
    _subject_names("ServiceAccount", with_namespace=True),
    is_list=True,
)
_custom(
    "ka.req.binding.subjects.group_names",
    "The names of the Group subjects of a (cluster) role binding",
    _subject_names("Group"),
    is_list=True,
)
_custom(
    "ka.req.binding.subject.has_name",
    'Deprecated; upstream always returns "true"',
    lambda _ev, _a: "true",  # QUIRK: documented as N/A upstream, the code returns "true"
    arg=ARG_KEY,
)


def _configmap_obj(ev: Event, _a: str | None) -> str | None:
    data = _walk(ev, ("requestObject", "data"))
    return None if data is _MISSING else stringify(data)


_custom(
    "ka.req.configmap.obj",
    "If the request object is a configmap, its data as JSON text",
    _configmap_obj,
)

# -- containers ------------------------------------------------------------------------------


def _containers(ev: Event, key: str, arg: str | None) -> list[Any] | None:
    items = _walk(ev, ("requestObject", "spec", key))
    if type(items) is not list:
        return None
    return _pick(items, _index(arg))


def _repository(image: str) -> str:
    # QUIRK: the text before the first ':' then before the first '@', so a registry with a port
    # ("localhost:5000/app:1") yields "localhost".
    return image.split(":", 1)[0].split("@", 1)[0]


_ERROR = object()  # the plugin returns an error: the whole field is absent


def _per_container(
    key: str, value_of: Callable[[dict[str, Any]], Any], *, strict: bool = False
) -> Callable[[Event, Any], Value]:
    """A list field with one value per selected container: `value_of(container)` returns the
    value, `_MISSING` (skipped; with `strict`, the field is absent, as upstream) or `_ERROR`."""

    def get(ev: Event, arg: str | None) -> list[str] | None:
        items = _containers(ev, key, arg)
        if not items:
            return None
        out: list[str] = []
        for c in items:
            v = value_of(c) if type(c) is dict else _MISSING
            if v is _ERROR or (v is _MISSING and strict):
                return None  # QUIRK (strict): one container lacking the value voids the field
            if isinstance(v, str):
                out.append(v)
        return _nonempty(out)

    return get


def _container_strict(key: str, attr: str, *, repo: bool = False) -> Callable[[Event, Any], Value]:
    def value_of(c: dict[str, Any]) -> Any:
        if attr not in c:
            return _MISSING
        text = stringify(c[attr])
        return _repository(text) if repo else text

    return _per_container(key, value_of, strict=True)


def _container_joined(key: str, attr: str) -> Callable[[Event, Any], Value]:
    def value_of(c: dict[str, Any]) -> Any:
        v = c.get(attr, _MISSING)
        if v is _MISSING:
            return _MISSING
        if type(v) is not list or any(type(x) is not str for x in v):
            return _ERROR
        return " ".join(v)

    return _per_container(key, value_of)


def _container_secctx(key: str, attr: str) -> Callable[[Event, Any], Value]:
    def value_of(c: dict[str, Any]) -> Any:
        v = _walk(c, ("securityContext", attr))
        return v if v is _MISSING else stringify(v)

    return _per_container(key, value_of)


def _container_caps(key: str) -> Callable[[Event, Any], Value]:
    def value_of(c: dict[str, Any]) -> Any:
        v = _walk(c, ("securityContext", "capabilities", "add"))
        # QUIRK: a container's whole `add` array is one value
        return v if v is _MISSING else stringify(v)

    return _per_container(key, value_of)


def _container_eff(key: str, attr: str) -> Callable[[Event, Any], Value]:
    def get(ev: Event, arg: str | None) -> list[str] | None:
        items = _containers(ev, key, arg)
        if not items:
            return None
        # QUIRK: upstream reads containers[i].runAsUser and spec.runAsUser, neither of which
        # exists on real pods (both live under securityContext), so this is "0" per container.
        spec_value = _walk(ev, ("requestObject", "spec", attr))
        out = []
        for c in items:
            v = c.get(attr, _MISSING) if type(c) is dict else _MISSING
            if v is _MISSING:
                v = spec_value
            out.append("0" if v is _MISSING else stringify(v))
        return out

    return get


def _container_host_ports(key: str) -> Callable[[Event, Any], Value]:
    def get(ev: Event, arg: str | None) -> list[str] | None:
        items = _containers(ev, key, arg)
        if not items:
            return None
        index = _index(arg)
        out = []
        for c in items:
            ports = c.get("ports") if type(c) is dict else None
            if type(ports) is not list:
                continue
            # QUIRK: an index replaces every array met on the path, ports included.
            selected = _pick(ports, index)
            for p in selected or ():
                if type(p) is not dict:
                    continue
                v = p.get("hostPort", p.get("containerPort", _MISSING))
                if v is not _MISSING:
                    out.append(stringify(v))
        return _nonempty(out)

    return get


_CONTAINER_LISTS = (
    ("containers", "containers", "the pod's containers"),
    ("initContainers", "initContainers", "the pod's init containers"),
    ("ephemeralContainers", "ephemeralContainers", "the pod's ephemeral containers"),
)

for _prefix, _key, _what in _CONTAINER_LISTS:
    _base = f"ka.req.pod.{_prefix}"
    _custom(
        f"{_base}.name",
        f"The names of {_what}",
        _container_strict(_key, "name"),
        is_list=True,
        arg=ARG_INDEX,
    )
    _custom(
        f"{_base}.image",
        f"The images of {_what}",
        _container_strict(_key, "image"),
        is_list=True,
        arg=ARG_INDEX,
    )
    _custom(
        f"{_base}.image.repository",
        f"The repository part of the images of {_what} (text before the first ':')",
        _container_strict(_key, "image", repo=True),
        is_list=True,
        arg=ARG_INDEX,
    )
    _custom(
        f"{_base}.command",
        f"The commands of {_what}, arguments joined by spaces",
        _container_joined(_key, "command"),
        is_list=True,
        arg=ARG_INDEX,
    )
    _custom(
        f"{_base}.args",
        f"The args of {_what}, joined by spaces",
        _container_joined(_key, "args"),
        is_list=True,
        arg=ARG_INDEX,
    )
    if _prefix != "ephemeralContainers":
        _custom(
            f"{_base}.host_port",
            f"The hostPort (else containerPort) values of {_what}",
            _container_host_ports(_key),
            is_list=True,
            arg=ARG_INDEX,
        )
    for _field, _attr in (
        ("privileged", "privileged"),
        ("allow_privilege_escalation", "allowPrivilegeEscalation"),
        ("read_only_fs", "readOnlyRootFilesystem"),
        ("run_as_user", "runAsUser"),
        ("run_as_group", "runAsGroup"),
        ("proc_mount", "procMount"),
    ):
        _custom(
            f"{_base}.{_field}",
            f"The securityContext.{_attr} values of {_what}",
            _container_secctx(_key, _attr),
            is_list=True,
            arg=ARG_INDEX,
        )
    _custom(
        f"{_base}.eff_run_as_user",
        f"The effective runAsUser of {_what} (upstream: always 0 on real pods)",
        _container_eff(_key, "runAsUser"),
        is_list=True,
        arg=ARG_INDEX,
    )
    _custom(
        f"{_base}.eff_run_as_group",
        f"The effective runAsGroup of {_what} (upstream: always 0 on real pods)",
        _container_eff(_key, "runAsGroup"),
        is_list=True,
        arg=ARG_INDEX,
    )
    _custom(
        f"{_base}.add_capabilities",
        f"The capabilities added to {_what}, one JSON array per container",
        _container_caps(_key),
        is_list=True,
        arg=ARG_INDEX,
    )


def _first_container(ev: Event) -> dict[str, Any] | None:
    items = _walk(ev, ("requestObject", "spec", "containers"))
    if type(items) is not list or not items or type(items[0]) is not dict:
        return None
    first: dict[str, Any] = items[0]
    return first


def _container_image(ev: Event, _a: str | None) -> str | None:
    c = _first_container(ev)
    return None if c is None or "image" not in c else stringify(c["image"])


def _container_image_repo(ev: Event, a: str | None) -> str | None:
    image = _container_image(ev, a)
    return None if image is None else _repository(image)


def _container_privileged(ev: Event, _a: str | None) -> str | None:
    items = _walk(ev, ("requestObject", "spec", "containers"))
    if type(items) is not list:
        return None
    for c in items:
        if _walk(c, ("securityContext", "privileged")) is True:
            return "true"
    return "false"


_custom("ka.req.container.image", "Deprecated: the image of the first container", _container_image)
_custom(
    "ka.req.container.image.repository",
    "Deprecated: the repository of the first container's image",
    _container_image_repo,
)
_custom(
    "ka.req.container.privileged",
    "Deprecated: true if any container has securityContext.privileged=true",
    _container_privileged,
)

# -- volumes ------------------------------------------------------------------------------------


def _volumes(ev: Event, arg: str | None) -> list[Any] | None:
    items = _walk(ev, ("requestObject", "spec", "volumes"))
    if type(items) is not list:
        return None
    return _pick(items, _index(arg))


def _volume_path(path: tuple[str, ...]) -> Callable[[Event, Any], Value]:
    def get(ev: Event, arg: str | None) -> list[str] | None:
        items = _volumes(ev, arg)
        if not items:
            return None
        out = []
        for v in items:
            x = _walk(v, path)
            if x is not _MISSING:
                out.append(stringify(x))
        return _nonempty(out)

    return get


def _volume_types(ev: Event, arg: str | None) -> list[str] | None:
    items = _volumes(ev, arg)
    if not items:
        return None
    return _nonempty([k for v in items if type(v) is dict for k in v if k != "name"])


def _volume_hostpath(ev: Event, arg: str | None) -> str | None:
    items = _volumes(ev, None)
    if items is None:
        return None
    wanted = arg or ""
    prefix = wanted[:-1] if wanted.endswith("*") else None
    for v in items:
        p = _walk(v, ("hostPath", "path"))
        if type(p) is not str:
            continue
        if p == wanted or (prefix is not None and p.startswith(prefix)):
            return "true"
    return "false"


_custom(
    "ka.req.pod.volumes.hostpath",
    "The hostPath paths of the pod's volumes",
    _volume_path(("hostPath", "path")),
    is_list=True,
    arg=ARG_INDEX,
)
_custom(
    "ka.req.pod.volumes.flexvolume_driver",
    "The flexVolume drivers of the pod's volumes",
    _volume_path(("flexVolume", "driver")),
    is_list=True,
    arg=ARG_INDEX,
)
_custom(
    "ka.req.pod.volumes.volume_type",
    "The types of the pod's volumes (every key but name: hostPath, configMap, ...)",
    _volume_types,
    is_list=True,
    arg=ARG_INDEX,
)
_custom(
    "ka.req.volume.hostpath",
    "Deprecated: true if a hostPath volume uses the path given (a trailing * is a prefix)",
    _volume_hostpath,
    arg=ARG_KEY,
)

# -- roles and services --------------------------------------------------------------------------


def _role_rules(ev: Event, _a: str | None) -> list[str] | None:
    rules = _walk(ev, ("requestObject", "rules"))
    if type(rules) is not list:
        return None
    return _nonempty([stringify(r) for r in rules])


def _role_rules_attr(attr: str) -> Callable[[Event, Any], Value]:
    def get(ev: Event, arg: str | None) -> list[str] | None:
        rules = _walk(ev, ("requestObject", "rules"))
        if type(rules) is not list:
            return None
        picked = _pick(rules, _index(arg))
        if picked is None:
            return None
        out: list[str] = []
        for r in picked:
            values = r.get(attr) if type(r) is dict else None
            if type(values) is list:
                out.extend(stringify(v) for v in values)
        return _nonempty(out)

    return get


_custom(
    "ka.req.role.rules", "The rules of a (cluster) role, as JSON text", _role_rules, is_list=True
)
for _attr in ("apiGroups", "nonResourceURLs", "verbs", "resources"):
    _custom(
        f"ka.req.role.rules.{_attr}",
        f"The {_attr} of the rules of a (cluster) role",
        _role_rules_attr(_attr),
        is_list=True,
        arg=ARG_INDEX,
    )


def _service_ports(ev: Event, _a: str | None) -> list[str] | None:
    ports = _walk(ev, ("requestObject", "spec", "ports"))
    # QUIRK: the array ends the path, so the whole array is one JSON-text element.
    return None if ports is _MISSING else [stringify(ports)]


_custom(
    "ka.req.service.ports",
    "The service's ports (the whole array as one JSON value)",
    _service_ports,
    is_list=True,
    arg=ARG_INDEX,
)

# -- json plugin: jevt.* / json.* -------------------------------------------------------------


def _pointer_parts(arg: str | None) -> tuple[str, ...]:
    text = arg or ""
    if text.startswith("/"):
        text = text[1:]
    if not text:
        return ()
    return tuple(p.replace("~1", "/").replace("~0", "~") for p in text.split("/"))


def _json_value(arg: str | None) -> Getter:
    # Each step is (key, index): a decimal part may index an array (fastjson's Get); computed
    # once here rather than per event.
    steps = tuple((p, int(p) if p.isdigit() and p.isascii() else None) for p in _pointer_parts(arg))

    def get(ev: Event, _ctx: EventContext) -> str | None:
        obj: Any = ev
        for key, index in steps:
            kind = type(obj)
            if kind is dict:
                obj = obj.get(key, _MISSING)
                if obj is _MISSING:
                    return None
            elif kind is list and index is not None and index < len(obj):
                obj = obj[index]
            else:
                return None
        return obj if type(obj) is str else stringify(obj)

    return get


def _json_obj(_arg: str | None) -> Getter:
    import json  # only when a rule prints %jevt.obj

    def get(ev: Event, _ctx: EventContext) -> str:
        # Go's json.Indent(data, "", "  "); escapes are Python's (see README: known differences).
        return json.dumps(ev, indent=2, ensure_ascii=False)

    return get


def _json_rawtime(_arg: str | None) -> Getter:
    def get(ev: Event, _ctx: EventContext) -> str | None:
        ns = parse_rfc3339_ns(ev.get("stageTimestamp"))
        return None if ns is None else str(ns)

    return get


for _prefix in ("json", "jevt"):
    _register(
        FieldDef(
            f"{_prefix}.value",
            "A value of the event JSON selected by a JSON pointer (jevt.value[/user/username])",
            _json_value,
            arg=ARG_KEY,
            gated=False,
        )
    )
    _register(FieldDef(f"{_prefix}.obj", "The whole event JSON, indented", _json_obj, gated=False))
    _register(
        FieldDef(
            f"{_prefix}.rawtime",
            "The event time in nanoseconds since the epoch",
            _json_rawtime,
            gated=False,
        )
    )

# -- evt.*: Falco's generic event fields ----------------------------------------------------------


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
        "The event time, UTC ISO 8601 with nanoseconds",
        format_iso8601_ns,
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
    _custom(_name, _desc, _time_field(_render), gated=False, type_=_type)
_custom("evt.source", "The event source (k8s_audit)", lambda _e, _a: "k8s_audit", gated=False)
_custom(
    "evt.pluginname",
    "The plugin that produced the event (k8saudit)",
    lambda _e, _a: "k8saudit",
    gated=False,
)
_custom(
    "evt.is_async", "Whether the event is asynchronous (false)", lambda _e, _a: "false", gated=False
)

# -- falconet extensions: where an event came from ----------------------------------------------


def _src_ip(ev: Event, _a: str | None) -> str | None:
    ips = ev.get("sourceIPs")
    if type(ips) is not list or not ips:
        return None
    return stringify(ips[0])


_custom(
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
            cluster = _walk(ev, (_ANNOTATION, "cluster_name"))
            return None if cluster is _MISSING else stringify(cluster)
        return value  # type: ignore[no-any-return]

    _custom(
        f"falconet.{_attr}",
        _desc,
        lambda _e, _a: None,
        gated=False,
        extension=True,
        ctx_fn=_ctx_attr,
        inline=InlineRead(
            ((_ANNOTATION, None), ("cluster_name", None)) if _attr == "cluster" else (),
            context=_attr,
        ),
    )


def _geo_binder(attr: str) -> Callable[[str | None, BindEnv], Getter]:
    def binder(_arg: str | None, env: BindEnv) -> Getter:
        geo = env.geoip
        if attr == "scope":
            from falconet.ipscope import ip_scope  # not geoip: see ipscope

            cached = functools.lru_cache(maxsize=4096)(ip_scope)  # one parse per address
            return lambda ev, _ctx: cached(_src_ip(ev, None))
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
    _register(
        FieldDef(
            f"falconet.src.{_attr}",
            _desc,
            lambda _a: lambda _e, _c: None,
            gated=False,
            extension=True,
            env_binder=_geo_binder(_attr),
        )
    )


def lookup(name: str) -> FieldDef | None:
    """The definition of a field, or None."""
    return REGISTRY.get(name)


def suggest(name: str) -> str | None:
    """The closest known field name, for 'did you mean' hints."""
    import difflib

    matches = difflib.get_close_matches(name, REGISTRY, n=1, cutoff=0.75)
    return matches[0] if matches else None


def iter_fields() -> Iterator[FieldDef]:
    """Every registered field, in registration order."""
    return iter(REGISTRY.values())
