"""Every sample in ../shared/samples and every Falco trace file decodes, and every route of the
same events gives the same events."""

from __future__ import annotations

from pathlib import Path

import pytest

from falconet.context import EventContext
from falconet.decode import NOT_AUDIT_EVENT
from tests.conftest import SHARED
from tests.unit.decode.wrap import check_accounting, run

SAMPLES = SHARED / "samples"
TRACES = SHARED / "conformance" / "falco-legacy-tests" / "test" / "trace_files" / "k8s_audit"

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"shared samples absent: {SAMPLES}"),
]


def _files(root: Path, pattern: str) -> list[Path]:
    return sorted(root.rglob(pattern)) if root.is_dir() else []


def _decode(relative: str, context: EventContext = EventContext()):  # noqa: B008
    return run((SAMPLES / relative).read_bytes(), context, name=relative)


SAMPLE_FILES = [p for p in _files(SAMPLES, "*") if p.is_file() and p.suffix not in (".yaml", ".md")]


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: str(p.relative_to(SAMPLES)))
def test_every_sample_decodes_with_nothing_lost_silently(path: Path) -> None:
    events, contexts, stats = run(path.read_bytes(), name=path.name)
    check_accounting(stats)
    assert len(events) == stats.events == len(contexts)
    audit_routes = ("aks", "eks", "gke", "k8s-v1-event", "webhook")
    if path.parent.name in audit_routes:
        assert stats.rejected_total == 0, stats.problems
        # A control message or a klog record is skipped as a whole, with its reason.
        assert events or stats.skipped_total == stats.records >= 1, stats.to_dict()
    else:  # trigger envelopes and alerts are not audit logs: counted, never silently dropped
        assert not events
        assert stats.rejected_total >= 1


def test_eks_routes_give_the_same_events() -> None:
    # The message-extraction file has lost the envelope: the caller names the cluster.
    plain, _, _ = _decode(
        "eks/derived-firehose-message-extraction.ndjson", EventContext(cluster="demo-cluster")
    )
    assert len(plain) >= 3
    for route in (
        "eks/derived-firehose-s3-object.bin",
        "eks/derived-firehose-s3-object.decompressed.txt",
    ):
        events, contexts, stats = _decode(route)
        assert events == plain, route
        assert {c.cluster for c in contexts} == {"demo-cluster"}
        assert {c.account for c in contexts} == {"111122223333"}
        assert stats.skipped_total == 1  # the control message
    for route in ("eks/derived-cwl-export-000000.gz", "eks/derived-cwl-export-000000.txt"):
        events, _, _ = _decode(route, EventContext(cluster="demo-cluster"))
        assert sorted(events, key=lambda e: e["auditID"]) == sorted(
            plain, key=lambda e: e["auditID"]
        )
    subscription, _, _ = _decode("eks/derived-cwl-subscription-data-message.json")
    awslogs, _, _ = _decode("eks/derived-lambda-awslogs-event.json")
    assert subscription == awslogs
    assert all(e in plain for e in subscription)


def test_webhook_routes_give_the_same_events() -> None:
    log_file, _, _ = _decode("webhook/derived-log-backend-audit.log")
    event_list, _, _ = _decode("webhook/derived-eventlist-body.json")
    assert log_file == event_list and len(log_file) >= 2


def test_aks_routes_give_the_same_events() -> None:
    blob, contexts, blob_stats = _decode("aks/derived-PT1H.json")
    hub, _, hub_stats = _decode("aks/derived-eventhub-body.json")
    record, _, _ = _decode("aks/dynatrace-kube-audit-record.json")
    assert blob == hub == record
    assert blob_stats.skipped_total == hub_stats.skipped_total == 1
    assert {c.cluster for c in contexts} == {"demo-aks"}


def test_gke_sink_file_is_the_three_log_entries() -> None:
    sink, _, _ = _decode("gke/derived-gcs-sink_activity_01-00-00_01-59-59_S0.json")
    single = []
    for n in (1, 2, 3):
        events, _, _ = _decode(f"gke/khi-container_recorder_test_1_{n}.logentry.json")
        single += events
    assert sink == single
    push, _, _ = _decode("gke/derived-pubsub-push-envelope.json")
    assert push == single[:1]
    assert {e["annotations"]["cluster_name"] for e in sink} == {"sample-cluster"}


@pytest.mark.parametrize("path", _files(TRACES, "*.json"), ids=lambda p: p.name)
def test_falco_trace_files(path: Path) -> None:
    events, _, stats = run(path.read_bytes(), name=path.name)
    check_accounting(stats)
    if path.name == "fal_01_003.json":  # `{"kind": 0}`, kept by Falco as a regression fixture
        assert stats.rejected == {NOT_AUDIT_EVENT: 1}
    else:
        assert events and stats.rejected_total == 0
