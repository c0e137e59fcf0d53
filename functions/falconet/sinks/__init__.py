"""Where alerts go: one small class per destination behind one interface.

    class Sink(Protocol):
        name: str
        def emit(self, alerts: Sequence[Alert]) -> None: ...   # may buffer
        def flush(self) -> None: ...                          # deliver all; SinkError after retries

`sinks_from_settings(settings.sinks)` builds the sinks the settings name, once per cold start;
every configured sink is used (`falconet.config` reads and checks the variables):

    FALCONET_SQS_QUEUE_URL      SqsSink     (a `.fifo` URL selects FIFO mode)
    FALCONET_SNS_TOPIC_ARN      SnsSink     (a `.fifo` topic selects FIFO mode)
    FALCONET_NOTIFY_FUNCTION    LambdaSink  (function name, partial ARN or ARN, optional `:alias`)
    FALCONET_HTTP_SINK_URL      HttpSink
      FALCONET_HTTP_SINK_FORMAT   cloudevent (default) | falco
      FALCONET_HTTP_SINK_HEADERS  JSON object of extra request headers, e.g. an Authorization header
    (none of the above)         StdoutSink

Building a sink does no I/O: AWS clients are created on first flush.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from falconet.alerts import Alert
from falconet.config import SinkSettings


class Sink(Protocol):
    name: str

    def emit(self, alerts: Sequence[Alert]) -> None:
        """Accept alerts for delivery (a sink may buffer them until `flush`)."""

    def flush(self) -> None:
        """Deliver everything accepted so far; raise `SinkError` if some could not be delivered."""


def sinks_from_settings(settings: SinkSettings) -> list[Sink]:
    """The sinks `settings` names, in a fixed order (SQS, SNS, Lambda, HTTP), or `[stdout]`."""
    # Imported here: entry points that never emit (e.g. `falconet validate`) skip these modules.
    from falconet.sinks.http import HttpSink
    from falconet.sinks.lambda_invoke import LambdaSink
    from falconet.sinks.sns import SnsSink
    from falconet.sinks.sqs import SqsSink
    from falconet.sinks.stdout import StdoutSink

    sinks: list[Sink] = []
    if settings.sqs_queue_url:
        sinks.append(SqsSink(settings.sqs_queue_url))
    if settings.sns_topic_arn:
        sinks.append(SnsSink(settings.sns_topic_arn))
    if settings.notify_function:
        sinks.append(LambdaSink(settings.notify_function))
    if settings.http_url:
        sinks.append(
            HttpSink(settings.http_url, fmt=settings.http_format, headers=settings.http_headers)
        )
    return sinks or [StdoutSink()]


__all__ = ["Sink", "sinks_from_settings"]
