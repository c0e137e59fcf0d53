"""The same audit events wrapped in every envelope decode to the same event dicts, in order."""

from __future__ import annotations

import copy
import gzip
import io

import orjson
import pytest

from falconet.context import EventContext
from tests.unit.decode.wrap import (
    aks_eventhub,
    aks_pt1h,
    awslogs_event,
    check_accounting,
    export_lines,
    firehose_object,
    gz,
    jsonl,
    load_events,
    run,
)

EVENTS = load_events()


def _expected(cluster: str) -> list[dict]:
    # The plain JSON-lines file, decoded with the cluster given by the caller.
    events, contexts, stats = run(jsonl(EVENTS), EventContext(cluster=cluster))
    assert stats.events == len(EVENTS) and stats.rejected_total == 0
    assert all(c.cluster == cluster for c in contexts)
    return events


def _pretty(value: object) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2)


EVENT_LIST = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}}

ENVELOPES = {
    "jsonl-gzip": lambda ev: gz(jsonl(ev)),
    "jsonl-crlf": lambda ev: jsonl(ev).replace(b"\n", b"\r\n"),
    "eventlist": lambda ev: orjson.dumps({**EVENT_LIST, "items": ev}),
    "eventlist-pretty": lambda ev: _pretty({**EVENT_LIST, "items": ev}),
    "array": orjson.dumps,
    "array-pretty": _pretty,
    "pretty-documents": lambda ev: b"\n".join(_pretty(e) for e in ev),
    "eventlist-per-line": lambda ev: b"".join(
        orjson.dumps({**EVENT_LIST, "items": [e]}) + b"\n" for e in ev
    ),
    "firehose": firehose_object,
    "firehose-one-event-per-record": lambda ev: firehose_object(ev, per_record=1),
    "firehose-gzip-on-gzip": lambda ev: gz(firehose_object(ev)),
    "firehose-uncompressed": lambda ev: gzip.decompress(firehose_object(ev)),
    "firehose-members-of-jsonl": lambda ev: b"".join(gz(jsonl([e])) for e in ev),
    "awslogs": awslogs_event,
    "cwl-export": export_lines,
    "cwl-export-gzip": lambda ev: gz(export_lines(ev)),
    "aks-eventhub": aks_eventhub,
    "aks-pt1h": aks_pt1h,
    "aks-pt1h-gzip": lambda ev: gz(aks_pt1h(ev)),
}


@pytest.mark.parametrize("envelope", sorted(ENVELOPES), ids=str)
@pytest.mark.parametrize("chunking", ["bytes", "file", "1-byte-chunks", "7-byte-chunks"])
@pytest.mark.parametrize("head_limit", ["default", "small"])
def test_every_envelope_gives_the_events_of_the_plain_file(
    envelope: str, chunking: str, head_limit: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if head_limit == "small":  # what objects over 1 MiB go through (DOCUMENTS framing)
        from falconet.decode import detect

        monkeypatch.setattr(detect, "HEAD_LIMIT", 64)
    cluster = "demo"
    data = ENVELOPES[envelope](copy.deepcopy(EVENTS))
    source: object
    if chunking == "file":
        source = io.BytesIO(data)
    elif chunking.endswith("-chunks"):
        size = int(chunking.split("-")[0])
        source = [data[i : i + size] for i in range(0, len(data), size)]
    else:
        source = data
    # Envelopes that name the cluster (EKS log group, AKS resourceId) need no caller context.
    names_cluster = envelope.startswith(("firehose", "awslogs", "aks")) and envelope not in (
        "firehose-members-of-jsonl",
    )
    context = EventContext() if names_cluster else EventContext(cluster=cluster)
    events, contexts, stats = run(source, context)
    assert events == _expected(cluster)
    assert [c.cluster for c in contexts] == [cluster] * len(EVENTS)
    assert stats.rejected_total == 0, stats.problems
    check_accounting(stats)


def test_envelope_context_carries_account() -> None:
    _, contexts, _ = run(firehose_object(copy.deepcopy(EVENTS)))
    assert {c.account for c in contexts} == {"111122223333"}
    _, contexts, _ = run(aks_eventhub(copy.deepcopy(EVENTS)))
    assert {c.account for c in contexts} == {"97e9b03f-04d6-4b69-b307-35f483f7ed81"}


def test_envelope_wins_over_caller_but_caller_fills_gaps() -> None:
    caller = EventContext(cluster="from-url", region="eu-west-1", origin="s3://b/k")
    _, contexts, _ = run(firehose_object(copy.deepcopy(EVENTS), cluster="prod"), caller)
    assert {(c.cluster, c.account, c.region, c.origin) for c in contexts} == {
        ("prod", "111122223333", "eu-west-1", "s3://b/k")
    }


def test_existing_cluster_annotation_is_kept() -> None:
    event = copy.deepcopy(EVENTS[0])
    event["annotations"]["cluster_name"] = "own"
    events, _, _ = run(jsonl([event]), EventContext(cluster="other"))
    assert events[0]["annotations"]["cluster_name"] == "own"


def test_no_cluster_means_no_annotation_added() -> None:
    events, _, _ = run(jsonl(copy.deepcopy(EVENTS)))
    assert events == EVENTS
