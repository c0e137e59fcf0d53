"""The Pub/Sub sink: alerts published to a Google Cloud Pub/Sub topic (FALCONET_PUBSUB_TOPIC).

Contract:
- Pub/Sub's REST `projects.topics.publish` (`POST https://pubsub.googleapis.com/v1/<topic>:publish`),
  sent with the HTTP sink's `send` (timeouts, no redirects, retries with backoff on connection
  errors, 429 and 5xx while the invocation's deadline allows). No client library: one request
  shape, and google-auth (which google-cloud-storage brings) for the access token, from
  Application Default Credentials (the function's service account on Cloud Run / Functions).
- With `PUBSUB_EMULATOR_HOST` set (the variable Google's client libraries honour) the requests go
  to `http://<that host>` without a token, as to the Pub/Sub emulator.
- Each message: `data` = the Falco JSON alert, `attributes` = `rule`, `priority`, `source`,
  `uuid` (consumers deduplicate retried invocations by it) and `cluster` when known, for
  subscription filters. A delivery holds at most one request (MAX_MESSAGES or MAX_REQUEST_BYTES).
- A request Pub/Sub refuses as invalid (400) is resent message by message, and a message refused
  alone is dropped (counted, logged); any other failure (401/403: the service account lacks
  `roles/pubsub.publisher`; 404: no such topic) raises SinkError.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import orjson

from falconet.alerts import Alert
from falconet.deadline import Deadline
from falconet.errors import ConfigError, SinkError
from falconet.sinks import Tally
from falconet.sinks.http import USER_AGENT, PostOutcome, send

GOOGLE_ENDPOINT = "https://pubsub.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/pubsub"
MAX_MESSAGES = 100
MAX_REQUEST_BYTES = 7 * 1024 * 1024  # Pub/Sub takes 10 MB per request; base64 grows data by 4/3
MAX_MESSAGE_BYTES = 7 * 1024 * 1024 // 2  # one alert, leaving room for its base64 and attributes
MAX_ATTRIBUTE = 1024  # Pub/Sub's limit on an attribute value is 1024 bytes


def message(alert: Alert) -> dict[str, Any]:
    """The Pub/Sub message for `alert`."""
    attributes = {
        "rule": alert.rule,
        "priority": alert.priority,
        "source": alert.source,
        "uuid": alert.uuid,
        "cluster": alert.cluster or "",
    }
    return {
        "data": base64.b64encode(alert.to_json()).decode(),
        "attributes": {
            k: v.encode()[:MAX_ATTRIBUTE].decode(errors="ignore")
            for k, v in attributes.items()
            if v
        },
    }


class PubSubDelivery:
    """One invocation's alerts, published a request's worth at a time."""

    def __init__(self, sink: PubSubSink, deadline: Deadline) -> None:
        self.sink = sink
        self.deadline = deadline
        self.tally = Tally(sink.name)
        self._held: list[tuple[Alert, dict[str, Any]]] = []
        self._bytes = 0

    def emit(self, alerts: Sequence[Alert]) -> None:
        for alert in alerts:
            item = message(alert)
            size = len(item["data"]) + 256
            if self._held and (
                len(self._held) >= MAX_MESSAGES or self._bytes + size > MAX_REQUEST_BYTES
            ):
                self.flush()
            self._held.append((alert, item))
            self._bytes += size

    def flush(self) -> None:
        held, self._held, self._bytes = self._held, [], 0
        if not held:
            return
        outcome = self._publish([item for _, item in held])
        if outcome.ok:
            self.tally.delivered += len(held)
            return
        if outcome.status != 400:
            self._fail(held[0][0], outcome)
        for alert, item in held:  # which message was refused: each alone
            alone = self._publish([item]) if len(held) > 1 else outcome
            if alone.ok:
                self.tally.delivered += 1
            elif alone.status == 400:
                self.tally.drop(alert, alone.describe())
            else:
                self._fail(alert, alone)

    def _publish(self, messages: list[dict[str, Any]]) -> PostOutcome:
        sink = self.sink
        headers = {"User-Agent": USER_AGENT, "Content-Type": "application/json"}
        headers.update(sink.auth_headers())
        return send(
            sink.url,
            orjson.dumps({"messages": messages}),
            headers,
            timeout=sink.timeout,
            max_attempts=sink.max_attempts,
            backoff_base=sink.backoff_base,
            deadline=self.deadline,
        )

    def _fail(self, alert: Alert, outcome: PostOutcome) -> None:
        raise SinkError(
            f"Pub/Sub sink {self.sink.topic}: {alert.uuid or alert.rule}: {outcome.describe()}; "
            "this and the invocation's later alerts were not delivered"
        )


class PubSubSink:
    """Alerts published to a Pub/Sub topic, `projects/<project>/topics/<topic>`."""

    name = "pubsub"

    def __init__(
        self,
        topic: str,
        *,
        emulator_host: str | None = None,
        timeout: float = 10.0,
        max_attempts: int = 4,
        backoff_base: float = 0.2,
        max_alert_bytes: int | None = None,
    ) -> None:
        self.topic = topic
        self.emulator = bool(emulator_host)
        endpoint = f"http://{emulator_host}" if emulator_host else GOOGLE_ENDPOINT
        self.url = f"{endpoint}/v1/{topic}:publish"
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.max_alert_bytes = min(max_alert_bytes or MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES)
        self._credentials: Any = None

    def auth_headers(self) -> dict[str, str]:
        """`Authorization: Bearer <access token>` from Application Default Credentials, refreshed
        when it expires (none for the emulator). Raises SinkError."""
        if self.emulator:
            return {}
        try:
            import google.auth
            from google.auth.transport.requests import Request
        except ImportError as exc:
            raise ConfigError(
                "the Pub/Sub sink needs google-auth and requests: pip install google-auth requests"
            ) from exc
        try:
            if self._credentials is None:
                self._credentials, _ = google.auth.default(scopes=[SCOPE])
            if not self._credentials.valid:
                self._credentials.refresh(Request())
        except Exception as exc:  # google.auth.exceptions.*: no credentials, refresh failed
            raise SinkError(
                f"Pub/Sub sink {self.topic}: no Google credentials ({type(exc).__name__})"
            ) from exc
        return {"Authorization": f"Bearer {self._credentials.token}"}

    def open(self, deadline: Deadline | None = None) -> PubSubDelivery:
        return PubSubDelivery(self, deadline or Deadline.never())
