"""Where alerts go: one small class per destination behind one interface.

    class Sink(Protocol):
        name: str
        def emit(self, alerts: Sequence[Alert]) -> None: ...   # may buffer
        def flush(self) -> None: ...                          # deliver all; SinkError after retries

Sinks are chosen from configuration (`sinks_from_env`), built once per cold start and reused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from falconet.alerts import Alert


class Sink(Protocol):
    name: str

    def emit(self, alerts: Sequence[Alert]) -> None:
        """Accept alerts for delivery (a sink may buffer them until `flush`)."""

    def flush(self) -> None:
        """Deliver everything accepted so far; raise `SinkError` if some could not be delivered."""
