"""Seeded synthetic audit events and the object shapes the decode benchmarks read.

Events imitate the corpus of `bench/corpus.py` (docs/benchmark.md): Metadata-level reads,
Request-level writes with request objects, EKS-style `user.extra`, 0.7-3.3 KB each.
Writers stream to a file: nothing the size of the object is held in memory.
"""

from __future__ import annotations

import gzip
import random
import zlib
from collections.abc import Iterator
from typing import IO, Any

import orjson

VERBS = ["get"] * 34 + ["list", "watch"] * 8 + ["update", "patch"] * 16 + ["create"] * 14
VERBS += ["delete"] * 4
RESOURCES = ["pods", "configmaps", "secrets", "leases", "deployments", "rolebindings", "nodes"]
USERS = [
    "system:serviceaccount:kube-system:replicaset-controller",
    "system:node:ip-10-0-1-23.ec2.internal",
    "system:kube-scheduler",
    "arn:aws:sts::111122223333:assumed-role/Dev/alice",
    "system:anonymous",
]


def events(seed: int = 1) -> Iterator[dict[str, Any]]:
    """An endless, deterministic stream of audit events."""
    rng = random.Random(seed)
    n = 0
    while True:
        n += 1
        verb = rng.choice(VERBS)
        resource = rng.choice(RESOURCES)
        ns = rng.choice(["default", "kube-system", "prod", "ci"])
        name = f"{resource[:-1]}-{rng.randrange(10_000)}"
        event: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata" if verb in ("get", "list", "watch") else "Request",
            "auditID": f"{rng.getrandbits(128):032x}",
            "stage": "ResponseComplete",
            "requestURI": f"/api/v1/namespaces/{ns}/{resource}/{name}",
            "verb": verb,
            "user": {
                "username": rng.choice(USERS),
                "uid": f"{rng.getrandbits(64):016x}",
                "groups": ["system:authenticated", "system:serviceaccounts"],
                "extra": {
                    "accessKeyId": [f"ASIA{rng.getrandbits(64):016X}"],
                    "sessionName": [f"s{n}"],
                },
            },
            "sourceIPs": [f"10.0.{rng.randrange(256)}.{rng.randrange(256)}"],
            "userAgent": "kube-controller-manager/v1.30.2 (linux/amd64) kubernetes/39683505",
            "objectRef": {"resource": resource, "namespace": ns, "name": name, "apiVersion": "v1"},
            "responseStatus": {"metadata": {}, "code": rng.choice([200, 200, 200, 201, 403, 404])},
            "requestReceivedTimestamp": f"2024-06-01T12:{n // 60000 % 60:02d}:"
            f"{n // 1000 % 60:02d}.{n % 1000:03d}000Z",
            "stageTimestamp": f"2024-06-01T12:{n // 60000 % 60:02d}:"
            f"{n // 1000 % 60:02d}.{n % 1000:03d}500Z",
            "annotations": {
                "authorization.k8s.io/decision": "allow",
                "authorization.k8s.io/reason": "RBAC: allowed by ClusterRoleBinding",
            },
        }
        if event["level"] == "Request":
            event["requestObject"] = {
                "kind": "Pod",
                "apiVersion": "v1",
                "metadata": {
                    "name": name,
                    "namespace": ns,
                    "labels": {
                        f"l{i}": f"v{rng.randrange(99)}" for i in range(rng.randrange(1, 12))
                    },
                },
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": f"registry/app:{rng.randrange(99)}",
                            "args": ["--x"] * rng.randrange(1, 30),
                        }
                    ]
                },
            }
        yield event


def write_jsonl_gzip(f: IO[bytes], target_bytes: int, seed: int = 1) -> int:
    """gzip JSON lines of about `target_bytes` uncompressed; returns the event count."""
    count = size = 0
    with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=6, mtime=0) as out:
        for event in events(seed):
            line = orjson.dumps(event) + b"\n"
            out.write(line)
            size += len(line)
            count += 1
            if size >= target_bytes:
                return count
    return count


def _member(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def write_firehose(f: IO[bytes], target_bytes: int, seed: int = 1, per_record: int = 8) -> int:
    """A Firehose S3 object: gzip members of CloudWatch envelopes back to back."""
    count = size = 0
    stream = events(seed)
    while size < target_bytes:
        batch = [next(stream) for _ in range(per_record)]
        envelope = {
            "messageType": "DATA_MESSAGE",
            "owner": "111122223333",
            "logGroup": "/aws/eks/bench/cluster",
            "logStream": "kube-apiserver-audit-0123456789abcdef",
            "subscriptionFilters": ["bench"],
            "logEvents": [
                {
                    "id": str(count + i),
                    "timestamp": 1717243200000 + count + i,
                    "message": orjson.dumps(e).decode(),
                }
                for i, e in enumerate(batch)
            ],
        }
        data = orjson.dumps(envelope)
        f.write(_member(data))
        size += len(data)
        count += per_record
    return count
