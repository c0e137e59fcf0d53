"""Where alerts go: one small class per destination behind one interface.

    class Sink(Protocol):                      # built once per cold start, shared by invocations
        name: str
        max_alert_bytes: int | None            # the largest alert it accepts (`alerts.wire_size`)
        def open(self, deadline: Deadline) -> Delivery: ...

    class Delivery(Protocol):                  # one invocation's deliveries to one sink
        tally: Tally                           # delivered, dropped (with why)
        def emit(self, alerts: Sequence[Alert]) -> None: ...   # delivers as it goes
        def flush(self) -> None: ...                          # delivers the last partial batch

Contract of every delivery:
- It holds at most one request's worth of alerts (SQS/SNS: 10 entries or the byte limit; Lambda:
  one payload; HTTP and stdout: none), so memory stays flat whatever the alert count.
- An alert refused for itself (SQS/SNS `SenderFault`, an invalid entry, HTTP 400/413/422, a
  payload Lambda refuses, an alert over the limit) is dropped: counted in `tally`, logged with its
  uuid, rule, time and auditID (when the alert carries `ka.auditid`), never retried and never
  failing the others. The pipeline fits every alert to the smallest `max_alert_bytes` first
  (`alerts.fit`), so none should ever be refused for its size.
- A failure of the destination (connection, timeout, throttling, 5xx, a queue that does not
  exist, a denied request) is retried with backoff while the attempts and the `deadline` allow,
  then raises `SinkError`: the invocation fails, and the trigger retries or dead-letters it.
- A delivery belongs to one invocation: the pipeline opens one per sink per invocation and drops
  it afterwards, so nothing a failed invocation left undelivered is sent by the next one.

`sinks_from_settings(settings.sinks)` builds the sinks the settings name, once per cold start;
every configured sink is used (`falconet.config` reads and checks the variables):

    FALCONET_SQS_QUEUE_URL      SqsSink     (a `.fifo` URL selects FIFO mode)
    FALCONET_SNS_TOPIC_ARN      SnsSink     (a `.fifo` topic selects FIFO mode)
    FALCONET_NOTIFY_FUNCTION    LambdaSink  (function name, partial ARN or ARN, optional `:alias`)
    FALCONET_PUBSUB_TOPIC       PubSubSink  (projects/<project>/topics/<topic>)
    FALCONET_HTTP_SINK_URL      HttpSink
      FALCONET_HTTP_SINK_FORMAT   cloudevent (default) | falco
      FALCONET_HTTP_SINK_HEADERS  JSON object of extra request headers, e.g. an Authorization header
    (none of the above)         StdoutSink
    FALCONET_MAX_ALERT_BYTES    lowers every sink's `max_alert_bytes` (default 1 MiB)

Building a sink does no I/O: AWS clients are created on first delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from falconet.alerts import AUDIT_ID_FIELD, Alert
from falconet.config import SinkSettings
from falconet.deadline import Deadline

log = logging.getLogger("falconet.sinks")

MAX_REASONS = 20  # dropped alerts named in a tally (all are counted and logged)


@dataclass(slots=True)
class Tally:
    """What one delivery did: alerts delivered, and alerts dropped with why."""

    sink: str
    delivered: int = 0
    dropped: int = 0
    reasons: list[str] = field(default_factory=list)  # the first MAX_REASONS drops

    def drop(self, alert: Alert, reason: str) -> None:
        """Count and log an alert refused for itself (never retried, never failing the rest)."""
        self.dropped += 1
        audit_id = alert.output_fields.get(AUDIT_ID_FIELD)
        named = f"{alert.uuid or alert.rule}" + (f" (auditID {audit_id})" if audit_id else "")
        if len(self.reasons) < MAX_REASONS:
            self.reasons.append(f"{self.sink} {named}: {reason}")
        log.warning(
            "falconet: %s dropped alert %s, rule %r, time %s, cluster %s: %s",
            self.sink,
            named,
            alert.rule,
            alert.time,
            alert.cluster,
            reason,
        )


class Delivery(Protocol):
    tally: Tally

    def emit(self, alerts: Sequence[Alert]) -> None:
        """Deliver `alerts`, sending each request as soon as it is full. Raises `SinkError`."""

    def flush(self) -> None:
        """Deliver what is left (at most one request's worth). Raises `SinkError`."""


class Sink(Protocol):
    name: str

    @property
    def max_alert_bytes(self) -> int | None:
        """The largest alert it accepts (`alerts.wire_size`); None: no limit of its own."""

    def open(self, deadline: Deadline) -> Delivery:
        """A new delivery for one invocation, whose retries end by `deadline`."""


def sinks_from_settings(settings: SinkSettings) -> list[Sink]:
    """The sinks `settings` names, in a fixed order (SQS, SNS, Lambda, Pub/Sub, HTTP), or
    `[stdout]`."""
    # Imported here: entry points that never emit (e.g. `falconet validate`) skip these modules.
    from falconet.sinks.http import HttpSink
    from falconet.sinks.lambda_invoke import LambdaSink
    from falconet.sinks.pubsub import PubSubSink
    from falconet.sinks.sns import SnsSink
    from falconet.sinks.sqs import SqsSink
    from falconet.sinks.stdout import StdoutSink

    cap = settings.max_alert_bytes
    sinks: list[Sink] = []
    if settings.sqs_queue_url:
        sinks.append(SqsSink(settings.sqs_queue_url, max_alert_bytes=cap))
    if settings.sns_topic_arn:
        sinks.append(SnsSink(settings.sns_topic_arn, max_alert_bytes=cap))
    if settings.notify_function:
        sinks.append(LambdaSink(settings.notify_function, max_alert_bytes=cap))
    if settings.pubsub_topic:
        sinks.append(
            PubSubSink(
                settings.pubsub_topic,
                emulator_host=settings.pubsub_emulator_host,
                max_alert_bytes=cap,
            )
        )
    if settings.http_url:
        sinks.append(
            HttpSink(
                settings.http_url,
                fmt=settings.http_format,
                headers=settings.http_headers,
                max_alert_bytes=cap,
            )
        )
    return sinks or [StdoutSink(max_alert_bytes=cap)]


def smallest_limit(sinks: Sequence[Sink]) -> int | None:
    """The largest alert every one of `sinks` accepts (None: no limit)."""
    limits = [sink.max_alert_bytes for sink in sinks if sink.max_alert_bytes is not None]
    return min(limits) if limits else None


__all__ = ["Delivery", "Sink", "Tally", "smallest_limit", "sinks_from_settings"]
