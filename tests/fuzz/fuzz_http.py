"""The HTTP contract (`webhook.handle_request`): any method, headers and body an attacker sends.

The first bytes choose the request form (plain JSON, CloudEvents binary, structured or batch mode,
a token or not, a cluster parameter); the rest is the body. Every request must end in an answer
with a documented status, never an exception."""

from __future__ import annotations

from falconet.config import HttpSettings
from falconet.engine import Engine
from falconet.pipeline import Pipeline
from falconet.webhook import handle_request
from tests.conftest import ROOT

MAX_SECONDS = 3.0
_PIPELINE = Pipeline(Engine.from_paths([ROOT / "rules"], hostname="fuzz"), [])
_SETTINGS = HttpSettings(token="t0k3n", max_body=1 << 20)
_STATUSES = {200, 400, 401, 405, 413}
_CTYPES = (
    "application/json",
    "application/cloudevents+json",
    "application/cloudevents-batch+json",
    "text/plain",
)

SEEDS = [
    b"\x00\x00" + (ROOT / "examples" / "audit-batch.json").read_bytes(),
    b"\x01\x01" + (ROOT / "examples" / "audit-batch.json").read_bytes(),
    b'\x02\x00{"specversion":"1.0","type":"t","source":"s","id":"1","data":{"kind":"EventList",'
    b'"items":[]}}',
    b'\x03\x00[{"specversion":"1.0","type":"Object Created","source":"aws.s3","id":"1",'
    b'"data":{"detail":{"bucket":{"name":"b"},"object":{"key":"k"}}}}]',
    b'\x04\x02{"message":{"data":"e30="}}',
]


def fuzz_one(data: bytes) -> None:
    mode = data[0] if data else 0
    flags = data[1] if len(data) > 1 else 0
    body = data[2:]
    headers = {"content-type": _CTYPES[mode % len(_CTYPES)]}
    if not flags & 1:
        headers["authorization"] = "Bearer t0k3n"
    if mode % 5 == 1:
        headers.update(
            {"ce-specversion": "1.0", "ce-type": "io.k8s", "ce-source": "s", "ce-id": "i"}
        )
    if flags & 2:
        headers["content-length"] = str(len(body) * (flags >> 2))
    query = {"cluster": body[:12].decode("latin-1")} if flags & 4 else {}
    method = "GET" if flags & 8 else "POST"
    response = handle_request(
        _PIPELINE, _SETTINGS, method=method, headers=headers, body=body, query=query
    )
    if response.status not in _STATUSES:
        raise AssertionError(f"status {response.status}: {response.body}")
    response.json()  # the answer always serialises
