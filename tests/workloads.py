"""Audit events of workloads and their pods, as the API server logs them at the RequestResponse
level: a `kubectl apply` of a Deployment, the ReplicaSet its controller creates, the pods the
ReplicaSet's controller creates (with `generateName`, so `objectRef.name` is absent), and the same
for CronJob -> Job -> Pod and DaemonSet -> Pod. Shared by the unit and functional tests of
attribution."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

T0 = datetime(2026, 3, 11, 15, 45, 5, tzinfo=UTC)
ALICE = "alice@example.com"
BOB = "bob@example.com"
CAROL = "carol@example.com"
ARGOCD = "system:serviceaccount:argocd:argocd-application-controller"
DEPLOYMENT_CONTROLLER = "system:serviceaccount:kube-system:deployment-controller"
REPLICASET_CONTROLLER = "system:serviceaccount:kube-system:replicaset-controller"
CRONJOB_CONTROLLER = "system:serviceaccount:kube-system:cronjob-controller"
JOB_CONTROLLER = "system:serviceaccount:kube-system:job-controller"
DAEMONSET_CONTROLLER = "system:serviceaccount:kube-system:daemon-set-controller"

_GROUPS = {
    "deployments": "apps",
    "replicasets": "apps",
    "daemonsets": "apps",
    "statefulsets": "apps",
    "jobs": "batch",
    "cronjobs": "batch",
    "pods": "",
}
_KINDS = {
    "deployments": "Deployment",
    "replicasets": "ReplicaSet",
    "daemonsets": "DaemonSet",
    "statefulsets": "StatefulSet",
    "jobs": "Job",
    "cronjobs": "CronJob",
    "pods": "Pod",
}


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _uid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts)))


def owner_ref(kind: str, name: str, namespace: str = "shop") -> dict[str, Any]:
    """A controller ownerReference, as the controllers set it."""
    api = "batch/v1" if kind in ("Job", "CronJob") else "apps/v1"
    return {
        "apiVersion": api,
        "kind": kind,
        "name": name,
        "uid": _uid(namespace, kind, name),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_spec(*, privileged: bool = False, image: str = "nginx:1.27") -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "app",
        "image": image,
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "resources": {},
        "terminationMessagePath": "/dev/termination-log",
        "imagePullPolicy": "IfNotPresent",
    }
    if privileged:
        container["securityContext"] = {"privileged": True}
    return {
        "containers": [container],
        "restartPolicy": "Always",
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
    }


def workload_object(
    resource: str,
    name: str,
    *,
    namespace: str = "shop",
    owner: tuple[str, str] | None = None,
    privileged: bool = False,
    generate_name: str | None = None,
) -> dict[str, Any]:
    """The object a create or update sends (pods of a controller have `generateName`)."""
    kind = _KINDS[resource]
    group = _GROUPS[resource]
    metadata: dict[str, Any] = {"namespace": namespace, "labels": {"app": "web"}}
    if generate_name:
        metadata["generateName"] = generate_name
    else:
        metadata["name"] = name
    if owner is not None:
        metadata["ownerReferences"] = [owner_ref(owner[0], owner[1], namespace)]
    template = {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec(privileged=privileged)}
    spec: dict[str, Any]
    if resource == "pods":
        spec = pod_spec(privileged=privileged)
    elif resource == "cronjobs":
        spec = {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template}}}
    elif resource == "jobs":
        spec = {"backoffLimit": 6, "template": template}
    else:
        spec = {"selector": {"matchLabels": {"app": "web"}}, "template": template}
        if resource != "daemonsets":
            spec["replicas"] = 2
    return {
        "kind": kind,
        "apiVersion": f"{group}/v1" if group else "v1",
        "metadata": metadata,
        "spec": spec,
    }


def write_event(
    verb: str,
    resource: str,
    name: str,
    user: str,
    when: datetime,
    *,
    namespace: str = "shop",
    owner: tuple[str, str] | None = None,
    privileged: bool = False,
    code: int | None = None,
    generate_name: str | None = None,
    level: str = "RequestResponse",
    subresource: str | None = None,
    request_object: Any = None,
) -> dict[str, Any]:
    """A create/update/patch of a pod or workload as the API server logs it."""
    group = _GROUPS[resource]
    code = code or (201 if verb == "create" else 200)
    ref: dict[str, Any] = {
        "resource": resource,
        "namespace": namespace,
        "apiVersion": "v1",
    }
    if group:
        ref["apiGroup"] = group
    if not generate_name:
        ref["name"] = name
    if subresource:
        ref["subresource"] = subresource
    prefix = f"/apis/{group}/v1" if group else "/api/v1"
    uri = f"{prefix}/namespaces/{namespace}/{resource}"
    if verb != "create":
        uri += f"/{name}"
    body = (
        request_object
        if request_object is not None
        else workload_object(
            resource,
            name,
            namespace=namespace,
            owner=owner,
            privileged=privileged,
            generate_name=generate_name,
        )
    )
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": level,
        "auditID": str(uuid.uuid4()),
        "stage": "ResponseComplete",
        "requestURI": uri + ("?fieldManager=kubectl-client-side-apply" if "@" in user else ""),
        "verb": verb,
        "user": {
            "username": user,
            "groups": ["system:serviceaccounts", "system:authenticated"]
            if user.startswith("system:serviceaccount:")
            else ["developers", "system:authenticated"],
        },
        "sourceIPs": ["10.20.3.17" if "@" in user else "172.18.0.2"],
        "userAgent": "kubectl/v1.30.2 (linux/amd64) kubernetes/3968350"
        if "@" in user
        else "kube-controller-manager/v1.30.2 (linux/amd64) kubernetes/3968350/"
        "system:serviceaccount",
        "objectRef": ref,
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": stamp(when - timedelta(milliseconds=4)),
        "stageTimestamp": stamp(when),
        "annotations": {
            "authorization.k8s.io/decision": "allow",
            "authorization.k8s.io/reason": 'RBAC: allowed by ClusterRoleBinding "edit"',
        },
    }
    if level in ("Request", "RequestResponse"):
        event["requestObject"] = body
    if level == "RequestResponse" and code < 300 and isinstance(body, dict) and "spec" in body:
        response = {**body, "metadata": dict(body["metadata"])}
        response["metadata"].update(
            name=name,
            uid=_uid(namespace, body["kind"], name),
            resourceVersion="48213",
            generation=1,
            creationTimestamp=stamp(when).split(".")[0] + "Z",
        )
        response["metadata"].pop("generateName", None)
        event["responseObject"] = response
    return event


def deployment_chain(
    user: str = ALICE, *, when: datetime = T0, privileged: bool = True
) -> list[dict[str, Any]]:
    """`kubectl apply` of Deployment shop/web by `user`, then its ReplicaSet and its first pod."""
    return [
        write_event("create", "deployments", "web", user, when),
        write_event(
            "create",
            "replicasets",
            "web-7d4b9c8f5",
            DEPLOYMENT_CONTROLLER,
            when + timedelta(milliseconds=40),
            owner=("Deployment", "web"),
        ),
        write_event(
            "create",
            "pods",
            "web-7d4b9c8f5-x2x9q",
            REPLICASET_CONTROLLER,
            when + timedelta(milliseconds=90),
            owner=("ReplicaSet", "web-7d4b9c8f5"),
            privileged=privileged,
            generate_name="web-7d4b9c8f5-",
        ),
    ]


def cronjob_chain(user: str = BOB, *, when: datetime = T0) -> list[dict[str, Any]]:
    """CronJob shop/backup created by `user`; at 03:00 its Job, and the Job's pod."""
    run = when + timedelta(hours=11)
    return [
        write_event("create", "cronjobs", "backup", user, when),
        write_event(
            "create",
            "jobs",
            "backup-29034120",
            CRONJOB_CONTROLLER,
            run,
            owner=("CronJob", "backup"),
        ),
        write_event(
            "create",
            "pods",
            "backup-29034120-8kq2d",
            JOB_CONTROLLER,
            run + timedelta(milliseconds=30),
            owner=("Job", "backup-29034120"),
            generate_name="backup-29034120-",
        ),
    ]


def daemonset_chain(user: str = CAROL, *, when: datetime = T0) -> list[dict[str, Any]]:
    """DaemonSet monitoring/node-agent created by `user`, and one of its pods."""
    return [
        write_event("create", "daemonsets", "node-agent", user, when, namespace="monitoring"),
        write_event(
            "create",
            "pods",
            "node-agent-7xk2p",
            DAEMONSET_CONTROLLER,
            when + timedelta(milliseconds=50),
            namespace="monitoring",
            owner=("DaemonSet", "node-agent"),
            generate_name="node-agent-",
        ),
    ]
