"""The Lambda sink through a real HTTP boundary.

moto cannot execute functions without Docker, and an asynchronous invoke is exactly the part that
does not need execution: Lambda only queues the event and answers 202. So the boto3 client the sink
builds is pointed (by botocore's own `AWS_ENDPOINT_URL_LAMBDA`, nothing in our code) at a local
server implementing the Invoke REST path, `POST /2015-03-31/functions/<name>/invocations`, which
records the signed request and answers like Lambda does.
"""

from __future__ import annotations

import io
import json
import threading
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from tests.functional.conftest import deliver

from falconet.errors import SinkError
from falconet.sinks.lambda_invoke import MAX_PAYLOAD_BYTES, LambdaSink


@dataclass
class FakeLambda:
    status: int = 202
    invocations: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def fake_lambda(aws, monkeypatch) -> Iterator[FakeLambda]:
    fake = FakeLambda()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}
            fake.invocations.append((self.path, headers, body))
            if fake.status == 202:
                payload = b""
            else:
                payload = json.dumps(
                    {"Type": "User", "message": "Function not found: falconet-notify"}
                ).encode()
            self.send_response(fake.status)
            if fake.status != 202:
                self.send_header("X-Amzn-ErrorType", "ResourceNotFoundException")
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", f"http://127.0.0.1:{server.server_address[1]}")
    yield fake
    server.shutdown()
    server.server_close()


def test_alerts_are_invoked_asynchronously_in_payloads_under_the_limit(
    fake_lambda, make_alert
) -> None:
    alerts = [make_alert(n, padding=40_000 if n % 2 else 0) for n in range(15)]
    sink = LambdaSink("falconet-notify")
    deliver(sink, alerts)

    assert len(fake_lambda.invocations) > 1  # ~300 KB of alerts do not fit one 256 KiB payload
    received = []
    for path, headers, body in fake_lambda.invocations:
        assert path == "/2015-03-31/functions/falconet-notify/invocations"
        assert headers["x-amz-invocation-type"] == "Event"
        assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")
        assert "/lambda/aws4_request" in headers["authorization"]
        assert len(body) <= MAX_PAYLOAD_BYTES
        received += json.loads(body)["alerts"]
    assert [a["uuid"] for a in received] == [a.uuid for a in alerts]  # order kept
    assert received == [a.to_dict() for a in alerts]
    assert Counter(a["uuid"] for a in received) == Counter(a.uuid for a in alerts)


def test_a_refused_invoke_raises_sink_error(fake_lambda, make_alert) -> None:
    fake_lambda.status = 404
    sink = LambdaSink("falconet-notify")
    with pytest.raises(SinkError, match=r"Lambda falconet-notify: .*ResourceNotFound"):
        deliver(sink, [make_alert(1)])


def test_an_alert_larger_than_a_payload_is_dropped_alone(fake_lambda, make_alert) -> None:
    huge = make_alert(1, padding=300_000)
    tally = deliver(LambdaSink("falconet-notify"), [huge, make_alert(2)])
    assert (tally.delivered, tally.dropped) == (1, 1)
    assert tally.reasons[0].startswith(f"lambda {huge.uuid}: ")
    ((_, _, body),) = fake_lambda.invocations
    assert [a["uuid"] for a in json.loads(body)["alerts"]] == [make_alert(2).uuid]


def test_payloads_go_as_they_fill(fake_lambda, make_alert) -> None:
    delivery = LambdaSink("falconet-notify").open()
    delivery.emit([make_alert(n, padding=50_000) for n in range(5)])  # ~100 KB each
    assert len(fake_lambda.invocations) == 2  # two full payloads sent, the fifth alert held
    delivery.flush()
    assert len(fake_lambda.invocations) == 3
    assert delivery.tally.delivered == 5


def test_moto_accepts_the_event_invoke_of_a_created_function(aws, make_alert) -> None:
    # moto records the invoke and answers 202 (it cannot run the code without Docker, so the
    # payload is checked by the local server above); a missing function is refused.
    role = aws.client("iam").create_role(RoleName="notify-role", AssumeRolePolicyDocument="{}")
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handle(event, context):\n    return None\n")
    aws.client("lambda").create_function(
        FunctionName="falconet-notify",
        Runtime="python3.11",
        Role=role["Role"]["Arn"],
        Handler="handler.handle",
        Code={"ZipFile": code.getvalue()},
    )
    sink = LambdaSink("falconet-notify")
    deliver(sink, [make_alert(n) for n in range(3)])

    missing = LambdaSink("no-such-function")
    with pytest.raises(SinkError, match="ResourceNotFoundException"):
        deliver(missing, [make_alert(1)])
