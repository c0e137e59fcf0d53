"""AWS Lambda entry points. Thin: adapt the event into one library call, report the outcome.

- `handle_s3`: S3 ObjectCreated notifications, delivered directly, through SQS, through SNS (or SNS
  inside SQS), or via EventBridge; every object named is streamed through the pipeline. Triggered
  by SQS, it reports per-message failures (`batchItemFailures`) so only failed messages return.
  A message of a backtest run (`falconet scan --fan-out`: the attribute `falconet.run`) has its
  objects skipped when the run already did them, its alerts carry `falconet.run_id`, and each
  object's outcome goes to the run's counters in the state table (`falconet.state.runs`).
- `handle_http`: the same contract as `main.audit_http`, for a Function URL / API Gateway HTTP API
  (payload v2) event, base64 bodies included.
- `handle_cloudwatch`: an EKS audit log through a CloudWatch Logs subscription (`awslogs`).
- `handle_sweep`: the scheduled sweep: digests of suppression periods that ended.
- `handle_notify`: the notification function (below).

No module-level state: the process's settings, pipeline and notifier come from
`falconet.get_runtime()`, built once per cold start on the first invocation that needs each (not at
import, so one handler's missing settings never break the others sharing this module); a bad value
fails that invocation with a `ConfigError` naming the variable. Only `falconet`'s public API is
used. Neither Flask nor functions-framework is imported here (they cost ~200 ms of cold start).

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
import json
import logging
import sys
from typing import Any

import falconet

log = logging.getLogger("falconet.lambda")


def handle_cloudwatch(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """An EKS audit log through a CloudWatch Logs subscription (`{"awslogs": {"data": ...}}`):
    the events of the batch, their cluster from the log group `/aws/eks/<cluster>/cluster`.
    Anything else is an error (raised, so the asynchronous invocation is retried and then kept
    by the on-failure destination): a subscription's batch is never acknowledged unread."""
    deadline = falconet.Deadline.for_lambda(context)
    request = _request(context)
    if not isinstance(event, dict) or not isinstance(event.get("awslogs"), dict):
        error = "not a CloudWatch Logs subscription event (no awslogs.data)"
        falconet.log_invocation("handle_cloudwatch", None, error=error, request=request)
        raise falconet.DecodeError(error)
    pipeline = falconet.get_runtime().pipeline
    context_ = falconet.EventContext(origin="cloudwatch-logs")
    try:
        result = pipeline.run_value(
            event, context=context_, name="awslogs", size=None, deadline=deadline
        )
    except falconet.FalconetError as exc:
        falconet.log_invocation(
            "handle_cloudwatch", getattr(exc, "result", None), error=str(exc), request=request
        )
        raise
    falconet.log_invocation("handle_cloudwatch", result, request=request)
    _metrics("handle_cloudwatch", result)
    if result.stats.rejected_total and not result.events:
        raise falconet.DecodeError(f"no audit events in the subscription batch: {result.to_dict()}")
    return {"status": "ok", **result.to_dict()}


def handle_sweep(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The scheduled sweep (EventBridge Scheduler, every 5 minutes): sends the digests of every
    suppression period that ended, even when no later alert of its group came. A failure raises
    (logged); the next run picks up what is still due."""
    deadline = falconet.Deadline.for_lambda(context)
    pipeline = falconet.get_runtime().pipeline
    try:
        result = pipeline.sweep(deadline=deadline)
    except (falconet.SinkError, falconet.StateError) as error:
        falconet.log_invocation(
            "handle_sweep", error.result, error=str(error), request=_request(context)
        )
        raise
    falconet.log_invocation("handle_sweep", result, request=_request(context))
    return {"status": "ok", "digests": result.digests}


def handle_notify(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Deliver alerts to `FALCONET_NOTIFY_URL`; see the module docstring for inputs and outputs."""
    config = falconet.get_runtime().notify
    deadline = falconet.Deadline.for_lambda(context)
    if "Records" not in event and "alerts" in event:
        alerts = falconet.alerts_from_message(json.dumps(event))
        failed = falconet.deliver(config, [("invoke", alerts)], deadline=deadline)
        _log_summary(context, records=1, alerts=len(alerts), failed=len(failed))
        if failed:
            raise falconet.SinkError(
                f"notify: {len(alerts)} alert(s) from an invoke were not delivered"
            )
        return {"batchItemFailures": []}

    failures: list[str] = []
    messages = []
    for record in event.get("Records") or []:
        message_id = str(record.get("messageId", ""))
        body = record.get("body")
        try:
            if not isinstance(body, str):
                raise ValueError("record has no SQS body")
            messages.append((message_id, falconet.alerts_from_message(body)))
        except ValueError as error:
            log.warning("notify: message %s is not an alert: %s", message_id, error)
            failures.append(message_id)
    failures += falconet.deliver(config, messages, deadline=deadline)
    _log_summary(
        context,
        records=len(event.get("Records") or []),
        alerts=sum(len(alerts) for _, alerts in messages),
        failed=len(failures),
    )
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}


def _log_summary(context: Any, **counters: int) -> None:
    # One structured line per invocation, in the same shape as every entry point's.
    falconet.log_invocation("handle_notify", None, request=_request(context), **counters)


def _metrics(entry: str, result: falconet.Result | None) -> None:
    """The invocation's per-cluster metrics as CloudWatch embedded-metric lines (stderr: stdout
    may be the stdout sink's alerts)."""
    if result is None:
        return
    for line in falconet.metric_lines(result, entry):
        sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _request(context: Any) -> str | None:
    """The Lambda request id, for the invocation's log line (None outside Lambda)."""
    request = getattr(context, "aws_request_id", None)
    return request if isinstance(request, str) else None


def _scan_records(event: Any, result: falconet.Result, deadline: falconet.Deadline) -> None:
    pipeline = falconet.get_runtime().pipeline
    for item in falconet.objects_in_event(event):
        if isinstance(item, falconet.Ignored):
            result.ignored.append(item.reason)
            continue
        try:
            result.merge(pipeline.scan(item, deadline=deadline))
        except falconet.ObjectGone as exc:  # deleted since the notification: nothing to retry
            result.ignored.append(str(exc))
        except falconet.SinkError as exc:  # the log line counts what the failed scan did
            if exc.result is not None:
                result.merge(exc.result)
            raise


def _scan_run(
    record: Any, run_id: str, result: falconet.Result, deadline: falconet.Deadline
) -> None:
    """A backtest run's message: skip what the run did, count what it does (see the module
    docstring). A failure is recorded (counted failed on the message's last receive) and raised,
    so the message returns to the queue; a deleted object is failed at once and acknowledged."""
    runtime = falconet.get_runtime()
    pipeline, runs = runtime.pipeline, runtime.runs
    receives = falconet.receive_count(record)
    final = receives >= runtime.settings.state.max_receives
    for item in falconet.objects_in_event({"Records": [record]}):
        if isinstance(item, falconet.Ignored):
            result.ignored.append(item.reason)
            continue
        url = item.url
        if runs is not None and runs.is_done(run_id, url, deadline=deadline):
            result.ignored.append(f"{url}: already done in run {run_id}")
            continue
        try:
            scanned = pipeline.scan(item, deadline=deadline, run_id=run_id)
            outcome = falconet.outcome_of(scanned)
            if outcome.unreadable:  # the part read was scanned; the rest may read next time
                result.merge(scanned)
                raise falconet.DecodeError(f"{url}: {outcome.unreadable}")
        except falconet.ObjectGone as exc:  # no retry can bring it back: failed now, by name
            result.ignored.append(str(exc))
            if runs is not None:
                runs.record_failure(
                    run_id, url, f"object gone: {exc}", final=True, receives=receives
                )
            continue
        except Exception as exc:
            if isinstance(exc, falconet.SinkError) and exc.result is not None:
                result.merge(exc.result)
            if runs is not None:
                runs.record_failure(
                    run_id, url, f"{type(exc).__name__}: {exc}", final=final, receives=receives
                )
            raise
        result.merge(scanned)
        if runs is not None:
            runs.record_done(run_id, url, outcome, deadline=deadline)


def handle_s3(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Scan the objects an S3 notification names; see the module docstring."""
    result = falconet.Result()
    deadline = falconet.Deadline.for_lambda(context)
    records = falconet.sqs_records(event)
    if records is None:
        try:
            _scan_records(event, result, deadline)
        except Exception as exc:
            falconet.log_invocation(
                "handle_s3", result, error=f"{type(exc).__name__}: {exc}", request=_request(context)
            )
            raise  # the async invocation is retried, then sent to the on-failure destination
        falconet.log_invocation("handle_s3", result, request=_request(context))
        _metrics("handle_s3", result)
        return {"status": "ok", **result.to_dict()}
    failures = []
    errors = []
    for record in records:
        run_id = falconet.run_of(record)
        try:
            if run_id is None:
                _scan_records({"Records": [record]}, result, deadline)
            else:
                _scan_run(record, run_id, result, deadline)
        except Exception as exc:  # one bad message must not return the whole batch
            failures.append({"itemIdentifier": record.get("messageId", "")})
            errors.append(f"{record.get('messageId')}: {type(exc).__name__}: {exc}")
    falconet.log_invocation(
        "handle_s3",
        result,
        error="; ".join(errors) if errors else None,
        request=_request(context),
    )
    _metrics("handle_s3", result)
    return {"batchItemFailures": failures}


def handle_http(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """A Function URL / API Gateway v2 request, answered as `main.audit_http` answers."""
    runtime = falconet.get_runtime()
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    http = (event.get("requestContext") or {}).get("http") or {}
    method = str(http.get("method") or event.get("httpMethod") or "POST")
    query = {str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()}
    # As main.audit_http: the body is not even decoded for a caller handle_request refuses.
    raw = (event.get("body") or "") if falconet.authorized(runtime.http, headers, query) else ""
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
    try:
        response = falconet.handle_request(
            runtime.pipeline,
            runtime.http,
            method=method,
            headers=headers,
            body=body,
            query=query,
            deadline=falconet.Deadline.for_lambda(context),
        )
    except falconet.FalconetError as exc:
        falconet.log_invocation("handle_http", None, error=str(exc), request=_request(context))
        raise
    falconet.log_invocation(
        "handle_http",
        response.result,
        request=_request(context),
        status=response.status,
        error=response.body.get("error") if response.status >= 400 else None,
    )
    _metrics("handle_http", response.result)
    return _http_answer(response.status, response.body, response.headers)


def _http_answer(status: int, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    import orjson

    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **headers},
        "body": orjson.dumps(body).decode(),
        "isBase64Encoded": False,
    }
