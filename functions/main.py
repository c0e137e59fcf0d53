"""functions-framework targets: the HTTP webhook / CloudEvents target and the CloudEvent target.

    functions-framework --target audit_http --port 8080        # in functions/ or the repo root
    functions-framework --source functions/main.py --target audit_cloudevent

functions/ is the deployable source directory (Cloud Functions gen2, Cloud Run from source, the
Containerfile): this file, the falconet package, the bundled rules (functions/rules/) and the
requirements.txt a buildpack installs. The repository root's main.py is a symlink to this file, so
functions-framework's default source works from the root as well.

Thin adapters: they turn a request into one `falconet` call (its public API only) and map the
outcome to a status code. The settings, engine and sinks are built when this module is imported
(`falconet.start_runtime`: the cold start), so a bad setting or rules file stops the server from
starting with a message naming the problem.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import flask
import functions_framework
from cloudevents.http import CloudEvent

import falconet

RUNTIME = falconet.start_runtime()  # this module's import is the cold start


@functions_framework.http
def audit_http(request: flask.Request) -> flask.Response:
    """kube-apiserver audit webhook (EventList), JSON/JSON lines, and CloudEvents (any mode)."""
    # Unauthenticated or declared-too-large requests are answered without reading the body;
    # otherwise read at most one byte past the limit, so a larger body is refused unbuffered.
    http = RUNTIME.http  # the token re-read from its secret when that is due
    drained = False
    authorized = falconet.authorized(http, request.headers, request.args)
    if authorized and not falconet.too_large(http, request.headers):
        body = request.stream.read(http.max_body + 1)
        drained = len(body) <= http.max_body
    else:
        body = b""
    response = falconet.handle_request(
        RUNTIME.pipeline,
        http,
        method=request.method,
        headers=request.headers,
        body=body,
        query=request.args,
    )
    falconet.log_invocation(
        "audit_http",
        response.result,
        status=response.status,
        error=response.body.get("error") if response.status >= 400 else None,
    )
    headers = {"Content-Type": "application/json", **response.headers}
    if not drained:
        _stop_reading(request)
        headers["Connection"] = "close"
    # A streamed response: functions-framework's after-request hook otherwise reads the whole
    # request body into memory before the answer is sent (flask.request.get_data() for every
    # non-streamed response), which let a 300 MB unauthenticated POST cost 500 MB of RSS.
    return flask.Response(iter((response.json(),)), response.status, headers)


def _stop_reading(request: flask.Request) -> None:
    """Never read the rest of a refused body. gunicorn (functions-framework's server) would
    otherwise drain it after answering, to reuse the connection: a worker thread held while the
    client sends, for as long as it likes. Shutting the connection's read side down ends that
    drain at once (it reads end-of-stream), and gunicorn then closes the connection. Other
    servers get the `Connection: close` answer header."""
    sock = request.environ.get("gunicorn.socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # the client may be gone already
            sock.shutdown(socket.SHUT_RD)


@functions_framework.cloud_event
def audit_cloudevent(cloud_event: CloudEvent) -> None:
    """Eventarc-style triggers: a GCS object finalized, an S3 Object Created, or audit data."""
    attributes: dict[str, Any] = cloud_event.get_attributes()
    context = falconet.EventContext(origin=str(attributes.get("source") or "cloudevent"))
    try:
        result = falconet.handle_cloudevent(
            RUNTIME.pipeline,
            {k: str(v) for k, v in attributes.items()},
            cloud_event.data,
            context,
            allowed=RUNTIME.settings.http.allowed_objects,
        )
    except falconet.BadRequest as exc:
        # An event that can never be served (no data, not JSON, no object named): acknowledged
        # with the reason, since a 500 would have the trigger redeliver it until it expires.
        result = falconet.Result(ignored=[f"{exc}"])
    except Exception as exc:
        done = exc.result if isinstance(exc, falconet.SinkError) else None  # its counters
        falconet.log_invocation("audit_cloudevent", done, error=f"{type(exc).__name__}: {exc}")
        raise  # 500: the trigger retries or dead-letters the event
    falconet.log_invocation("audit_cloudevent", result, id=attributes.get("id"))
