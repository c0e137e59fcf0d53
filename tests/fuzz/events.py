"""Audit events the rule fuzz targets evaluate: real shapes, and the odd ones decoders let through.

The example webhook batch (a get, a delete, a pod with containers, a binding, a list, a lease), a
pod with ports, capabilities and host paths, one without `auditID` (the reference evaluator's
path), and values of every JSON type where strings are expected."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import ROOT

_BATCH: list[dict[str, Any]] = json.loads((ROOT / "examples" / "audit-batch.json").read_text())[
    "items"
]

_POD = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "auditID": "f0f0f0f0-0000-4000-8000-000000000001",
    "stage": "ResponseComplete",
    "requestURI": "/api/v1/namespaces/demo/pods?fieldManager=kubectl&dryRun=%zz",
    "verb": "create",
    "user": {"username": "é\u202e\x00user", "groups": ["system:masters", 7, None]},
    "impersonatedUser": {"username": None},
    "sourceIPs": ["2001:db8::1", "10.0.0.1"],
    "userAgent": "kubectl/v1.30.0 (linux/amd64)",
    "objectRef": {"resource": "pods", "namespace": "demo", "name": "web", "apiVersion": "v1"},
    "responseStatus": {"code": 201},
    "requestObject": {
        "kind": "Pod",
        "spec": {
            "hostNetwork": True,
            "containers": [
                {
                    "name": "a",
                    "image": "localhost:5000/app@sha256:0",
                    "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": "x"}],
                    "securityContext": {
                        "privileged": True,
                        "capabilities": {"add": ["NET_ADMIN", "SYS_ADMIN"]},
                        "runAsUser": 0,
                    },
                    "command": ["sh", "-c", "id"],
                },
                {"name": "b", "image": "nginx", "ports": "not a list"},
                "not a container",
            ],
            "volumes": [{"name": "v", "hostPath": {"path": "/var/run/docker.sock"}}, 3],
        },
    },
    "annotations": {"authorization.k8s.io/decision": "allow", "cluster_name": "c1"},
    "requestReceivedTimestamp": "2026-03-11T15:45:00.000000Z",
    "stageTimestamp": "2026-03-11T15:45:00.123456Z",
}

_ODD = {
    "auditID": 12,
    "stage": ["ResponseComplete"],
    "verb": 3.5,
    "user": {"username": {"nested": True}, "groups": "not a list"},
    "objectRef": {"resource": None, "subresource": "exec", "name": ""},
    "requestURI": "?" + "&" * 40 + "a=%",
    "requestObject": {"rules": [{"verbs": ["*"], "resources": None}], "subjects": [1, {}]},
    "stageTimestamp": "2026-02-30T25:61:61.9999999999Z",
}

EVENTS: list[dict[str, Any]] = [
    *_BATCH,
    _POD,
    {key: value for key, value in _POD.items() if key != "auditID"},
    _ODD,
    {"auditID": "x", "stageTimestamp": "2026-03-11T15:45:00Z"},
]
