"""The `ka.req.pod.*`, `ka.req.container.*` and `ka.req.volume.*` fields: a pod spec in the
request object, container by container (containers, init containers, ephemeral containers) and
volume by volume, as Falco's k8saudit plugin reads them, quirks included (marked `QUIRK`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from falconet.fields.registry import (
    ARG_INDEX,
    ARG_KEY,
    MISSING,
    Event,
    Value,
    custom_field,
    index_arg,
    nonempty,
    pick,
    stringify,
    walk,
)

# -- containers ------------------------------------------------------------------------------------


def _containers(ev: Event, key: str, arg: str | None) -> list[Any] | None:
    items = walk(ev, ("requestObject", "spec", key))
    if type(items) is not list:
        return None
    return pick(items, index_arg(arg))


def _repository(image: str) -> str:
    # QUIRK: the text before the first ':' then before the first '@', so a registry with a port
    # ("localhost:5000/app:1") yields "localhost".
    return image.split(":", 1)[0].split("@", 1)[0]


_ERROR = object()  # the plugin returns an error: the whole field is absent


def _per_container(
    key: str, value_of: Callable[[dict[str, Any]], Any], *, strict: bool = False
) -> Callable[[Event, Any], Value]:
    """A list field with one value per selected container: `value_of(container)` returns the
    value, `MISSING` (skipped; with `strict`, the field is absent, as upstream) or `_ERROR`."""

    def get(ev: Event, arg: str | None) -> list[str] | None:
        items = _containers(ev, key, arg)
        if not items:
            return None
        out: list[str] = []
        for c in items:
            v = value_of(c) if type(c) is dict else MISSING
            if v is _ERROR or (v is MISSING and strict):
                return None  # QUIRK (strict): one container lacking the value voids the field
            if isinstance(v, str):
                out.append(v)
        return nonempty(out)

    return get


def _container_strict(key: str, attr: str, *, repo: bool = False) -> Callable[[Event, Any], Value]:
    def value_of(c: dict[str, Any]) -> Any:
        if attr not in c:
            return MISSING
        text = stringify(c[attr])
        return _repository(text) if repo else text

    return _per_container(key, value_of, strict=True)


def _container_joined(key: str, attr: str) -> Callable[[Event, Any], Value]:
    def value_of(c: dict[str, Any]) -> Any:
        v = c.get(attr, MISSING)
        if v is MISSING:
            return MISSING
        if type(v) is not list or not all(isinstance(x, str) for x in v):
            return _ERROR
        return " ".join(v)

    return _per_container(key, value_of)


def _container_secctx(key: str, attr: str) -> Callable[[Event, Any], Value]:
    def value_of(c: dict[str, Any]) -> Any:
        v = walk(c, ("securityContext", attr))
        return v if v is MISSING else stringify(v)

    return _per_container(key, value_of)


def _container_caps(key: str) -> Callable[[Event, Any], Value]:
    def value_of(c: dict[str, Any]) -> Any:
        v = walk(c, ("securityContext", "capabilities", "add"))
        # QUIRK: a container's whole `add` array is one value
        return v if v is MISSING else stringify(v)

    return _per_container(key, value_of)


def _container_eff(key: str, attr: str) -> Callable[[Event, Any], Value]:
    def get(ev: Event, arg: str | None) -> list[str] | None:
        items = _containers(ev, key, arg)
        if not items:
            return None
        # QUIRK: upstream reads containers[i].runAsUser and spec.runAsUser, neither of which
        # exists on real pods (both live under securityContext), so this is "0" per container.
        spec_value = walk(ev, ("requestObject", "spec", attr))
        out = []
        for c in items:
            v = c.get(attr, MISSING) if type(c) is dict else MISSING
            if v is MISSING:
                v = spec_value
            out.append("0" if v is MISSING else stringify(v))
        return out

    return get


def _container_host_ports(key: str) -> Callable[[Event, Any], Value]:
    def get(ev: Event, arg: str | None) -> list[str] | None:
        items = _containers(ev, key, arg)
        if not items:
            return None
        out = []
        for c in items:  # the index picks a container: every port of it counts
            ports = c.get("ports") if type(c) is dict else None
            if type(ports) is not list:
                continue
            for p in ports:
                if type(p) is not dict:
                    continue
                v = p.get("hostPort", p.get("containerPort", MISSING))
                if v is not MISSING:
                    out.append(stringify(v))
        return nonempty(out)

    return get


_CONTAINER_LISTS = (
    ("containers", "containers", "the pod's containers"),
    ("initContainers", "initContainers", "the pod's init containers"),
    ("ephemeralContainers", "ephemeralContainers", "the pod's ephemeral containers"),
)

for _prefix, _key, _what in _CONTAINER_LISTS:
    _base = f"ka.req.pod.{_prefix}"
    custom_field(
        f"{_base}.name",
        f"The names of {_what}",
        _container_strict(_key, "name"),
        is_list=True,
        arg=ARG_INDEX,
    )
    custom_field(
        f"{_base}.image",
        f"The images of {_what}",
        _container_strict(_key, "image"),
        is_list=True,
        arg=ARG_INDEX,
    )
    custom_field(
        f"{_base}.image.repository",
        f"The repository part of the images of {_what} (text before the first ':')",
        _container_strict(_key, "image", repo=True),
        is_list=True,
        arg=ARG_INDEX,
    )
    custom_field(
        f"{_base}.command",
        f"The commands of {_what}, arguments joined by spaces",
        _container_joined(_key, "command"),
        is_list=True,
        arg=ARG_INDEX,
    )
    custom_field(
        f"{_base}.args",
        f"The args of {_what}, joined by spaces",
        _container_joined(_key, "args"),
        is_list=True,
        arg=ARG_INDEX,
    )
    if _prefix != "ephemeralContainers":
        custom_field(
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
        custom_field(
            f"{_base}.{_field}",
            f"The securityContext.{_attr} values of {_what}",
            _container_secctx(_key, _attr),
            is_list=True,
            arg=ARG_INDEX,
        )
    custom_field(
        f"{_base}.eff_run_as_user",
        f"The effective runAsUser of {_what} (upstream: always 0 on real pods)",
        _container_eff(_key, "runAsUser"),
        is_list=True,
        arg=ARG_INDEX,
    )
    custom_field(
        f"{_base}.eff_run_as_group",
        f"The effective runAsGroup of {_what} (upstream: always 0 on real pods)",
        _container_eff(_key, "runAsGroup"),
        is_list=True,
        arg=ARG_INDEX,
    )
    custom_field(
        f"{_base}.add_capabilities",
        f"The capabilities added to {_what}, one JSON array per container",
        _container_caps(_key),
        is_list=True,
        arg=ARG_INDEX,
    )


def _first_container(ev: Event) -> dict[str, Any] | None:
    items = walk(ev, ("requestObject", "spec", "containers"))
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
    items = walk(ev, ("requestObject", "spec", "containers"))
    if type(items) is not list:
        return None
    for c in items:
        if walk(c, ("securityContext", "privileged")) is True:
            return "true"
    return "false"


custom_field(
    "ka.req.container.image", "Deprecated: the image of the first container", _container_image
)
custom_field(
    "ka.req.container.image.repository",
    "Deprecated: the repository of the first container's image",
    _container_image_repo,
)
custom_field(
    "ka.req.container.privileged",
    "Deprecated: true if any container has securityContext.privileged=true",
    _container_privileged,
)

# -- volumes ------------------------------------------------------------------------------------


def _volumes(ev: Event, arg: str | None) -> list[Any] | None:
    items = walk(ev, ("requestObject", "spec", "volumes"))
    if type(items) is not list:
        return None
    return pick(items, index_arg(arg))


def _volume_path(path: tuple[str, ...]) -> Callable[[Event, Any], Value]:
    def get(ev: Event, arg: str | None) -> list[str] | None:
        items = _volumes(ev, arg)
        if not items:
            return None
        out = []
        for v in items:
            x = walk(v, path)
            if x is not MISSING:
                out.append(stringify(x))
        return nonempty(out)

    return get


def _volume_types(ev: Event, arg: str | None) -> list[str] | None:
    items = _volumes(ev, arg)
    if not items:
        return None
    return nonempty([k for v in items if type(v) is dict for k in v if k != "name"])


def _volume_hostpath(ev: Event, arg: str | None) -> str | None:
    items = _volumes(ev, None)
    if items is None:
        return None
    wanted = arg or ""
    prefix = wanted[:-1] if wanted.endswith("*") else None
    for v in items:
        p = walk(v, ("hostPath", "path"))
        if not isinstance(p, str):
            continue
        if p == wanted or (prefix is not None and p.startswith(prefix)):
            return "true"
    return "false"


custom_field(
    "ka.req.pod.volumes.hostpath",
    "The hostPath paths of the pod's volumes",
    _volume_path(("hostPath", "path")),
    is_list=True,
    arg=ARG_INDEX,
)
custom_field(
    "ka.req.pod.volumes.flexvolume_driver",
    "The flexVolume drivers of the pod's volumes",
    _volume_path(("flexVolume", "driver")),
    is_list=True,
    arg=ARG_INDEX,
)
custom_field(
    "ka.req.pod.volumes.volume_type",
    "The types of the pod's volumes (every key but name: hostPath, configMap, ...)",
    _volume_types,
    is_list=True,
    arg=ARG_INDEX,
)
custom_field(
    "ka.req.volume.hostpath",
    "Deprecated: true if a hostPath volume uses the path given (a trailing * is a prefix)",
    _volume_hostpath,
    arg=ARG_KEY,
)
