"""functions-framework targets: the HTTP webhook / CloudEvents target and the CloudEvent target.

    functions-framework --source functions/main.py --target audit_http --port 8080
    functions-framework --source functions/main.py --target audit_cloudevent

Thin adapters: they turn a request into one `falconet` call and map the outcome to a status code.
The engine and sinks are built once, when this module is imported (the cold start), so a bad
setting or rules file stops the server from starting with a message naming the problem.
"""

from __future__ import annotations

from typing import Any

import flask
import functions_framework
from cloudevents.http import CloudEvent

from falconet.context import EventContext
from falconet.pipeline import Pipeline, log_invocation
from falconet.webhook import (
    WebhookSettings,
    authorized,
    handle_cloudevent,
    handle_request,
    too_large,
)

SETTINGS = WebhookSettings.from_env()
PIPELINE = Pipeline.from_env()  # this module's import is the cold start


@functions_framework.http
def audit_http(request: flask.Request) -> tuple[bytes, int, dict[str, str]]:
    """kube-apiserver audit webhook (EventList), JSON/JSON lines, and CloudEvents (any mode)."""
    # Unauthenticated or declared-too-large requests are answered without reading the body;
    # otherwise read at most one byte past the limit, so a larger body is refused unbuffered.
    if authorized(SETTINGS, request.headers) and not too_large(SETTINGS, request.headers):
        body = request.stream.read(SETTINGS.max_body + 1)
    else:
        body = b""
    response = handle_request(
        PIPELINE,
        SETTINGS,
        method=request.method,
        headers=request.headers,
        body=body,
        query=request.args,
    )
    log_invocation(
        "audit_http",
        response.result,
        status=response.status,
        error=response.body.get("error") if response.status >= 400 else None,
    )
    headers = {"Content-Type": "application/json", **response.headers}
    return response.json(), response.status, headers


@functions_framework.cloud_event
def audit_cloudevent(cloud_event: CloudEvent) -> None:
    """Eventarc-style triggers: a GCS object finalized, an S3 Object Created, or audit data."""
    attributes: dict[str, Any] = cloud_event.get_attributes()
    context = EventContext(origin=str(attributes.get("source") or "cloudevent"))
    try:
        result = handle_cloudevent(
            PIPELINE, {k: str(v) for k, v in attributes.items()}, cloud_event.data, context
        )
    except Exception as exc:
        log_invocation("audit_cloudevent", None, error=f"{type(exc).__name__}: {exc}")
        raise  # 500: the trigger retries or dead-letters the event
    log_invocation("audit_cloudevent", result, id=attributes.get("id"))
