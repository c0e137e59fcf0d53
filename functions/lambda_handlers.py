"""AWS Lambda entry points. Thin: adapt the event into one library call, report the outcome.

For now this module holds only `handle_notify`; the lead adds `handle_s3` (S3 object events) and
`handle_http` (Function URL / HTTP API). Module-level state stays minimal: each handler reads its
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

import functools
import json
import logging
import os
from typing import Any

from falconet.errors import SinkError
from falconet.notify import NotifyConfig, alerts_from_message, deliver

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
    # One structured line per invocation, like every entry point (DESIGN.md, `pipeline`).
    log.info(json.dumps({"handler": "notify", **counters}))
