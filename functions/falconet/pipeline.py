"""decode -> evaluate -> emit, with the counters every entry point logs as one JSON line.

    pipeline = runtime().pipeline                    # built once per cold start (falconet.runtime)
    result = pipeline.run(body, context=EventContext(cluster="prod", origin="webhook"),
                          deadline=Deadline.for_lambda(lambda_context))
    result = pipeline.scan(ObjectRef("s3", "bucket", "key"))   # an object a trigger names
    log_invocation("handle_s3", result)

`run` takes bytes, a binary stream or an iterable of byte chunks (decoded by `falconet.decode`,
so new input formats plug in there without touching any entry point); `run_value` a JSON value
already parsed; `scan` opens a bucket object (`falconet.storage`), names its cluster (the
caller's, the object's `cluster` metadata, else the key pattern) and runs it. An object that no
longer exists raises `ObjectGone`, for the entry point to acknowledge.

With an attributor (`falconet.attribution`), each event of a pod or workload is seen by it before
the rules: it records workload writes and sets `falconet.owner.*` in the event's context; the
records reach the state store at the end of the call.

Delivery, per invocation:
- Each call opens one delivery per sink (`Sink.open`), hands it the alerts in chunks as they come
  (each delivery sends as soon as a request is full, so memory stays flat on large objects),
  flushes them before it returns, and then drops them: a failed call's undelivered alerts are
  never sent by a later one.
- Every alert is first fitted (`alerts.fit`) to the smallest `max_alert_bytes` of the sinks: long
  values cut with a visible marker, the audit event's id added as `ka.auditid`; `Result.truncated`
  counts them. An alert refused for itself is dropped by its sink (counted in `Result.dropped`,
  logged); it never fails the call.
- A sink that still fails after its retries raises `SinkError`, which fails the invocation so the
  trigger retries or dead-letters it (alert uuids make the retry deduplicable). The error carries
  the call's counters (`error.result`) for the entry point's log line and answer.
- Retries end by `deadline` (Lambda: `Deadline.for_lambda(context)`); without one, the call gets
  `timeout` seconds from its start (`FALCONET_FUNCTION_TIMEOUT_SECONDS`, functions-framework).

Why this module is long: an invocation's counters (`Result`, its metric lines), the pipeline and
its outbox share the per-event loop's data and are read together; split, each would import the
others' internals.
"""

from __future__ import annotations

import gc
import logging
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from falconet.alerts import Alert, fit
from falconet.attribution import (
    ATTRIBUTED,
    AttributionBatch,
    Attributor,
)
from falconet.context import EMPTY_CONTEXT, EventContext
from falconet.correlate.correlator import FLUSH_MATCHES, Batch, Correlator
from falconet.deadline import Deadline
from falconet.decode import (
    BODY_LIMITS,
    OBJECT_LIMITS,
    DecodeLimits,
    DecodeStats,
    decode,
    decode_value,
)
from falconet.decode.partial import BodyPlan
from falconet.engine import Engine
from falconet.errors import SinkError, StateError
from falconet.sinks import Delivery, Sink, smallest_limit
from falconet.storage import ObjectRef, cluster_from_key, open_object
from falconet.suppress.suppressor import SuppressBatch, Suppressor
from falconet.text import ECHO_LIMIT, echoable

EMIT_CHUNK = 500  # alerts handed to the sinks at a time
_SHOWN = 20  # list items a log line or an answer shows


class ClusterTally:
    """Per cluster: events, the newest event time seen (as its text), alerts by priority."""

    __slots__ = ("alerts", "events", "newest")

    def __init__(self) -> None:
        self.events: Counter[str] = Counter()
        self.newest: dict[str, str] = {}
        self.alerts: Counter[tuple[str, str]] = Counter()

    def add(self, cluster: str | None, events: int, last: Any) -> None:
        name = cluster or ""
        self.events[name] += events
        stamp = last.get("stageTimestamp") if isinstance(last, dict) else None
        if isinstance(stamp, str) and stamp > self.newest.get(name, ""):
            self.newest[name] = stamp

    def merge(self, other: ClusterTally) -> None:
        self.events.update(other.events)
        self.alerts.update(other.alerts)
        for name, stamp in other.newest.items():
            if stamp > self.newest.get(name, ""):
                self.newest[name] = stamp


@dataclass(slots=True)
class Result:
    """What one invocation did: counters for the log line and the HTTP response."""

    stats: DecodeStats = field(default_factory=DecodeStats)
    alerts: int = 0
    alerts_by_rule: Counter[str] = field(default_factory=Counter)
    duration_ms: float = 0.0
    origins: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # inputs acknowledged unread, with why
    truncated: int = 0  # alerts fitted to the sinks' limit
    delivered: Counter[str] = field(default_factory=Counter)  # per sink
    dropped: Counter[str] = field(default_factory=Counter)  # per sink: refused for themselves
    dropped_alerts: list[str] = field(default_factory=list)  # the first few, with why
    correlation: Counter[str] = field(default_factory=Counter)  # matches, state reads/writes...
    clusters: ClusterTally = field(default_factory=ClusterTally)  # for the metrics
    suppressed: int = 0  # alerts a suppression policy held back (counted into digests)
    digests: int = 0  # digest alerts sent
    attribution: Counter[str] = field(default_factory=Counter)  # attributed, unknown, reads...

    @property
    def events(self) -> int:
        return self.stats.events

    def merge(self, other: Result) -> None:
        self.stats.merge(other.stats)
        self.alerts += other.alerts
        self.alerts_by_rule.update(other.alerts_by_rule)
        self.duration_ms += other.duration_ms
        self.origins.extend(other.origins)
        self.ignored.extend(other.ignored)
        self.truncated += other.truncated
        self.delivered.update(other.delivered)
        self.dropped.update(other.dropped)
        self.dropped_alerts.extend(other.dropped_alerts[: _SHOWN - len(self.dropped_alerts)])
        self.correlation.update(other.correlation)
        self.clusters.merge(other.clusters)
        self.suppressed += other.suppressed
        self.digests += other.digests
        self.attribution.update(other.attribution)

    def to_dict(self) -> dict[str, Any]:
        """The counters, with every text that came from the input made echoable (bounded,
        unprintable characters escaped): this goes into HTTP answers and log lines."""
        data = self.stats.to_dict()
        data["problems"] = [echoable(p, 2 * ECHO_LIMIT) for p in data["problems"]]
        data.update(
            alerts=self.alerts,
            alerts_by_rule=dict(self.alerts_by_rule),
            duration_ms=round(self.duration_ms, 3),
        )
        if self.delivered:
            data["delivered"] = dict(self.delivered)
        if self.truncated:
            data["truncated"] = self.truncated
        if self.dropped:
            data["dropped"] = dict(self.dropped)
            data["dropped_alerts"] = self.dropped_alerts[:_SHOWN]
        if self.correlation:
            data["correlation"] = dict(self.correlation)
        if self.suppressed or self.digests:
            data["suppressed"] = self.suppressed
            data["digests"] = self.digests
        if self.attribution:
            data["attribution"] = dict(self.attribution)
        if self.origins:
            data["origins"] = [echoable(o) for o in self.origins[:_SHOWN]]
        if self.ignored:
            data["ignored"] = [echoable(i, 2 * ECHO_LIMIT) for i in self.ignored[:_SHOWN]]
        return data


def metric_lines(result: Result, entry: str, *, now_ns: int | None = None) -> list[str]:
    """CloudWatch embedded-metric-format lines (one per cluster) for `result`: Events, Alerts
    (and per priority), Rejected, and LagSeconds (now minus the newest event time seen), in the
    namespace `falconet` with the dimension Cluster. Written by the Lambda handlers to stdout,
    where CloudWatch turns them into metrics; elsewhere they are plain JSON lines."""
    from falconet.timestamps import parse_rfc3339_ns

    now = time.time_ns() if now_ns is None else now_ns
    tally = result.clusters
    names = sorted(set(tally.events) | {c for c, _ in tally.alerts})
    lines = []
    for name in names:
        by_priority = {p: n for (c, p), n in tally.alerts.items() if c == name}
        record: dict[str, Any] = {
            "_aws": {
                "Timestamp": now // 1_000_000,
                "CloudWatchMetrics": [
                    {
                        "Namespace": "falconet",
                        "Dimensions": [["Cluster"]],
                        "Metrics": [
                            {"Name": "Events", "Unit": "Count"},
                            {"Name": "Alerts", "Unit": "Count"},
                            *({"Name": f"Alerts{p}", "Unit": "Count"} for p in sorted(by_priority)),
                            {"Name": "LagSeconds", "Unit": "Seconds"},
                        ],
                    }
                ],
            },
            "falconet": entry,
            "Cluster": echoable(name or "<unknown>"),
            "Events": tally.events.get(name, 0),
            "Alerts": sum(by_priority.values()),
            **{f"Alerts{p}": n for p, n in by_priority.items()},
        }
        newest = parse_rfc3339_ns(tally.newest.get(name))
        if newest is not None:
            record["LagSeconds"] = round(max(0, now - newest) / 1e9, 3)
        lines.append(orjson.dumps(record).decode())
    if result.stats.rejected_total:  # not per cluster: a rejected record has none
        lines.append(
            orjson.dumps(
                {
                    "_aws": {
                        "Timestamp": now // 1_000_000,
                        "CloudWatchMetrics": [
                            {
                                "Namespace": "falconet",
                                "Dimensions": [["Entry"]],
                                "Metrics": [{"Name": "Rejected", "Unit": "Count"}],
                            }
                        ],
                    },
                    "Entry": entry,
                    "Rejected": result.stats.rejected_total,
                }
            ).decode()
        )
    return lines


class Pipeline:
    """An engine and its sinks, built once per process and reused by every invocation.

    `key_pattern` names an object's cluster from its key (`scan`); None reads no cluster there.
    `timeout`: seconds a call without a deadline has for its deliveries (None: no limit).
    `body_limits` and `object_limits` bound what decoding one input may cost (docs/inputs.md).
    `correlator` runs the engine's correlations (None: the engine has none, or they are off);
    `suppressor` its suppression policies (None: none, or off); `attributor` names the workload
    and person behind pods and workloads, `falconet.owner.*` (None: attribution is off); it sees
    each event before the rules do. `falco_json`: read every JSON text exactly as Falco's
    k8saudit plugin does (`decode(falco_json=True)`; slower, docs/inputs.md).
    """

    def __init__(
        self,
        engine: Engine,
        sinks: Sequence[Sink],
        *,
        key_pattern: re.Pattern[str] | None = None,
        timeout: float | None = None,
        body_limits: DecodeLimits = BODY_LIMITS,
        object_limits: DecodeLimits = OBJECT_LIMITS,
        correlator: Correlator | None = None,
        suppressor: Suppressor | None = None,
        attributor: Attributor | None = None,
        falco_json: bool = False,
    ) -> None:
        self.engine = engine
        self.falco_json = falco_json
        self.correlator = correlator
        self.suppressor = suppressor
        self.attributor = attributor
        self.sinks = tuple(sinks)
        self.key_pattern = key_pattern
        self.timeout = timeout
        self.alert_limit = smallest_limit(self.sinks)
        self.body_limits = body_limits
        self.object_limits = object_limits
        self._bodies: BodyPlan | None | bool = False  # False: not made yet (see `bodies`)

    def bodies(self) -> BodyPlan | None:
        """For which events the request and response objects are read: the engine's rules
        (`Engine.body_readers`) and attribution (pods and workloads). Made at the first input,
        not at a cold start; None: every event is decoded whole."""
        if self._bodies is False:
            made = getattr(self.engine, "body_readers", None)  # another evaluator: reads anything
            readers = made() if made is not None else None
            plan = None if readers is None else BodyPlan.of(readers)
            if plan is not None and self.attributor is not None:
                plan.add(None, frozenset(ATTRIBUTED))
            self._bodies = plan
        return self._bodies  # type: ignore[return-value]

    def start_deadline(self) -> Deadline:
        """The deadline of an invocation starting now, for a platform that does not give one:
        `timeout` seconds from now (None: no deadline)."""
        return Deadline.never() if self.timeout is None else Deadline.after(self.timeout)

    def scan(
        self,
        ref: ObjectRef,
        *,
        context: EventContext = EMPTY_CONTEXT,
        deadline: Deadline | None = None,
        run_id: str | None = None,
    ) -> Result:
        """Stream one bucket object through the pipeline. Raises ObjectGone, SinkError.
        `run_id`: the backtest run the object belongs to (`falconet.fanout`), set on every
        alert as the output field `falconet.run_id`."""
        opened = open_object(ref)
        try:
            cluster = (
                context.cluster
                or opened.metadata.get("cluster")
                or opened.metadata.get("falconet-cluster")
                or cluster_from_key(ref.key, self.key_pattern)
            )
            ctx = context.updated(
                cluster=cluster, origin=ref.url, region=ref.region, account=ref.account
            )
            return self.run(
                opened.stream,
                context=ctx,
                name=ref.url,
                limits=self.object_limits,
                deadline=deadline,
                run_id=run_id,
            )
        finally:
            close = getattr(opened.stream, "close", None)
            if close is not None:
                close()

    def sweep(self, *, deadline: Deadline | None = None) -> Result:
        """The scheduled sweep: deliver the digests of every suppression period that ended,
        whether or not a later alert of its group came (none without suppression policies).
        Raises SinkError, StateError."""
        started = time.perf_counter()
        result = Result()
        if self.suppressor is None:
            return result
        if deadline is None:
            deadline = self.start_deadline()
        deliveries = [sink.open(deadline) for sink in self.sinks]
        sweep = self.suppressor.batch(deadline)
        try:
            digests = sweep.sweep()
            outbox = _Outbox(deliveries, result, self.alert_limit, gc.isenabled())
            outbox.take(digests, None)
            outbox.flush()
            for delivery in deliveries:
                delivery.flush()
            result.digests += len(digests)
        except SinkError as error:
            sweep.undo()  # the next sweep sends them again
            error.result = result
            raise
        except StateError as error:
            error.result = result
            raise
        finally:
            for delivery in deliveries:
                tally = delivery.tally
                if tally.delivered:
                    result.delivered[tally.sink] += tally.delivered
            result.duration_ms = (time.perf_counter() - started) * 1000
        return result

    def run_value(
        self,
        value: Any,
        *,
        context: EventContext = EMPTY_CONTEXT,
        name: str,
        size: int | None,
        deadline: Deadline | None = None,
        limits: DecodeLimits | None = None,
    ) -> Result:
        """`run` for a JSON value already parsed (`size`: the length it was parsed from, if
        known). Raises SinkError."""
        stats = DecodeStats()
        limits = limits or self.body_limits
        events = decode_value(
            value, stats=stats, context=context, name=name, size=size, limits=limits
        )
        return self._process(events, stats, context, time.perf_counter(), deadline)

    def run(
        self,
        data: bytes | IO[bytes] | Iterable[bytes],
        *,
        context: EventContext = EMPTY_CONTEXT,
        name: str | None = None,
        deadline: Deadline | None = None,
        limits: DecodeLimits | None = None,
        run_id: str | None = None,
    ) -> Result:
        """Decode `data` (under `limits`, default `body_limits`), evaluate every event, emit the
        alerts. Raises SinkError."""
        started = time.perf_counter()
        stats = DecodeStats()
        name = name or context.origin or "<input>"
        limits = limits or self.body_limits
        events = decode(
            data,
            stats=stats,
            context=context,
            name=name,
            limits=limits,
            falco_json=self.falco_json,
            bodies=self.bodies(),
        )
        return self._process(events, stats, context, started, deadline, run_id)

    def _process(
        self,
        events: Iterable[tuple[Any, EventContext]],
        stats: DecodeStats,
        context: EventContext,
        started: float,
        deadline: Deadline | None,
        run_id: str | None = None,
    ) -> Result:
        result = Result(stats)
        if context.origin:
            result.origins.append(context.origin)
        if deadline is None:
            deadline = self.start_deadline()
        deliveries = [sink.open(deadline) for sink in self.sinks]
        batch = self.correlator.batch(deadline) if self.correlator is not None else None
        suppress = self.suppressor.batch(deadline) if self.suppressor is not None else None
        owners = self.attributor.batch(deadline) if self.attributor is not None else None
        try:
            self._evaluate(events, deliveries, result, batch, owners, suppress, run_id)
            for delivery in deliveries:
                delivery.flush()
        except SinkError as error:
            if batch is not None:
                batch.undo()  # the retry must raise the correlation alerts again
            if suppress is not None:
                suppress.undo()  # and send the digests again
            error.result = result
            raise
        except StateError as error:
            error.result = result
            raise
        finally:
            if batch is not None:
                result.correlation.update(batch.counters)
            if suppress is not None:
                result.suppressed += suppress.suppressed
                result.digests += suppress.digests
            if owners is not None:
                result.attribution.update(owners.counters)
            # The deliveries die here, with whatever a failure left unsent in them.
            for delivery in deliveries:
                tally = delivery.tally
                if tally.delivered:
                    result.delivered[tally.sink] += tally.delivered
                if tally.dropped:
                    result.dropped[tally.sink] += tally.dropped
                    result.dropped_alerts.extend(
                        tally.reasons[: _SHOWN - len(result.dropped_alerts)]
                    )
            result.duration_ms = (time.perf_counter() - started) * 1000
        return result

    def _evaluate(
        self,
        events: Iterable[tuple[Any, EventContext]],
        deliveries: Sequence[Delivery],
        result: Result,
        batch: Batch | None,
        owners: AttributionBatch | None,
        suppress: SuppressBatch | None = None,
        run_id: str | None = None,
    ) -> None:
        evaluate = self.engine.evaluate
        judge = self.engine.judge if batch is not None else None
        # The cyclic garbage collector is paused while events are decoded and evaluated, and runs
        # while sinks work. Parsed audit events hold no reference cycles (refcounting frees them),
        # but a parsed webhook body keeps ~25,000 young objects alive, which every generation-0/1
        # collection walked again: measured +0.3x an orjson.loads per event on 400-event bodies.
        collecting = gc.isenabled()
        outbox = _Outbox(deliveries, result, self.alert_limit, collecting, suppress, run_id)
        take = outbox.take
        gc.disable()
        # Per-cluster counts for the invocation's metrics, counted by runs of events that share
        # one context (the decoders hand out one per input or envelope): one identity test per
        # event, not a dictionary update.
        clusters = result.clusters
        run_ctx: EventContext | None = None
        run = 0
        last: Any = None
        try:
            for event, ctx in events:
                if ctx is not run_ctx:
                    if run_ctx is not None:
                        clusters.add(run_ctx.cluster, run, last)
                    run_ctx, run = ctx, 0
                run += 1
                last = event
                if owners is not None:  # falconet.owner.*: the rules must see it
                    ctx = owners.look(event, ctx)  # noqa: PLW2901 - the event's own context
                if judge is None:
                    alerts = evaluate(event, ctx)
                else:
                    alerts, matched = judge(event, ctx)
                    if matched:
                        batch.add(event, ctx, matched)  # type: ignore[union-attr]
                        if batch.size >= FLUSH_MATCHES:  # type: ignore[union-attr]
                            take(batch.flush(), None)  # type: ignore[union-attr]
                if alerts:
                    take(alerts, _audit_id(event))
            if run_ctx is not None:
                clusters.add(run_ctx.cluster, run, last)
            if owners is not None:
                owners.flush()
            if batch is not None:
                take(batch.flush(), None)
            outbox.flush()
        finally:
            if collecting:
                gc.enable()


class _Outbox:
    """Alerts on their way to the deliveries: counted, passed through the suppression policies
    (when there are any), fitted to the sinks' limit, and handed over EMIT_CHUNK at a time, with
    the collector running if it was on (sinks and boto3 may make reference cycles). With a
    `run_id` (a backtest run), every alert carries it as the output field `falconet.run_id`."""

    __slots__ = ("collecting", "deliveries", "limit", "pending", "result", "run_id", "suppress")

    def __init__(
        self,
        deliveries: Sequence[Delivery],
        result: Result,
        limit: int | None,
        collecting: bool,
        suppress: SuppressBatch | None = None,
        run_id: str | None = None,
    ) -> None:
        self.deliveries = deliveries
        self.run_id = run_id
        self.result = result
        self.limit = limit
        self.collecting = collecting
        self.suppress = suppress
        self.pending: list[tuple[Alert, str | None]] = []

    def take(self, alerts: Iterable[Alert], audit_id: str | None) -> None:
        result = self.result
        if self.run_id is not None:
            alerts = [_with_run(alert, self.run_id) for alert in alerts]
        for alert in alerts:
            result.alerts_by_rule[alert.rule] += 1
            result.alerts += 1
            result.clusters.alerts[(alert.cluster or "", alert.priority)] += 1
            self.pending.append((alert, audit_id))
        if len(self.pending) >= EMIT_CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        chunk, self.pending = self.pending, []
        if self.suppress is not None:
            chunk = self.suppress.filter(chunk)
        ready = self._fitted(chunk)
        if self.collecting:
            gc.enable()
        try:
            for delivery in self.deliveries:
                delivery.emit(ready)
        finally:
            if self.collecting:
                gc.disable()

    def _fitted(self, pairs: Sequence[tuple[Alert, str | None]]) -> list[Alert]:
        limit = self.limit
        if limit is None:
            return [alert for alert, _ in pairs]
        out = []
        for alert, audit_id in pairs:
            fitted = fit(alert, limit, audit_id=audit_id)
            if fitted is None:
                _unfit(self.result, alert, limit)
                continue
            if fitted is not alert:
                self.result.truncated += 1
            out.append(fitted)
        return out


RUN_ID_FIELD = "falconet.run_id"


def _with_run(alert: Alert, run_id: str) -> Alert:
    """`alert` with the backtest run's id among its output fields (its uuid unchanged: the same
    event and rule are the same alert, whichever run found it)."""
    return alert._replace(output_fields={**alert.output_fields, RUN_ID_FIELD: run_id})


def _audit_id(event: Any) -> str | None:
    audit_id = event.get("auditID") if isinstance(event, dict) else None
    return audit_id if isinstance(audit_id, str) else None


def _unfit(result: Result, alert: Alert, limit: int) -> None:
    """An alert that cannot fit `limit` even with every value cut: dropped for every sink, counted
    and logged (never seen in practice: its rule name, tags and field names alone are too big)."""
    reason = f"cannot fit in {limit} bytes even with every value cut"
    result.dropped["all sinks"] += 1
    if len(result.dropped_alerts) < _SHOWN:
        result.dropped_alerts.append(f"all sinks {alert.uuid or alert.rule}: {reason}")
    logging.getLogger("falconet.pipeline").warning(
        "falconet: dropped alert %s, rule %r, time %s: %s",
        alert.uuid,
        alert.rule,
        alert.time,
        reason,
    )


def log_invocation(
    entry: str, result: Result | None, *, error: str | None = None, **extra: Any
) -> None:
    """Write the one structured JSON line an invocation logs (to stderr)."""
    record: dict[str, Any] = {"falconet": entry, "level": "error" if error else "info"}
    if result is not None:
        record.update(result.to_dict())
    if error:
        record["error"] = echoable(error, 4 * ECHO_LIMIT)
    record.update(
        {k: echoable(v) if isinstance(v, str) else v for k, v in extra.items() if v is not None}
    )
    sys.stderr.write(orjson.dumps(record).decode() + "\n")
    sys.stderr.flush()
