"""Sliding windows on event time: what one correlation remembers about one group, and when it fires.

Time is cut into buckets of `granularity = ceil(timespan / 10)` seconds (event time, the audit
event's `stageTimestamp`); a window is `k = ceil(timespan / granularity)` consecutive buckets, so
it spans `timespan` rounded up to whole buckets (exactly `timespan` for any multiple of 10 s).
Two matches less than `timespan - granularity` apart always share a window; more than
`timespan + granularity` apart, never.

- Conditions without an upper bound (gt, gte; temporal) fire as soon as they are met: after each
  batch of matches, windows starting at a bucket that holds a match are tried from the earliest,
  and one fires when it meets the condition and overlaps no window already fired for the group.
  With matches arriving in time order (in any batches) this is the same chain of windows a single
  pass over all of them finds; a burst raises one alert, a flood one alert per `timespan`.
- Conditions with an upper bound (lt, lte, eq, ranges) are decided when a window closes: windows
  start at the group's first match not yet in a decided window, and close when the group sees a
  match past their end (or at the end of a scan).
- A match older than the group's newest (before its batch) by more than an hour (at least two
  windows, at most twelve) is late: counted, not kept. A batch itself may span any time (a
  backtest's): it is folded whole, decided, then pruned.

`GroupState` is stored as compact JSON (bytes) in the state store; what it holds is bounded by the
correlation's condition (`Condition.cap` ids per bucket, 10 audit ids and values per bucket).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson

from falconet.correlate.model import Correlation

SAMPLE = 10  # audit ids (and values) a bucket keeps for the alert
LATENESS_S = 3600  # how late a match may arrive and still count (within 2 to 12 windows)
NS = 1_000_000_000
_ID_BYTES = 8


def hash64(text: str) -> int:
    """A 64-bit hash of `text` (an auditID, a value): what dedup sets keep."""
    return int.from_bytes(
        hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little"
    )


@dataclass(frozen=True, slots=True)
class Geometry:
    """A correlation's buckets: `granularity` seconds each, `k` to a window."""

    granularity: int
    k: int

    @classmethod
    def of(cls, timespan: int) -> Geometry:
        granularity = max(1, -(-timespan // 10))
        return cls(granularity, -(-timespan // granularity))

    @property
    def horizon(self) -> int:
        """Buckets kept behind a group's newest, for matches that arrive late: an hour, within
        2 to 12 windows."""
        return max(2 * self.k, min(-(-LATENESS_S // self.granularity), 12 * self.k))

    def bucket(self, time_ns: int) -> int:
        return time_ns // (self.granularity * NS)

    def start_ns(self, bucket: int) -> int:
        return bucket * self.granularity * NS


class Match(NamedTuple):
    """One base-rule match (or inner correlation alert) for one correlation and group (a named
    tuple: one is made per match, and a frozen dataclass is ~4x slower to build)."""

    time_ns: int
    audit_id: str
    rule: int  # index in the correlation's `rules`
    value: str | None = None  # value_count's field value
    cluster: str = ""


@dataclass(slots=True)
class Bucket:
    ids: set[int] = field(default_factory=set)  # event_count: auditIDs; value_count: values
    first_ns: int = 0
    last_ns: int = 0
    sample: list[str] = field(default_factory=list)  # audit ids, arrival order
    values: list[str] = field(default_factory=list)  # value_count: values, arrival order
    rules: int = 0  # bit i: rule i matched here
    order: dict[int, tuple[int, int]] = field(default_factory=dict)  # rule -> (first, last) ns


@dataclass(frozen=True, slots=True)
class Window:
    """A window that fired: what its alert reports."""

    start: int  # bucket
    count: int
    first_ns: int
    last_ns: int
    audit_ids: tuple[str, ...]
    rules: int
    values: tuple[str, ...]


@dataclass(slots=True)
class GroupState:
    buckets: dict[int, Bucket] = field(default_factory=dict)
    fired: list[int] = field(default_factory=list)  # window starts fired (or decided)
    newest: int | None = None  # newest bucket seen
    decided: int | None = None  # upper-bound conditions: buckets before this are decided
    unfired: list[int] = field(default_factory=list)  # fired windows taken back: try again
    late: int = 0  # matches dropped as late (this batch only, not stored)

    # -- storage ---------------------------------------------------------------------------

    def dumps(self) -> bytes:
        buckets = []
        for index in sorted(self.buckets):
            b = self.buckets[index]
            ids = b"".join(i.to_bytes(_ID_BYTES, "little") for i in sorted(b.ids))
            buckets.append(
                [
                    index,
                    base64.b64encode(ids).decode(),
                    b.first_ns,
                    b.last_ns,
                    b.sample,
                    b.values,
                    b.rules,
                    [[r, lo, hi] for r, (lo, hi) in sorted(b.order.items())],
                ]
            )
        return orjson.dumps(
            {"b": buckets, "f": self.fired, "n": self.newest, "d": self.decided, "u": self.unfired}
        )

    @classmethod
    def loads(cls, data: bytes | None) -> GroupState:
        """The state stored as `data` (None: a new group). Raises ValueError when it is not a
        state this code wrote."""
        if data is None:
            return cls()
        raw = orjson.loads(data)
        state = cls(
            fired=[int(f) for f in raw["f"]],
            newest=raw["n"],
            decided=raw["d"],
            unfired=[int(u) for u in raw.get("u", ())],
        )
        for index, ids, first, last, sample, values, rules, order in raw["b"]:
            packed = base64.b64decode(ids)
            state.buckets[int(index)] = Bucket(
                {
                    int.from_bytes(packed[i : i + _ID_BYTES], "little")
                    for i in range(0, len(packed), _ID_BYTES)
                },
                int(first),
                int(last),
                [str(s) for s in sample],
                [str(v) for v in values],
                int(rules),
                {int(r): (int(lo), int(hi)) for r, lo, hi in order},
            )
        return state

    # -- adding matches ----------------------------------------------------------------------

    def add(
        self, matches: Iterable[Match], correlation: Correlation, geometry: Geometry
    ) -> set[int]:
        """Fold `matches` in; the buckets that changed. The same audit event (event_count) or
        value (value_count) is kept once, however often it is delivered."""
        cap = correlation.condition.cap
        kind = correlation.type
        touched: set[int] = set()
        matches = list(matches)
        # Late means older than what the state still holds, from before this batch: a batch is
        # folded whole (a backtest's batch may span days), and pruned after deciding.
        floor = None if self.newest is None else self.newest - geometry.horizon
        if matches:
            newest = max(geometry.bucket(m.time_ns) for m in matches)
            self.newest = newest if self.newest is None else max(self.newest, newest)
        for m in matches:
            index = geometry.bucket(m.time_ns)
            if floor is not None and index < floor:
                self.late += 1
                continue
            if self.decided is not None and index < self.decided:
                self.late += 1  # its window was already decided
                continue
            b = self.buckets.get(index)
            if b is None:
                b = self.buckets[index] = Bucket(first_ns=m.time_ns, last_ns=m.time_ns)
            if not _fold(b, m, kind, cap):
                continue  # delivered again
            b.first_ns = min(b.first_ns, m.time_ns)
            b.last_ns = max(b.last_ns, m.time_ns)
            if len(b.sample) < SAMPLE and m.audit_id[:64] not in b.sample:
                b.sample.append(m.audit_id[:64])
            touched.add(index)
        return touched

    def prune(self, geometry: Geometry) -> None:
        """Forget buckets older than `geometry.horizon` behind the newest (after deciding: an
        upper-bound window is decided once a match past its end is seen, so none older is still
        open)."""
        if self.newest is None:
            return
        k = geometry.k
        floor = self.newest - geometry.horizon
        for index in [i for i in self.buckets if i < floor]:
            del self.buckets[index]
        self.fired = [f for f in self.fired if f >= floor - k]
        self.unfired = [u for u in self.unfired if u >= floor]

    # -- deciding ----------------------------------------------------------------------------

    def fire_at_once(
        self, touched: Iterable[int], correlation: Correlation, geometry: Geometry
    ) -> list[Window]:
        """Windows that now meet a condition without an upper bound (see the module docstring)."""
        k = geometry.k
        count = _counter(correlation)
        condition = correlation.condition
        touched = list(touched)
        retry, self.unfired = self.unfired, []
        if not touched and not retry:
            return []
        starts = {s for s in retry if s in self.buckets}
        if touched:
            low, high = min(touched) - k + 1, max(touched)
            starts.update(i for i in self.buckets if low <= i <= high)  # windows start at a match
        out: list[Window] = []
        for s in sorted(starts):
            if any(abs(s - f) < k for f in self.fired):
                continue
            buckets = self._window(s, k)
            n = count(buckets) if buckets else 0
            if buckets and condition.met(n):
                self.fired.append(s)
                out.append(_summary(s, buckets, n))
        return out

    def decide_closed(
        self, watermark: int | None, correlation: Correlation, geometry: Geometry
    ) -> list[Window]:
        """Upper-bound conditions: decide every window closed by `watermark` (a bucket; None: the
        group's newest; `FINAL`: every window), and return those that meet the condition."""
        k = geometry.k
        count = _counter(correlation)
        mark = self.newest if watermark is None else watermark
        out: list[Window] = []
        while mark is not None:
            pending = [i for i in self.buckets if self.decided is None or i >= self.decided]
            if not pending:
                break
            s = min(pending)
            if s + k > mark:
                break
            buckets = self._window(s, k)
            self.decided = s + k
            self.fired.append(s)
            n = count(buckets)
            if correlation.condition.met(n):
                out.append(_summary(s, buckets, n))
        return out

    def open(self) -> bool:
        """True while a window holds matches not yet decided (upper-bound conditions)."""
        return any(self.decided is None or i >= self.decided for i in self.buckets)

    def _window(self, start: int, k: int) -> list[tuple[int, Bucket]]:
        return [(i, self.buckets[i]) for i in range(start, start + k) if i in self.buckets]


FINAL = 1 << 62  # a watermark past every window: the end of a scan


def _fold(b: Bucket, m: Match, kind: str, cap: int) -> bool:
    """Fold one match into its bucket's counts; False when the bucket has it already (the same
    audit event again, for event_count). Counts stop at `cap`: enough to decide the condition."""
    if kind == "event_count":
        key = hash64(m.audit_id)
        if key in b.ids:
            return False
        if len(b.ids) < cap:
            b.ids.add(key)
    elif kind == "value_count":
        value = m.value if m.value is not None else ""
        key = hash64(value)
        if key not in b.ids and len(b.ids) < cap:
            b.ids.add(key)
            if len(b.values) < SAMPLE:
                b.values.append(value[:256])
    b.rules |= 1 << m.rule
    if kind == "temporal_ordered":
        lo, hi = b.order.get(m.rule, (m.time_ns, m.time_ns))
        b.order[m.rule] = (min(lo, m.time_ns), max(hi, m.time_ns))
    return True


Counter = Callable[[Sequence[tuple[int, Bucket]]], int]


def _counter(correlation: Correlation) -> Counter:
    kind = correlation.type
    if kind == "event_count":
        return lambda buckets: sum(len(b.ids) for _, b in buckets)
    if kind == "value_count":
        return lambda buckets: len(set().union(*(b.ids for _, b in buckets)))
    if kind == "temporal":
        return lambda buckets: _mask(buckets).bit_count()
    n = len(correlation.rules)

    def ordered(buckets: Sequence[tuple[int, Bucket]]) -> int:
        """How many of the rules, in their order, matched one after the other: each rule's
        earliest match after the previous rule's (within a bucket, its first or last match)."""
        after = -1
        for rule in range(n):
            best = None
            for _, b in buckets:
                span = b.order.get(rule)
                if span is None:
                    continue
                for t in span:
                    if t > after and (best is None or t < best):
                        best = t
            if best is None:
                return rule
            after = best
        return n

    return ordered


def _mask(buckets: Sequence[tuple[int, Bucket]]) -> int:
    mask = 0
    for _, b in buckets:
        mask |= b.rules
    return mask


def _summary(start: int, buckets: Sequence[tuple[int, Bucket]], count: int) -> Window:
    audit_ids: list[str] = []
    values: list[str] = []
    for _, b in sorted(buckets, key=lambda item: item[1].first_ns):
        audit_ids.extend(a for a in b.sample if a not in audit_ids)
        values.extend(v for v in b.values if v not in values)
    return Window(
        start=start,
        count=count,
        first_ns=min(b.first_ns for _, b in buckets),
        last_ns=max(b.last_ns for _, b in buckets),
        audit_ids=tuple(audit_ids[:SAMPLE]),
        rules=_mask(buckets),
        values=tuple(values[:SAMPLE]),
    )
