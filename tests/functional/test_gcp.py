"""Google Cloud, through real parts on loopback: a GCS emulator (gcp-storage-emulator, from PyPI)
for gs:// scans and GCS CloudEvents, Pub/Sub push bodies built as Google sends them with an OIDC
token signed by a local key (its certificate served as Google serves its own), Eventarc's Pub/Sub
CloudEvents, and a server speaking Pub/Sub's REST publish API for the Pub/Sub sink.

The functions run in functions-framework's app (`create_app`), their settings from the
environment as deployed; the GCS client finds the emulator by STORAGE_EMULATOR_HOST and the sink
its server by PUBSUB_EMULATOR_HOST, the variables Google's libraries read.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import importlib.util
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from functions_framework import create_app
from tests.conftest import ROOT
from tests.functional.servers import free_port, serving
from tests.unit.decode.wrap import log_entry

from falconet import cli
from falconet.storage import gcs

RULES = ROOT / "tests" / "data" / "functional_rules.yaml"
MAIN = str(ROOT / "functions" / "main.py")
AUDIENCE = "https://falconet-abc123-ew.a.run.app/"
PUSHER = "pubsub-push@acme-prod.iam.gserviceaccount.com"
TOKEN = "static-t0ken"
GCS_SOURCE = "//storage.googleapis.com/projects/_/buckets/{bucket}"
PUBSUB_SOURCE = "//pubsub.googleapis.com/projects/acme-prod/topics/gke-audit"


def _deleted_namespace() -> dict[str, Any]:
    return log_entry("io.k8s.core.v1.namespaces.delete", "core/v1/namespaces/team-a")


def _other_service() -> dict[str, Any]:
    entry = log_entry()
    entry["protoPayload"]["serviceName"] = "compute.googleapis.com"
    entry["resource"] = {"type": "gce_instance", "labels": {}}
    return entry


def _printed(capfd: pytest.CaptureFixture[str]) -> tuple[list[str], list[dict[str, Any]]]:
    out, err = capfd.readouterr()
    rules = sorted(json.loads(x)["rule"] for x in out.splitlines() if x.startswith('{"hostname"'))
    logs = [json.loads(x) for x in err.splitlines() if x.startswith('{"falconet"')]
    return rules, logs


# -- the GCS emulator ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if importlib.util.find_spec("gcp_storage_emulator") is None:
        pytest.skip("gcp-storage-emulator is not installed (pip install gcp-storage-emulator)")
    if importlib.util.find_spec("google.cloud.storage") is None:
        pytest.skip("google-cloud-storage is not installed (pip install 'falconet[gcs]')")
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "gcp-storage-emulator"),
        "start",
        "--host=127.0.0.1",
        f"--port={port}",
        "--in-memory",
        "--quiet",
    ]
    log = tmp_path_factory.mktemp("gcs") / "log"
    with serving(command, port=port, log=log), pytest.MonkeyPatch.context() as env:
        env.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
        env.setenv("GOOGLE_CLOUD_PROJECT", "acme-prod")
        gcs.client.cache_clear()  # a client made for the emulator, and dropped after
        yield f"http://127.0.0.1:{port}"
        gcs.client.cache_clear()


@pytest.fixture
def bucket(gcs_emulator: str) -> Any:
    from google.cloud import storage

    return storage.Client().create_bucket(f"audit-{uuid.uuid4().hex[:10]}")


def _gcs_event(bucket: str, name: str, ce_type: str = "finalized") -> tuple[dict[str, str], bytes]:
    """A Cloud Storage CloudEvent in binary mode, as Eventarc delivers it."""
    headers = {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": "11223344556677",
        "ce-source": GCS_SOURCE.format(bucket=bucket),
        "ce-type": f"google.cloud.storage.object.v1.{ce_type}",
        "ce-subject": f"objects/{name}",
        "ce-time": "2024-06-01T14:00:00.123456Z",
    }
    data = {"kind": "storage#object", "bucket": bucket, "name": name, "generation": "1"}
    return headers, orjson.dumps(data)


@pytest.fixture
def cloudevent_client(bucket: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("FALCONET_RULES", str(RULES))
    monkeypatch.setenv("FALCONET_ALLOWED_OBJECTS", f"gs://{bucket.name}/cloudaudit.googleapis.com/")
    return create_app("audit_cloudevent", MAIN, "cloudevent").test_client()


SINK_OBJECT = "cloudaudit.googleapis.com/activity/2024/06/01/12:00:00_12:59:59_S0.json"


def test_a_finalized_log_sink_object_is_read_from_the_bucket(
    cloudevent_client: Any, bucket: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    lines = [_other_service(), _deleted_namespace(), log_entry()]
    bucket.blob(SINK_OBJECT).upload_from_string(b"\n".join(orjson.dumps(e) for e in lines))
    headers, body = _gcs_event(bucket.name, SINK_OBJECT)
    capfd.readouterr()
    assert cloudevent_client.post("/", headers=headers, data=body).status_code == 200
    rules, logs = _printed(capfd)
    assert rules == ["Test Namespace Deleted"]
    assert logs[0]["origins"] == [f"gs://{bucket.name}/{SINK_OBJECT}"]
    assert logs[0]["events"] == 2


@pytest.mark.parametrize(
    ("ce_type", "data", "ignored"),
    [
        ("finalized", None, "gs://{bucket}/" + SINK_OBJECT + " no longer exists"),
        ("deleted", None, "google.cloud.storage.object.v1.deleted is not an object finalization"),
        (
            "finalized",
            b'{"kind": "storage#object"}',
            "the google.cloud.storage.object.v1.finalized event does not name a bucket object",
        ),
        ("finalized", b"not json", "the request body is not JSON"),
    ],
    ids=["object-gone", "deleted-event", "no-object-named", "not-json"],
)
def test_events_without_an_object_to_read_are_acknowledged_with_the_reason(
    cloudevent_client: Any,
    bucket: Any,
    capfd: pytest.CaptureFixture[str],
    ce_type: str,
    data: bytes | None,
    ignored: str,
) -> None:
    """A 500 would have Eventarc redeliver the event until it expires: none of these can ever
    succeed, so each is acknowledged (2xx) with its named reason."""
    headers, body = _gcs_event(bucket.name, SINK_OBJECT, ce_type)
    capfd.readouterr()
    response = cloudevent_client.post("/", headers=headers, data=data or body)
    assert 200 <= response.status_code < 300
    rules, logs = _printed(capfd)
    assert rules == []
    assert logs[0]["ignored"] == [ignored.format(bucket=bucket.name)]
    assert "error" not in logs[0]


def test_falconet_scan_reads_a_gs_prefix(bucket: Any, capsys: pytest.CaptureFixture[str]) -> None:
    for hour in ("10", "11"):
        name = f"cluster=gke-prod/activity/2024/06/01/{hour}:00:00_{hour}:59:59_S0.json.gz"
        lines = [_deleted_namespace(), _other_service()]
        blob = bucket.blob(name)
        blob.upload_from_string(gzip.compress(b"\n".join(orjson.dumps(e) for e in lines)))
    code = cli.main(
        ["scan", "--json", "--rules", str(RULES), f"gs://{bucket.name}/cluster=gke-prod/"]
    )
    out = capsys.readouterr().out
    alerts = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert code == 0
    assert [a["rule"] for a in alerts] == ["Test Namespace Deleted"] * 2
    assert {a["output_fields"]["falconet.cluster"] for a in alerts} == {"gke-prod"}


def test_a_gs_prefix_with_nothing_under_it_is_a_clear_error(
    bucket: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["scan", f"gs://{bucket.name}/nothing-here/"]) != 0
    assert "no such object or prefix" in capsys.readouterr().err


# -- Pub/Sub push with an OIDC token ---------------------------------------------------------------
class _Google:
    """A signing key with its certificate, served at `certs_url` as Google serves its own."""

    def __init__(self, kid: str = "k1") -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-signer")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
        self.kid = kid
        self.key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()

    def token(self, **overrides: Any) -> str:
        from google.auth import crypt, jwt

        now = int(time.time())
        claims = {
            "iss": "https://accounts.google.com",
            "aud": AUDIENCE,
            "azp": "1234567890",
            "sub": "1234567890",
            "email": PUSHER,
            "email_verified": True,
            "iat": now,
            "exp": now + 3600,
            **overrides,
        }
        signer = crypt.RSASigner.from_string(self.key_pem, key_id=self.kid)
        return str(jwt.encode(signer, claims).decode())


@pytest.fixture(scope="module")
def google() -> Iterator[tuple[_Google, str, list[str]]]:
    """The signer, the URL of its certificates, and the paths requested there."""
    pytest.importorskip("google.auth", reason="google-auth verifies push tokens")
    signer = _Google()
    fetched: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetched.append(self.path)
            body = json.dumps({signer.kid: signer.cert_pem}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "public, max-age=19845, must-revalidate")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield signer, f"http://127.0.0.1:{server.server_address[1]}/oauth2/v1/certs", fetched
    server.shutdown()
    server.server_close()


def _push_body(entry: dict[str, Any]) -> bytes:
    """A push subscription's request body, as Pub/Sub sends it for a Log Router sink's message."""
    return orjson.dumps(
        {
            "message": {
                "attributes": {"logging.googleapis.com/timestamp": entry["timestamp"]},
                "data": base64.b64encode(orjson.dumps(entry)).decode(),
                "messageId": "2070443601311540",
                "message_id": "2070443601311540",
                "publishTime": "2024-01-01T01:00:08.123Z",
                "publish_time": "2024-01-01T01:00:08.123Z",
            },
            "subscription": "projects/acme-prod/subscriptions/falconet-push",
        }
    )


@pytest.fixture
def push_client(
    google: tuple[_Google, str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Any]:
    _, certs_url, _ = google

    def make(**env: str) -> Any:
        monkeypatch.setenv("FALCONET_RULES", str(RULES))
        monkeypatch.setenv("FALCONET_WEBHOOK_TOKEN", TOKEN)
        monkeypatch.setenv("FALCONET_PUSH_AUDIENCE", AUDIENCE)
        monkeypatch.setenv(
            "FALCONET_PUSH_SERVICE_ACCOUNTS", f"other@x.iam.gserviceaccount.com,{PUSHER}"
        )
        monkeypatch.setenv("FALCONET_PUSH_CERTS_URL", certs_url)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return create_app("audit_http", MAIN, "http").test_client()

    return make


def test_a_pubsub_push_with_the_subscriptions_oidc_token_is_evaluated(
    push_client: Callable[..., Any],
    google: tuple[_Google, str, list[str]],
    capfd: pytest.CaptureFixture[str],
) -> None:
    signer, _, fetched = google
    client = push_client()
    body = _push_body(_deleted_namespace())
    fetched.clear()
    capfd.readouterr()
    for _ in range(2):
        headers = {"Authorization": f"Bearer {signer.token()}", "Content-Type": "application/json"}
        answer = client.post("/", headers=headers, data=body)
        assert answer.status_code == 200, answer.get_json()
        assert (answer.get_json()["events"], answer.get_json()["alerts"]) == (1, 1)
    rules, _ = _printed(capfd)
    assert rules == ["Test Namespace Deleted"] * 2
    assert fetched == ["/oauth2/v1/certs"]  # once: kept for the answer's max-age


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "https://someone-else.example/"},
        {"email": "attacker@evil.iam.gserviceaccount.com"},
        {"email_verified": False},
        {"iss": "https://evil.example"},
        {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200},
    ],
    ids=["audience", "account", "unverified-email", "issuer", "expired"],
)
def test_a_push_token_google_would_not_vouch_for_is_refused(
    push_client: Callable[..., Any], google: tuple[_Google, str, list[str]], claims: dict[str, Any]
) -> None:
    signer, _, _ = google
    headers = {"Authorization": f"Bearer {signer.token(**claims)}"}
    answer = push_client().post("/", headers=headers, data=_push_body(_deleted_namespace()))
    assert answer.status_code == 401
    assert answer.get_json() == {"error": "missing or wrong bearer token"}


def test_a_token_signed_by_another_key_is_refused(push_client: Callable[..., Any]) -> None:
    forger = _Google(kid="k1")  # the same key id, another key
    headers = {"Authorization": f"Bearer {forger.token()}"}
    answer = push_client().post("/", headers=headers, data=_push_body(_deleted_namespace()))
    assert answer.status_code == 401


@pytest.mark.parametrize("alg", ["HS256", "none", "ES256"])
def test_a_token_of_another_algorithm_is_refused(
    push_client: Callable[..., Any], google: tuple[_Google, str, list[str]], alg: str
) -> None:
    """Algorithm confusion: the public certificate as an HMAC key, no signature, or an ES256
    signature checked with the RSA certificate: none verifies."""
    import hashlib
    import hmac

    signer, _, _ = google
    _, claims, _ = signer.token().split(".")
    header = base64.urlsafe_b64encode(orjson.dumps({"alg": alg, "kid": signer.kid, "typ": "JWT"}))
    signed = header.rstrip(b"=").decode() + "." + claims
    mac = hmac.new(signer.cert_pem.encode(), signed.encode(), hashlib.sha256).digest()
    signature = "" if alg == "none" else base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    headers = {"Authorization": f"Bearer {signed}.{signature}"}
    answer = push_client().post("/", headers=headers, data=_push_body(_deleted_namespace()))
    assert answer.status_code == 401


def test_made_up_key_ids_do_not_cost_a_certificate_fetch_each(
    push_client: Callable[..., Any], google: tuple[_Google, str, list[str]]
) -> None:
    _, _, fetched = google
    client = push_client()
    before = len(fetched)
    for n in range(5):
        forger = _Google(kid=f"made-up-{n}")
        headers = {"Authorization": f"Bearer {forger.token()}"}
        assert client.post("/", headers=headers, data=b"{}").status_code == 401
    assert len(fetched) - before <= 1  # at most one refetch a minute


def test_unreachable_certificates_refuse_the_token_not_the_server(
    push_client: Callable[..., Any], google: tuple[_Google, str, list[str]]
) -> None:
    signer, _, _ = google
    client = push_client(FALCONET_PUSH_CERTS_URL=f"http://127.0.0.1:{free_port()}/certs")
    answer = client.post("/", headers={"Authorization": f"Bearer {signer.token()}"}, data=b"{}")
    assert answer.status_code == 401
    answer = client.post("/", headers={"Authorization": f"Bearer {TOKEN}"}, data=b"{}")
    assert answer.status_code == 400  # the bearer token still gets in: the body is the problem


@pytest.mark.parametrize("auth", ["Bearer " + "A" * 20000, "Bearer a.b.c", "Basic eDp5", ""])
def test_garbage_authorization_is_refused(push_client: Callable[..., Any], auth: str) -> None:
    answer = push_client().post("/", headers={"Authorization": auth}, data=b"{}")
    assert answer.status_code == 401


def test_the_bearer_token_still_works_beside_push_tokens(
    push_client: Callable[..., Any], capfd: pytest.CaptureFixture[str]
) -> None:
    client = push_client()
    capfd.readouterr()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    answer = client.post("/", headers=headers, data=_push_body(_deleted_namespace()))
    assert answer.status_code == 200
    assert _printed(capfd)[0] == ["Test Namespace Deleted"]


def test_a_pushed_entry_of_another_log_is_acknowledged_not_redelivered(
    push_client: Callable[..., Any], google: tuple[_Google, str, list[str]]
) -> None:
    """Pub/Sub redelivers anything not answered 2xx: an entry that is not a Kubernetes audit
    entry (a sink filter wider than needed) is counted as skipped and acknowledged."""
    signer, _, _ = google
    headers = {"Authorization": f"Bearer {signer.token()}"}
    answer = push_client().post("/", headers=headers, data=_push_body(_other_service()))
    assert answer.status_code == 200
    assert answer.get_json()["events"] == 0
    assert answer.get_json()["skipped_by_reason"] == {"not a Kubernetes audit log entry": 1}


def test_push_settings_are_checked_at_the_cold_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FALCONET_RULES", str(RULES))
    monkeypatch.setenv("FALCONET_PUSH_AUDIENCE", AUDIENCE)
    monkeypatch.delenv("FALCONET_PUSH_SERVICE_ACCOUNTS", raising=False)
    with pytest.raises(Exception, match="FALCONET_PUSH_SERVICE_ACCOUNTS"):
        create_app("audit_http", MAIN, "http")


# -- Eventarc's Pub/Sub CloudEvents ----------------------------------------------------------------
def _message_published(entry: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    """`google.cloud.pubsub.topic.v1.messagePublished` in binary mode, as Eventarc sends it."""
    headers = {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": "2070443601311540",
        "ce-source": PUBSUB_SOURCE,
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-time": "2024-01-01T01:00:08.123Z",
    }
    return headers, _push_body(entry)  # MessagePublishedData: {message, subscription}


@pytest.mark.parametrize("target", ["audit_http", "audit_cloudevent"])
def test_eventarc_pubsub_cloudevents_are_evaluated(
    target: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FALCONET_RULES", str(RULES))
    signature = "http" if target == "audit_http" else "cloudevent"
    client = create_app(target, MAIN, signature).test_client()
    headers, body = _message_published(_deleted_namespace())
    capfd.readouterr()
    assert client.post("/", headers=headers, data=body).status_code == 200
    rules, logs = _printed(capfd)
    assert rules == ["Test Namespace Deleted"]
    assert logs[0]["events"] == 1


# -- the Pub/Sub sink ------------------------------------------------------------------------------
class _PubSub:
    """Pub/Sub's REST publish API on loopback: records each request's messages and answers with
    `status(messages)` (200 with message ids by default)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, list[dict[str, Any]], dict[str, str]]] = []
        self.status: Callable[[list[dict[str, Any]]], int] = lambda messages: 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                messages = body["messages"]
                outer.requests.append((self.path, messages, dict(self.headers)))
                status = outer.status(messages)
                if status == 200:
                    answer = {"messageIds": [str(i) for i in range(len(messages))]}
                else:
                    answer = {"error": {"code": status, "message": "no", "status": "X"}}
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def alerts(self) -> list[tuple[dict[str, Any], dict[str, str]]]:
        return [
            (json.loads(base64.b64decode(m["data"])), m["attributes"])
            for _, messages, _ in self.requests
            for m in messages
        ]


@pytest.fixture
def pubsub(monkeypatch: pytest.MonkeyPatch) -> Iterator[_PubSub]:
    fake = _PubSub()
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", fake.host)
    monkeypatch.setenv("FALCONET_PUBSUB_TOPIC", "projects/acme-prod/topics/falconet-alerts")
    monkeypatch.setenv("FALCONET_RULES", str(RULES))
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


BATCH = (ROOT / "examples" / "audit-batch.json").read_bytes()


def test_alerts_are_published_to_the_pubsub_topic(pubsub: _PubSub) -> None:
    client = create_app("audit_http", MAIN, "http").test_client()
    answer = client.post("/?cluster=gke-prod", data=BATCH, content_type="application/json")
    assert answer.status_code == 200
    assert answer.get_json()["delivered"] == {"pubsub": 3}
    ((path, _, headers),) = pubsub.requests  # one request for the invocation's three alerts
    assert path == "/v1/projects/acme-prod/topics/falconet-alerts:publish"
    assert "Authorization" not in headers  # the emulator takes no token
    published = pubsub.alerts()
    assert sorted(a["rule"] for a, _ in published) == [
        "Test Cluster Admin Binding",
        "Test Exec",
        "Test Namespace Deleted",
    ]
    for alert, attributes in published:
        assert attributes == {
            "rule": alert["rule"],
            "priority": alert["priority"],
            "source": "k8s_audit",
            "uuid": alert["uuid"],
            "cluster": "gke-prod",
        }


def test_a_message_pubsub_refuses_is_dropped_and_the_others_published(pubsub: _PubSub) -> None:
    def refuse_exec(messages: list[dict[str, Any]]) -> int:
        rules = [m["attributes"]["rule"] for m in messages]
        return 400 if "Test Exec" in rules else 200

    pubsub.status = refuse_exec
    client = create_app("audit_http", MAIN, "http").test_client()
    answer = client.post("/", data=BATCH, content_type="application/json").get_json()
    assert (answer["delivered"], answer["dropped"]) == ({"pubsub": 2}, {"pubsub": 1})
    assert [len(m) for _, m, _ in pubsub.requests] == [3, 1, 1, 1]  # the batch, then each alone


def test_a_topic_that_does_not_exist_fails_the_request_for_a_retry(pubsub: _PubSub) -> None:
    pubsub.status = lambda messages: 404
    client = create_app("audit_http", MAIN, "http").test_client()
    answer = client.post("/", data=BATCH, content_type="application/json")
    assert answer.status_code == 503
    assert "Pub/Sub sink projects/acme-prod/topics/falconet-alerts" in answer.get_json()["error"]
    assert "HTTP 404" in answer.get_json()["error"]


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"FALCONET_PUBSUB_TOPIC": "falconet-alerts"}, "FALCONET_PUBSUB_TOPIC"),
        (
            {"FALCONET_PUSH_AUDIENCE": AUDIENCE, "FALCONET_PUSH_SERVICE_ACCOUNTS": "not-an-email"},
            "FALCONET_PUSH_SERVICE_ACCOUNTS",
        ),
        (
            {
                "FALCONET_PUSH_AUDIENCE": AUDIENCE,
                "FALCONET_PUSH_SERVICE_ACCOUNTS": PUSHER,
                "FALCONET_PUSH_CERTS_URL": "file:///etc/passwd",
            },
            "FALCONET_PUSH_CERTS_URL",
        ),
    ],
    ids=["topic-not-a-path", "account-not-an-email", "certs-not-http"],
)
def test_bad_google_settings_name_their_variable(env: dict[str, str], named: str) -> None:
    from falconet.config import Settings
    from falconet.errors import ConfigError

    settings = Settings(env)
    with pytest.raises(ConfigError, match=named):
        settings.sinks  # noqa: B018
        settings.http  # noqa: B018
