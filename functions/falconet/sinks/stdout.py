"""The stdout sink: one Falco JSON alert per line, the default when no other sink is configured.

Contract: a delivery writes each `alert.to_json()` followed by a newline at once (log collectors
such as CloudWatch Logs and Cloud Logging then hold one alert per record, and nothing is held in
memory); `flush` flushes the stream. The stream is looked up at write time unless one is given, so
a replaced `sys.stdout` is honoured. Never raises `SinkError`: a broken stdout is a platform
failure, left to surface as it is.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import BinaryIO

from falconet.alerts import Alert
from falconet.deadline import Deadline
from falconet.sinks import Tally


class StdoutDelivery:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.tally = Tally("stdout")

    def emit(self, alerts: Sequence[Alert]) -> None:
        if alerts:
            # One write per batch: lines from concurrent threads never interleave mid-line.
            self.out.write(b"".join(alert.to_json() + b"\n" for alert in alerts))
            self.tally.delivered += len(alerts)

    def flush(self) -> None:
        self.out.flush()


class StdoutSink:
    """Alerts as JSON lines on standard output (or on `stream`)."""

    name = "stdout"

    def __init__(
        self, stream: BinaryIO | None = None, *, max_alert_bytes: int | None = None
    ) -> None:
        self._stream = stream
        self.max_alert_bytes = max_alert_bytes

    def open(self, deadline: Deadline | None = None) -> StdoutDelivery:
        return StdoutDelivery(self._stream if self._stream is not None else sys.stdout.buffer)
