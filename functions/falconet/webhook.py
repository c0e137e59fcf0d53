"""The HTTP contract shared by `main.audit_http` (functions-framework) and `handle_http` (Lambda).

One target serves the kube-apiserver audit webhook and CloudEvents:
- plain JSON: an `EventList` (what the webhook backend POSTs), a single `Event`, a JSON array or
  JSON lines, gzip allowed, and the envelopes `falconet.decode` reads (Pub/Sub push bodies, ...);
- CloudEvents in binary mode (`ce-specversion` header; the body is the data), structured mode
  (`application/cloudevents+json`) and batch mode (`application/cloudevents-batch+json`), detected
  here because functions-framework's `cloud_event` signature rejects plain JSON and batches.

What a CloudEvent carries is decided from its attributes (`classify`), never by parsing its data to
look: a GCS "object finalized", an S3 "Object Created" or an Event Grid "Microsoft.Storage.
BlobCreated" event names a bucket object (an Azure blob by the event's source and subject), which is
read and scanned if it lies under a prefix of FALCONET_ALLOWED_OBJECTS (else, like one that no
longer exists, it is acknowledged with the reason); any other event carries audit data. A batch
is checked whole before any of its events is scanned. A body is parsed once: a binary-mode body
goes to the decoder as it came, a structured envelope is parsed once and its data read from the
parsed value.

Answers: the CloudEvents webhook validation handshake (OPTIONS with `WebHook-Request-Origin`, as
Event Grid sends it) is answered with `WebHook-Allowed-Origin`; 401 without the configured bearer
token (constant-time compare); 405 for other methods;
413 over the body limit; 400 with a reason for a body that is not JSON or holds no audit event;
503 when a sink cannot deliver (the apiserver retries; alert uuids make retries deduplicable),
with the counters of what was done; 200 with the invocation counters otherwise. `deadline`
(Lambda: `Deadline.for_lambda(context)`) bounds the sinks' retries, so the 503 comes before the
function's timeout. Errors never echo the `Authorization` header or audit data.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from falconet.config import ALLOWED_OBJECTS, HttpSettings, ObjectPrefix
from falconet.context import EventContext
from falconet.deadline import Deadline
from falconet.decode import NOT_JSON
from falconet.errors import ObjectGone, SinkError
from falconet.pipeline import Pipeline, Result
from falconet.text import ECHO_LIMIT, echoable
from falconet.triggers import (
    AZURE_BLOB_CREATED,
    AZURE_EVENT_PREFIX,
    GCS_EVENT_PREFIX,
    GCS_FINALIZED,
    S3_OBJECT_CREATED,
    S3_SOURCE,
    azure_blob,
    gcs_object,
    s3_object,
)

_CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}\Z")
_MAX_SUBJECT = 2048
# Event Grid's abuse protection (CloudEvents 1.0 webhook spec): an OPTIONS request with this header
# must be answered with WebHook-Allowed-Origin before any event is delivered.
_ORIGIN = re.compile(r"[A-Za-z0-9.-]{1,253}\Z")


@dataclass(slots=True)
class Response:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    result: Result | None = None

    def json(self) -> bytes:
        return orjson.dumps(self.body)


def _error(status: int, message: str, **headers: str) -> Response:
    return Response(status, {"error": echoable(message, 2 * ECHO_LIMIT)}, dict(headers))


def _attributes(get: Any) -> dict[str, str]:
    """A CloudEvent's type, source and id, as text safe to carry on (names, origins, logs), and
    its subject as sent (it may name a blob; bounded, never echoed)."""
    attributes = {name: echoable(get(name) or "") for name in ("type", "source", "id")}
    subject = get("subject")
    if isinstance(subject, str) and len(subject) <= _MAX_SUBJECT:
        attributes["subject"] = subject
    return attributes


class BadRequest(Exception):
    """A request or CloudEvent that can never be served as sent (retrying it cannot help): the
    HTTP target answers 400, the CloudEvent target acknowledges it with this reason."""


def authorized(
    settings: HttpSettings, headers: Mapping[str, str], query: Mapping[str, str] | None = None
) -> bool:
    """Whether the request carries the configured bearer token (in the `token` query parameter
    too, when `token_in_query` allows it: for callers that cannot send headers, such as IBM Cloud's
    IKS audit webhook) or, when push accounts are set, a Google-signed OIDC token of one of them
    for the push audience (`falconet.oidc`). Always true when neither is configured."""
    if not settings.token and not settings.push_accounts:
        return True
    supplied = headers.get("authorization") or headers.get("Authorization") or ""
    if settings.token and hmac.compare_digest(
        supplied.encode(), f"Bearer {settings.token}".encode()
    ):
        return True
    if settings.token and settings.token_in_query and query is not None:
        in_query = query.get("token") or ""
        if hmac.compare_digest(in_query.encode(), settings.token.encode()):
            return True
    if settings.push_accounts and settings.push_audience:
        from falconet.oidc import push_verifier

        verifier = push_verifier(
            settings.push_audience, settings.push_accounts, settings.push_certs_url
        )
        return verifier.check(supplied) is not None
    return False


def too_large(settings: HttpSettings, headers: Mapping[str, str]) -> bool:
    """Whether the declared Content-Length is over the body limit."""
    length = headers.get("content-length") or headers.get("Content-Length")
    try:
        return length is not None and int(length) > settings.max_body
    except ValueError:
        return False


def handle_request(
    pipeline: Pipeline,
    settings: HttpSettings,
    *,
    method: str,
    headers: Mapping[str, str],
    body: bytes,
    query: Mapping[str, str],
    deadline: Deadline | None = None,
) -> Response:
    """Serve one request. `headers` must be case-insensitive or lower-cased."""
    origin = _header(headers, "webhook-request-origin")
    if method.upper() == "OPTIONS" and origin is not None:
        return _validation_handshake(origin)
    if not authorized(settings, headers, query):
        return _error(401, "missing or wrong bearer token", **{"WWW-Authenticate": "Bearer"})
    if method.upper() != "POST":
        return _error(405, "use POST", Allow="POST")
    if too_large(settings, headers) or len(body) > settings.max_body:
        return _error(413, f"request body over the {settings.max_body}-byte limit")
    cluster = query.get("cluster")
    if cluster is not None and not _CLUSTER_NAME.match(cluster):
        return _error(400, "invalid cluster name in the 'cluster' parameter")
    context = EventContext(cluster=cluster or None, origin="webhook")
    # One deadline for the whole request, however many pipeline calls it makes (a batch).
    deadline = deadline or pipeline.start_deadline()
    try:
        result = _dispatch(pipeline, headers, body, context, settings.allowed_objects, deadline)
    except BadRequest as exc:
        return _error(400, str(exc))
    except SinkError as exc:
        done = exc.result.to_dict() if exc.result is not None else {}
        error = f"alerts could not be delivered: {exc}"
        return Response(503, {"error": error, **done}, result=exc.result)
    # Nothing evaluated, nothing acknowledged and nothing skipped on purpose (a Pub/Sub message
    # of another log, a control message: answered 200, or Pub/Sub would redeliver it forever).
    if result.events == 0 and not result.ignored and not result.stats.skipped:
        return Response(
            400, {"error": _no_events_reason(result), **result.to_dict()}, result=result
        )
    return Response(200, result.to_dict(), result=result)


def _validation_handshake(origin: str) -> Response:
    """Answer the CloudEvents webhook validation (Event Grid sends it before delivering events in
    the CloudEvents schema): it does no work and reveals nothing, so no token is asked for."""
    if not _ORIGIN.match(origin):
        return _error(400, "WebHook-Request-Origin must be a host name")
    headers = {"WebHook-Allowed-Origin": origin, "WebHook-Allowed-Rate": "*", "Allow": "POST"}
    return Response(200, {}, headers)


def _no_events_reason(result: Result) -> str:
    stats = result.stats
    if not stats.records and not stats.rejected:
        return "the request body holds no audit events"
    if stats.rejected and set(stats.rejected) == {NOT_JSON}:
        return "the request body is not JSON"
    reasons = ", ".join(f"{r} ({n})" for r, n in sorted(stats.rejected.items()))
    return f"no audit events in the request body: {reasons or 'nothing to evaluate'}"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return headers.get(name) or headers.get(name.lower()) or headers.get(name.title())


def _dispatch(
    pipeline: Pipeline,
    headers: Mapping[str, str],
    body: bytes,
    context: EventContext,
    allowed: Sequence[ObjectPrefix],
    deadline: Deadline | None = None,
) -> Result:
    ctype = (_header(headers, "content-type") or "").split(";")[0].strip().lower()
    if _header(headers, "ce-specversion"):
        attributes = _binary_attributes(headers, body)
        return handle_cloudevent(
            pipeline, attributes, body, context, allowed=allowed, deadline=deadline
        )
    if ctype.startswith("application/cloudevents-batch"):
        envelopes = _parse_json(body)
        if not isinstance(envelopes, list):
            raise BadRequest("a CloudEvents batch must be a JSON array")
        # Every envelope is checked before any is scanned: a bad one refuses the whole batch
        # (400, the sender fixes and resends it) before any alert of it was delivered.
        events = [_structured(envelope) for envelope in envelopes]
        result = Result()
        for attributes, data in events:
            try:
                result.merge(
                    handle_cloudevent(
                        pipeline, attributes, data, context, allowed=allowed, deadline=deadline
                    )
                )
            except SinkError as exc:
                if exc.result is not None:
                    result.merge(exc.result)
                exc.result = result  # the whole batch's counters
                raise
        return result
    if ctype.startswith("application/cloudevents"):
        attributes, data = _structured(_parse_json(body))
        return handle_cloudevent(
            pipeline, attributes, data, context, allowed=allowed, size=len(body), deadline=deadline
        )
    return pipeline.run(body, context=context, name="request", deadline=deadline)


def _parse_json(body: bytes | bytearray | str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("the request body is not JSON") from None


def _binary_attributes(headers: Mapping[str, str], body: bytes) -> dict[str, str]:
    """A binary-mode CloudEvent's type, source and id, checked against the specification by the
    CloudEvents SDK (specversion 1.0 or 0.3, every required attribute present); the body is not
    parsed here. Raises BadRequest."""
    missing = [
        f"ce-{name}" for name in ("id", "source", "type") if not _header(headers, f"ce-{name}")
    ]
    if missing:  # the SDK's message would name specversion
        raise BadRequest(
            "a binary-mode CloudEvent needs ce-id, ce-source and ce-type headers "
            f"(missing: {', '.join(missing)})"
        )
    from cloudevents.exceptions import GenericException
    from cloudevents.http import from_http

    # The ce-* headers only: with a `content-type: application/cloudevents...` the SDK would
    # read the body as a structured event (json.loads of the whole body, and a JSONDecodeError
    # for one that is not JSON). The body is the data here, and it is not parsed by the SDK.
    attributes = {k: v for k, v in headers.items() if k.lower().startswith("ce-")}
    try:
        event = from_http(attributes, body, data_unmarshaller=_raw)
    except (GenericException, ValueError) as exc:
        raise BadRequest(f"not a valid CloudEvent: {echoable(str(exc))}") from None
    return {
        name: str(event[name])
        for name in ("type", "source", "id", "subject")
        if event.get(name) is not None
    }


def _raw(data: Any) -> Any:
    return data


def _structured(envelope: Any) -> tuple[dict[str, str], Any]:
    """The attributes and data of one structured-mode CloudEvent, parsed (its data read from the
    parsed envelope, never parsed again), its attributes checked against the specification by
    the CloudEvents SDK. Raises BadRequest."""
    if not isinstance(envelope, dict) or not all(
        isinstance(envelope.get(k), str) for k in ("specversion", "type", "source", "id")
    ):
        raise BadRequest("a structured CloudEvent needs specversion, type, source and id")
    from cloudevents.exceptions import GenericException
    from cloudevents.http import from_dict

    try:  # the attributes only: the data is ours to read
        from_dict({k: v for k, v in envelope.items() if k not in ("data", "data_base64")})
    except GenericException as exc:
        raise BadRequest(f"not a valid CloudEvent: {echoable(str(exc))}") from None
    attributes = {
        k: envelope[k]
        for k in ("type", "source", "id", "subject")
        if isinstance(envelope.get(k), str)
    }
    if "data_base64" in envelope:
        try:
            data: Any = base64.b64decode(envelope["data_base64"], validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise BadRequest("data_base64 is not valid base64") from None
    else:
        data = envelope.get("data")
    return attributes, data


DATA = "data"  # the event carries audit data
GCS = "gs"  # the event names a GCS object
S3 = "s3"  # the event names an S3 object
AZ = "az"  # the event names an Azure blob


def classify(attributes: Mapping[str, str]) -> str:
    """What a CloudEvent carries, from its attributes alone: `GCS`, `S3`, an ignored storage
    event (`ignored: <why>`), or `DATA`."""
    ce_type = attributes.get("type", "")
    if ce_type == GCS_FINALIZED:
        return GCS
    if ce_type in S3_OBJECT_CREATED:
        return S3
    if attributes.get("source") == S3_SOURCE:
        return f"ignored: S3 {ce_type or 'event'} is not an object creation"
    if ce_type.startswith(GCS_EVENT_PREFIX):  # deleted, archived, metadataUpdated
        return f"ignored: {ce_type} is not an object finalization"
    if ce_type == AZURE_BLOB_CREATED:
        return AZ
    if ce_type.startswith(AZURE_EVENT_PREFIX):  # BlobDeleted, BlobTierChanged, ...
        return f"ignored: {ce_type} is not a blob creation"
    return DATA


def handle_cloudevent(
    pipeline: Pipeline,
    attributes: Mapping[str, str],
    data: Any,
    context: EventContext,
    *,
    allowed: Sequence[ObjectPrefix] = (),
    size: int | None = None,
    deadline: Deadline | None = None,
) -> Result:
    """Scan a CloudEvent: the bucket object it names, or the audit events in its data.

    `data` is the body of a binary-mode event (bytes, decoded as it came) or a JSON value already
    parsed (a structured envelope's data, what the functions framework parsed), read without
    being parsed again; `size` bounds the length it was parsed from, when known. An object is
    read only under one of the `allowed` prefixes (FALCONET_ALLOWED_OBJECTS): anyone can send a
    CloudEvent, and the function reads with its own rights. Raises SinkError."""
    attributes = _attributes(attributes.get)  # bounded and printable from here on
    kind = classify(attributes)
    if kind != DATA:
        return _object_event(pipeline, kind, attributes, data, context, allowed, deadline)
    if data is None:
        raise BadRequest("the CloudEvent has no data")
    context = context.updated(origin=attributes.get("source") or None)
    name = attributes.get("id") or "cloudevent"
    if isinstance(data, bytes | bytearray):
        return pipeline.run(bytes(data), context=context, name=name, deadline=deadline)
    if isinstance(data, str):
        return pipeline.run(data.encode(), context=context, name=name, deadline=deadline)
    return pipeline.run_value(data, context=context, name=name, size=size, deadline=deadline)


def _object_event(
    pipeline: Pipeline,
    kind: str,
    attributes: Mapping[str, str],
    data: Any,
    context: EventContext,
    allowed: Sequence[ObjectPrefix],
    deadline: Deadline | None,
) -> Result:
    if kind.startswith("ignored: "):
        return Result(ignored=[kind.removeprefix("ignored: ")])
    value = _parse_json(data) if isinstance(data, bytes | bytearray | str) else data
    if kind == AZ:
        ref = azure_blob(attributes.get("source", ""), attributes.get("subject", ""), value)
    else:
        ref = gcs_object(value) if kind == GCS else s3_object(value)
    if ref is None:
        what = attributes.get("type") or "storage"
        raise BadRequest(f"the {what} event does not name a bucket object")
    if not any(prefix.holds(ref) for prefix in allowed):
        return Result(ignored=[f"{ref.url} is not under {ALLOWED_OBJECTS}"])
    try:
        return pipeline.scan(ref, context=context, deadline=deadline)
    except ObjectGone as exc:
        return Result(ignored=[str(exc)])
