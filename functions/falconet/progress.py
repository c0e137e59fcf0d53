"""The progress line of a long `falconet scan`: objects, bytes and events done, rates, an ETA.

In: the number of objects, their total size when it is known (local files; an object store's
listing gives names only), the scan's `DecodeStats` (read for its event count, never written),
and the chunks of each object as they stream past. Out: one line on stderr, redrawn in place
(`\\r`, erase to the end of the line) at most every quarter second, and erased before the summary
and before alerts are printed.

What it never does: draw when it is off (the CLI turns it on for a terminal or `--progress`), so a
log file, a pipe or a CI job's log gets no carriage returns; look at events (the redraw is paced
from the chunk loop, 64 KiB at a time, so it costs nothing per event).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any


class Progress:
    """Counts what passes through `track`; `object_done` after each object; `clear` at the end."""

    EVERY = 0.25  # seconds between redraws

    def __init__(self, objects: int, total: int | None, stats: Any, *, on: bool) -> None:
        self.stats = stats  # its `events` is read at each redraw
        self.objects = objects
        self.total = total  # bytes, or None when unknown
        self.done = 0
        self.bytes = 0
        self.on = on
        self.started = time.monotonic()
        self.last = 0.0
        self.visible = False

    def track(self, chunks: Iterable[bytes]) -> Iterable[bytes]:
        """`chunks`, counted and the line redrawn as they pass (unchanged when off)."""
        return self._track(chunks) if self.on else chunks

    def _track(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.bytes += len(chunk)
            now = time.monotonic()
            if now - self.last >= self.EVERY:
                self.last = now
                self.draw(now)
            yield chunk

    def object_done(self) -> None:
        self.done += 1
        now = time.monotonic()
        if self.on and now - self.last >= self.EVERY:
            self.last = now
            self.draw(now)

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-6)
        size = _size(self.bytes) + (f"/{_size(self.total)}" if self.total is not None else "")
        events = self.stats.events
        text = (
            f"falconet: {self.done}/{self.objects} objects, {size}, {events} events, "
            f"{_size(self.bytes / elapsed)}/s, {events / elapsed:,.0f} events/s"
        )
        if self.total is not None and self.bytes:
            left = max(self.total - self.bytes, 0) * elapsed / self.bytes
            text += f", ETA {_duration(left)}"
        return text

    def draw(self, now: float) -> None:
        sys.stdout.buffer.flush()  # the alerts printed so far go before the line, not into it
        sys.stderr.write("\r" + self.line(now) + "\x1b[K")
        sys.stderr.flush()
        self.visible = True

    def clear(self) -> None:
        """Erase the line, if drawn (before alerts, and before the summary)."""
        if self.visible:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.visible = False


def _size(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB"):
        n /= 1024
        if n < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:.1f} GiB"


def _duration(seconds: float) -> str:
    s = int(seconds + 0.5)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"
