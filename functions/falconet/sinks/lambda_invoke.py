"""The Lambda sink: alerts handed to another function (e.g. falconet's notify function) by
asynchronous `Invoke`.

Contract:
- `flush` invokes the function with `InvocationType="Event"` and the payload
  `{"alerts": [<Falco JSON alert>, ...]}`, as many times as needed to keep each payload under
  `MAX_PAYLOAD_BYTES`; alerts keep their order. The buffer is emptied on success and on failure.
- Lambda answers 202 once it has queued the event; retries of the *target* function are Lambda's
  business (its async retry policy and on-failure destination). A request that still fails after
  botocore's retries, any status other than 202, or an alert too large for one payload raises
  `SinkError`.
- The module is not named `lambda.py`: `lambda` is a Python keyword and cannot be imported.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from falconet.alerts import Alert
from falconet.errors import SinkError
from falconet.sinks._aws import chunk, make_client, region_of_arn

# botocore 1.44.8 `lambda/2015-03-31/service-2.json`, Invoke: "For asynchronous invocations, the
# maximum payload size is 1 MB." It was 256 KiB until late 2025 and older regional or partition
# documentation still says so; we stay under 256 KiB, which every region accepts, at the price of
# a few more invocations for very large batches.
MAX_PAYLOAD_BYTES = 262_144 - 1024
_ENVELOPE_BYTES = len(b'{"alerts":[]}')


def payloads(alerts: Sequence[Alert], max_bytes: int = MAX_PAYLOAD_BYTES) -> list[bytes]:
    """`{"alerts":[...]}` JSON payloads, each at most `max_bytes`. Raises `SinkError` for an
    alert that cannot fit in a payload on its own."""
    documents = [alert.to_json() for alert in alerts]
    budget = max_bytes - _ENVELOPE_BYTES
    for alert, document in zip(alerts, documents, strict=True):
        if len(document) > budget:
            raise SinkError(
                f"Lambda: alert {alert.uuid or alert.rule} is {len(document)} bytes, larger than "
                f"one asynchronous payload ({max_bytes} bytes)"
            )
    # +1 per document for the comma that separates it from the next one.
    return [
        b'{"alerts":[' + b",".join(group) + b"]}"
        for group in chunk(documents, lambda d: len(d) + 1, len(documents), budget)
    ]


class LambdaSink:
    """Alerts to one Lambda function (name, partial or full ARN, optionally `:alias`)."""

    name = "lambda"

    def __init__(self, function_name: str) -> None:
        self.function_name = function_name
        self._pending: list[Alert] = []
        self._client: Any = None
        self._lock = threading.Lock()

    def _lambda(self) -> Any:
        with self._lock:
            if self._client is None:
                region = (
                    region_of_arn(self.function_name)
                    if self.function_name.startswith("arn:")
                    else None
                )
                self._client = make_client("lambda", region)
            return self._client

    def emit(self, alerts: Sequence[Alert]) -> None:
        self._pending.extend(alerts)

    def flush(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        alerts, self._pending = self._pending, []
        if not alerts:
            return
        bodies = payloads(alerts)
        client = self._lambda()
        for index, body in enumerate(bodies):
            try:
                response = client.invoke(
                    FunctionName=self.function_name, InvocationType="Event", Payload=body
                )
            except (BotoCoreError, ClientError) as error:
                raise SinkError(
                    f"Lambda {self.function_name}: invoke failed after botocore's retries "
                    f"({len(bodies) - index} of {len(bodies)} payload(s) not delivered): {error}"
                ) from error
            status = response.get("StatusCode")
            if status != 202:
                raise SinkError(
                    f"Lambda {self.function_name}: asynchronous invoke answered {status}, expected "
                    f"202 ({len(bodies) - index} of {len(bodies)} payload(s) not delivered)"
                )
