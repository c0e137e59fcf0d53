"""The HTTP function through functions-framework: its Flask app, and one real server process.

Covers the kube-apiserver webhook (EventList), authentication, size limit, bad bodies, and
CloudEvents in binary, structured and batch mode; alerts go to the default stdout sink.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from functions_framework import create_app
from tests.conftest import ROOT

import lambda_handlers
from falconet.runtime import reset_runtime

RULES = ROOT / "tests" / "data" / "functional_rules.yaml"
BATCH = (ROOT / "examples" / "audit-batch.json").read_bytes()
TOKEN = "s3cr3t-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXPECTED = {"Test Namespace Deleted": 1, "Test Exec": 1, "Test Cluster Admin Binding": 1}


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    env = {
        "FALCONET_RULES": str(RULES),
        "FALCONET_WEBHOOK_TOKEN": TOKEN,
        "FALCONET_MAX_BODY_BYTES": str(256 * 1024),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        app = create_app("audit_http", str(ROOT / "functions" / "main.py"), "http")
        yield app.test_client()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def alerts_printed(capfd: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    out = capfd.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_webhook_eventlist_gives_200_and_alerts(
    client: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    capfd.readouterr()
    r = client.post("/?cluster=prod-eu", data=BATCH, headers=AUTH, content_type="application/json")
    assert r.status_code == 200, r.get_data()
    body = r.get_json()
    assert body["events"] == 6
    assert body["alerts_by_rule"] == EXPECTED
    alerts = alerts_printed(capfd)
    assert sorted(a["rule"] for a in alerts) == sorted(EXPECTED)
    assert {a["output_fields"]["falconet.cluster"] for a in alerts} == {"prod-eu"}
    assert all(a["source"] == "k8s_audit" and a["uuid"] for a in alerts)


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}]
)
def test_missing_or_wrong_token_is_401(client: Any, headers: dict[str, str]) -> None:
    r = client.post("/", data=BATCH, headers=headers, content_type="application/json")
    assert r.status_code == 401
    assert TOKEN not in r.get_data(as_text=True)
    assert r.headers["WWW-Authenticate"] == "Bearer"


def test_oversized_body_is_413(client: Any) -> None:
    r = client.post(
        "/", data=b"[" + b" " * (300 * 1024) + b"]", headers=AUTH, content_type="application/json"
    )
    assert r.status_code == 413


@pytest.mark.parametrize("body", [b"this is not json", b'{"kind": "Eve'])
def test_not_json_is_400_with_a_reason(client: Any, body: bytes) -> None:
    r = client.post("/", data=body, headers=AUTH, content_type="application/json")
    assert r.status_code == 400
    assert r.get_json()["error"] == "the request body is not JSON"
    assert "Eve" not in r.get_data(as_text=True)  # audit data is never echoed


def test_json_without_audit_events_is_400(client: Any) -> None:
    r = client.post("/", data=b'{"kind": 0}', headers=AUTH, content_type="application/json")
    assert r.status_code == 400
    assert "data not recognized as a k8s audit event" in r.get_json()["error"]


def test_a_bad_item_is_counted_and_the_rest_evaluated(client: Any) -> None:
    doc = json.loads(BATCH)
    doc["items"].insert(1, {"kind": "Event", "verb": "get"})  # no stageTimestamp
    r = client.post("/", data=json.dumps(doc), headers=AUTH, content_type="application/json")
    assert r.status_code == 200
    body = r.get_json()
    assert body["events"] == 6 and body["rejected"] == 1
    assert body["alerts_by_rule"] == EXPECTED


def test_gzip_json_lines_body(client: Any) -> None:
    lines = b"\n".join(json.dumps(i).encode() for i in json.loads(BATCH)["items"])
    r = client.post(
        "/",
        data=gzip.compress(lines),
        headers={**AUTH, "Content-Encoding": "gzip"},
        content_type="application/x-ndjson",
    )
    assert r.status_code == 200
    assert r.get_json()["alerts_by_rule"] == EXPECTED


def test_get_is_405(client: Any) -> None:
    assert client.get("/", headers=AUTH).status_code == 405


def test_cloudevent_binary_mode(client: Any) -> None:
    headers = {
        **AUTH,
        "ce-specversion": "1.0",
        "ce-type": "io.k8s.audit.batch",
        "ce-source": "//k8s/prod",
        "ce-id": "b-1",
    }
    r = client.post("/", data=BATCH, headers=headers, content_type="application/json")
    assert r.status_code == 200
    assert r.get_json()["alerts_by_rule"] == EXPECTED


def test_cloudevent_structured_mode(client: Any) -> None:
    envelope = {
        "specversion": "1.0",
        "type": "io.k8s.audit.batch",
        "source": "//k8s/prod",
        "id": "s-1",
        "datacontenttype": "application/json",
        "data": json.loads(BATCH),
    }
    r = client.post(
        "/", data=json.dumps(envelope), headers=AUTH, content_type="application/cloudevents+json"
    )
    assert r.status_code == 200
    assert r.get_json()["alerts_by_rule"] == EXPECTED


def test_cloudevent_structured_data_base64(client: Any) -> None:
    envelope = {
        "specversion": "1.0",
        "type": "t",
        "source": "s",
        "id": "s-2",
        "data_base64": base64.b64encode(gzip.compress(BATCH)).decode(),
    }
    r = client.post(
        "/",
        data=json.dumps(envelope),
        headers=AUTH,
        content_type="application/cloudevents+json; charset=utf-8",
    )
    assert r.status_code == 200
    assert r.get_json()["alerts_by_rule"] == EXPECTED


def test_cloudevent_batch_mode(client: Any) -> None:
    items = json.loads(BATCH)["items"]
    batch = [
        {
            "specversion": "1.0",
            "type": "io.k8s.audit.event",
            "source": "//k8s/prod",
            "id": f"e-{n}",
            "data": item,
        }
        for n, item in enumerate(items)
    ]
    r = client.post(
        "/", data=json.dumps(batch), headers=AUTH, content_type="application/cloudevents-batch+json"
    )
    assert r.status_code == 200
    body = r.get_json()
    assert body["events"] == 6
    assert body["alerts_by_rule"] == EXPECTED


def test_structured_cloudevent_missing_attributes_is_400(client: Any) -> None:
    r = client.post(
        "/",
        data=json.dumps({"data": {}}),
        headers=AUTH,
        content_type="application/cloudevents+json",
    )
    assert r.status_code == 400
    assert "specversion, type, source and id" in r.get_json()["error"]


def test_invalid_cluster_parameter_is_400(client: Any) -> None:
    r = client.post("/?cluster=%0Aevil", data=BATCH, headers=AUTH, content_type="application/json")
    assert r.status_code == 400


# -- a real functions-framework process -------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_real_functions_framework_server(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "FALCONET_RULES": str(RULES),
        "FALCONET_WEBHOOK_TOKEN": TOKEN,
        "PYTHONUNBUFFERED": "1",
    }
    out = (tmp_path / "server.out").open("wb")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "functions_framework",
            "--source",
            str(ROOT / "functions/main.py"),
            "--target",
            "audit_http",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )
    try:
        url = f"http://127.0.0.1:{port}/?cluster=prod-eu"
        deadline = time.monotonic() + 60
        while True:
            try:
                req = urllib.request.Request(
                    url,
                    data=BATCH,
                    headers={**AUTH, "Content-Type": "application/json"},
                    method="POST",
                )
                with urllib.request.urlopen(req, timeout=10) as resp:
                    status, body = resp.status, json.loads(resp.read())
                break
            except urllib.error.URLError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        assert status == 200
        assert body["alerts_by_rule"] == EXPECTED
        req = urllib.request.Request(url, data=BATCH, method="POST")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=10)
        assert info.value.code == 401
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
        out.close()
    printed = (tmp_path / "server.out").read_text()
    alerts = [json.loads(line) for line in printed.splitlines() if line.startswith('{"hostname"')]
    assert sorted(a["rule"] for a in alerts) == sorted(EXPECTED)
    logs = [json.loads(line) for line in printed.splitlines() if line.startswith('{"falconet"')]
    assert [entry["status"] for entry in logs] == [200, 401]
    assert logs[0]["events"] == 6 and logs[0]["alerts"] == 3


# -- the same contract on Lambda (Function URL / API Gateway v2) ------------------------------


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("FALCONET_RULES", str(RULES))
    monkeypatch.setenv("FALCONET_WEBHOOK_TOKEN", TOKEN)
    reset_runtime()
    yield
    reset_runtime()


def _v2(
    body: bytes, *, b64: bool = False, headers: dict[str, str] | None = None, method: str = "POST"
) -> dict[str, Any]:
    return {
        "version": "2.0",
        "rawPath": "/",
        "rawQueryString": "cluster=prod-eu",
        "queryStringParameters": {"cluster": "prod-eu"},
        "headers": {
            "content-type": "application/json",
            "authorization": f"Bearer {TOKEN}",
            **(headers or {}),
        },
        "requestContext": {"http": {"method": method, "path": "/"}},
        "body": base64.b64encode(body).decode() if b64 else body.decode(),
        "isBase64Encoded": b64,
    }


@pytest.mark.usefixtures("lambda_env")
@pytest.mark.parametrize("b64", [False, True])
def test_handle_http_function_url_payload(b64: bool) -> None:
    answer = lambda_handlers.handle_http(_v2(BATCH, b64=b64))
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"])["alerts_by_rule"] == EXPECTED


@pytest.mark.usefixtures("lambda_env")
def test_handle_http_rejects_without_token() -> None:
    answer = lambda_handlers.handle_http(_v2(BATCH, headers={"authorization": "Bearer nope"}))
    assert answer["statusCode"] == 401
    assert lambda_handlers.handle_http(_v2(b"garbage"))["statusCode"] == 400


@pytest.mark.usefixtures("lambda_env")
def test_handle_http_refuses_before_decoding_the_body() -> None:
    """An unauthenticated caller is answered 401 whatever its body: the body is neither base64-
    decoded nor measured for it (nothing about the body is told to a caller without the token)."""
    event = _v2(BATCH, b64=True, headers={"authorization": "Bearer nope"})
    event["body"] = "not base64 !!"
    answer = lambda_handlers.handle_http(event)
    assert answer["statusCode"] == 401, answer
    assert answer["headers"]["WWW-Authenticate"] == "Bearer"
