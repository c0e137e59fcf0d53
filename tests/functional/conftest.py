"""Real local boundaries for the functional tests: a moto server, AWS resources in it, an HTTP
receiver, and an alert factory.

Fixtures (reusable by every functional test):
- `moto_server` (session): a `ThreadedMotoServer` on 127.0.0.1 (free port), started before any
  client exists; for the session, `AWS_ENDPOINT_URL` points every boto3 client at it, with fake
  credentials and region, and any real AWS profile/credentials files are hidden. Yields its URL.
- `aws` (function): the same server, wiped (`/moto-api/reset`) after the test; `aws.client(name)`
  builds a boto3 client for the test's own setup and checks.
- `sqs_queue`, `fifo_queue` (queue URLs), `sns_topic` (topic ARN), `audit_bucket` (bucket name).
- `http_receiver` (function): a `ThreadingHTTPServer` on 127.0.0.1 recording every request; set
  `statuses` to script its answers (the last one repeats; default 200).
- `receive_all(client, queue_url)`: drains a queue, returning the messages.
- `make_alert`: builds an `Alert` directly (the engine is not needed to test delivery).
"""

from __future__ import annotations

import hashlib
import os
import threading
import urllib.request
import uuid as uuidlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from falconet.alerts import Alert

REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", url)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.setenv("AWS_REGION", REGION)
        # Never let a developer's real profile, token or config leak into a test.
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN"):
            env.delenv(name, raising=False)
        env.setenv("AWS_CONFIG_FILE", os.devnull)
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        yield url
    server.stop()


@dataclass
class Aws:
    url: str

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, region_name=REGION)

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()


@pytest.fixture
def aws(moto_server: str) -> Iterator[Aws]:
    handle = Aws(moto_server)
    yield handle
    handle.reset()


def _name(prefix: str) -> str:
    return f"{prefix}-{uuidlib.uuid4().hex[:12]}"


@pytest.fixture
def sqs_queue(aws: Aws) -> str:
    return str(aws.client("sqs").create_queue(QueueName=_name("alerts"))["QueueUrl"])


@pytest.fixture
def fifo_queue(aws: Aws) -> str:
    response = aws.client("sqs").create_queue(
        QueueName=_name("alerts") + ".fifo", Attributes={"FifoQueue": "true"}
    )
    return str(response["QueueUrl"])


@pytest.fixture
def sns_topic(aws: Aws) -> str:
    return str(aws.client("sns").create_topic(Name=_name("alerts"))["TopicArn"])


@pytest.fixture
def audit_bucket(aws: Aws) -> str:
    name = _name("audit")
    aws.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def receive_all() -> Callable[..., list[dict[str, Any]]]:
    """`receive_all(client, queue_url, **receive_kwargs)`: every message now in the queue."""
    return _receive_all


def _receive_all(client: Any, queue_url: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Every message now in the queue (received and deleted), until a receive comes back empty."""
    messages: list[dict[str, Any]] = []
    while True:
        batch = client.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, **kwargs
        ).get("Messages", [])
        if not batch:
            return messages
        messages += batch
        client.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
            ],
        )


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


@dataclass
class HttpReceiver:
    url: str
    statuses: list[int] = field(default_factory=lambda: [200])
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, request: Received) -> int:
        with self.lock:
            self.requests.append(request)
            return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    receiver: HttpReceiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            status = receiver.answer(
                Received("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            payload = b"ok" if status < 400 else b"nope"
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    host, port = server.server_address[:2]
    receiver = HttpReceiver(url=f"http://{host}:{port}/")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


@pytest.fixture
def make_alert() -> Callable[..., Alert]:
    """`make_alert(n, rule=..., priority=..., cluster=..., padding=0)`: a distinct alert per `n`,
    with a deterministic uuid (as the engine makes one) and `padding` extra bytes in its output."""

    def build(
        n: int,
        *,
        rule: str = "K8s Namespace Deleted",
        priority: str = "Warning",
        cluster: str | None = "prod-eu",
        padding: int = 0,
    ) -> Alert:
        time_ns = 1_773_243_900_123_456_789 + n
        _, nanos = divmod(time_ns, 1_000_000_000)
        clock = "15:45:00"  # the fixed second of time_ns above
        time = f"2026-03-11T{clock}.{nanos:09d}Z"
        namespace = f"team-{n}" + "x" * padding
        message = f"Namespace deleted (user=alice ns={namespace})"
        fields: dict[str, Any] = {
            "evt.time": time_ns,
            "ka.user.name": "alice",
            "ka.target.namespace": namespace,
        }
        if cluster is not None:
            fields["falconet.cluster"] = cluster
        digest = hashlib.sha256(f"{cluster}|{n}|{rule}".encode()).hexdigest()
        return Alert(
            rule=rule,
            priority=priority,
            output=f"{clock}.{nanos:09d}: {priority} {message}",
            time=time,
            time_ns=time_ns,
            tags=("k8s", "mitre_impact"),
            output_fields=fields,
            uuid=str(uuidlib.UUID(digest[:32])),
            hostname="",
            message=message,
        )

    return build


def deliver(sink: Any, alerts: Any, deadline: Any = None) -> Any:
    """One invocation's delivery of `alerts` to `sink` (open, emit, flush); returns its tally."""
    delivery = sink.open(deadline)
    delivery.emit(alerts)
    delivery.flush()
    return delivery.tally


def create_state_table(aws: Aws, *, due_index: bool = True) -> str:
    """The state table as template.yaml's StateTable: `pk` (S) hash key, on demand, TTL on `x`,
    and (unless `due_index` is False) the sparse `due` index the sweep queries."""
    name = f"falconet-state-{uuidlib.uuid4().hex[:8]}"
    client = aws.client("dynamodb")
    attributes = [{"AttributeName": "pk", "AttributeType": "S"}]
    indexes: dict[str, Any] = {}
    if due_index:
        attributes += [
            {"AttributeName": "ds", "AttributeType": "S"},
            {"AttributeName": "da", "AttributeType": "N"},
        ]
        indexes["GlobalSecondaryIndexes"] = [
            {
                "IndexName": "due",
                "KeySchema": [
                    {"AttributeName": "ds", "KeyType": "HASH"},
                    {"AttributeName": "da", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ]
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=attributes,
        BillingMode="PAY_PER_REQUEST",
        **indexes,
    )
    client.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "x"}
    )
    return name


@pytest.fixture
def state_table(aws: Aws) -> str:
    """A new state table, as the template defines it."""
    return create_state_table(aws)
