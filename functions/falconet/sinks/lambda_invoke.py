"""The Lambda sink: alerts handed to another function (e.g. falconet's notify function) by
asynchronous `Invoke`.

Contract:
- A delivery (`open(deadline)`, one per invocation) invokes the function with
  `InvocationType="Event"` and the payload `{"alerts": [<Falco JSON alert>, ...]}` as soon as the
  next alert would take the payload over `MAX_PAYLOAD_BYTES`, so it holds at most one payload;
  alerts keep their order.
- Lambda answers 202 once it has queued the event; retries of the *target* function are Lambda's
  business (its async retry policy and on-failure destination). Throttling, 5xx and connection
  errors are retried while the attempts and the deadline allow, then raise `SinkError`, as do a
  missing or forbidden function and any status other than 202.
- A payload Lambda refuses for its content (too large, not valid) is sent again alert by alert:
  the alert it refuses alone is dropped (counted, logged), the others are delivered.
- The module is not named `lambda.py`: `lambda` is a Python keyword and cannot be imported.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from falconet.alerts import Alert
from falconet.deadline import Deadline
from falconet.errors import SinkError
from falconet.sinks import Tally
from falconet.sinks._aws import Refused, call_with_retries, make_client, region_of_arn

# botocore 1.44.8 `lambda/2015-03-31/service-2.json`, Invoke: "For asynchronous invocations, the
# maximum payload size is 1 MB." It was 256 KiB until late 2025 and older regional or partition
# documentation still says so; we stay under 256 KiB, which every region accepts, at the price of
# a few more invocations for very large batches.
MAX_PAYLOAD_BYTES = 262_144 - 1024
_ENVELOPE_BYTES = len(b'{"alerts":[]}')


def payload(documents: Sequence[bytes]) -> bytes:
    """The `{"alerts":[...]}` payload of some alerts' JSON documents."""
    return b'{"alerts":[' + b",".join(documents) + b"]}"


class LambdaDelivery:
    """One invocation's alerts to one function, one payload at a time."""

    def __init__(self, sink: LambdaSink, deadline: Deadline) -> None:
        self.sink = sink
        self.deadline = deadline
        self.tally = Tally(sink.name)
        self._alerts: list[Alert] = []
        self._documents: list[bytes] = []
        self._bytes = _ENVELOPE_BYTES

    def emit(self, alerts: Sequence[Alert]) -> None:
        limit = self.sink.max_payload_bytes
        for alert in alerts:
            document = alert.to_json()
            if _ENVELOPE_BYTES + len(document) > limit:
                self.tally.drop(alert, f"{len(document)} bytes, over one payload ({limit} bytes)")
                continue
            if self._documents and self._bytes + len(document) + 1 > limit:
                self.flush()
            self._alerts.append(alert)
            self._documents.append(document)
            self._bytes += len(document) + 1  # + the comma before the next one

    def flush(self) -> None:
        alerts, documents = self._alerts, self._documents
        self._alerts, self._documents, self._bytes = [], [], _ENVELOPE_BYTES
        if alerts:
            self._invoke(alerts, documents)

    def _invoke(self, alerts: list[Alert], documents: list[bytes]) -> None:
        sink = self.sink
        client = sink.client()
        describe = f"Lambda {sink.function_name}"
        try:
            response = call_with_retries(
                describe,
                lambda: client.invoke(
                    FunctionName=sink.function_name,
                    InvocationType="Event",
                    Payload=payload(documents),
                ),
                self.deadline,
                max_attempts=sink.max_attempts,
                backoff_base=sink.backoff_base,
            )
        except Refused as refusal:
            if len(alerts) == 1:
                self.tally.drop(alerts[0], str(refusal))
            else:  # one alert spoils the payload: send them one by one
                for alert, document in zip(alerts, documents, strict=True):
                    self._invoke([alert], [document])
            return
        status = response.get("StatusCode")
        if status != 202:
            raise SinkError(
                f"{describe}: asynchronous invoke answered {status}, expected 202 "
                f"({len(alerts)} alert(s) not delivered)"
            )
        self.tally.delivered += len(alerts)


class LambdaSink:
    """Alerts to one Lambda function (name, partial or full ARN, optionally `:alias`)."""

    name = "lambda"

    def __init__(
        self,
        function_name: str,
        *,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        max_alert_bytes: int | None = None,
        max_attempts: int = 5,
        backoff_base: float = 0.1,
    ) -> None:
        self.function_name = function_name
        self.max_payload_bytes = max_payload_bytes
        own = max_payload_bytes - _ENVELOPE_BYTES
        self.max_alert_bytes = own if max_alert_bytes is None else min(own, max_alert_bytes)
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self._client: Any = None
        self._lock = threading.Lock()

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                region = (
                    region_of_arn(self.function_name)
                    if self.function_name.startswith("arn:")
                    else None
                )
                self._client = make_client("lambda", region)
            return self._client

    def open(self, deadline: Deadline | None = None) -> LambdaDelivery:
        return LambdaDelivery(self, deadline or Deadline.never())
