"""Test helpers: wrap audit events in every envelope falconet reads, the way each service does.

Built here from the formats as AWS, Google and Azure document them, so the tests do not depend
on ../shared being present.
"""

from __future__ import annotations

import base64
import gzip
import io
from typing import Any

import orjson

from falconet.context import EMPTY_CONTEXT, EventContext
from falconet.decode import OBJECT_LIMITS, DecodeLimits, DecodeStats, decode
from tests.conftest import ROOT

DATA = ROOT / "tests" / "data" / "decode"

Event = dict[str, Any]


def load_events() -> list[Event]:
    return [orjson.loads(line) for line in (DATA / "events.jsonl").read_bytes().splitlines()]


def run(
    data: Any,
    context: EventContext = EMPTY_CONTEXT,
    name: str = "t",
    limits: DecodeLimits = OBJECT_LIMITS,
    *,
    falco_json: bool = False,
):
    """(events, contexts, stats) of decoding `data` under `limits`."""
    stats = DecodeStats()
    pairs = list(
        decode(data, stats=stats, context=context, name=name, limits=limits, falco_json=falco_json)
    )
    return [e for e, _ in pairs], [c for _, c in pairs], stats


def check_accounting(stats: DecodeStats) -> None:
    assert stats.records == stats.events + stats.rejected_total + stats.skipped_total


def jsonl(events: list[Event]) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in events)


def gz(data: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) as f:
        f.write(data)
    return out.getvalue()


def cwl_envelope(
    messages: list[str],
    *,
    cluster: str = "demo",
    stream: str = "kube-apiserver-audit-0123456789abcdef",
    owner: str = "111122223333",
    message_type: str = "DATA_MESSAGE",
) -> dict[str, Any]:
    return {
        "messageType": message_type,
        "owner": owner,
        "logGroup": f"/aws/eks/{cluster}/cluster",
        "logStream": stream,
        "subscriptionFilters": ["k8s-audit"],
        "logEvents": [
            {
                "id": str(37480579458490841510417935670958911738223274529153351680 + i),
                "timestamp": 1717243200145 + i,
                "message": m,
            }
            for i, m in enumerate(messages)
        ],
    }


CONTROL = {
    "messageType": "CONTROL_MESSAGE",
    "owner": "CloudwatchLogs",
    "logGroup": "",
    "logStream": "",
    "subscriptionFilters": [],
    "logEvents": [
        {
            "id": "",
            "timestamp": 1717243100000,
            "message": "CWL CONTROL MESSAGE: Checking health of destination Firehose.",
        }
    ],
}


def firehose_object(events: list[Event], *, per_record: int = 2, cluster: str = "demo") -> bytes:
    """Firehose S3 object: one gzip member per CloudWatch record, concatenated, no delimiter."""
    members = [gz(orjson.dumps(CONTROL))]
    for i in range(0, len(events), per_record):
        batch = [orjson.dumps(e).decode() for e in events[i : i + per_record]]
        members.append(gz(orjson.dumps(cwl_envelope(batch, cluster=cluster))))
    return b"".join(members)


def awslogs_event(events: list[Event], cluster: str = "demo") -> bytes:
    envelope = cwl_envelope([orjson.dumps(e).decode() for e in events], cluster=cluster)
    data = base64.b64encode(gz(orjson.dumps(envelope))).decode()
    return orjson.dumps({"awslogs": {"data": data}})


def export_lines(events: list[Event]) -> bytes:
    return b"".join(
        f"2024-06-01T12:00:0{i % 10}.145Z ".encode() + orjson.dumps(e) + b"\n"
        for i, e in enumerate(events)
    )


AKS_RESOURCE = (
    "/SUBSCRIPTIONS/97E9B03F-04D6-4B69-B307-35F483F7ED81/RESOURCEGROUPS/RG/PROVIDERS/"
    "MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/{cluster}"
)


def aks_record(log: str, *, category: str = "kube-audit", cluster: str = "DEMO") -> dict[str, Any]:
    return {
        "operationName": "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
        "category": category,
        "resourceId": AKS_RESOURCE.format(cluster=cluster),
        "properties": {"log": log, "stream": "stdout", "pod": "kube-apiserver-6b497d8d5f-rb9qn"},
        "time": "2024-06-01T12:00:00.0000000Z",
    }


def aks_eventhub(events: list[Event]) -> bytes:
    records = [aks_record(orjson.dumps(e).decode() + "\n") for e in events]
    records.insert(
        1,
        aks_record(
            "I0109 21:24:54.475483 1 event.go:291] hi\n", category="kube-controller-manager"
        ),
    )
    return orjson.dumps({"records": records})


def aks_pt1h(events: list[Event]) -> bytes:
    return b"".join(
        orjson.dumps(aks_record(orjson.dumps(e).decode() + "\n")) + b"\n" for e in events
    )


def log_entry(
    method: str = "io.k8s.core.v1.pods.create",
    resource_name: str = "core/v1/namespaces/default/pods/web-0",
    *,
    status: dict[str, Any] | None = None,
    request: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    authorization: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
        "authenticationInfo": {"principalEmail": "mallory@example.com"},
        "methodName": method,
        "resourceName": resource_name,
        "requestMetadata": {"callerIp": "203.0.113.9", "callerSuppliedUserAgent": "kubectl/1.30"},
        "serviceName": "k8s.io",
    }
    if status is not None:
        payload["status"] = status
    if request is not None:
        payload["request"] = request
    if authorization is not None:
        payload["authorizationInfo"] = authorization
    return {
        "insertId": "e7b3c1a0-0000-4000-8000-00000000abcd",
        "labels": labels if labels is not None else {"authorization.k8s.io/decision": "allow"},
        "logName": "projects/acme-prod/logs/cloudaudit.googleapis.com%2Factivity",
        "operation": {"first": True, "id": "x", "last": True, "producer": "k8s.io"},
        "protoPayload": payload,
        "receiveTimestamp": "2024-01-01T01:00:07.5Z",
        "resource": {
            "labels": {
                "cluster_name": "gke-prod",
                "location": "europe-west1",
                "project_id": "acme-prod",
            },
            "type": "k8s_cluster",
        },
        "timestamp": "2024-01-01T01:00:00.123456Z",
    }
