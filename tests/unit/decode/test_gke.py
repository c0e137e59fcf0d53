"""GKE LogEntry -> audit Event: the plugin's mapping, and where we do better than the plugin."""

from __future__ import annotations

import base64
import copy
from typing import Any

import orjson
import pytest

from falconet.decode import BAD_ENVELOPE, SKIP_NOT_K8S
from falconet.decode.gke import object_ref_of, request_uri_of
from tests.unit.decode.wrap import check_accounting, gz, log_entry, run


def one(entry: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    events, contexts, stats = run(orjson.dumps(entry))
    assert len(events) == 1, stats.to_dict()
    return events[0], contexts[0]


def test_denied_request_is_not_reported_as_successful() -> None:
    entry = log_entry(
        status={"code": 7, "message": "pods is forbidden: User cannot create"},
        labels={},
        authorization=[{"granted": False, "permission": "io.k8s.core.v1.pods.create"}],
    )
    event, _ = one(entry)
    assert event["responseStatus"]["code"] == 403
    assert event["responseStatus"]["message"] == "pods is forbidden: User cannot create"
    assert event["annotations"]["authorization.k8s.io/decision"] == "forbid"
    assert event["stage"] == "ResponseComplete"


@pytest.mark.parametrize(
    ("code", "verb", "http"),
    [
        (None, "create", 201),
        (0, "get", 200),
        (5, "get", 404),
        (6, "create", 409),
        (16, "list", 401),
    ],
)
def test_status_codes(code: int | None, verb: str, http: int) -> None:
    status = None if code is None else {"code": code}
    event, _ = one(log_entry(f"io.k8s.core.v1.pods.{verb}", status=status))
    assert event["verb"] == verb
    assert event["responseStatus"]["code"] == http


def test_event_time_not_receive_time_and_fields() -> None:
    event, context = one(log_entry())
    assert event["stageTimestamp"] == "2024-01-01T01:00:00.123456Z"
    assert event["requestReceivedTimestamp"] == "2024-01-01T01:00:00.123456Z"
    assert event["auditID"] == "e7b3c1a0-0000-4000-8000-00000000abcd"
    assert event["user"] == {"username": "mallory@example.com"}
    assert event["sourceIPs"] == ["203.0.113.9"]
    assert event["userAgent"] == "kubectl/1.30"
    assert event["requestURI"] == "/api/v1/namespaces/default/pods/web-0"
    assert event["objectRef"] == {
        "resource": "pods",
        "apiGroup": "",
        "apiVersion": "v1",
        "namespace": "default",
        "name": "web-0",
    }
    assert event["annotations"]["cluster_name"] == "gke-prod"
    assert event["annotations"]["project_id"] == "acme-prod"
    assert (context.cluster, context.account, context.region) == (
        "gke-prod",
        "acme-prod",
        "europe-west1",
    )


def test_exec_keeps_the_plugins_started_stage_and_gets_its_command() -> None:
    entry = log_entry(
        "io.k8s.core.v1.pods.exec.create",
        "core/v1/namespaces/default/pods/web-0/exec",
        request={
            "@type": "k8s.io/PodExecOptions",
            "command": ["sh", "-c", "id"],
            "container": "web",
            "stdin": True,
            "tty": True,
        },
    )
    event, _ = one(entry)
    assert event["stage"] == "ResponseStarted"
    assert event["responseStatus"]["code"] == 101
    assert event["requestURI"] == (
        "/api/v1/namespaces/default/pods/web-0/exec"
        "?command=sh&command=-c&command=id&container=web&stdin=true&tty=true"
    )
    assert event["objectRef"]["subresource"] == "exec"


def test_denied_exec_is_complete_not_started() -> None:
    entry = log_entry(
        "io.k8s.core.v1.pods.exec.create",
        "core/v1/namespaces/default/pods/web-0/exec",
        status={"code": 7},
    )
    event, _ = one(entry)
    assert (event["stage"], event["responseStatus"]["code"]) == ("ResponseComplete", 403)


@pytest.mark.parametrize(
    ("name", "ref", "uri"),
    [
        (
            "rbac.authorization.k8s.io/v1/clusterrolebindings/admin",
            {
                "resource": "clusterrolebindings",
                "apiGroup": "rbac.authorization.k8s.io",
                "apiVersion": "v1",
                "name": "admin",
            },
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/admin",
        ),
        (
            "core/v1/namespaces/kube-system/secrets",
            {"resource": "secrets", "apiGroup": "", "apiVersion": "v1", "namespace": "kube-system"},
            "/api/v1/namespaces/kube-system/secrets",
        ),
        (
            "core/v1/nodes/n1/status",
            {
                "resource": "nodes",
                "apiGroup": "",
                "apiVersion": "v1",
                "name": "n1",
                "subresource": "status",
            },
            "/api/v1/nodes/n1/status",
        ),
        (
            "core/v1/namespaces/dev",
            {"resource": "namespaces", "apiGroup": "", "apiVersion": "v1", "name": "dev"},
            "/api/v1/namespaces/dev",
        ),
        ("healthz", None, "/healthz"),
    ],
)
def test_resource_names(name: str, ref: dict | None, uri: str) -> None:
    assert object_ref_of(name) == ref
    assert request_uri_of(name, object_ref_of(name)) == uri


def test_non_kubernetes_entries_are_skipped() -> None:
    other_service = log_entry()
    other_service["protoPayload"]["serviceName"] = "container.googleapis.com"
    other_resource = log_entry()
    other_resource["resource"]["type"] = "gke_cluster"
    system_event = log_entry()
    system_event["logName"] = "projects/p/logs/cloudaudit.googleapis.com%2Fsystem_event"
    broken = {"protoPayload": "x", "resource": {}}
    lines = [other_service, other_resource, system_event, log_entry(), broken]
    events, _, stats = run(b"\n".join(orjson.dumps(e) for e in lines))
    assert len(events) == 1
    assert stats.skipped == {SKIP_NOT_K8S: 3}
    assert stats.rejected == {BAD_ENVELOPE: 1}
    check_accounting(stats)


def _expected_plain() -> dict[str, Any]:
    event, _ = one(log_entry())
    return event


def test_pubsub_push_eventarc_and_gcs_sink_give_the_same_event() -> None:
    entry = log_entry()
    data = base64.b64encode(orjson.dumps(entry)).decode()
    message = {"attributes": {}, "data": data, "messageId": "1", "publishTime": "x"}
    push = {"message": message, "subscription": "projects/p/subscriptions/s"}
    structured = {
        "specversion": "1.0",
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "source": "//pubsub.googleapis.com/projects/p/topics/t",
        "id": "1",
        "data": push,
    }
    with_base64 = {**structured, "data_base64": base64.b64encode(orjson.dumps(push)).decode()}
    del with_base64["data"]
    sink_file = gz(b"\n".join(orjson.dumps(copy.deepcopy(entry)) for _ in range(3)) + b"\n")
    expected = _expected_plain()
    for body in (push, structured, with_base64):
        events, _, stats = run(orjson.dumps(body))
        assert events == [expected], stats.to_dict()
    events, _, _ = run(sink_file)
    assert events == [expected] * 3


def test_pubsub_data_that_is_not_base64_json_is_counted() -> None:
    body = {"message": {"data": "dGVzdCBtZXNzYWdlIDM="}, "subscription": "s"}  # "test message 3"
    _, _, stats = run(orjson.dumps(body))
    assert stats.rejected_total == 1
    check_accounting(stats)
