"""Backoff between retries, shared by every sink (and the notify function's HTTP delivery).

Exponential backoff with full jitter ("Exponential Backoff And Jitter", AWS Architecture Blog):
concurrent functions that failed together do not retry in lockstep against a recovering endpoint.
"""

from __future__ import annotations

import random


def backoff_delay(attempt: int, base: float, cap: float = 5.0) -> float:
    """Exponential backoff with full jitter (AWS Architecture Blog), for retry number `attempt`."""
    return random.uniform(0, min(cap, base * (2**attempt)))  # noqa: S311 - jitter, not crypto
