"""AWS Lambda entry points. Thin: adapt the event into one library call, report the outcome.

- `handle_s3`: S3 ObjectCreated notifications, delivered directly, through SQS, through SNS (or SNS
  inside SQS), or via EventBridge; every object named is streamed through the pipeline. Triggered
  by SQS, it reports per-message failures (`batchItemFailures`) so only failed messages return.
- `handle_http`: the same contract as `main.audit_http`, for a Function URL / API Gateway HTTP API
  (payload v2) event, base64 bodies included.
- `handle_notify`: the notification function (below).

Module-level state stays minimal: each handler reads its
configuration once per cold start, on its first invocation (not at import, so one handler's missing
settings never break the others sharing this module), and a bad value fails that invocation with a
`ConfigError` naming the variable. Neither Flask nor functions-framework is imported here (they
cost ~200 ms of cold start, reference/serverless-ecosystem.md §6.4).

`handle_notify(event, context)` accepts:
- an SQS event (`{"Records": [{"messageId", "body", ...}]}`) from the alert queue, whose bodies are
  alerts in any form `falconet.notify.alerts_from_message` reads. It returns
  `{"batchItemFailures": [{"itemIdentifier": <messageId>}, ...]}` naming every record that was not
  delivered or is not an alert (logged with the reason); the event source mapping must enable
  `ReportBatchItemFailures`. Those records return to the queue and, after `maxReceiveCount`
  receives, go to its dead-letter queue: nothing is lost.
- an asynchronous invoke from the Lambda sink (`{"alerts": [...]}`). Any failure raises, so Lambda
  retries the event and then hands it to the function's on-failure destination.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import os
from typing import Any

from falconet.context import EventContext
from falconet.errors import FalconetError, SinkError
from falconet.notify import NotifyConfig, alerts_from_message, deliver
from falconet.pipeline import Result, get_pipeline, log_invocation
from falconet.triggers import Ignored, objects_in_event, sqs_records
from falconet.webhook import WebhookSettings, handle_request, scan_object

log = logging.getLogger("falconet.lambda")


@functools.cache
def _notify_config() -> NotifyConfig:
    return NotifyConfig.from_env(os.environ)


def handle_notify(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Deliver alerts to `FALCONET_NOTIFY_URL`; see the module docstring for inputs and outputs."""
    config = _notify_config()
    if "Records" not in event and "alerts" in event:
        alerts = alerts_from_message(json.dumps(event))
        failed = deliver(config, [("invoke", alerts)])
        _log_summary(records=1, alerts=len(alerts), failed=len(failed))
        if failed:
            raise SinkError(f"notify: {len(alerts)} alert(s) from an invoke were not delivered")
        return {"batchItemFailures": []}

    failures: list[str] = []
    messages = []
    for record in event.get("Records") or []:
        message_id = str(record.get("messageId", ""))
        body = record.get("body")
        try:
            if not isinstance(body, str):
                raise ValueError("record has no SQS body")
            messages.append((message_id, alerts_from_message(body)))
        except ValueError as error:
            log.warning("notify: message %s is not an alert: %s", message_id, error)
            failures.append(message_id)
    failures += deliver(config, messages)
    _log_summary(
        records=len(event.get("Records") or []),
        alerts=sum(len(alerts) for _, alerts in messages),
        failed=len(failures),
    )
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}


def _log_summary(**counters: int) -> None:
    # One structured line per invocation, in the same shape as every entry point's.
    log_invocation("handle_notify", None, **counters)


_SETTINGS: WebhookSettings | None = None


def _missing_object(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return code in ("NoSuchKey", "404", "NotFound")


def _scan_records(event: Any, result: Result, ignored: list[str]) -> None:
    pipeline = get_pipeline()
    for item in objects_in_event(event):
        if isinstance(item, Ignored):
            ignored.append(item.reason)
            continue
        try:
            result.merge(scan_object(pipeline, item, EventContext()))
        except Exception as exc:
            if _missing_object(exc):
                ignored.append(f"{item.url} no longer exists")
                continue
            raise


def handle_s3(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Scan the objects an S3 notification names; see the module docstring."""
    result = Result()
    ignored: list[str] = []
    records = sqs_records(event)
    if records is None:
        try:
            _scan_records(event, result, ignored)
        except Exception as exc:
            log_invocation("handle_s3", result, error=f"{type(exc).__name__}: {exc}")
            raise  # the async invocation is retried, then sent to the on-failure destination
        log_invocation("handle_s3", result, ignored=ignored or None)
        return {"status": "ok", **result.to_dict()}
    failures = []
    errors = []
    for record in records:
        try:
            _scan_records({"Records": [record]}, result, ignored)
        except Exception as exc:  # one bad message must not return the whole batch
            failures.append({"itemIdentifier": record.get("messageId", "")})
            errors.append(f"{record.get('messageId')}: {type(exc).__name__}: {exc}")
    log_invocation(
        "handle_s3", result, ignored=ignored or None, error="; ".join(errors) if errors else None
    )
    return {"batchItemFailures": failures}


def handle_http(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """A Function URL / API Gateway v2 request, answered as `main.audit_http` answers."""
    global _SETTINGS  # noqa: PLW0603 - read once per container
    if _SETTINGS is None:
        _SETTINGS = WebhookSettings.from_env()
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    http = (event.get("requestContext") or {}).get("http") or {}
    method = str(http.get("method") or event.get("httpMethod") or "POST")
    raw = event.get("body") or ""
    try:
        body = (
            base64.b64decode(raw, validate=True)
            if event.get("isBase64Encoded")
            else raw.encode("utf-8")
            if isinstance(raw, str)
            else bytes(raw)
        )
    except (binascii.Error, ValueError):
        return _http_answer(400, {"error": "the body is not valid base64"}, {})
    query = {str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()}
    try:
        response = handle_request(
            get_pipeline(), _SETTINGS, method=method, headers=headers, body=body, query=query
        )
    except FalconetError as exc:
        log_invocation("handle_http", None, error=str(exc))
        raise
    log_invocation(
        "handle_http",
        response.result,
        status=response.status,
        error=response.body.get("error") if response.status >= 400 else None,
    )
    return _http_answer(response.status, response.body, response.headers)


def _http_answer(status: int, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    import orjson

    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **headers},
        "body": orjson.dumps(body).decode(),
        "isBase64Encoded": False,
    }
