"""Correlations at run time: base-rule matches in, state in the store, correlation alerts out.

    correlator = Correlator(engine, store)                 # once per process (falconet.runtime)
    batch = correlator.batch()                             # once per invocation
    alerts, matched = engine.judge(event, ctx)
    if matched:
        batch.add(event, ctx, matched)                     # buffered: nothing read or written yet
    alerts += batch.flush()                                # at the end (and every FLUSH_MATCHES)
    correlator.finish()                                    # end of a scan: decide open windows

A flush groups the buffered matches by correlation and group, reads every group's state in one
batched read, folds the matches in (`windows.GroupState`), decides what fires and writes each
group back with a conditional put: one read and at most one write per group per flush, and no
lost update when two invocations change one group (the loser reads again and re-applies its
matches, which are idempotent: an audit event is kept once by its auditID). A window's "fired"
mark is written in the same put as the counts, so exactly one invocation raises its alert.
Correlations run in dependency order, so a correlation's alerts feed the correlations that name
it in the same flush. If the alerts of a flush cannot be delivered, `undo()` takes the fired
marks back (best effort), so the retried invocation raises them again.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from falconet.alerts import Alert, render_value
from falconet.context import EventContext
from falconet.correlate.model import Correlation, CorrelationSet
from falconet.correlate.output import correlation_alert
from falconet.correlate.windows import FINAL, NS, Geometry, GroupState, Match, Window
from falconet.deadline import Deadline
from falconet.errors import StateError
from falconet.state import Item, Put, StateStore, update
from falconet.timestamps import parse_rfc3339_ns

if TYPE_CHECKING:
    from falconet.engine import Engine

FLUSH_MATCHES = 10_000  # matches buffered before a flush (memory bound on huge objects)
SEEN_CACHE = 100_000  # first_seen keys a process remembers having seen (~10 MB at most)
_MAX_VALUE = 1024  # characters of a group value kept in an alert
_log = logging.getLogger("falconet.correlate")

Getter = Callable[[Mapping[str, Any], EventContext], Any]


@dataclass(frozen=True, slots=True)
class _Reader:
    """How one correlation reads the matches of one of its rules."""

    correlation: int  # index in the set
    rule: int  # index in the correlation's `rules`
    groups: tuple[Getter, ...]
    value: Getter | None


@dataclass(frozen=True, slots=True)
class _Feed:
    """An outer correlation fed by an inner one's alerts."""

    correlation: int
    rule: int
    groups: tuple[int, ...]  # index of each outer group in the inner group values
    value: int | None


class Correlator:
    """The correlations of an engine and the store their state lives in (process-wide)."""

    def __init__(
        self,
        correlations: CorrelationSet,
        store: StateStore,
        getter: Callable[[str], Getter],
        *,
        hostname: str = "",
        iso_prefix: bool = False,
        learn: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.correlations = correlations.correlations
        self.quiet = correlations.quiet
        self.store = store
        self.hostname = hostname
        self.iso_prefix = iso_prefix
        self.learn = learn
        self.clock = clock
        self.geometry = [Geometry.of(c.timespan) for c in self.correlations]
        # first_seen's history in ns per correlation (0: windowed)
        self.history = [c.timespan * NS if c.type == "first_seen" else 0 for c in self.correlations]
        self.readers: dict[str, list[_Reader]] = defaultdict(list)
        self.feeds: dict[int, list[_Feed]] = defaultdict(list)
        labels: dict[str, int] = {}
        for index, c in enumerate(self.correlations):
            for label in (c.name, c.id):
                if label:
                    labels[label] = index
        for index, c in enumerate(self.correlations):
            for rule_index, rule in enumerate(c.rules):
                if rule in labels:  # a correlation (the loader refuses a name both things)
                    inner = self.correlations[labels[rule]]
                    value = c.value_sources.get(rule)
                    self.feeds[labels[rule]].append(
                        _Feed(
                            index,
                            rule_index,
                            tuple(inner.group_by.index(f) for f in c.sources[rule]),
                            None if value is None else inner.group_by.index(value),
                        )
                    )
                    continue
                value = c.value_sources.get(rule)
                self.readers[rule].append(
                    _Reader(
                        index,
                        rule_index,
                        tuple(getter(f) for f in c.sources[rule]),
                        None if value is None else getter(value),
                    )
                )
        # The cluster a match belongs to (first_seen learns per cluster): the event's
        # falconet.cluster, as alerts and group-by read it (the envelope's, else the annotation).
        self.cluster = getter("falconet.cluster")
        # Groups with windows still open (upper-bound conditions), decided by `finish`.
        self._open: dict[tuple[int, str], tuple[str | None, ...]] = {}
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}  # first_seen keys this process read or wrote: last seen
        self.counters: Counter[str] = Counter()

    def recently_seen(self, pk: str, newest: int, refresh: int) -> bool:
        """True when this process knows first_seen key `pk` was sighted no earlier than
        `newest - refresh` (so matches up to `newest` change nothing)."""
        with self._lock:
            last = self._seen.get(pk)
        return last is not None and newest <= last + refresh

    def saw(self, pk: str, last: int) -> None:
        """Remember that first_seen key `pk` is stored with `last` as its last sighting."""
        with self._lock:
            self._seen.pop(pk, None)
            self._seen[pk] = last
            if len(self._seen) > SEEN_CACHE:
                del self._seen[next(iter(self._seen))]  # the least recently written

    def known(self, pk: str) -> int | None:
        """What this process last read or wrote for `pk` (first_seen: the last sighting; a
        learning period: its start), or None."""
        with self._lock:
            return self._seen.get(pk)

    def forget(self, pk: str) -> None:
        with self._lock:
            self._seen.pop(pk, None)

    @classmethod
    def for_engine(cls, engine: Engine, store: StateStore, *, learn: bool = False) -> Correlator:
        """The correlations `engine` loaded, reading fields as its rules do, alerts named with
        its host name and time format."""
        return cls(
            engine.correlations,
            store,
            engine.field_getter,
            hostname=engine.hostname,
            iso_prefix=engine.time_format_iso8601,
            learn=learn,
        )

    def batch(self, deadline: Deadline | None = None) -> Batch:
        """A new invocation's buffer; its store requests end by `deadline`."""
        return Batch(self, deadline)

    def finish(self) -> list[Alert]:
        """The end of the input (a scan): decide every window still open."""
        with self._lock:
            open_groups = dict(self._open)
            self._open.clear()
        batch = Batch(self)
        for (index, _key), values in open_groups.items():
            batch.pending[index].setdefault(values, [])
        return batch.flush(final=True)


class Batch:
    """One invocation's matches, flushed to the store (see the module docstring)."""

    def __init__(self, correlator: Correlator, deadline: Deadline | None = None) -> None:
        self.correlator = correlator
        self.deadline = deadline
        self.pending: dict[int, dict[tuple[str | None, ...], list[Match]]] = defaultdict(dict)
        self.size = 0
        self.matches = 0  # events added (counted into `counters` at each flush)
        self.fired: list[tuple[int, str, int | None, bytes | None, int]] = []
        self.counters: Counter[str] = Counter()

    # -- buffering ---------------------------------------------------------------------------

    def add(self, event: Mapping[str, Any], ctx: EventContext, matched: Sequence[str]) -> None:
        """Buffer `event`'s matches of the rules named in `matched` (from `Engine.judge`)."""
        readers = self.correlator.readers
        time_ns = parse_rfc3339_ns(event.get("stageTimestamp"))
        audit_id = event.get("auditID")
        if time_ns is None or not isinstance(audit_id, str):
            return
        cluster = _value(self.correlator.cluster(event, ctx)) or ""
        for rule in matched:
            for reader in readers.get(rule, ()):
                values = tuple([_value(g(event, ctx)) for g in reader.groups])
                value = _value(reader.value(event, ctx)) if reader.value is not None else None
                self._put(
                    reader.correlation,
                    values,
                    Match(time_ns, audit_id, reader.rule, value, cluster),
                )
        self.matches += 1

    def _put(self, index: int, values: tuple[str | None, ...], match: Match) -> None:
        # Keyed by the values themselves here; hashed into the state's key once per group, at
        # the flush (a hash per match cost ~1 us).
        group = self.pending[index].get(values)
        if group is None:
            self.pending[index][values] = [match]
            self.size += 1
            return
        history = self.correlator.history[index]
        if history:  # first_seen: only a key's earliest match, or one after a long gap, matters
            first, last = group[0].time_ns, group[-1].time_ns
            if last - first <= history and first <= match.time_ns <= last:
                return  # inside a span shorter than the history: changes nothing
            # The earliest stays first and the latest last (the flush sorts the rest).
            if match.time_ns < first:
                group.insert(0, match)
            elif match.time_ns > last:
                group.append(match)
            else:
                group.insert(len(group) - 1, match)
            self.size += 1
            return
        group.append(match)
        self.size += 1

    # -- flushing ----------------------------------------------------------------------------

    def flush(self, *, final: bool = False) -> list[Alert]:
        """Write the buffered matches' state and return the correlation alerts that fired.
        `final`: the input is over, decide every open window. Raises StateError."""
        correlator = self.correlator
        alerts: list[Alert] = []
        for index, correlation in enumerate(correlator.correlations):
            pending = self.pending.pop(index, None)
            if not pending:
                continue
            groups = {_group_key(values): (values, found) for values, found in pending.items()}
            if correlation.type == "first_seen":
                fired = self._first_seen(index, correlation, groups)
            else:
                fired = self._windowed(index, correlation, groups, final)
            for values, window in fired:
                alert = correlation_alert(
                    correlation,
                    correlator.geometry[index],
                    values,
                    window,
                    group=_group_key(values),
                    hostname=correlator.hostname,
                    iso_prefix=correlator.iso_prefix,
                )
                self.counters["alerts"] += 1
                for feed in correlator.feeds.get(index, ()):
                    self._put(
                        feed.correlation,
                        tuple(values[i] for i in feed.groups),
                        Match(
                            window.last_ns,
                            alert.uuid,
                            feed.rule,
                            values[feed.value] if feed.value is not None else None,
                        ),
                    )
                if correlation.label not in correlator.quiet:
                    alerts.append(alert)
        self.size = 0
        self.counters["matches"] += self.matches
        self.matches = 0
        with correlator._lock:
            correlator.counters.update(self.counters)
        return alerts

    def _windowed(
        self,
        index: int,
        correlation: Correlation,
        groups: dict[str, tuple[tuple[str | None, ...], list[Match]]],
        final: bool,
    ) -> list[tuple[tuple[str | None, ...], Window]]:
        correlator = self.correlator
        geometry = correlator.geometry[index]
        at_once = correlation.condition.at_once
        keys = {_state_key("c", correlation, key): key for key in groups}

        def change(pk: str, item: Item) -> tuple[Put, tuple[list[Window], bool, int]]:
            state = _load(item.data, pk)
            touched = state.add(groups[keys[pk]][1], correlation, geometry)
            if at_once:
                windows = state.fire_at_once(touched, correlation, geometry)
            else:
                windows = state.decide_closed(FINAL if final else None, correlation, geometry)
            state.prune(geometry)
            self.counters["late"] += state.late
            newest = geometry.start_ns(state.newest or 0) // NS
            expires = int(max(newest, correlator.clock())) + 3 * correlation.timespan + 3600
            return Put(state.dumps(), expires), (windows, state.open(), item.version + 1)

        done = update(
            correlator.store,
            keys,
            change,
            what=f"correlation '{correlation.label}'",
            noun="group(s)",
            deadline=self.deadline,
            counters=self.counters,
        )
        out: list[tuple[tuple[str | None, ...], Window]] = []
        for pk, (windows, still_open, version) in done.items():
            key = keys[pk]
            values = groups[key][0]
            for window in windows:
                self.fired.append((index, pk, window.start, None, version))
                out.append((values, window))
            if not at_once:
                with correlator._lock:
                    if still_open:
                        correlator._open[(index, key)] = values
                    else:
                        correlator._open.pop((index, key), None)
        return out

    def _first_seen(
        self,
        index: int,
        correlation: Correlation,
        groups: dict[str, tuple[tuple[str | None, ...], list[Match]]],
    ) -> list[tuple[tuple[str | None, ...], Window]]:
        correlator = self.correlator
        history = correlation.timespan * NS
        # A key's last sighting is written again only when it moved on by `refresh` (a thirtieth
        # of the history, at most a day): a key seen all day costs one write a day, not one per
        # invocation. A key this process knows was seen within `refresh` is not read either.
        refresh = min(history // 30, 86400 * NS)
        keys = {
            pk: key
            for key, group in groups.items()
            if not correlator.recently_seen(
                pk := _state_key("s", correlation, key), max(m.time_ns for m in group[1]), refresh
            )
        }
        self.counters["known"] += len(groups) - len(keys)
        if not keys:
            return []
        todo = {key: groups[key] for key in keys.values()}
        starts = self._learning_starts(correlation, todo) if correlation.learning else {}

        Seen = tuple[list[Match], int | None, bytes | None, int]  # new, last, before, version

        def change(pk: str, item: Item) -> tuple[Put | None, Seen]:
            seen = _load_seen(item.data, pk)
            first, last = seen if seen else (None, None)
            new: list[Match] = []
            for m in sorted(groups[keys[pk]][1], key=lambda m: m.time_ns):
                if last is None or (m.time_ns > last and m.time_ns - last > history):
                    first = last = m.time_ns
                    new.append(m)
                elif m.time_ns > last:
                    last = m.time_ns
            if first is None or last is None:
                return None, ([], None, item.data, item.version)  # no match: nothing to do
            if not new and seen is not None and last <= seen[1] + refresh:
                return None, ([], seen[1], item.data, item.version)  # recent enough as stored
            expires = int(max(last // NS, correlator.clock())) + correlation.timespan + 86400
            return Put(orjson.dumps([first, last]), expires), (
                new,
                last,
                item.data,
                item.version + 1,
            )

        done = update(
            correlator.store,
            keys,
            change,
            what=f"correlation '{correlation.label}'",
            noun="group(s)",
            deadline=self.deadline,
            counters=self.counters,
        )
        out: list[tuple[tuple[str | None, ...], Window]] = []
        for pk, (new, last, previous, version) in done.items():
            if last is not None:
                correlator.saw(pk, last)
            for m in new:
                if correlator.learn:
                    continue
                start = starts.get(m.cluster)
                if start is not None and m.time_ns < start + correlation.learning * NS:
                    self.counters["learning"] += 1
                    continue
                window = Window(
                    start=m.time_ns // NS,
                    count=1,
                    first_ns=m.time_ns,
                    last_ns=m.time_ns,
                    audit_ids=(m.audit_id[:64],),
                    rules=1 << m.rule,
                    values=(),
                )
                self.fired.append((index, pk, None, previous, version))
                out.append((groups[keys[pk]][0], window))
        return out

    def _learning_starts(
        self,
        correlation: Correlation,
        groups: Mapping[str, tuple[tuple[str | None, ...], list[Match]]],
    ) -> dict[str, int]:
        """Each cluster's first event time (the learning period starts there), created from
        this batch's earliest match for a cluster the store has not seen."""
        correlator = self.correlator
        earliest: dict[str, int] = {}
        for _values, matches in groups.values():
            for m in matches:
                if m.cluster not in earliest or m.time_ns < earliest[m.cluster]:
                    earliest[m.cluster] = m.time_ns
        keys = {_state_key("l", correlation, _group_key((c,))): c for c in earliest}
        starts: dict[str, int] = {}
        for pk, cluster in list(keys.items()):  # a start this process knows, no later: kept
            known = correlator.known(pk)
            if known is not None and known <= earliest[cluster]:
                starts[cluster] = known
                del keys[pk]

        def change(pk: str, item: Item) -> tuple[Put | None, int]:
            stored = _load_seen(item.data, pk)
            cluster = earliest[keys[pk]]
            start = cluster if stored is None else min(stored[0], cluster)
            if stored is not None and stored[0] <= start:
                return None, start
            expires = int(correlator.clock()) + correlation.timespan + 400 * 86400
            return Put(orjson.dumps([start, start]), expires), start

        done = update(
            correlator.store,
            keys,
            change,
            what=f"correlation '{correlation.label}' (learning)",
            deadline=self.deadline,
            counters=self.counters,
        )
        for pk, start in done.items():
            starts[keys[pk]] = start
            correlator.saw(pk, start)
        return starts

    # -- failure -----------------------------------------------------------------------------

    def undo(self) -> None:
        """Take back what this batch fired (its alerts could not be delivered), so the retried
        invocation raises them again. Best effort: a failure here is logged, not raised."""
        store = self.correlator.store
        for index, pk, start, previous, version in reversed(self.fired):
            try:
                item = store.get_many([pk])[pk]
                if start is None:  # first_seen: restore what the group was, if still ours
                    self.correlator.forget(pk)
                    if item.version == version:
                        store.put(pk, previous or b"null", version=version, expires=1)
                    continue
                state = _load(item.data, pk)
                if start in state.fired:
                    state.fired.remove(start)
                    state.unfired.append(start)
                    if (
                        state.decided is not None
                        and not self.correlator.correlations[index].condition.at_once
                    ):
                        state.decided = start
                    store.put(
                        pk, state.dumps(), version=item.version, expires=int(time.time()) + 86400
                    )
            except StateError as exc:
                _log.warning("falconet: could not take back a fired correlation: %s", exc)
        self.fired.clear()


def _load(data: bytes | None, pk: str) -> GroupState:
    try:
        return GroupState.loads(data)
    except (ValueError, KeyError, TypeError, IndexError):
        _log.warning("falconet: state item %s is not one this version wrote: starting it anew", pk)
        return GroupState()


def _load_seen(data: bytes | None, pk: str) -> tuple[int, int] | None:
    if data is None or data == b"null":  # absent, or taken back by `undo`
        return None
    try:
        first, last = orjson.loads(data)
        return int(first), int(last)
    except (ValueError, TypeError):
        _log.warning("falconet: state item %s is not one this version wrote: starting it anew", pk)
        return None


def _value(raw: Any) -> str | None:
    if type(raw) is str:
        return raw if len(raw) <= _MAX_VALUE else raw[:_MAX_VALUE]
    if raw is None:
        return None
    return render_value(raw)[:_MAX_VALUE]


def _group_key(values: Sequence[str | None]) -> str:
    h = hashlib.sha256()
    for v in values:
        h.update(b"\x00" if v is None else b"\x01" + v.encode("utf-8", "surrogatepass") + b"\x00")
    return h.hexdigest()[:32]


def _state_key(kind: str, correlation: Correlation, group: str) -> str:
    return f"{kind}/{correlation.key}/{group}"
