"""A seeded corpus of realistic audit events for `make bench`.

The mix (docs/benchmark.md) is about 34 % get, 16 % list/watch, 32 %
update/patch, 14 % create, 4 % delete; users 45 % service accounts, 25 % nodes, 15 % system
components, 2 % anonymous, 13 % humans (EKS-style IAM identities with `user.extra`). Reads are
Metadata level; writes carry request objects (pods with security contexts, leases, RBAC,
configmaps). Mean event size is ~1.7 KB. A small share of events is what attackers and careless
humans do (exec, secrets reads, privileged pods, cluster-admin bindings) so rules do fire.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

VERBS = ["get"] * 34 + ["list", "watch"] * 8 + ["update", "patch"] * 16 + ["create"] * 14
VERBS += ["delete"] * 4
NAMESPACES = ["default", "kube-system", "prod", "staging", "monitoring", "ci"]
CONTROLLERS = [
    "replicaset-controller",
    "deployment-controller",
    "endpointslice-controller",
    "generic-garbage-collector",
    "coredns",
    "aws-node",
    "cluster-autoscaler",
]
SYSTEM_USERS = [
    "system:kube-controller-manager",
    "system:kube-scheduler",
    "system:apiserver",
    "eks:certificate-controller",
    "eks:node-manager",
]
HUMANS = ["alice", "bob", "carol", "dave", "erin"]
RESOURCES_BY_ACTOR = {
    "sa": ["pods", "replicasets", "endpointslices", "leases", "configmaps", "events", "secrets"],
    "node": ["pods", "nodes", "leases", "configmaps", "secrets", "services"],
    "system": ["leases", "pods", "events", "serviceaccounts", "endpoints", "nodes"],
    "human": [
        "pods",
        "deployments",
        "configmaps",
        "secrets",
        "services",
        "namespaces",
        "rolebindings",
        "clusterrolebindings",
        "clusterroles",
        "ingresses",
    ],
    "anonymous": ["namespaces", "pods", "secrets"],
}


def _actor(rng: random.Random) -> str:
    x = rng.random()
    if x < 0.45:
        return "sa"
    if x < 0.70:
        return "node"
    if x < 0.85:
        return "system"
    if x < 0.87:
        return "anonymous"
    return "human"


def _user(rng: random.Random, actor: str, n: int) -> tuple[dict[str, Any], str, str]:
    if actor == "sa":
        name = rng.choice(CONTROLLERS)
        node = f"ip-10-0-{rng.randrange(4)}-{rng.randrange(2, 60)}.ec2.internal"
        return (
            {
                "username": f"system:serviceaccount:kube-system:{name}",
                "uid": f"{rng.getrandbits(64):016x}",
                "groups": [
                    "system:serviceaccounts",
                    "system:serviceaccounts:kube-system",
                    "system:authenticated",
                ],
                "extra": {  # bound service account tokens (Kubernetes >= 1.30)
                    "authentication.kubernetes.io/credential-id": [
                        f"JTI={rng.getrandbits(128):032x}"
                    ],
                    "authentication.kubernetes.io/node-name": [node],
                    "authentication.kubernetes.io/node-uid": [f"{rng.getrandbits(128):032x}"],
                    "authentication.kubernetes.io/pod-name": [f"{name}-7d4b9c-{n:05d}"],
                    "authentication.kubernetes.io/pod-uid": [f"{rng.getrandbits(128):032x}"],
                },
            },
            f"10.0.{rng.randrange(4)}.{rng.randrange(2, 60)}",
            f"{name}/v1.30.2 (linux/amd64) kubernetes/39683505",
        )
    if actor == "node":
        ip = f"10.0.{rng.randrange(4)}.{rng.randrange(2, 60)}"
        return (
            {
                "username": f"system:node:ip-{ip.replace('.', '-')}.ec2.internal",
                "groups": ["system:nodes", "system:authenticated"],
            },
            ip,
            "kubelet/v1.30.2 (linux/amd64) kubernetes/39683505",
        )
    if actor == "system":
        name = rng.choice(SYSTEM_USERS)
        return (
            {"username": name, "groups": ["system:authenticated"]},
            "10.0.0.10",
            f"{name.split(':')[-1]}/v1.30.2 (linux/amd64) kubernetes/39683505",
        )
    if actor == "anonymous":
        return (
            {"username": "system:anonymous", "groups": ["system:unauthenticated"]},
            f"198.51.100.{rng.randrange(1, 30)}",
            "curl/8.5.0",
        )
    human = rng.choice(HUMANS)
    return (
        {
            "username": f"{human}@example.com",
            "uid": f"aws-iam-authenticator:{human}",
            "groups": ["system:authenticated", "developers"],
            "extra": {
                "accessKeyId": [f"ASIA{rng.getrandbits(64):016X}"],
                "arn": [f"arn:aws:sts::111122223333:assumed-role/Dev/{human}"],
                "canonicalArn": ["arn:aws:iam::111122223333:role/Dev"],
                "principalId": [f"AROA{rng.getrandbits(48):012X}"],
                "sessionName": [human],
            },
        },
        f"81.2.69.{rng.randrange(100, 200)}",
        "kubectl/v1.30.2 (darwin/arm64) kubernetes/abc",
    )


def _pod(rng: random.Random, name: str, ns: str) -> dict[str, Any]:
    privileged = rng.random() < 0.01
    containers = [
        {
            "name": f"c{i}",
            "image": f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/app{i}:1.{rng.randrange(40)}",
            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
            "resources": {"limits": {"cpu": "500m", "memory": "512Mi"}},
            "securityContext": {
                "privileged": privileged,
                "runAsNonRoot": not privileged,
                "allowPrivilegeEscalation": privileged,
            },
        }
        for i in range(rng.randrange(1, 3))
    ]
    spec: dict[str, Any] = {
        "containers": containers,
        "serviceAccountName": "default",
        "volumes": [{"name": "token", "projected": {"sources": []}}],
    }
    if rng.random() < 0.005:
        spec["hostNetwork"] = True
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {"app": name.split("-", maxsplit=1)[0], "pod-template-hash": "7d4b9c"},
        },
        "spec": spec,
    }


def _managed_fields(rng: random.Random, manager: str) -> list[dict[str, Any]]:
    """What server-side apply records on every written object (a large share of real writes)."""
    return [
        {
            "manager": manager,
            "operation": rng.choice(["Update", "Apply"]),
            "apiVersion": "v1",
            "time": "2026-03-11T15:45:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {
                    "f:labels": {".": {}, "f:app": {}},
                    "f:annotations": {".": {}, "f:checksum/config": {}},
                },
                "f:spec": {
                    "f:replicas": {},
                    "f:template": {
                        "f:spec": {"f:containers": {'k:{"name":"c0"}': {".": {}, "f:image": {}}}}
                    },
                },
            },
        }
    ]


def _request_object(rng: random.Random, resource: str, name: str, ns: str) -> dict[str, Any]:
    obj = _request_object_body(rng, resource, name, ns)
    metadata = obj.setdefault("metadata", {})
    metadata["managedFields"] = _managed_fields(rng, rng.choice(CONTROLLERS))
    metadata.setdefault("annotations", {})["checksum/config"] = f"{rng.getrandbits(256):064x}"
    return obj


def _request_object_body(rng: random.Random, resource: str, name: str, ns: str) -> dict[str, Any]:
    if resource == "pods":
        return _pod(rng, name, ns)
    if resource == "leases":
        return {
            "kind": "Lease",
            "apiVersion": "coordination.k8s.io/v1",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "holderIdentity": name,
                "leaseDurationSeconds": 40,
                "renewTime": "2026-03-11T15:45:00.000000Z",
            },
        }
    if resource in ("rolebindings", "clusterrolebindings"):
        role = "cluster-admin" if rng.random() < 0.1 else "view"
        return {
            "kind": "RoleBinding",
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": name},
            "roleRef": {
                "kind": "ClusterRole",
                "name": role,
                "apiGroup": "rbac.authorization.k8s.io",
            },
            "subjects": [
                {
                    "kind": "User",
                    "name": "mallory@example.com",
                    "apiGroup": "rbac.authorization.k8s.io",
                }
            ],
        }
    if resource == "configmaps":
        return {
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "metadata": {"name": name},
            "data": {"app.properties": "mode=prod\nlevel=info\n" * rng.randrange(1, 8)},
        }
    return {"kind": resource[:-1].title(), "apiVersion": "v1", "metadata": {"name": name}}


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def events(seed: int = 42) -> Iterator[dict[str, Any]]:
    """An endless, deterministic stream of audit events."""
    rng = random.Random(seed)
    n = 0
    while True:
        n += 1
        actor = _actor(rng)
        user, ip, agent = _user(rng, actor, n)
        verb = rng.choice(VERBS)
        resource = rng.choice(RESOURCES_BY_ACTOR[actor])
        cluster_scoped = resource in ("namespaces", "nodes", "clusterrolebindings", "clusterroles")
        ns = None if cluster_scoped else rng.choice(NAMESPACES)
        name = f"{resource[:-1]}-{rng.randrange(5000)}"
        subresource = None
        if actor == "human" and resource == "pods" and rng.random() < 0.1:
            subresource, verb = "exec", "create"
        listing = verb in ("list", "watch")
        ref: dict[str, Any] = {"resource": resource, "apiVersion": "v1"}
        if ns:
            ref["namespace"] = ns
        if not listing:
            ref["name"] = name
        if subresource:
            ref["subresource"] = subresource
        path = f"/api/v1/{'namespaces/' + ns + '/' if ns else ''}{resource}"
        uri = path if listing else f"{path}/{name}"
        if subresource:
            uri += "/exec?command=sh&container=c0&stdin=true&tty=true"
        code = 200 if rng.random() < 0.93 else rng.choice([403, 404, 409])
        if verb == "create" and code == 200:
            code = 201
        seconds = n // 400
        stamp = (
            f"2026-03-11T{15 + seconds // 3600 % 8:02d}:{seconds // 60 % 60:02d}:"
            f"{seconds % 60:02d}.{(n * 7919) % 1_000_000:06d}Z"
        )
        event: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata" if verb in ("get", "list", "watch", "delete") else "Request",
            "auditID": _uuid(rng),
            "stage": "ResponseStarted" if subresource else "ResponseComplete",
            "requestURI": uri,
            "verb": verb,
            "user": user,
            "sourceIPs": [ip],
            "userAgent": agent,
            "objectRef": ref,
            "responseStatus": {"metadata": {}, "code": 101 if subresource else code},
            "requestReceivedTimestamp": stamp,
            "stageTimestamp": stamp,
            "annotations": {
                "apiserver.latency.k8s.io/total": f"{rng.randrange(1, 90)}ms",
                "apiserver.latency.k8s.io/etcd": f"{rng.randrange(1, 30)}ms",
                "authorization.k8s.io/decision": "allow" if code != 403 else "forbid",
                "authorization.k8s.io/reason": "RBAC: allowed by ClusterRoleBinding "
                f'"system:{actor}" of ClusterRole "system:{actor}" to Group '
                '"system:authenticated"',
            },
        }
        if event["level"] == "Request":
            event["requestObject"] = _request_object(rng, resource, name, ns or "")
        yield event


# --------------------------------------------------------------------------------------------
# The harder corpus: what real traffic does to the caches

POD_SPEC_CONTAINERS = (1, 5)  # a realistic pod has sidecars: containers per pod, inclusive


def _address_pool(rng: random.Random, size: int) -> list[str]:
    """`size` distinct client addresses: most are pod and node addresses in large private ranges
    (a cluster of thousands of nodes), a quarter public clients, a few IPv6 (dual-stack)."""
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < size:
        x = rng.random()
        if x < 0.65:
            ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        elif x < 0.72:
            ip = f"172.{rng.randrange(16, 32)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        elif x < 0.96:
            first = rng.choice([3, 13, 18, 34, 35, 52, 54, 81, 91, 104, 142, 185, 198, 203])
            ip = f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        else:
            a, b, c = (rng.getrandbits(16) for _ in range(3))
            ip = f"2600:1f18:{a:x}:{b:x}::{c:x}"
        if ip not in seen:
            seen.add(ip)
            out.append(ip)
    return out


def _big_container(rng: random.Random, i: int, privileged: bool) -> dict[str, Any]:
    return {
        "name": f"c{i}",
        "image": f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/app{i}:1.{rng.randrange(40)}",
        "command": ["/bin/app", "--config=/etc/app/config.yaml", f"--shard={rng.randrange(64)}"],
        "env": [
            {"name": f"ENV_{k}", "value": f"{rng.getrandbits(64):016x}"}
            for k in range(rng.randrange(4, 16))
        ]
        + [
            {
                "name": "POD_IP",
                "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}},
            }
        ],
        "ports": [{"containerPort": 8080 + k, "protocol": "TCP"} for k in range(2)],
        "resources": {
            "limits": {"cpu": "500m", "memory": "512Mi"},
            "requests": {"cpu": "100m", "memory": "128Mi"},
        },
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/app", "readOnly": True},
            {
                "name": "kube-api-access",
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            },
        ],
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
        },
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"}},
        "imagePullPolicy": "IfNotPresent",
        "terminationMessagePath": "/dev/termination-log",
        "securityContext": {
            "privileged": privileged,
            "runAsNonRoot": not privileged,
            "allowPrivilegeEscalation": privileged,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def _big_managed_fields(rng: random.Random) -> list[dict[str, Any]]:
    """Several managers, each owning a deep fieldsV1 tree (as real pods and deployments carry)."""
    fields = []
    for manager in rng.sample(CONTROLLERS, rng.randrange(2, 5)):
        containers = {
            f'k:{{"name":"c{k}"}}': {
                ".": {},
                "f:image": {},
                "f:env": {f'k:{{"name":"ENV_{j}"}}': {".": {}, "f:value": {}} for j in range(6)},
                "f:resources": {"f:limits": {"f:cpu": {}, "f:memory": {}}},
            }
            for k in range(rng.randrange(1, 4))
        }
        fields.append(
            {
                "manager": manager,
                "operation": rng.choice(["Update", "Apply"]),
                "apiVersion": "v1",
                "time": "2026-03-11T15:45:00Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:metadata": {"f:labels": {".": {}, "f:app": {}, "f:pod-template-hash": {}}},
                    "f:spec": {"f:containers": containers},
                },
            }
        )
    return fields


def hard_events(seed: int = 42, addresses: int = 40_000) -> Iterator[dict[str, Any]]:
    """`events(seed)` made as hard on the caches as real traffic: every event stamped at a random
    time of one day (out of order, as merged batches are; mixed fraction lengths as clients and
    API servers write them), its client address drawn from `addresses` distinct ones, pods with
    several large containers, written objects with several managers' managedFields, and pods
    created at level RequestResponse (the response object, status included)."""
    rng = random.Random(seed + 1)
    pool = _address_pool(rng, addresses)
    day = 1773187200  # 2026-03-11T00:00:00Z
    import time as _time

    for event in events(seed):
        second = day + rng.randrange(86_400)
        head = _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(second))
        digits = rng.choice((6, 6, 6, 9, 3, 0))
        fraction = f".{rng.getrandbits(30) % 10**digits:0{digits}d}" if digits else ""
        event["stageTimestamp"] = f"{head}{fraction}Z"
        event["requestReceivedTimestamp"] = f"{head}.000000Z"
        ips = [rng.choice(pool)]
        if rng.random() < 0.1:  # behind a proxy: X-Forwarded-For adds the proxy's address
            ips.append(rng.choice(pool))
        event["sourceIPs"] = ips
        obj = event.get("requestObject")
        if obj is not None:
            obj["metadata"]["managedFields"] = _big_managed_fields(rng)
            if obj.get("kind") == "Pod":
                privileged = any(
                    c["securityContext"]["privileged"] for c in obj["spec"]["containers"]
                )
                obj["spec"]["containers"] = [
                    _big_container(rng, i, privileged)
                    for i in range(rng.randrange(*POD_SPEC_CONTAINERS))
                ]
                obj["spec"]["tolerations"] = [
                    {"key": "node.kubernetes.io/not-ready", "operator": "Exists"},
                    {"key": "node.kubernetes.io/unreachable", "operator": "Exists"},
                ]
                obj["spec"]["volumes"].append({"name": "config", "configMap": {"name": "app"}})
                if event["verb"] == "create":
                    event["level"] = "RequestResponse"
                    event["responseObject"] = {
                        **obj,
                        "status": {
                            "phase": "Pending",
                            "qosClass": "Burstable",
                            "conditions": [{"type": "PodScheduled", "status": "False"}],
                        },
                    }
        yield event
