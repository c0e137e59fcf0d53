"""Suppression at run time: alerts in, the ones a policy admits out, the rest counted into digests.

    suppressor = Suppressor(policies, store, hostname=...)   # once per process (falconet.runtime)
    batch = suppressor.batch(deadline)                        # once per invocation
    sent = batch.filter([(alert, audit_id), ...])             # admitted alerts and due digests
    sent += suppressor.finish()                               # end of a scan: every digest due

Alerts pass the policies in load order. For each policy that applies, the alert's group (the
values of the policy's `group-by` in the alert, `rule` its rule) has a period that starts at its
first alert (event time); the first `limit` alerts of a period go out, with `falconet.suppress.*`
fields naming the policy and when the period ends; the rest are counted (first and last time, 10
audit ids) and dropped. The first alert after the period ends opens the next period and sends the
digest of the previous one (when it suppressed anything). A filter reads each group's state once
and writes it once, conditionally (`falconet.state`); an alert is counted once however often it is
delivered (its uuid is kept), and one sent before is sent again (a retried invocation).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from falconet.alerts import SOURCE, Alert, render_value, stable_uuid
from falconet.deadline import Deadline
from falconet.errors import StateError
from falconet.state import Item, Put, StateStore, update
from falconet.suppress.policy import RULE, Policy
from falconet.timestamps import format_iso8601_ns, format_local_time_ns

NS = 1_000_000_000
SAMPLE = 10  # audit ids a digest names
MAX_KEPT = 10_000  # alert uuids a period remembers, sent and counted each (~220 KB at most)
MAX_PREVIOUS = 5_000  # and of the period before it, to know a late re-delivery (~55 KB)
GRACE_S = 120  # a period's digest is due this long after the period ends (late alerts)
_log = logging.getLogger("falconet.suppress")

if TYPE_CHECKING:
    from falconet.engine import Engine

Pair = tuple[Alert, str | None]  # an alert and its audit event's id


@dataclass(slots=True)
class Period:
    """One group's current period, as stored."""

    start: int
    rule: str
    priority: str
    tags: list[str]
    values: list[Any]
    sent: int = 0
    suppressed: int = 0
    first: int = 0
    last: int = 0
    audit_ids: list[str] = field(default_factory=list)
    admitted: set[int] = field(default_factory=set)
    counted: set[int] = field(default_factory=set)
    digested: bool = False
    previous: set[int] = field(default_factory=set)  # the period before's uuids (late copies)

    def dumps(self) -> bytes:
        return orjson.dumps(
            {
                "s": self.start,
                "r": self.rule,
                "p": self.priority,
                "t": self.tags,
                "v": self.values,
                "n": self.sent,
                "k": self.suppressed,
                "f": self.first,
                "l": self.last,
                "i": self.audit_ids,
                "a": _pack(self.admitted),
                "c": _pack(self.counted),
                "d": self.digested,
                "q": _pack(self.previous),
            }
        )

    @classmethod
    def loads(cls, data: bytes) -> Period:
        raw = orjson.loads(data)
        return cls(
            start=int(raw["s"]),
            rule=str(raw["r"]),
            priority=str(raw["p"]),
            tags=[str(t) for t in raw["t"]],
            values=list(raw["v"]),
            sent=int(raw["n"]),
            suppressed=int(raw["k"]),
            first=int(raw["f"]),
            last=int(raw["l"]),
            audit_ids=[str(a) for a in raw["i"]],
            admitted=_unpack(raw["a"]),
            counted=_unpack(raw["c"]),
            digested=bool(raw["d"]),
            previous=_unpack(raw.get("q", "")),
        )


class Suppressor:
    """The policies and the store their state lives in (process-wide)."""

    def __init__(
        self,
        policies: Sequence[Policy],
        store: StateStore,
        *,
        hostname: str = "",
        iso_prefix: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policies = tuple(policies)
        self.store = store
        self.hostname = hostname
        self.iso_prefix = iso_prefix
        self.clock = clock
        self._lock = threading.Lock()
        # Groups with suppressed alerts and no digest yet, for `finish` (a scan's end).
        self._open: dict[str, int] = {}  # state key -> policy index

    @classmethod
    def for_engine(cls, engine: Engine, store: StateStore) -> Suppressor:
        """The policies `engine` loaded; digests named with its host name and time format."""
        return cls(
            engine.policies,
            store,
            hostname=engine.hostname,
            iso_prefix=engine.time_format_iso8601,
        )

    def batch(self, deadline: Deadline | None = None) -> SuppressBatch:
        return SuppressBatch(self, deadline)

    def sweep(self, deadline: Deadline | None = None, *, now: float | None = None) -> list[Alert]:
        """The digests of every period that ended more than GRACE_S ago (by the store's `due`
        index), even if no later alert of its group came. Raises StateError."""
        return self.batch(deadline).sweep(now=now)

    def finish(self) -> list[Alert]:
        """The end of the input (a scan): the digest of every group that suppressed alerts."""
        with self._lock:
            pending, self._open = self._open, {}
        return SuppressBatch(self, None).digest_all(pending)


class SuppressBatch:
    """One invocation's suppression (see the module docstring)."""

    def __init__(self, suppressor: Suppressor, deadline: Deadline | None) -> None:
        self.suppressor = suppressor
        self.deadline = deadline
        self.suppressed = 0
        self.digests = 0
        # Digests this batch made, undoable: (policy index, key, stored before, version written).
        self.taken: list[tuple[int, str, bytes | None, int]] = []

    def filter(self, pairs: Sequence[Pair]) -> list[Pair]:
        """The alerts that go out (admitted, with `falconet.suppress.*` fields), followed by the
        digests of periods that ended. Raises StateError."""
        out = list(pairs)
        digests: list[Pair] = []
        for index, policy in enumerate(self.suppressor.policies):
            out, due = self._apply(index, policy, out)
            digests.extend(due)
        return out + digests

    def _apply(
        self, index: int, policy: Policy, pairs: list[Pair]
    ) -> tuple[list[Pair], list[Pair]]:
        suppressor = self.suppressor
        groups: dict[tuple[Any, ...], list[Pair]] = {}
        passing: list[Pair] = []
        for pair in pairs:
            alert = pair[0]
            if not policy.applies(alert.rule, alert.priority, alert.tags, alert.cluster):
                passing.append(pair)
                continue
            values = tuple(
                alert.rule if f == RULE else _plain(alert.output_fields.get(f))
                for f in policy.group_by
            )
            groups.setdefault(values, []).append(pair)
        if not groups:
            return pairs, []
        keys = {_key(policy, values): (values, found) for values, found in groups.items()}
        Decided = tuple[list[Pair], list[Pair], Period, int, bytes | None, int]

        def change(pk: str, item: Item) -> tuple[Put, Decided]:
            values, found = keys[pk]
            sent, due, period, held = self._decide(policy, values, found, _load(item.data, pk))
            expires = int(max(period.last // NS, suppressor.clock())) + 2 * policy.period + 3600
            # A period holding suppressed alerts is due for the sweep when it ends.
            sweep_at = (
                (period.start + policy.period * NS) // NS + GRACE_S
                if policy.digest and period.suppressed and not period.digested
                else None
            )
            decided = (sent, due, period, held, item.data, item.version + 1)
            return Put(period.dumps(), expires, sweep_at), decided

        done = update(
            suppressor.store,
            keys,
            change,
            what=f"suppression policy '{policy.name}'",
            noun="group(s)",
            deadline=self.deadline,
        )
        admitted: list[Pair] = []
        digests: list[Pair] = []
        for pk, (sent, due, period, held, previous, version) in done.items():
            # Counted once the write holds (a conflict's retry decides again).
            self.suppressed += held
            self.digests += len(due)
            if due and previous is not None:  # a digest replaced its period: undo-able
                self.taken.append((index, pk, previous, version))
            admitted.extend(sent)
            digests.extend(due)
            with suppressor._lock:
                if period.suppressed and not period.digested:
                    suppressor._open[pk] = index
                else:
                    suppressor._open.pop(pk, None)
        return passing + admitted, digests

    def _decide(
        self,
        policy: Policy,
        values: tuple[Any, ...],
        found: list[Pair],
        period: Period | None,
    ) -> tuple[list[Pair], list[Pair], Period, int]:
        """What goes out of `found` (one group's alerts), the digests due, the group's period
        after them, and how many alerts it held back."""
        sent: list[Pair] = []
        due: list[Pair] = []
        held = 0
        span = policy.period * NS
        for alert, audit_id in sorted(found, key=lambda p: p[0].time_ns):
            if period is None or alert.time_ns >= period.start + span:
                if (
                    period is not None
                    and policy.digest
                    and period.suppressed
                    and not period.digested
                ):
                    due.append((self._digest(policy, period), None))
                before = set() if period is None else period.admitted | period.counted
                period = Period(
                    start=alert.time_ns,
                    rule=alert.rule,
                    priority=alert.priority,
                    tags=list(alert.tags),
                    values=[_plain(v) for v in values],
                    previous=set(sorted(before)[:MAX_PREVIOUS]),
                )
            mark = _hash(alert.uuid)
            if mark in period.previous:
                continue  # handled in the period before (a late re-delivery): not again
            if mark in period.admitted:
                sent.append((self._mark(policy, period, alert), audit_id))  # sent before: again
                continue
            if mark in period.counted:
                continue  # counted before
            if period.sent < policy.limit:
                period.sent += 1
                if len(period.admitted) < MAX_KEPT:
                    period.admitted.add(mark)
                sent.append((self._mark(policy, period, alert), audit_id))
                continue
            period.suppressed += 1
            held += 1
            if len(period.counted) < MAX_KEPT:
                period.counted.add(mark)
            period.first = alert.time_ns if not period.first else min(period.first, alert.time_ns)
            period.last = max(period.last, alert.time_ns)
            if audit_id and len(period.audit_ids) < SAMPLE:
                period.audit_ids.append(audit_id[:64])
        assert period is not None  # found is never empty
        return sent, due, period, held

    def sweep(self, *, now: float | None = None) -> list[Alert]:
        """What the scheduled sweep sends: the digests of every period that ended more than
        GRACE_S ago (the store's `due` index), undoable with `undo`. Raises StateError."""
        suppressor = self.suppressor
        before = int(suppressor.clock() if now is None else now)
        indexes = {policy.key: n for n, policy in enumerate(suppressor.policies)}
        pending = {}
        for pk in suppressor.store.due_keys(before, deadline=self.deadline):
            parts = pk.split("/")
            if len(parts) == 3 and parts[0] == "p" and parts[1] in indexes:
                pending[pk] = indexes[parts[1]]
        return self.digest_all(pending)

    def digest_all(self, pending: dict[str, int]) -> list[Alert]:
        """The digests of the groups `pending` names (state key -> policy index), marked sent."""
        suppressor = self.suppressor

        Marked = tuple[Period | None, bytes | None, int]

        def change(pk: str, item: Item) -> tuple[Put | None, Marked]:
            period = _load(item.data, pk)
            if period is None or not period.suppressed or period.digested:
                return None, (None, None, item.version)  # digested already, or nothing held
            period.digested = True  # and no longer due
            expires = int(suppressor.clock()) + 86400
            return Put(period.dumps(), expires), (period, item.data, item.version + 1)

        done = update(
            suppressor.store, pending, change, what="suppression digests", deadline=self.deadline
        )
        out: list[Alert] = []
        for pk, (period, previous, version) in done.items():
            policy = suppressor.policies[pending[pk]]
            if period is not None and policy.digest:
                out.append(self._digest(policy, period))
                self.digests += 1
                self.taken.append((pending[pk], pk, previous, version))
        return out

    def undo(self) -> None:
        """Put back the periods whose digests this batch made (their delivery failed), if no one
        wrote them since, so the retried invocation makes the digests again. Best effort: a
        failure here is logged, and those digests are lost."""
        suppressor = self.suppressor
        for index, pk, previous, version in reversed(self.taken):
            policy = suppressor.policies[index]
            period = _load(previous, pk)
            try:
                item = suppressor.store.get_many([pk], deadline=self.deadline)[pk]
                if item.version != version or previous is None or period is None:
                    continue
                due = (
                    (period.start + policy.period * NS) // NS + GRACE_S
                    if period.suppressed and not period.digested
                    else None
                )
                expires = int(suppressor.clock()) + 2 * policy.period + 3600
                suppressor.store.put(
                    pk, previous, version=version, expires=expires, deadline=self.deadline, due=due
                )
            except StateError as exc:
                _log.warning("falconet: could not take back a digest of %s: %s", pk, exc)
        self.taken.clear()

    # -- alerts ------------------------------------------------------------------------------

    def _mark(self, policy: Policy, period: Period, alert: Alert) -> Alert:
        fields = dict(alert.output_fields)
        if "falconet.suppress.policy" in fields:
            return alert  # an earlier policy named itself
        fields["falconet.suppress.policy"] = policy.name
        fields["falconet.suppress.until"] = format_iso8601_ns(period.start + policy.period * NS)
        return alert._replace(output_fields=dict(sorted(fields.items())))

    def _digest(self, policy: Policy, period: Period) -> Alert:
        suppressor = self.suppressor
        group = dict(zip(policy.group_by, period.values, strict=True))
        shown = " ".join(f"{k}={render_value(v)}" for k, v in group.items() if k != RULE)
        message = (
            f"{period.suppressed} more alert(s) of {period.rule} suppressed by "
            f"'{policy.title}' ({shown + ' ' if shown else ''}from "
            f"{format_iso8601_ns(period.first)} to {format_iso8601_ns(period.last)})"
        )
        fields: dict[str, Any] = {k: v for k, v in group.items() if k != RULE}
        fields.update(
            {
                "evt.time": period.last,
                "falconet.suppress.policy": policy.name,
                "falconet.suppress.digest": True,
                "falconet.suppress.count": period.suppressed,
                "falconet.suppress.first_time": format_iso8601_ns(period.first),
                "falconet.suppress.last_time": format_iso8601_ns(period.last),
                "falconet.suppress.period_start": format_iso8601_ns(period.start),
                "falconet.suppress.period_end": format_iso8601_ns(
                    period.start + policy.period * NS
                ),
                "falconet.suppress.audit_ids": list(period.audit_ids),
            }
        )
        iso = format_iso8601_ns(period.last)
        prefix = iso if suppressor.iso_prefix else format_local_time_ns(period.last)
        return Alert(
            period.rule,
            period.priority,
            f"{prefix}: {period.priority} {message}",
            iso,
            period.last,
            tuple(sorted({*period.tags, "digest"})),
            dict(sorted(fields.items())),
            stable_uuid(
                "digest", policy.key, _key(policy, tuple(period.values)), str(period.start)
            ),
            suppressor.hostname,
            SOURCE,
            message,
        )


def _key(policy: Policy, values: Sequence[Any]) -> str:
    h = hashlib.sha256(orjson.dumps([_plain(v) for v in values]))
    return f"p/{policy.key}/{h.hexdigest()[:32]}"


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | bool):
        return value if not isinstance(value, str) else value[:1024]
    return render_value(value)[:1024]


def _pack(marks: set[int]) -> str:
    """A set of 64-bit hashes as base64 of their bytes (11 characters each, not ~20)."""
    return base64.b64encode(b"".join(m.to_bytes(8, "little") for m in sorted(marks))).decode()


def _unpack(text: str) -> set[int]:
    data = base64.b64decode(text)
    return {int.from_bytes(data[i : i + 8], "little") for i in range(0, len(data), 8)}


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _load(data: bytes | None, pk: str) -> Period | None:
    if data is None:
        return None
    try:
        return Period.loads(data)
    except (ValueError, KeyError, TypeError):
        _log.warning("falconet: state item %s is not one this version wrote: starting it anew", pk)
        return None
