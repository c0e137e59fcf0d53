"""EKS audit logs through CloudWatch Logs: subscription envelopes, `awslogs`, export-task lines.

An EKS cluster logs to the group `/aws/eks/<cluster>/cluster`; its audit streams are named
`kube-apiserver-audit-<hex>` and every log event `message` is one audit Event as JSON. The same
envelope (`messageType`, `owner`, `logGroup`, `logStream`, `logEvents[]`) arrives through a Lambda
subscription (`{"awslogs": {"data": base64(gzip(envelope))}}`), Kinesis or Firehose (gzip members
concatenated in the S3 object). An export task writes `<timestamp> <message>` lines instead.

What is counted, as the k8saudit-eks plugin does it and beyond:
* `CONTROL_MESSAGE` envelopes (destination health checks): skipped (`SKIP_CONTROL`).
* Streams not starting with `kube-apiserver-audit` (klog text of the other control-plane logs):
  skipped per log event (`SKIP_STREAM`).
* Messages ending in `[Truncated...]`: rejected as `TRUNCATED`, with the auditID when it can be read
  (the plugin only logs it).
The cluster name comes from the log group and the AWS account from `owner`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson

from falconet.decode.records import snippet
from falconet.decode.stats import (
    BAD_ENVELOPE,
    SKIP_CONTROL,
    SKIP_STREAM,
    TRUNCATED,
    reason_of,
)

if TYPE_CHECKING:
    from falconet.context import EventContext
    from falconet.decode.records import Decoded, Reader

AUDIT_STREAM_PREFIX = "kube-apiserver-audit"
TRUNCATION_MARK = "[Truncated...]"
_LOG_GROUP = re.compile(r"/aws/eks/([^/]+)/cluster\Z")
_AUDIT_ID = re.compile(r'"auditID"\s*:\s*"([^"]{1,64})"')
_ACCOUNT = re.compile(r"\d{12}\Z")
_UTF8_MAX = 4  # bytes per character at most: a cheap upper bound of a message's encoded size


def cluster_from_log_group(log_group: object) -> str | None:
    """`demo` for `/aws/eks/demo/cluster`, else None."""
    if type(log_group) is not str:
        return None
    m = _LOG_GROUP.match(log_group)
    return m.group(1) if m else None


def read_envelope(reader: Reader, envelope: dict[str, Any], where: int, depth: int) -> Decoded:
    """Audit events of one CloudWatch Logs subscription envelope (already gunzipped)."""
    log_events = envelope.get("logEvents")
    if type(log_events) is not list:
        reader.reject(BAD_ENVELOPE, where, "logEvents is not an array")
        return
    message_type = envelope.get("messageType")
    if message_type == "CONTROL_MESSAGE":
        reader.skip(SKIP_CONTROL, max(1, len(log_events)))
        return
    if message_type != "DATA_MESSAGE":
        reader.reject(BAD_ENVELOPE, where, f"messageType {snippet(message_type)}")
        return
    stream = envelope.get("logStream")
    if type(stream) is not str or not stream.startswith(AUDIT_STREAM_PREFIX):
        reader.skip(SKIP_STREAM, len(log_events))
        return
    owner = envelope.get("owner")
    ctx = reader.context_for(
        cluster_from_log_group(envelope.get("logGroup")),
        account=owner if type(owner) is str and _ACCOUNT.match(owner) else None,
    )
    for index, log_event in enumerate(log_events):
        message = log_event.get("message") if type(log_event) is dict else None
        if type(message) is not str:
            reader.reject(BAD_ENVELOPE, where, "log event without a message", f"logEvents[{index}]")
            continue
        yield from read_message(reader, message, where, ctx, depth, sub=f"logEvents[{index}]")


def read_message(
    reader: Reader, message: str, where: int, ctx: EventContext, depth: int, *, sub: str = ""
) -> Decoded:
    """Audit events of one CloudWatch log event message (one Event JSON, normally)."""
    if message.endswith(TRUNCATION_MARK):
        m = _AUDIT_ID.search(message)
        reader.reject(TRUNCATED, where, f"auditID {m.group(1)}" if m else "", sub)
        return
    try:
        value = reader.parse(message)
    except orjson.JSONDecodeError as exc:
        reader.reject(reason_of(exc), where, str(exc), sub)
        return
    yield from reader.value(value, where, len(message) * _UTF8_MAX, ctx, depth + 1)


def read_awslogs(reader: Reader, body: dict[str, Any], where: int, depth: int) -> Decoded:
    """Audit events of a Lambda CloudWatch Logs subscription event `{"awslogs": {"data": ...}}`."""
    awslogs = body["awslogs"]
    data = awslogs.get("data") if type(awslogs) is dict else None
    payload = reader.unbase64(data, where, "awslogs.data")
    if payload is not None:
        yield from reader.document(payload, where, reader.context, depth + 1)


def read_export_line(reader: Reader, line: bytes, where: int) -> Decoded:
    """Audit events of one export-task line `<ISO-8601 UTC> <message>`."""
    message = line.partition(b" ")[2].rstrip(b"\r")
    if not message.lstrip().startswith((b"{", b"[")):
        # An export object holds one log stream; klog text means a non-audit stream.
        reader.skip(SKIP_STREAM)
        return
    if message.endswith(TRUNCATION_MARK.encode()):
        m = _AUDIT_ID.search(message.decode(errors="replace"))
        reader.reject(TRUNCATED, where, f"auditID {m.group(1)}" if m else "")
        return
    try:
        value = reader.parse(message)
    except orjson.JSONDecodeError as exc:
        reader.reject(reason_of(exc), where, str(exc))
        return
    yield from reader.value(value, where, len(message), reader.context)
