"""falconet.fields: the registry, each family's values (quirks included), and in-place reads."""

from __future__ import annotations

import json
from typing import Any

import pytest

from falconet import codegen, fields
from falconet.context import EventContext
from tests.conftest import ROOT

CTX = EventContext(cluster="ctx-cluster", account="1234", region="eu-west-1", origin="s3://b/k")


def value(name: str, event: dict[str, Any], arg: str | None = None) -> Any:
    definition = fields.lookup(name)
    assert definition is not None, name
    return definition.bind(arg)(event, CTX)


def pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "auditID": "a",
        "requestObject": {"spec": {"containers": list(containers), **spec}},
    }


def test_every_family_is_registered_once_in_order() -> None:
    names = [f.name for f in fields.iter_fields()]
    assert len(names) == len(set(names))
    first = {
        prefix: next(i for i, n in enumerate(names) if n.startswith(prefix))
        for prefix in ("ka.", "ka.req.pod.", "jevt.", "evt.", "falconet.")
    }
    assert list(first) == sorted(first, key=first.__getitem__)  # k8saudit, pods, jevt, evt, ext


def test_lookup_and_suggest() -> None:
    assert fields.lookup("ka.user.name") is not None
    assert fields.lookup("ka.usr.name") is None
    assert fields.suggest("ka.usr.name") == "ka.user.name"
    assert fields.suggest("nothing.like.it") is None


@pytest.mark.parametrize(
    ("name", "arg", "message"),
    [
        ("ka.verb", "x", "field 'ka.verb' does not take an argument"),
        ("ka.uri.param", None, "field 'ka.uri.param' requires an argument"),
        (
            "ka.req.pod.containers.image",
            "01",
            "field 'ka.req.pod.containers.image' takes a numeric index argument, got '01'",
        ),
        (  # accepted until now, then a ValueError traceback on every pod event
            "ka.req.pod.containers.image",
            "0abc",
            "field 'ka.req.pod.containers.image' takes a numeric index argument, got '0abc'",
        ),
        (  # 4,301 digits passed the index check, then int() failed on every pod event
            "ka.req.pod.containers.host_port",
            "9" * 4301,
            "field 'ka.req.pod.containers.host_port' takes a numeric index argument, got '"
            + "9" * 64
            + "...'",
        ),
        (  # an index is a uint64 for the plugin: 20 digits is too long
            "ka.req.pod.containers.image",
            "1" * 20,
            f"field 'ka.req.pod.containers.image' takes a numeric index argument, got '{'1' * 20}'",
        ),
    ],
)
def test_arguments_are_checked_when_bound(name: str, arg: str | None, message: str) -> None:
    definition = fields.lookup(name)
    assert definition is not None
    with pytest.raises(fields.ArgumentError) as info:
        definition.bind(arg)
    assert str(info.value) == message
    with pytest.raises(fields.ArgumentError):
        definition.check_arg(arg)  # the check outputs and extra fields use


def test_json_values_as_falco_prints_them() -> None:
    event = {"auditID": "a", "verb": "get", "responseStatus": {"code": 200}, "stage": None}
    assert value("ka.verb", event) == "get"
    assert value("ka.response.code", event) == "200"  # numbers as their JSON text
    assert value("ka.stage", event) == "null"  # JSON null is the string "null"
    assert value("ka.target.name", event) is None  # absent


def test_ka_fields_are_absent_without_an_audit_id() -> None:
    event = {"verb": "get", "user": {"username": "bob"}}
    assert value("ka.verb", event) is None
    assert value("jevt.value", event, "/verb") == "get"  # the json plugin has no such gate


def test_uri_param_follows_go_url_parsing() -> None:
    def param(uri: str, key: str) -> Any:
        return value("ka.uri.param", {"auditID": "a", "requestURI": uri}, key)

    assert param("/exec?command=sh&command=ls", "command") == "sh"  # the first value
    assert param("/exec?command=a+b%2Fc", "command") == "a b/c"
    assert param("/exec?command=sh;x=1", "command") is None  # ';' is an error in Go
    assert param("/exec?command=%zz", "command") is None  # a bad escape too


def test_container_fields_and_their_upstream_quirks() -> None:
    event = pod({"name": "a", "image": "localhost:5000/app:1"}, {"image": "nginx@sha256:1"})
    assert value("ka.req.pod.containers.image", event) == ["localhost:5000/app:1", "nginx@sha256:1"]
    # the text before the first ':' (then '@'): a registry port cuts the name
    assert value("ka.req.pod.containers.image.repository", event) == ["localhost", "nginx"]
    # strict: one container without a name voids the whole field
    assert value("ka.req.pod.containers.name", event) is None
    assert value("ka.req.pod.containers.image", event, "1") == ["nginx@sha256:1"]
    assert value("ka.req.pod.containers.image", event, "5") is None
    # runAsUser is read outside securityContext upstream: "0" for every real container
    assert value("ka.req.pod.containers.eff_run_as_user", event) == ["0", "0"]


def test_privileged_and_capabilities_per_container() -> None:
    event = pod(
        {"securityContext": {"privileged": True, "capabilities": {"add": ["NET_ADMIN"]}}},
        {"securityContext": {"privileged": False}},
    )
    assert value("ka.req.pod.containers.privileged", event) == ["true", "false"]
    assert value("ka.req.pod.containers.add_capabilities", event) == ['["NET_ADMIN"]']
    assert value("ka.req.container.privileged", event) == "true"


def test_host_paths_and_the_deprecated_prefix_field() -> None:
    event = pod(volumes=[{"name": "v", "hostPath": {"path": "/var/run/docker.sock"}}])
    assert value("ka.req.pod.volumes.hostpath", event) == ["/var/run/docker.sock"]
    assert value("ka.req.volume.hostpath", event, "/var/run/*") == "true"
    assert value("ka.req.volume.hostpath", event, "/etc") == "false"


def test_binding_subjects() -> None:
    event = {
        "auditID": "a",
        "requestObject": {
            "roleRef": {"name": "cluster-admin"},
            "subjects": [
                {"kind": "User", "name": "eve"},
                {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"},
                {"kind": "Group", "name": "system:authenticated"},
            ],
        },
    }
    assert value("ka.req.binding.role", event) == "cluster-admin"
    assert value("ka.req.binding.subjects.user_names", event) == ["eve"]
    assert value("ka.req.binding.subjects.serviceaccount_ns_names", event) == ["ns:sa"]
    assert value("ka.req.binding.subjects.group_names", event) == ["system:authenticated"]


def test_jevt_pointer_escapes_and_array_indexes() -> None:
    event = {"a/b": {"c~d": [10, {"e": "x"}]}}
    assert value("jevt.value", event, "/a~1b/c~0d/1/e") == "x"
    assert value("jevt.value", event, "/a~1b/c~0d/0") == "10"
    assert value("jevt.value", event, "/a~1b/c~0d/2") is None


def test_jevt_pointer_with_a_huge_index_is_a_key_that_finds_nothing() -> None:
    # int() of this part raised ValueError while binding: a traceback at load time.
    event = {"items": [1, 2], "1" * 5000: "by key"}
    assert value("jevt.value", event, "/items/" + "1" * 5000) is None
    assert value("jevt.value", event, "/" + "1" * 5000) == "by key"


def test_evt_time_fields() -> None:
    event = {"stageTimestamp": "2026-03-11T15:45:02.123456Z"}
    assert value("evt.rawtime", event) == 1773243902123456000
    assert value("evt.time.iso8601", event) == "2026-03-11T15:45:02.123456000+0000"  # libsinsp
    assert value("evt.source", event) == "k8s_audit"


def test_falconet_fields_come_from_the_event_and_its_context() -> None:
    event = {"sourceIPs": ["10.1.2.3", "81.2.69.160"]}
    assert value("falconet.src.ip", event) == "10.1.2.3"
    assert value("falconet.src.scope", event) == "private"
    assert value("falconet.cluster", event) == "ctx-cluster"
    assert value("falconet.account", event) == "1234"
    no_cluster = EventContext()
    definition = fields.lookup("falconet.cluster")
    assert definition is not None
    annotated = {"annotations": {"cluster_name": "from-annotation"}}
    assert definition.bind(None)(annotated, no_cluster) == "from-annotation"


def _sample_events() -> list[dict[str, Any]]:
    events = []
    for path in sorted((ROOT / "tests" / "data" / "rules").glob("*/*.json")):
        data = json.loads(path.read_text())
        events += data if isinstance(data, list) else [data]
    return [e for e in events if isinstance(e, dict) and "auditID" in e]


FIELDS_WITH_INLINE_READS = [
    (f.name, arg)
    for f in fields.iter_fields()
    for arg in ([None] if f.arg == fields.ARG_NONE else ["/objectRef/name", "/sourceIPs/0"])
    if f.arg != fields.ARG_INDEX and f.inline_read(arg) is not None
]


@pytest.mark.parametrize(("name", "arg"), FIELDS_WITH_INLINE_READS)
def test_an_in_place_read_gives_what_the_getter_gives(name: str, arg: str | None) -> None:
    """The contract the generated code relies on (codegen.StatementReads and path_expr)."""
    definition = fields.lookup(name)
    assert definition is not None
    read = definition.inline_read(arg)
    assert read is not None
    constants: dict[str, Any] = {}

    def const(v: Any) -> str:
        constants[f"k{len(constants)}"] = v
        return f"k{len(constants) - 1}"

    lines = ["def f(ev, ctx):"]
    codegen.StatementReads(lines, const).assign("v", read)
    lines.append("    return v")
    module, _ = codegen.compile_module("\n".join(lines), constants, filename="<test>")
    getter = definition.raw_getter(arg)
    events = _sample_events()
    assert events
    for event in events:
        assert module["f"](event, CTX) == getter(event, CTX), (name, event.get("auditID"))


def test_host_port_index_picks_a_container_and_every_port_of_it() -> None:
    # k8saudit 0.18 (Falco 0.44): the index selects the container; its hostPort values, else
    # containerPort, all count (the plugin's readContainerHostPorts).
    event = pod(
        {"name": "a", "ports": [{"hostPort": 8080}, {"containerPort": 443}]},
        {"name": "b", "ports": [{"containerPort": 81}]},
    )
    assert value("ka.req.pod.containers.host_port", event, "0") == ["8080", "443"]
    assert value("ka.req.pod.containers.host_port", event, "1") == ["81"]
    assert value("ka.req.pod.containers.host_port", event) == ["8080", "443", "81"]
    assert value("ka.req.pod.containers.host_port", event, "2") is None


def test_values_read_as_falco_reads_them_render_as_written() -> None:
    from falconet.decode.source import read

    event = read(
        b'{"auditID":"a","user":{"username":"root\\u0000x"},'
        b'"requestObject":{"spec":{"replicas":1.50,"ports":[{"port":2.01e2}]}}}'
    )
    assert value("ka.user.name", event) == "root"
    assert value("jevt.value", event, "/user") == '{"username":"root\\u0000x"}'
    assert value("jevt.value", event, "/requestObject/spec/replicas") == "1.50"
    assert value("ka.req.service.ports", event) == ['[{"port":2.01e2}]']


def test_objects_nested_past_orjsons_writer_still_render() -> None:
    deep: Any = {"a": "é\t", "n": 1.5, "i": 7, "z": None}
    for _ in range(299):
        deep = [deep, True]
    text = fields.stringify(deep)
    assert text == json.dumps(deep, separators=(",", ":"), ensure_ascii=False)


def test_fields_read_strings_written_with_escapes_as_their_text() -> None:
    from falconet.decode.source import read

    event = read(
        b'{"auditID":"a","requestURI":"/api/v1/pods?limit=500\\u0026command=sh",'
        b'"requestObject":{"spec":{"containers":[{"command":["sh","-c","a \\u0026\\u0026 b"]}],'
        b'"volumes":[{"hostPath":{"path":"\\/etc"}}]}}}'
    )
    assert value("ka.uri", event) == "/api/v1/pods?limit=500&command=sh"
    assert value("ka.uri.param", event, "command") == "sh"
    assert value("ka.req.pod.containers.command", event) == ["sh -c a && b"]
    assert value("ka.req.volume.hostpath", event, "/etc") == "true"
    assert value("ka.req.pod.volumes.hostpath", event) == ["/etc"]


def test_jevt_obj_of_an_event_nested_past_pythons_indenting_writer_is_compact() -> None:
    shallow = {"kind": "Event", "r": [[1]]}
    assert value("jevt.obj", shallow) == json.dumps(shallow, indent=2)
    deep: Any = 1
    for _ in range(1000):  # orjson reads 1024 levels
        deep = [deep]
    event = {"kind": "Event", "r": deep}
    assert value("jevt.obj", event) == '{"kind":"Event","r":' + "[" * 1000 + "1" + "]" * 1000 + "}"
