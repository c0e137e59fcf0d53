"""EKS through CloudWatch Logs: what is skipped, what is counted, where the cluster comes from."""

from __future__ import annotations

import base64
import copy

import orjson

from falconet.decode import (
    BAD_ENVELOPE,
    LIMIT_DOCUMENT,
    NOT_JSON,
    SKIP_CONTROL,
    SKIP_STREAM,
    TRUNCATED,
    DecodeLimits,
)
from falconet.decode.cloudwatch import cluster_from_log_group
from tests.unit.decode.wrap import (
    CONTROL,
    check_accounting,
    cwl_envelope,
    export_lines,
    gz,
    load_events,
    run,
)

EVENTS = load_events()


def _messages(events: list[dict]) -> list[str]:
    return [orjson.dumps(e).decode() for e in events]


def test_control_message_and_other_streams_are_skipped_not_rejected() -> None:
    data = b"".join(
        gz(orjson.dumps(envelope))
        for envelope in (
            CONTROL,
            cwl_envelope(["I0101 12:00:00 klog text", "more"], stream="kube-apiserver-abc"),
            cwl_envelope(["authenticator text"], stream="authenticator-123"),
            cwl_envelope(_messages(copy.deepcopy(EVENTS[:2]))),
        )
    )
    events, contexts, stats = run(data)
    assert events == [
        {**e, "annotations": {**e.get("annotations", {}), "cluster_name": "demo"}}
        for e in EVENTS[:2]
    ]
    assert stats.skipped == {SKIP_CONTROL: 1, SKIP_STREAM: 3}
    assert stats.rejected_total == 0
    assert {c.cluster for c in contexts} == {"demo"}
    check_accounting(stats)


def test_truncated_messages_are_counted_with_their_audit_id() -> None:
    whole = _messages(copy.deepcopy(EVENTS[:2]))
    cut = whole[1][:300] + "[Truncated...]"
    events, _, stats = run(orjson.dumps(cwl_envelope([whole[0], cut, "{oops"])))
    assert [e["auditID"] for e in events] == [EVENTS[0]["auditID"]]
    assert stats.rejected == {TRUNCATED: 1, NOT_JSON: 1}
    assert stats.problems[0].detail == f"auditID {EVENTS[1]['auditID']}"
    assert stats.problems[0].position == "t:1 logEvents[1]"
    check_accounting(stats)


def test_malformed_envelopes_are_counted() -> None:
    bad = [
        {"messageType": "DATA_MESSAGE", "logEvents": "nope"},
        {"messageType": "SOMETHING_ELSE", "logEvents": []},
        {**cwl_envelope(["x"]), "logEvents": [{"id": "1"}]},
    ]
    _, _, stats = run(b"\n".join(orjson.dumps(b) for b in bad))
    assert stats.rejected == {BAD_ENVELOPE: 3}
    check_accounting(stats)


def test_awslogs_with_bad_base64_or_gzip_is_counted() -> None:
    for data in ("%%%not base64", base64.b64encode(b"\x1f\x8b\x08garbage").decode(), 17):
        _, _, stats = run(orjson.dumps({"awslogs": {"data": data}}))
        assert stats.rejected == {BAD_ENVELOPE: 1}, data


def test_awslogs_compression_bomb_is_refused() -> None:
    bomb = base64.b64encode(gz(b" " * 1_000_000)).decode()
    limits = DecodeLimits(max_document_bytes=100_000)
    _, _, stats = run(orjson.dumps({"awslogs": {"data": bomb}}), limits=limits)
    assert stats.rejected == {LIMIT_DOCUMENT: 1}
    assert stats.problems[0].detail == "awslogs.data inflates over 100000 bytes"


def test_export_lines_skip_klog_text_and_count_truncation() -> None:
    lines = export_lines(copy.deepcopy(EVENTS[:1]))
    lines += b"2024-06-01T12:00:01.000Z I0101 12:00:00.1 1 klog.go:1] text\n"
    lines += b'2024-06-01T12:00:02.000Z {"kind":"Event","auditID":"abc",[Truncated...]\n'
    lines += b"2024-06-01T12:00:03.000Z {broken\n"
    events, _, stats = run(gz(lines))
    assert [e["auditID"] for e in events] == [EVENTS[0]["auditID"]]
    assert stats.skipped == {SKIP_STREAM: 1}
    assert stats.rejected == {TRUNCATED: 1, NOT_JSON: 1}
    assert stats.problems[0].detail == "auditID abc"
    check_accounting(stats)


def test_cluster_from_log_group() -> None:
    assert cluster_from_log_group("/aws/eks/prod-eu/cluster") == "prod-eu"
    assert cluster_from_log_group("/aws/eks/prod-eu/other") is None
    assert cluster_from_log_group("/aws/lambda/x") is None
    assert cluster_from_log_group(None) is None


def test_owner_that_is_not_an_account_is_ignored() -> None:
    envelope = cwl_envelope(_messages(copy.deepcopy(EVENTS[:1])), owner="CloudwatchLogs")
    _, contexts, _ = run(orjson.dumps(envelope))
    assert contexts[0].account is None
