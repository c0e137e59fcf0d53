"""`audit_cloudevent` (functions-framework's cloud_event signature) on Eventarc-style triggers."""

from __future__ import annotations

import gzip
import json
import sys
from typing import Any

import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent
from functions_framework import create_app
from tests.conftest import ROOT
from tests.functional.conftest import Aws

RULES = ROOT / "tests" / "data" / "functional_rules.yaml"
BATCH = json.loads((ROOT / "examples" / "audit-batch.json").read_text())
EXPECTED = ["Test Cluster Admin Binding", "Test Exec", "Test Namespace Deleted"]


@pytest.fixture
def client(audit_bucket: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("FALCONET_RULES", str(RULES))
    monkeypatch.setenv("FALCONET_ALLOWED_OBJECTS", f"s3://{audit_bucket}/cluster=,gs://audit")
    return create_app(
        "audit_cloudevent", str(ROOT / "functions" / "main.py"), "cloudevent"
    ).test_client()


def printed(capfd: pytest.CaptureFixture[str]) -> tuple[list[str], list[dict[str, Any]]]:
    out, err = capfd.readouterr()
    rules = sorted(json.loads(x)["rule"] for x in out.splitlines() if x.startswith('{"hostname"'))
    logs = [json.loads(x) for x in err.splitlines() if x.startswith('{"falconet"')]
    return rules, logs


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_audit_data_in_the_event(client: Any, mode: str, capfd: pytest.CaptureFixture[str]) -> None:
    event = CloudEvent(
        {
            "type": "io.k8s.audit.batch",
            "source": "//k8s/prod-eu",
            "datacontenttype": "application/json",
        },
        BATCH,
    )
    headers, body = (to_binary if mode == "binary" else to_structured)(event)
    capfd.readouterr()
    assert client.post("/", headers=headers, data=body).status_code == 200
    rules, logs = printed(capfd)
    assert rules == EXPECTED
    assert [(log["falconet"], log["events"], log["alerts"]) for log in logs] == [
        ("audit_cloudevent", 6, 3)
    ]


def test_s3_object_created_is_read_from_the_bucket(
    client: Any, aws: Aws, audit_bucket: str, capfd: pytest.CaptureFixture[str]
) -> None:
    key = "cluster=prod-eu/audit.log.gz"
    lines = "\n".join(json.dumps(i) for i in BATCH["items"]).encode()
    aws.client("s3").put_object(Bucket=audit_bucket, Key=key, Body=gzip.compress(lines))
    detail = {
        "version": "0",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "region": "us-east-1",
        "account": "123456789012",
        "detail": {"bucket": {"name": audit_bucket}, "object": {"key": key}},
    }
    event = CloudEvent(
        {"type": "Object Created", "source": "aws.s3", "datacontenttype": "application/json"},
        detail,
    )
    headers, body = to_binary(event)
    capfd.readouterr()
    assert client.post("/", headers=headers, data=body).status_code == 200
    rules, logs = printed(capfd)
    assert rules == EXPECTED
    assert logs[0]["origins"] == [f"s3://{audit_bucket}/{key}"]


@pytest.mark.parametrize(
    ("ce_type", "key", "ignored"),
    [
        (
            "Object Created",
            "cluster=x/gone.log.gz",
            "s3://{bucket}/cluster=x/gone.log.gz no longer exists",
        ),
        ("Object Deleted", "cluster=x/a.log.gz", "S3 Object Deleted is not an object creation"),
    ],
    ids=["deleted-since", "not-a-creation"],
)
def test_s3_events_without_an_object_to_read_are_acknowledged(
    client: Any,
    aws: Aws,
    audit_bucket: str,
    capfd: pytest.CaptureFixture[str],
    ce_type: str,
    key: str,
    ignored: str,
) -> None:
    detail = {
        "detail-type": ce_type,
        "source": "aws.s3",
        "detail": {"bucket": {"name": audit_bucket}, "object": {"key": key}},
    }
    event = CloudEvent(
        {"type": ce_type, "source": "aws.s3", "datacontenttype": "application/json"}, detail
    )
    headers, body = to_binary(event)
    capfd.readouterr()
    assert client.post("/", headers=headers, data=body).status_code == 200  # no retry
    _, logs = printed(capfd)
    assert logs[0]["ignored"] == [ignored.format(bucket=audit_bucket)]
    assert "error" not in logs[0]


@pytest.mark.parametrize("where", ["other-bucket", "other-prefix"])
def test_only_objects_under_the_allowed_prefixes_are_read(
    client: Any, aws: Aws, audit_bucket: str, capfd: pytest.CaptureFixture[str], where: str
) -> None:
    """Anyone can send a CloudEvent; the function must not read what it names with its rights."""
    s3 = aws.client("s3")
    bucket = audit_bucket
    if where == "other-bucket":
        bucket = f"{audit_bucket}-secrets"
        s3.create_bucket(Bucket=bucket)
    key = "secrets/cluster=prod/token.log" if where == "other-bucket" else "private/a.log"
    lines = "\n".join(json.dumps(i) for i in BATCH["items"]).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=lines)
    detail = {"detail": {"bucket": {"name": bucket}, "object": {"key": key}}}
    event = CloudEvent({"type": "Object Created", "source": "aws.s3"}, detail)
    headers, body = to_binary(event)
    capfd.readouterr()
    assert client.post("/", headers=headers, data=body).status_code == 200
    rules, logs = printed(capfd)
    assert rules == []
    assert logs[0]["events"] == 0
    assert logs[0]["ignored"] == [f"s3://{bucket}/{key} is not under FALCONET_ALLOWED_OBJECTS"]


def test_gcs_object_without_the_optional_extra_says_what_to_install(
    client: Any,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    from falconet.storage import gcs

    # As without the extra: the import fails (None in sys.modules makes `import` raise).
    monkeypatch.setitem(sys.modules, "google.cloud.storage", None)
    if (cloud := sys.modules.get("google.cloud")) is not None:
        monkeypatch.delattr(cloud, "storage", raising=False)
    gcs.client.cache_clear()
    request.addfinalizer(gcs.client.cache_clear)  # the next test's client is a real one
    event = CloudEvent(
        {
            "type": "google.cloud.storage.object.v1.finalized",
            "source": "//storage.googleapis.com/projects/_/buckets/audit",
            "datacontenttype": "application/json",
        },
        {"bucket": "audit", "name": "cluster=prod/a.log.gz"},
    )
    headers, body = to_binary(event)
    capfd.readouterr()
    r = client.post("/", headers=headers, data=body)
    assert r.status_code == 500  # the trigger retries or dead-letters it
    _, logs = printed(capfd)
    assert "pip install 'falconet[gcs]'" in logs[0]["error"]
