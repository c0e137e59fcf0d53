"""Trigger envelopes: which bucket objects an S3/SQS/SNS/EventBridge/CloudEvent trigger names.

    refs, ignored = objects_in_event(lambda_event)   # S3 notifications, direct or wrapped

Handles S3 event notifications delivered directly, inside SQS messages, inside SNS notifications
(and SNS inside SQS), EventBridge "Object Created" events, the GCS
`google.cloud.storage.object.v1.finalized` CloudEvent data, and Event Grid's
`Microsoft.Storage.BlobCreated` CloudEvent (account from `source`, blob from `subject`). Keys of
S3 notifications are form-encoded (`+` for spaces) and are decoded; `s3:TestEvent` is
acknowledged and ignored. Nothing here reads an object: it only says which ones to read. A
backtest run's message (`falconet scan --fan-out`) carries the run id in its attribute
`falconet.run` (`run_of`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote_plus

import orjson

from falconet.storage.objects import ObjectRef

GCS_EVENT_PREFIX = "google.cloud.storage.object.v1."  # every Cloud Storage object event type
GCS_FINALIZED = GCS_EVENT_PREFIX + "finalized"
S3_OBJECT_CREATED = ("Object Created", "aws.s3.object.created")
S3_SOURCE = "aws.s3"  # the EventBridge source (and CloudEvent source) of S3 events
AZURE_EVENT_PREFIX = "Microsoft.Storage."  # every Event Grid Blob Storage event type
AZURE_BLOB_CREATED = AZURE_EVENT_PREFIX + "BlobCreated"
_AZURE_ACCOUNT = re.compile(
    r"/providers/Microsoft\.Storage/storageAccounts/([a-z0-9]{3,24})\Z", re.I
)
_AZURE_SUBJECT = re.compile(
    r"/blobServices/default/containers/([a-z0-9$][a-z0-9-]{1,62})/blobs/(.+)\Z"
)
MAX_BLOB_NAME = 1024  # Azure's limit
# Azure Monitor diagnostic settings: one append blob per resource and hour.
_HOURLY = re.compile(
    r"(?P<head>.*/)y=(?P<y>\d{4})/m=(?P<mo>\d{2})/d=(?P<d>\d{2})/h=(?P<h>\d{2})/m=00/PT1H\.json\Z",
    re.S,
)
RUN_ATTRIBUTE = "falconet.run"  # the SQS message attribute of a backtest run's id (falconet.fanout)
MAX_RUN_ID = 64


@dataclass(frozen=True, slots=True)
class Ignored:
    reason: str  # e.g. "s3:TestEvent", "not an ObjectCreated event"


def parse_json_text(text: Any) -> Any:
    """`text` parsed when it is JSON text (str/bytes), None when it does not parse, else as is
    (trigger payloads arrive both as text and already decoded)."""
    if isinstance(text, str | bytes | bytearray):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
    return text


def _from_notification(note: Any) -> Iterator[ObjectRef | Ignored]:
    if not isinstance(note, Mapping):
        yield Ignored("not an S3 notification")
        return
    if note.get("Event") == "s3:TestEvent":
        yield Ignored("s3:TestEvent")
        return
    if note.get("detail-type") in S3_OBJECT_CREATED or (
        note.get("source") == S3_SOURCE and isinstance(note.get("detail"), Mapping)
    ):
        yield _from_eventbridge(note)
        return
    if "Type" in note and "Message" in note:  # an SNS notification (e.g. SNS -> SQS, no raw)
        yield from _from_notification(parse_json_text(note["Message"]))
        return
    records = note.get("Records")
    if not isinstance(records, list):
        yield Ignored("no Records")
        return
    for record in records:
        yield from _from_record(record)


def _eventbridge_object(note: Mapping[str, Any]) -> ObjectRef | None:
    """The object of an EventBridge S3 event, or of its bare `detail`."""
    detail = note.get("detail", note)
    if not isinstance(detail, Mapping):
        return None
    bucket = (detail.get("bucket") or {}).get("name")
    key = (detail.get("object") or {}).get("key")
    if not isinstance(bucket, str) or not isinstance(key, str):
        return None
    return ObjectRef("s3", bucket, key, note.get("region"), note.get("account"))


def _from_eventbridge(note: Mapping[str, Any]) -> ObjectRef | Ignored:
    ref = _eventbridge_object(note)
    if ref is None:
        return Ignored("EventBridge event without bucket/object")
    if note.get("detail-type") not in S3_OBJECT_CREATED:
        return Ignored(f"EventBridge {note.get('detail-type')}")
    return ref


def s3_object(data: Any) -> ObjectRef | None:
    """The object an S3 "Object Created" CloudEvent's data names (the EventBridge event, or its
    detail), as JSON text or decoded; None when it names none."""
    value = parse_json_text(data)
    return _eventbridge_object(value) if isinstance(value, Mapping) else None


def _from_record(record: Any) -> Iterator[ObjectRef | Ignored]:
    if not isinstance(record, Mapping):
        yield Ignored("malformed record")
        return
    if "s3" in record:
        event_name = str(record.get("eventName", ""))
        if not event_name.startswith("ObjectCreated"):
            yield Ignored(f"{event_name or 'unknown'} event")
            return
        s3 = record["s3"]
        bucket = (s3.get("bucket") or {}).get("name")
        key = (s3.get("object") or {}).get("key")
        if not isinstance(bucket, str) or not isinstance(key, str):
            yield Ignored("S3 record without bucket/key")
            return
        yield ObjectRef("s3", bucket, unquote_plus(key), record.get("awsRegion"))
        return
    if record.get("eventSource") == "aws:sqs" or "body" in record:
        yield from _from_notification(parse_json_text(record.get("body")))
        return
    if "Sns" in record:
        yield from _from_notification(parse_json_text((record.get("Sns") or {}).get("Message")))
        return
    yield Ignored("unknown record type")


def objects_in_event(event: Any) -> list[ObjectRef | Ignored]:
    """Every object (or ignored notice) an S3-style Lambda event names, in order."""
    return list(_from_notification(event))


def sqs_records(event: Any) -> list[Mapping[str, Any]] | None:
    """The SQS records of a Lambda event, or None when the event did not come from SQS."""
    records = event.get("Records") if isinstance(event, Mapping) else None
    if (
        isinstance(records, list)
        and records
        and all(isinstance(r, Mapping) and r.get("eventSource") == "aws:sqs" for r in records)
    ):
        return records
    return None


def gcs_object(data: Any) -> ObjectRef | None:
    """The object of a GCS object-finalized CloudEvent's data (StorageObjectData)."""
    data = parse_json_text(data)
    if (
        isinstance(data, Mapping)
        and isinstance(data.get("bucket"), str)
        and isinstance(data.get("name"), str)
    ):
        return ObjectRef("gs", data["bucket"], data["name"])
    return None


def azure_blob(source: str, subject: str, data: Any) -> ObjectRef | None:
    """The blob to read for an Event Grid `Microsoft.Storage.BlobCreated` CloudEvent: its storage
    account from `source`, container and blob from `subject` (never the `url` in its data, which
    anyone sending the event could point anywhere); None when they name none.

    Diagnostic settings (AKS kube-audit) append to one `.../h=HH/m=00/PT1H.json` append blob per
    hour, and Event Grid raises BlobCreated only when that blob is created, empty or nearly so
    (appends raise no event). So the creation of hour H's append blob is read as the signal that
    hour H-1's is complete, and that one is named instead."""
    account, where = _AZURE_ACCOUNT.search(source), _AZURE_SUBJECT.match(subject)
    if account is None or where is None or len(where.group(2)) > MAX_BLOB_NAME:
        return None
    container, name = where.groups()
    value = parse_json_text(data)
    if isinstance(value, Mapping) and value.get("blobType") == "AppendBlob":
        name = previous_hour(name) or name
    return ObjectRef("az", f"{account.group(1).lower()}/{container}", name)


def previous_hour(name: str) -> str | None:
    """The hourly diagnostic-settings blob of the hour before `name`'s, or None when `name` is
    not one (`.../y=YYYY/m=MM/d=DD/h=HH/m=00/PT1H.json`)."""
    found = _HOURLY.match(name)
    if found is None:
        return None
    try:
        y, mo, d, h = (int(found.group(k)) for k in ("y", "mo", "d", "h"))
        hour = datetime(y, mo, d, h)  # a name's hour: no time zone needed
    except ValueError:
        return None
    before = hour - timedelta(hours=1)
    return f"{found.group('head')}{before:y=%Y/m=%m/d=%d/h=%H}/m=00/PT1H.json"


def valid_run_id(run_id: str) -> bool:
    """A backtest run id: 1-64 letters, digits, '.', '_', '-' (it goes into state keys)."""
    return (
        0 < len(run_id) <= MAX_RUN_ID
        and run_id.isascii()
        and all(c.isalnum() or c in "._-" for c in run_id)
    )


def run_of(record: Any) -> str | None:
    """The backtest run id an SQS record of a Lambda event carries (message attribute
    `falconet.run`), or None: not a backtest message, or an id that is not one."""
    attributes = record.get("messageAttributes") if isinstance(record, Mapping) else None
    value = attributes.get(RUN_ATTRIBUTE) if isinstance(attributes, Mapping) else None
    text = value.get("stringValue") if isinstance(value, Mapping) else None
    return text if isinstance(text, str) and valid_run_id(text) else None


def receive_count(record: Any) -> int:
    """How many times SQS has delivered this record (1 on the first)."""
    attributes = record.get("attributes") if isinstance(record, Mapping) else None
    count = attributes.get("ApproximateReceiveCount") if isinstance(attributes, Mapping) else None
    try:
        return max(1, int(count))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 1
