"""A backtest run's progress in the state store: per-object markers and per-run counters.

A fan-out run (`falconet scan --fan-out`, `falconet.fanout`) has an id; the functions that scan its
objects record, in the same store correlations use (the DynamoDB state table):

- `run:<id>`: what the fan-out enqueued: the number of objects, when, the inputs. Written by the
  command, read by `--follow` and the report.
- `run:<id>:o:<digest of the object's URL>`: one marker per object: done (with its events and
  alerts) or failed (with the error and how many receives it had). A marker `done` is what lets a
  re-run of the same id, or a message SQS delivers twice, skip the object.
- `run:<id>:c:<n>`, n in 0..SHARDS-1: the run's counters (objects done, failed, events, alerts,
  rejected records by reason, alerts by rule and priority, the names of failed objects), an object
  adding to shard `digest % SHARDS`. Sharded because every concurrent invocation of the run
  updates them: with one item, each optimistic write (`state.update`) would conflict with the
  others; with 16, two invocations rarely touch the same one. `--follow` reads all 16 in one
  BatchGetItem.

Counting exactly once: the marker is written first (conditional on the version read, so two
deliveries of one object cannot both mark it), and the counters are changed only by the delivery
whose marker write changed the object's status; the change is the difference between the old and
the new status (a failed object retried by a re-run and then done moves from `failed` to `done`).
A crash between the two writes leaves the object done and its counters short (the alerts are
delivered all the same); `--follow` then shows it as neither done nor failed until a re-run.

Everything here goes through `StateStore` and `state.update`: no DynamoDB-only operation, so a
`MemoryStore` holds a run as well (one process, tests).
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from falconet import state
from falconet.deadline import Deadline
from falconet.state import Item, Put, StateStore

SHARDS = 16
KEEP_SECONDS = 30 * 86_400  # a run's items are kept 30 days (the table's TTL removes them)
FAILED_SHOWN = 50  # failed objects named per shard (the count is exact, the names bounded)
NAMES_SHOWN = 200  # rules or rejection reasons kept per shard
ERROR_CHARS = 300


def _digest(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:32]


def run_key(run_id: str) -> str:
    return f"run:{run_id}"


def marker_key(run_id: str, url: str) -> str:
    return f"run:{run_id}:o:{_digest(url)}"


def shard_key(run_id: str, url: str) -> str:
    return f"run:{run_id}:c:{int(_digest(url), 16) % SHARDS}"


@dataclass(slots=True)
class ObjectOutcome:
    """What scanning one object of a run did (the handler's `Result`, reduced)."""

    events: int = 0
    alerts: int = 0
    rejected: Mapping[str, int] = field(default_factory=dict)
    by_rule: Mapping[str, int] = field(default_factory=dict)
    by_priority: Mapping[str, int] = field(default_factory=dict)
    # Why the object could not be read whole (a corrupt or truncated compressed stream), else
    # None: such an object is failed in a run (retried, then named), not done.
    unreadable: str | None = None


@dataclass(slots=True)
class RunStatus:
    """A run's figures, summed over its shards (what `--follow` shows and the report uses)."""

    run_id: str
    total: int | None = None  # objects enqueued (None: no run item, e.g. not fanned out yet)
    started: float | None = None  # epoch seconds the fan-out began
    inputs: list[str] = field(default_factory=list)
    done: int = 0
    failed: int = 0
    events: int = 0
    alerts: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    by_rule: Counter[str] = field(default_factory=Counter)
    by_priority: Counter[str] = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)  # object URL -> last error

    @property
    def finished(self) -> bool:
        return self.total is not None and self.done + self.failed >= self.total

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "objects": self.total,
            "started": self.started,
            "inputs": self.inputs,
            "done": self.done,
            "failed": self.failed,
            "events": self.events,
            "alerts": self.alerts,
            "rejected": dict(self.rejected),
            "alerts_by_rule": dict(self.by_rule),
            "alerts_by_priority": dict(self.by_priority),
            "failures": dict(self.failures),
        }


def _load(item: Item) -> dict[str, Any]:
    if item.data is None:
        return {}
    try:
        value = orjson.loads(item.data)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _add(counts: dict[str, int], more: Mapping[str, int], sign: int) -> None:
    for name, n in more.items():
        if name in counts or len(counts) < NAMES_SHOWN:
            counts[name] = counts.get(name, 0) + sign * int(n)
            if counts[name] <= 0:
                del counts[name]


class RunProgress:
    """Markers and counters of runs in `store` (see the module docstring)."""

    def __init__(self, store: StateStore, *, clock: Any = time.time) -> None:
        self.store = store
        self.clock = clock

    def _expires(self) -> int:
        return int(self.clock()) + KEEP_SECONDS

    # -- the fan-out command ------------------------------------------------------------------

    def start(self, run_id: str, total: int, inputs: Sequence[str]) -> None:
        """Record (or, on a re-run, replace) what the fan-out enqueued."""
        now = self.clock()

        def change(_key: str, item: Item) -> tuple[Put, None]:
            old = _load(item)
            data = {
                "total": total,
                "started": old.get("started", now),
                "inputs": list(inputs)[:20],
            }
            return Put(orjson.dumps(data), self._expires()), None

        state.update(self.store, [run_key(run_id)], change, what=f"run {run_id}")

    def done_objects(self, run_id: str, urls: Sequence[str]) -> set[str]:
        """Which of `urls` this run already did (their markers say done)."""
        keys = {marker_key(run_id, url): url for url in urls}
        found = self.store.get_many(list(keys))
        return {keys[k] for k, item in found.items() if _load(item).get("s") == "done"}

    # -- the functions --------------------------------------------------------------------------

    def is_done(self, run_id: str, url: str, *, deadline: Deadline | None = None) -> bool:
        key = marker_key(run_id, url)
        item = self.store.get_many([key], deadline=deadline)[key]
        return _load(item).get("s") == "done"

    def record_done(
        self,
        run_id: str,
        url: str,
        outcome: ObjectOutcome,
        *,
        deadline: Deadline | None = None,
    ) -> bool:
        """Mark the object done and add its figures; False when it was done already (nothing
        counted twice)."""
        new = {"s": "done", "events": outcome.events, "alerts": outcome.alerts}
        old = self._mark(run_id, url, new, deadline)
        if old.get("s") == "done":
            return False
        self._count(run_id, url, old, new, outcome, deadline)
        return True

    def record_failure(
        self,
        run_id: str,
        url: str,
        error: str,
        *,
        final: bool,
        receives: int,
        deadline: Deadline | None = None,
    ) -> None:
        """The object's scan failed. `final`: no retry will come (its message has had its last
        receive, or the object is gone): the run counts it failed, by name."""
        new = {
            "s": "failed" if final else "retrying",
            "error": error[:ERROR_CHARS],
            "receives": receives,
        }
        old = self._mark(run_id, url, new, deadline, keep_done=True)
        if old.get("s") == "done":
            return
        self._count(run_id, url, old, new, ObjectOutcome(), deadline)

    def _mark(
        self,
        run_id: str,
        url: str,
        new: dict[str, Any],
        deadline: Deadline | None,
        *,
        keep_done: bool = False,
    ) -> dict[str, Any]:
        """Write the object's marker; the marker it replaced (as read in the winning attempt)."""
        expires = self._expires()

        def change(_key: str, item: Item) -> tuple[Put | None, dict[str, Any]]:
            old = _load(item)
            if old.get("s") == "done" and (keep_done or new.get("s") == "done"):
                return None, old  # done stays done: a late failure or a duplicate changes nothing
            return Put(orjson.dumps({**new, "url": url}), expires), old

        key = marker_key(run_id, url)
        return state.update(self.store, [key], change, what=f"run {run_id}", deadline=deadline)[key]

    def _count(
        self,
        run_id: str,
        url: str,
        old: Mapping[str, Any],
        new: Mapping[str, Any],
        outcome: ObjectOutcome,
        deadline: Deadline | None,
    ) -> None:
        before, after = old.get("s"), new.get("s")
        if before == after and after != "failed":
            return
        expires = self._expires()

        def change(_key: str, item: Item) -> tuple[Put, None]:
            data = _load(item)
            failures: dict[str, str] = data.setdefault("failures", {})
            if before == "failed":
                data["failed"] = data.get("failed", 0) - 1
                failures.pop(url, None)
            if after == "failed":
                if before != "failed":
                    data["failed"] = data.get("failed", 0) + 1
                if url in failures or len(failures) < FAILED_SHOWN:
                    failures[url] = str(new.get("error", ""))
            if after == "done":
                data["done"] = data.get("done", 0) + 1
                data["events"] = data.get("events", 0) + outcome.events
                data["alerts"] = data.get("alerts", 0) + outcome.alerts
                for name, counts in (
                    ("rejected", outcome.rejected),
                    ("by_rule", outcome.by_rule),
                    ("by_priority", outcome.by_priority),
                ):
                    _add(data.setdefault(name, {}), counts, 1)
            return Put(orjson.dumps(data), expires), None

        state.update(
            self.store, [shard_key(run_id, url)], change, what=f"run {run_id}", deadline=deadline
        )

    # -- following --------------------------------------------------------------------------

    def status(self, run_id: str) -> RunStatus:
        """The run's figures now."""
        keys = [run_key(run_id)] + [f"run:{run_id}:c:{n}" for n in range(SHARDS)]
        found = self.store.get_many(keys)
        head = _load(found[keys[0]])
        status = RunStatus(run_id)
        if head:
            status.total = int(head.get("total", 0))
            status.started = head.get("started")
            status.inputs = [str(i) for i in head.get("inputs", [])]
        for key in keys[1:]:
            data = _load(found[key])
            status.done += int(data.get("done", 0))
            status.failed += int(data.get("failed", 0))
            status.events += int(data.get("events", 0))
            status.alerts += int(data.get("alerts", 0))
            status.rejected.update(data.get("rejected", {}))
            status.by_rule.update(data.get("by_rule", {}))
            status.by_priority.update(data.get("by_priority", {}))
            status.failures.update(data.get("failures", {}))
        return status


def outcome_of(result: Any) -> ObjectOutcome:
    """The figures of a pipeline `Result` a run keeps."""
    by_priority: Counter[str] = Counter()
    for (_cluster, priority), n in result.clusters.alerts.items():
        by_priority[priority] += n
    return ObjectOutcome(
        events=result.events,
        alerts=result.alerts,
        rejected=dict(result.stats.rejected),
        by_rule=dict(result.alerts_by_rule),
        by_priority=dict(by_priority),
        unreadable=result.stats.unreadable,
    )
