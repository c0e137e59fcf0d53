"""The time an invocation has left to deliver its alerts, which every retry must fit inside.

    deadline = Deadline.for_lambda(context)  # Lambda: the remaining time, less a reserve
    deadline = Deadline.after(60.0)          # elsewhere: a configured timeout from now
    deadline.passed()                        # no new delivery may start: give up, answer, log
    deadline.allows(wait, worst_call)        # may we sleep `wait`, then make a call that can
                                             # take `worst_call`, and still finish in time?
    deadline.sleep(seconds)                  # backoff, never past the deadline

Why: a sink that keeps retrying past the function's timeout is killed mid-way by the platform, so
the caller never gets the 503 it was promised and the invocation's log line is never written. The
deadline is the time by which the invocation must have stopped delivering; `for_lambda` leaves a
reserve before Lambda's own end for one call's worst case and for answering and logging. The clock
and the sleep are parameters, so a test can drive a deadline with a fake clock instead of waiting.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# What an invocation keeps between its deadline and its real end: one delivery call's worst case
# (the AWS sinks' connect + read timeouts) plus a second to answer and write the log line.
LAMBDA_RESERVE_S = 8.0


@dataclass(frozen=True, slots=True)
class Deadline:
    """A point on `clock` by which deliveries must be over (`math.inf`: never)."""

    at: float
    clock: Callable[[], float] = time.monotonic
    sleeper: Callable[[float], None] = time.sleep

    @classmethod
    def after(
        cls,
        seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleeper: Callable[[float], None] = time.sleep,
    ) -> Deadline:
        """`seconds` from now on `clock`."""
        return cls(clock() + seconds, clock, sleeper)

    @classmethod
    def never(cls) -> Deadline:
        """No deadline: retries are bounded by their attempt counts only."""
        return cls(math.inf)

    @classmethod
    def for_lambda(cls, context: Any, *, reserve: float = LAMBDA_RESERVE_S) -> Deadline:
        """The deadline of a Lambda invocation, from `context.get_remaining_time_in_millis()`:
        its remaining time less `reserve` (at most a quarter of it, so a short function still
        delivers). Without a usable context (a test, a local call): `never()`."""
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if remaining is None:
            return cls.never()
        seconds = remaining() / 1000
        return cls.after(seconds - min(reserve, seconds / 4))

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self.at - self.clock()

    def passed(self) -> bool:
        return self.remaining() <= 0

    def allows(self, wait: float, worst_call: float) -> bool:
        """Whether waiting `wait` seconds, then a call that may take `worst_call`, ends in time."""
        return self.remaining() >= wait + worst_call

    def sleep(self, seconds: float) -> None:
        """Sleep `seconds`, or until the deadline if that comes first."""
        left = self.remaining()
        if seconds > 0 and left > 0:
            self.sleeper(min(seconds, left))

    def describe(self) -> str:
        return "none" if math.isinf(self.at) else f"{self.remaining():.1f} s left"


__all__ = ["LAMBDA_RESERVE_S", "Deadline"]
