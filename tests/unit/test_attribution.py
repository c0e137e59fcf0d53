"""Attribution: who is behind a controller's pod, on realistic audit events (tests/workloads.py).

What a user relies on, each shown by one test: the chains Kubernetes builds resolve to the person
who wrote the top workload, in one invocation or across invocations; platform controllers are
skipped and a GitOps tool is named; an unknown owner leaves the fields absent; writes merge in
any order and a re-delivered object writes nothing; the rules see the fields.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import orjson
import pytest

from falconet import EventContext
from falconet.attribution import (
    ATTRIBUTED,
    TTL_DAYS,
    AttributionBatch,
    Attributor,
    Record,
    Write,
    is_platform,
    merge,
)
from falconet.engine import Engine
from falconet.errors import StateError
from falconet.pipeline import Pipeline
from falconet.state import MemoryStore
from tests.conftest import BUNDLED_RULES
from tests.workloads import (
    ALICE,
    ARGOCD,
    BOB,
    CAROL,
    DEPLOYMENT_CONTROLLER,
    REPLICASET_CONTROLLER,
    T0,
    cronjob_chain,
    daemonset_chain,
    deployment_chain,
    write_event,
)

CTX = EventContext(cluster="prod-eu")
NOW = T0.timestamp() + 3600


def cluster_of(_event: Any, ctx: EventContext) -> str | None:
    return ctx.cluster


def attributor(store: MemoryStore | None = None) -> Attributor:
    if store is None:
        store = MemoryStore(clock=lambda: NOW)
    return Attributor(store, cluster=cluster_of, clock=lambda: NOW)


def see_all(batch: AttributionBatch, events: list[dict[str, Any]]) -> list[EventContext]:
    return [batch.see(e, CTX) for e in events]


def owner(ctx: EventContext) -> tuple[str | None, str | None, str | None]:
    return ctx.owner_user, ctx.owner_kind, ctx.owner_name


# ---- the chains, in one invocation ---------------------------------------------------------------


def test_a_deployments_pod_names_the_person_who_applied_the_deployment() -> None:
    batch = attributor().batch()
    deployment, replicaset, pod = see_all(batch, deployment_chain(ALICE))
    assert owner(deployment) == (None, None, None)  # a top workload has no owner above it
    assert owner(replicaset) == (ALICE, "Deployment", "web")
    assert owner(pod) == (ALICE, "Deployment", "web")
    assert pod.cluster == "prod-eu"
    batch.flush()
    assert batch.counters["attributed"] == 2
    assert batch.counters["state_writes"] == 2  # the Deployment and the ReplicaSet


def test_a_cronjobs_pod_names_the_person_who_created_the_cronjob() -> None:
    batch = attributor().batch()
    *_, job, pod = see_all(batch, cronjob_chain(BOB))
    assert owner(job) == (BOB, "CronJob", "backup")
    assert owner(pod) == (BOB, "CronJob", "backup")


def test_a_daemonsets_pod_names_the_person_who_created_the_daemonset() -> None:
    batch = attributor().batch()
    _, pod = see_all(batch, daemonset_chain(CAROL))
    assert owner(pod) == (CAROL, "DaemonSet", "node-agent")


def test_a_pod_of_an_unknown_owner_gets_no_owner() -> None:
    batch = attributor().batch()
    _, _, pod = deployment_chain(ALICE)
    assert owner(batch.see(pod, CTX)) == (None, None, None)
    assert batch.counters["unknown"] == 1
    batch.flush()
    assert batch.counters["state_writes"] == 0  # pods are not recorded


def test_a_chain_broken_in_the_middle_gets_no_owner() -> None:
    """The ReplicaSet is known but not its Deployment (written before attribution ran): the
    deployment-controller is not reported as the person."""
    batch = attributor().batch()
    _, replicaset, pod = deployment_chain(ALICE)
    assert owner(batch.see(replicaset, CTX)) == (None, None, None)
    assert owner(batch.see(pod, CTX)) == (None, None, None)


def test_out_of_order_the_pod_before_its_owners_gets_none_and_later_pods_do() -> None:
    batch = attributor().batch()
    deployment, replicaset, pod = deployment_chain(ALICE)
    assert owner(batch.see(pod, CTX)) == (None, None, None)
    see_all(batch, [replicaset, deployment])
    assert owner(batch.see(pod, CTX)) == (ALICE, "Deployment", "web")


def test_platform_controllers_writing_the_top_workload_are_skipped() -> None:
    """deployment-controller updates the Deployment's revision annotation after alice's apply."""
    batch = attributor().batch()
    deployment, replicaset, pod = deployment_chain(ALICE)
    revision = write_event(
        "update", "deployments", "web", DEPLOYMENT_CONTROLLER, T0 + timedelta(milliseconds=60)
    )
    see_all(batch, [deployment, revision, replicaset])
    assert owner(batch.see(pod, CTX)) == (ALICE, "Deployment", "web")


def test_a_workload_written_by_argo_cd_names_argo_cd() -> None:
    batch = attributor().batch()
    _, _, pod = see_all(batch, deployment_chain(ARGOCD))
    assert owner(pod) == (ARGOCD, "Deployment", "web")


def test_a_gitops_tool_syncing_after_a_person_is_the_last_writer() -> None:
    batch = attributor().batch()
    deployment, replicaset, pod = deployment_chain(ALICE)
    sync = write_event("patch", "deployments", "web", ARGOCD, T0 + timedelta(minutes=5))
    see_all(batch, [deployment, replicaset, sync])
    assert owner(batch.see(pod, CTX)) == (ARGOCD, "Deployment", "web")


def test_only_successful_writes_of_the_object_itself_are_recorded() -> None:
    batch = attributor().batch()
    denied = write_event("create", "deployments", "web", BOB, T0, code=403)
    status = write_event("update", "deployments", "web", BOB, T0, subresource="status", code=200)
    scale = write_event("update", "deployments", "web", BOB, T0, subresource="scale")
    see_all(batch, [denied, status, scale])
    assert batch.counters["recorded"] == 0
    assert batch.size == 0


def test_a_metadata_level_policy_records_the_writer_but_names_no_owner() -> None:
    """Without request bodies the ownerReferences are not in the log: a pod names no owner."""
    batch = attributor().batch()
    events = [
        write_event(e["verb"], e["objectRef"]["resource"], "x", e["user"]["username"], T0)
        for e in deployment_chain(ALICE)
    ]
    for event in events:
        event.pop("requestObject", None)
        event.pop("responseObject", None)
        event["level"] = "Metadata"
    assert [owner(c) for c in see_all(batch, events)] == [(None, None, None)] * 3


def test_the_cluster_separates_records() -> None:
    batch = attributor().batch()
    deployment, replicaset, pod = deployment_chain(ALICE)
    see_all(batch, [deployment, replicaset])
    other = EventContext(cluster="staging")
    assert owner(batch.see(pod, other)) == (None, None, None)


def test_an_owner_reference_to_a_kind_not_recorded_names_no_owner() -> None:
    batch = attributor().batch()
    pod = write_event(
        "create", "pods", "mirror", "system:node:ip-10-0-1-5", T0, generate_name="mirror-"
    )
    ref = pod["requestObject"]["metadata"]
    ref["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "Node", "name": "ip-10-0-1-5", "uid": "u", "controller": True}
    ]
    assert owner(batch.see(pod, CTX)) == (None, None, None)
    assert batch.counters["unknown"] == 0  # nothing to look up


# ---- across invocations and processes ------------------------------------------------------------


def test_records_reach_the_store_at_the_flush_and_another_process_reads_them() -> None:
    store = MemoryStore(clock=lambda: NOW)
    deployment, replicaset, pod = deployment_chain(ALICE)
    first = attributor(store).batch()
    see_all(first, [deployment])
    first.flush()
    second = attributor(store).batch()  # a new instance: nothing cached
    see_all(second, [replicaset])
    second.flush()
    third = attributor(store).batch()
    assert owner(third.see(pod, CTX)) == (ALICE, "Deployment", "web")
    # The ReplicaSet's record and the Deployment guessed from its name: one read.
    assert third.counters["state_reads"] == 2
    assert store.requests["write"] == 2


def test_a_warm_process_reads_a_chain_once() -> None:
    store = MemoryStore(clock=lambda: NOW)
    deployment, replicaset, pod = deployment_chain(ALICE)
    seed = attributor(store).batch()
    see_all(seed, [deployment, replicaset])
    seed.flush()
    warm = attributor(store)
    reads = store.requests["read"]
    for _ in range(3):
        batch = warm.batch()
        assert owner(batch.see(pod, CTX)) == (ALICE, "Deployment", "web")
        batch.flush()
    assert store.requests["read"] - reads == 2


def test_a_redelivered_object_writes_nothing() -> None:
    store = MemoryStore(clock=lambda: NOW)
    events = deployment_chain(ALICE)
    batch = attributor(store).batch()
    see_all(batch, events)
    batch.flush()
    again = attributor(store).batch()
    see_all(again, events)
    again.flush()
    assert again.counters["state_writes"] == 0
    assert store.requests["write"] == 2


def test_records_expire_thirty_days_after_their_last_change() -> None:
    now = [NOW]
    store = MemoryStore(clock=lambda: now[0])
    deployment, replicaset, pod = deployment_chain(ALICE)
    batch = Attributor(store, cluster=cluster_of, clock=lambda: now[0]).batch()
    see_all(batch, [deployment, replicaset])
    batch.flush()
    now[0] = T0.timestamp() + TTL_DAYS * 86400 - 60
    assert owner(attributor(store).batch().see(pod, CTX)) == (ALICE, "Deployment", "web")
    now[0] = NOW + TTL_DAYS * 86400 + 60
    assert owner(attributor(store).batch().see(pod, CTX)) == (None, None, None)


class Racing(MemoryStore):
    """A store where another instance writes the same key just before our first put."""

    def __init__(self) -> None:
        super().__init__(clock=lambda: NOW)
        self.raced = False

    def put(
        self, key: str, data: bytes, *, version: int, expires: int, deadline: Any = None
    ) -> bool:
        if not self.raced:
            self.raced = True
            other = Record(BOB, 1, BOB, 1, None, 0).dumps()
            assert super().put(key, other, version=version, expires=expires)
        return super().put(key, data, version=version, expires=expires)


def test_a_conflict_is_read_again_and_merged() -> None:
    store = Racing()
    batch = attributor(store).batch()
    see_all(batch, deployment_chain(ALICE)[:1])
    batch.flush()
    assert batch.counters["conflicts"] == 1
    (data,) = (store.get_many([k])[k].data for k in store._items)
    record = Record.loads(data, "k")
    assert record is not None and record.user == ALICE and record.human == ALICE  # newer than bob's


class Busy(MemoryStore):
    def put(
        self, key: str, data: bytes, *, version: int, expires: int, deadline: Any = None
    ) -> bool:
        return False


def test_a_record_that_keeps_changing_fails_the_flush() -> None:
    batch = attributor(Busy()).batch()
    see_all(batch, deployment_chain(ALICE)[:1])
    with pytest.raises(StateError, match=r"^attribution: 1 record\(s\) kept changing after 8"):
        batch.flush()


# ---- the record ----------------------------------------------------------------------------------


def test_writes_merge_in_any_order() -> None:
    writes = [
        Write(ALICE, 10, None, True),
        Write(DEPLOYMENT_CONTROLLER, 20, None, True),
        Write(ARGOCD, 30, ("Deployment", "x"), False),
        Write(BOB, 30, None, False),
        Write(REPLICASET_CONTROLLER, 40, None, True),
    ]
    results = set()
    for order in itertools.permutations(writes):
        record = None
        for write in order:
            record = merge(record, write)
        results.add(record)
    assert len(results) == 1
    (record,) = results
    # Two writes at one time: the greater value wins, whatever the order.
    assert record == Record(REPLICASET_CONTROLLER, 40, ARGOCD, 30, None, 40)


def test_a_patch_without_the_object_keeps_the_owner() -> None:
    record = merge(None, Write(REPLICASET_CONTROLLER, 10, ("Deployment", "web"), True))
    assert merge(record, Write(ALICE, 20, None, False)).owner == ("Deployment", "web")


def test_a_record_written_by_another_version_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    assert Record.loads(b'{"u": 1}', "a/x") is None
    assert "not one this version wrote" in caplog.text
    record = Record(ALICE, 1, ALICE, 1, ("ReplicaSet", "r"), 1)
    assert Record.loads(record.dumps(), "a/x") == record
    assert orjson.loads(record.dumps())["o"] == ["ReplicaSet", "r"]


@pytest.mark.parametrize(
    ("user", "platform"),
    [
        ("system:serviceaccount:kube-system:replicaset-controller", True),
        ("system:serviceaccount:kube-system:generic-garbage-collector", True),
        ("system:kube-controller-manager", True),
        ("system:node:ip-10-0-1-5.eu-west-1.compute.internal", True),
        ("system:serviceaccount:kube-system:default", False),
        (ARGOCD, False),
        ("system:serviceaccount:flux-system:kustomize-controller", False),
        (ALICE, False),
    ],
    ids=str,
)
def test_platform_identities(user: str, platform: bool) -> None:
    assert is_platform(user) is platform


# ---- through the pipeline: the rules see the fields ----------------------------------------------

OWNER_RULE = """\
- rule: Pod Of A Workload Written By Bob
  desc: test
  condition: ka.target.resource=pods and ka.verb=create and falconet.owner.user=bob@example.com
  output: pod of %falconet.owner.kind %falconet.owner.name by %falconet.owner.user
  priority: WARNING
  source: k8s_audit
"""


class Collect:
    name = "collect"
    max_alert_bytes = None

    def __init__(self) -> None:
        self.alerts: list[Any] = []

    def open(self, deadline: Any) -> Collect:
        from falconet.sinks import Tally

        self.tally = Tally("collect")
        return self

    def emit(self, alerts: Any) -> None:
        self.alerts.extend(alerts)

    def flush(self) -> None:
        pass


def jsonl(events: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in events)


def test_a_rule_on_falconet_owner_user_fires_and_alerts_carry_it(tmp_path: Any) -> None:
    (tmp_path / "owner.yaml").write_text(OWNER_RULE)
    engine = Engine.from_paths([tmp_path / "owner.yaml"], hostname="test")
    sink = Collect()
    store = MemoryStore()
    pipeline = Pipeline(
        engine,
        [sink],
        attributor=Attributor(store, cluster=engine.field_getter("falconet.cluster")),
    )
    result = pipeline.run(jsonl(cronjob_chain(BOB) + deployment_chain(ALICE)), context=CTX)
    (alert,) = sink.alerts
    assert alert.output.endswith("pod of CronJob backup by bob@example.com")
    assert alert.output_fields["falconet.owner.user"] == BOB
    assert result.to_dict()["attribution"] == {
        "recorded": 4,
        "attributed": 4,
        "state_reads": 4,
        "state_writes": 4,
    }


def test_the_bundled_privileged_container_alert_names_the_person(tmp_path: Any) -> None:
    engine = Engine.from_paths([BUNDLED_RULES], hostname="test")
    sink = Collect()
    pipeline = Pipeline(
        engine,
        [sink],
        attributor=Attributor(MemoryStore(), cluster=engine.field_getter("falconet.cluster")),
    )
    pipeline.run(jsonl(deployment_chain(ALICE)), context=CTX)
    privileged = [a for a in sink.alerts if a.rule == "Privileged Container Created"]
    assert [a.output_fields["ka.user.name"] for a in privileged] == [REPLICASET_CONTROLLER]
    assert [a.output_fields["falconet.owner.user"] for a in privileged] == [ALICE]


def test_without_attribution_the_fields_are_absent(tmp_path: Any) -> None:
    engine = Engine.from_paths([BUNDLED_RULES], hostname="test")
    sink = Collect()
    Pipeline(engine, [sink]).run(jsonl(deployment_chain(ALICE)), context=CTX)
    assert sink.alerts
    assert all("falconet.owner.user" not in a.output_fields for a in sink.alerts)


def test_the_quick_check_covers_pods_and_workloads() -> None:
    workloads = {"deployments", "replicasets", "daemonsets", "statefulsets", "jobs", "cronjobs"}
    assert workloads | {"pods"} == ATTRIBUTED


# ---- falconet scan -------------------------------------------------------------------------------


@pytest.mark.parametrize("setting", ["", "off"], ids=["on by default", "off"])
def test_scan_attributes_with_a_memory_store(
    setting: str,
    tmp_path: Any,
    capsysbinary: pytest.CaptureFixture[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from falconet import cli

    monkeypatch.setenv("FALCONET_ATTRIBUTION", setting)
    logs = tmp_path / "audit.jsonl"
    logs.write_bytes(jsonl(deployment_chain(ALICE)))
    assert cli.main(["scan", "--json", "--rules", str(BUNDLED_RULES), str(logs)]) == 0
    alerts = [orjson.loads(line) for line in capsysbinary.readouterr().out.splitlines()]
    (privileged,) = [a for a in alerts if a["rule"] == "Privileged Container Created"]
    assert privileged["output_fields"].get("falconet.owner.user") == (None if setting else ALICE)
