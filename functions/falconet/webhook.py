"""The HTTP contract shared by `main.audit_http` (functions-framework) and `handle_http` (Lambda).

One target serves the kube-apiserver audit webhook and CloudEvents:
- plain JSON: an `EventList` (what the webhook backend POSTs), a single `Event`, a JSON array or
  JSON lines, gzip allowed;
- CloudEvents in binary mode (`ce-specversion` header; the body is the data), structured mode
  (`application/cloudevents+json`) and batch mode (`application/cloudevents-batch+json`), detected
  here because functions-framework's `cloud_event` signature rejects plain JSON and batches.
  A CloudEvent whose data names a bucket object (GCS object finalized, S3 Object Created) has the
  object read and scanned.

Answers: 401 without the configured bearer token (constant-time compare); 405 for other methods;
413 over the body limit; 400 with a reason for a body that is not JSON or holds no audit event;
503 when a sink cannot deliver (the apiserver retries; alert uuids make retries deduplicable);
200 with the invocation counters otherwise. Errors never echo the `Authorization` header or audit
data.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from falconet.context import EventContext
from falconet.decode import NOT_JSON
from falconet.errors import ConfigError, SinkError
from falconet.objects import ObjectRef, open_object
from falconet.pipeline import Pipeline, Result
from falconet.triggers import (
    GCS_FINALIZED,
    S3_OBJECT_CREATED,
    gcs_object,
    is_s3_event,
    s3_object,
)

DEFAULT_MAX_BODY = 16 * 1024 * 1024
_CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}\Z")


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    token: str | None = None
    max_body: int = DEFAULT_MAX_BODY

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebhookSettings:
        """FALCONET_WEBHOOK_TOKEN and FALCONET_MAX_BODY_BYTES. Raises ConfigError."""
        env = os.environ if environ is None else environ
        token = env.get("FALCONET_WEBHOOK_TOKEN") or None
        raw = env.get("FALCONET_MAX_BODY_BYTES", "").strip()
        try:
            max_body = int(raw) if raw else DEFAULT_MAX_BODY
        except ValueError:
            raise ConfigError(
                f"FALCONET_MAX_BODY_BYTES must be a number of bytes, got '{raw}'"
            ) from None
        if max_body <= 0:
            raise ConfigError("FALCONET_MAX_BODY_BYTES must be positive")
        return cls(token=token, max_body=max_body)


@dataclass(slots=True)
class Response:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    result: Result | None = None

    def json(self) -> bytes:
        return orjson.dumps(self.body)


def _error(status: int, message: str, **headers: str) -> Response:
    return Response(status, {"error": message}, dict(headers))


class _BadRequest(Exception):
    pass


def authorized(settings: WebhookSettings, headers: Mapping[str, str]) -> bool:
    if not settings.token:
        return True
    supplied = headers.get("authorization") or headers.get("Authorization") or ""
    expected = f"Bearer {settings.token}"
    return hmac.compare_digest(supplied.encode(), expected.encode())


def too_large(settings: WebhookSettings, headers: Mapping[str, str]) -> bool:
    length = headers.get("content-length") or headers.get("Content-Length")
    try:
        return length is not None and int(length) > settings.max_body
    except ValueError:
        return False


def handle_request(
    pipeline: Pipeline,
    settings: WebhookSettings,
    *,
    method: str,
    headers: Mapping[str, str],
    body: bytes,
    query: Mapping[str, str],
    opener: Callable[[ObjectRef], Any] = open_object,
) -> Response:
    """Serve one request. `headers` must be case-insensitive or lower-cased."""
    if not authorized(settings, headers):
        return _error(401, "missing or wrong bearer token", **{"WWW-Authenticate": "Bearer"})
    if method.upper() != "POST":
        return _error(405, "use POST", Allow="POST")
    if too_large(settings, headers) or len(body) > settings.max_body:
        return _error(413, f"request body over the {settings.max_body}-byte limit")
    cluster = query.get("cluster")
    if cluster is not None and not _CLUSTER_NAME.match(cluster):
        return _error(400, "invalid cluster name in the 'cluster' parameter")
    context = EventContext(cluster=cluster or None, origin="webhook")
    try:
        result = _dispatch(pipeline, headers, body, context, opener)
    except _BadRequest as exc:
        return _error(400, str(exc))
    except SinkError as exc:
        return _error(503, f"alerts could not be delivered: {exc}")
    if result.events == 0:
        return Response(
            400, {"error": _no_events_reason(result), **result.to_dict()}, result=result
        )
    return Response(200, result.to_dict(), result=result)


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
    opener: Callable[[ObjectRef], Any],
) -> Result:
    ctype = (_header(headers, "content-type") or "").split(";")[0].strip().lower()
    if _header(headers, "ce-specversion"):
        attributes = {
            name: _header(headers, f"ce-{name}") or "" for name in ("type", "source", "id")
        }
        return handle_cloudevent(pipeline, attributes, body, context, opener)
    if ctype.startswith("application/cloudevents-batch"):
        envelopes = _parse_json(body)
        if not isinstance(envelopes, list):
            raise _BadRequest("a CloudEvents batch must be a JSON array")
        result = Result()
        for envelope in envelopes:
            result.merge(_structured(pipeline, envelope, context, opener))
        return result
    if ctype.startswith("application/cloudevents"):
        return _structured(pipeline, _parse_json(body), context, opener)
    return pipeline.run(body, context=context, name="request")


def _parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _BadRequest("the request body is not JSON") from None


def _structured(
    pipeline: Pipeline, envelope: Any, context: EventContext, opener: Callable[[ObjectRef], Any]
) -> Result:
    if not isinstance(envelope, dict) or not all(
        isinstance(envelope.get(k), str) for k in ("specversion", "type", "source", "id")
    ):
        raise _BadRequest("a structured CloudEvent needs specversion, type, source and id")
    if "data_base64" in envelope:
        try:
            data: Any = base64.b64decode(envelope["data_base64"], validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise _BadRequest("data_base64 is not valid base64") from None
    else:
        data = envelope.get("data")
    attributes = {k: str(envelope.get(k, "")) for k in ("type", "source", "id")}
    return handle_cloudevent(pipeline, attributes, data, context, opener)


def handle_cloudevent(
    pipeline: Pipeline,
    attributes: Mapping[str, str],
    data: Any,
    context: EventContext,
    opener: Callable[[ObjectRef], Any] = open_object,
) -> Result:
    """Scan a CloudEvent's data: audit events inline, or the bucket object it names."""
    ce_type = attributes.get("type", "")
    origin = attributes.get("source") or context.origin
    if ce_type == GCS_FINALIZED or ce_type in S3_OBJECT_CREATED or is_s3_event(data):
        ref = gcs_object(data) if ce_type == GCS_FINALIZED else s3_object(data)
        if ref is None:
            raise _BadRequest(f"the {ce_type or 'storage'} event does not name a bucket object")
        return scan_object(pipeline, ref, context, opener)
    context = context.updated(origin=origin)
    if data is None:
        raise _BadRequest("the CloudEvent has no data")
    payload = data if isinstance(data, bytes | bytearray) else orjson.dumps(data)
    return pipeline.run(bytes(payload), context=context, name=attributes.get("id") or "cloudevent")


def scan_object(
    pipeline: Pipeline,
    ref: ObjectRef,
    context: EventContext,
    opener: Callable[[ObjectRef], Any] = open_object,
) -> Result:
    """Stream one bucket object through the pipeline."""
    from falconet.config import cluster_key_pattern
    from falconet.sources import cluster_from_key

    opened = opener(ref)
    cluster = (
        context.cluster
        or opened.metadata.get("cluster")
        or opened.metadata.get("falconet-cluster")
        or cluster_from_key(ref.key, cluster_key_pattern())
    )
    ctx = context.updated(cluster=cluster, origin=ref.url, region=ref.region, account=ref.account)
    try:
        return pipeline.run(opened.stream, context=ctx, name=ref.url)
    finally:
        close = getattr(opened.stream, "close", None)
        if close is not None:
            close()
