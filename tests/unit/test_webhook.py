"""falconet.webhook: the HTTP contract, called directly (the server side is in tests/functional)."""

from __future__ import annotations

import base64
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from falconet.config import HttpSettings, Settings
from falconet.engine import Engine
from falconet.pipeline import Pipeline
from falconet.runtime import build_pipeline
from falconet.sinks.stdout import StdoutSink
from falconet.webhook import DATA, GCS, S3, classify, handle_request
from tests.conftest import ROOT

BATCH = (ROOT / "examples" / "audit-batch.json").read_bytes()
EXPECTED = {"Test Namespace Deleted": 1, "Test Exec": 1, "Test Cluster Admin Binding": 1}


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    engine = Engine.from_paths([ROOT / "tests" / "data" / "functional_rules.yaml"], hostname="h")
    return Pipeline(engine, [])


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The length of every text `orjson.loads` parses while the test runs."""
    sizes: list[int] = []
    real = orjson.loads

    def counting(data: Any) -> Any:
        sizes.append(len(data))
        return real(data)

    monkeypatch.setattr(orjson, "loads", counting)
    yield sizes


def post(pipeline: Pipeline, body: bytes, **headers: str) -> Any:
    return handle_request(
        pipeline, HttpSettings(), method="POST", headers=headers, body=body, query={}
    )


def test_a_binary_cloudevent_body_is_parsed_once(pipeline: Pipeline, parses: list[int]) -> None:
    headers = {"ce-specversion": "1.0", "ce-type": "io.k8s.audit", "ce-source": "s", "ce-id": "1"}
    response = post(pipeline, BATCH, **headers)
    assert response.status == 200 and response.body["alerts_by_rule"] == EXPECTED
    assert parses == [len(BATCH)]


@pytest.mark.parametrize("encoding", ["data", "data_base64"])
def test_a_structured_cloudevent_is_parsed_once(
    pipeline: Pipeline, parses: list[int], encoding: str
) -> None:
    envelope: dict[str, Any] = {"specversion": "1.0", "type": "t", "source": "s", "id": "1"}
    if encoding == "data":
        envelope["data"] = json.loads(BATCH)
    else:
        envelope["data_base64"] = base64.b64encode(BATCH).decode()
    body = json.dumps(envelope).encode()
    response = post(pipeline, body, **{"content-type": "application/cloudevents+json"})
    assert response.status == 200 and response.body["alerts_by_rule"] == EXPECTED
    # the envelope once; base64 data is text the decoder parses (once) where it finds it
    assert parses == ([len(body)] if encoding == "data" else [len(body), len(BATCH)])


@pytest.mark.parametrize(
    ("attributes", "kind"),
    [
        ({"type": "google.cloud.storage.object.v1.finalized", "source": "//storage"}, GCS),
        ({"type": "Object Created", "source": "aws.s3"}, S3),
        ({"type": "aws.s3.object.created", "source": "x"}, S3),
        (
            {"type": "Object Deleted", "source": "aws.s3"},
            "ignored: S3 Object Deleted is not an object creation",
        ),
        ({"type": "io.k8s.audit", "source": "//k8s/prod"}, DATA),
        ({"type": "", "source": ""}, DATA),
    ],
)
def test_what_a_cloudevent_carries_is_read_from_its_attributes(
    attributes: dict[str, str], kind: str
) -> None:
    assert classify(attributes) == kind


def test_an_s3_event_that_creates_nothing_is_acknowledged(pipeline: Pipeline) -> None:
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "Object Deleted",
        "ce-source": "aws.s3",
        "ce-id": "1",
    }
    response = post(pipeline, b'{"detail": {}}', **headers)
    assert response.status == 200
    assert response.body["ignored"] == ["S3 Object Deleted is not an object creation"]


def test_a_storage_event_without_an_object_is_400(pipeline: Pipeline) -> None:
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "Object Created",
        "ce-source": "aws.s3",
        "ce-id": "1",
    }
    response = post(pipeline, b'{"detail": {}}', **headers)
    assert response.status == 400
    assert response.body["error"] == "the Object Created event does not name a bucket object"


def test_a_batch_with_one_bad_envelope_is_refused_before_anything_is_delivered() -> None:
    out = io.BytesIO()
    engine = Engine.from_paths([ROOT / "tests" / "data" / "functional_rules.yaml"], hostname="h")
    pipeline = Pipeline(engine, [StdoutSink(out)])
    good = {"specversion": "1.0", "type": "t", "source": "s", "id": "1", "data": json.loads(BATCH)}
    bad = {"specversion": "1.0", "type": "t", "id": "2", "data": {}}  # no source
    body = json.dumps([good, bad]).encode()
    response = post(pipeline, body, **{"content-type": "application/cloudevents-batch+json"})
    assert response.status == 400
    assert out.getvalue() == b""  # the good envelope's alerts were not sent either
    response = post(
        pipeline,
        json.dumps([good]).encode(),
        **{"content-type": "application/cloudevents-batch+json"},
    )
    assert response.status == 200 and out.getvalue().count(b"\n") == 3


@pytest.mark.parametrize("length", [10, 100_000])
def test_request_values_are_echoed_bounded_and_printable(pipeline: Pipeline, length: int) -> None:
    attacker = "x" * length + "\n\x1b[31m FAKE"
    headers = {"ce-specversion": "1.0", "ce-type": "t", "ce-source": attacker, "ce-id": attacker}
    response = post(pipeline, b"not json", **headers)
    assert response.status == 400
    text = response.json().decode()
    assert "\n" not in text and "\x1b" not in text  # nothing raw to forge a line or colour it
    if length == 10:
        assert response.body["origins"] == ["xxxxxxxxxx\\n\\x1b[31m FAKE"]  # escaped, readable
    else:
        assert len(text) < 2048  # a 100 KB id is not echoed whole


def test_objects_outside_the_allowed_prefixes_are_not_read(pipeline: Pipeline) -> None:
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "Object Created",
        "ce-source": "aws.s3",
        "ce-id": "1",
    }
    data = b'{"detail": {"bucket": {"name": "secrets"}, "object": {"key": "k"}}}'
    response = post(pipeline, data, **headers)  # no FALCONET_ALLOWED_OBJECTS: nothing is read
    assert response.status == 200
    assert response.body["ignored"] == ["s3://secrets/k is not under FALCONET_ALLOWED_OBJECTS"]


@pytest.fixture(scope="module")
def limited() -> Pipeline:
    """The pipeline the runtime builds when a body may hold 2 records and 1 gzip layer."""
    environ = {
        "FALCONET_RULES": str(ROOT / "tests" / "data" / "functional_rules.yaml"),
        "FALCONET_BODY_MAX_RECORDS": "2",
        "FALCONET_BODY_MAX_GZIP_LAYERS": "1",
    }
    return build_pipeline(Settings(environ))


@pytest.mark.parametrize("mode", ["plain", "binary", "structured"])
def test_a_body_is_decoded_under_the_body_limits_of_the_settings(
    limited: Pipeline, mode: str
) -> None:
    headers = {}
    body = BATCH
    if mode == "binary":
        headers = {"ce-specversion": "1.0", "ce-type": "t", "ce-source": "s", "ce-id": "1"}
    elif mode == "structured":  # parsed by the HTTP layer, decoded by Pipeline.run_value
        headers = {"content-type": "application/cloudevents+json"}
        envelope = {"specversion": "1.0", "type": "t", "source": "s", "id": "1"}
        body = json.dumps({**envelope, "data": json.loads(BATCH)}).encode()
    response = post(limited, body, **headers)
    assert response.status == 200
    assert response.body["events"] == 2
    assert response.body["rejected_by_reason"] == {"input over the record limit": 1}


def test_a_body_nested_past_the_gzip_limit_is_400_naming_the_limit(limited: Pipeline) -> None:
    response = post(limited, gzip.compress(BATCH))
    assert response.status == 200 and response.body["events"] == 2
    response = post(limited, gzip.compress(gzip.compress(BATCH)))
    assert response.status == 400
    assert response.body["error"] == (
        "no audit events in the request body: input over the gzip nesting limit (1)"
    )


def test_a_gzip_bomb_body_is_400_naming_the_limit(pipeline: Pipeline) -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = b"".join(compressor.compress(b" " * (1 << 20)) for _ in range(256))
    response = post(pipeline, bomb + compressor.flush())
    assert response.status == 400
    assert response.body["error"] == (
        "no audit events in the request body: input over the compression ratio limit (1)"
    )


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        (
            {"ce-specversion": "9.9", "ce-type": "t", "ce-source": "s", "ce-id": "1"},
            "not a valid CloudEvent: Found invalid specversion 9.9",
        ),
        (
            {"ce-specversion": "1.0", "ce-type": "t", "ce-source": "s"},
            "a binary-mode CloudEvent needs ce-id, ce-source and ce-type headers (missing: ce-id)",
        ),
        (
            {"ce-specversion": "1.0", "ce-id": "1"},
            "a binary-mode CloudEvent needs ce-id, ce-source and ce-type headers "
            "(missing: ce-source, ce-type)",
        ),
    ],
)
def test_a_binary_cloudevent_is_checked_against_the_specification(
    pipeline: Pipeline, headers: dict[str, str], error: str
) -> None:
    response = post(pipeline, b"{}", **headers)
    assert (response.status, response.body["error"]) == (400, error)


def test_a_structured_cloudevent_with_an_unknown_specversion_is_refused(pipeline: Pipeline) -> None:
    envelope = b'{"specversion": "2.0", "type": "t", "source": "s", "id": "1", "data": {}}'
    response = post(pipeline, envelope, **{"content-type": "application/cloudevents+json"})
    assert response.status == 400
    assert response.body["error"].startswith("not a valid CloudEvent")


def test_a_binary_cloudevent_with_a_structured_content_type_is_read_as_binary(
    pipeline: Pipeline,
) -> None:
    # Found by fuzz_http: the SDK read such a body as a structured event and raised
    # JSONDecodeError (a traceback) for one that is not JSON.
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "io.k8s.audit",
        "ce-source": "s",
        "ce-id": "1",
        "content-type": "application/cloudevents+json",
    }
    response = post(pipeline, b"\x01", **headers)
    assert response.status == 400
    assert response.body["error"] == "the request body is not JSON"  # a named reason
    assert response.body["rejected_by_reason"] == {"not JSON": 1}
