"""AKS diagnostic settings: categories, the 16 KiB cut of `properties.log`, the resourceId."""

from __future__ import annotations

import copy

import orjson

from falconet.decode import BAD_ENVELOPE, NOT_JSON, SKIP_CATEGORY, TRUNCATED
from falconet.decode.aks import AKS_LOG_LIMIT, ids_from_resource_id
from tests.unit.decode.wrap import aks_record, check_accounting, load_events, run

EVENTS = load_events()


def test_both_audit_categories_are_read_and_the_others_skipped() -> None:
    log = orjson.dumps(copy.deepcopy(EVENTS[0])).decode() + "\n"
    records = [
        aks_record(log, category="kube-audit"),
        aks_record(log, category="kube-audit-admin"),
        aks_record("I0202 15:03:28.853066 1 event.go:291] text\n", category="kube-scheduler"),
        aks_record("E0202 guard\n", category="guard"),
    ]
    events, contexts, stats = run(orjson.dumps({"records": records}))
    assert len(events) == 2
    assert stats.skipped == {SKIP_CATEGORY: 2}
    assert {(c.cluster, c.account) for c in contexts} == {
        ("demo", "97e9b03f-04d6-4b69-b307-35f483f7ed81")
    }
    assert events[0]["annotations"]["cluster_name"] == "demo"
    check_accounting(stats)


def test_log_cut_at_16_kib_is_counted_as_truncated() -> None:
    event = copy.deepcopy(EVENTS[1])
    event["requestObject"]["metadata"]["annotations"] = {"big": "y" * 20_000}
    log = orjson.dumps(event).decode()
    cut = log[:AKS_LOG_LIMIT]
    short_broken = log[:500]
    records = [aks_record(cut), aks_record(short_broken), aks_record(log)]
    events, _, stats = run(orjson.dumps({"records": records}))
    assert [e["auditID"] for e in events] == [event["auditID"]]
    assert stats.rejected == {TRUNCATED: 1, NOT_JSON: 1}
    assert [p.position for p in stats.problems] == ["t:1 records[0]", "t:1 records[1]"]
    check_accounting(stats)


def test_record_without_log_string_is_counted() -> None:
    record = aks_record("x")
    record["properties"] = {"log": 12}
    _, _, stats = run(orjson.dumps(record))
    assert stats.rejected == {BAD_ENVELOPE: 1}


def test_ids_from_resource_id() -> None:
    rid = (
        "/SUBSCRIPTIONS/ABC/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.CONTAINERSERVICE/"
        "MANAGEDCLUSTERS/My-AKS"
    )
    assert ids_from_resource_id(rid) == ("my-aks", "abc")
    assert ids_from_resource_id("/subscriptions/x") == (None, "x")
    assert ids_from_resource_id(None) == (None, None)


def test_category_of_the_wrong_type_is_skipped() -> None:
    # Found by test_decode_fuzz: an unhashable category used to raise TypeError.
    _, _, stats = run(orjson.dumps({"category": [], "properties": None}))
    assert stats.skipped == {SKIP_CATEGORY: 1}
