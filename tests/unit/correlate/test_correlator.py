"""Each correlation type through the engine, the correlator and the in-memory store: what fires,
when, and what a retry or a second delivery does."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from falconet import Engine, EventContext
from falconet.alerts import Alert
from falconet.correlate.correlator import Correlator
from falconet.state import MemoryStore

BASE = """\
- rule: Denied
  desc: a denied request
  condition: ka.response.code in (401, 403)
  output: denied (user=%ka.user.name)
  priority: INFO
  source: k8s_audit
- rule: Secret read
  desc: a secret read
  condition: ka.verb=get and ka.target.resource=secrets and ka.response.code=200
  output: secret (user=%ka.user.name name=%ka.target.name)
  priority: NOTICE
  source: k8s_audit
- rule: Binding created
  desc: a role binding created
  condition: ka.verb=create and ka.target.resource=rolebindings
  output: binding (user=%ka.user.name)
  priority: NOTICE
  source: k8s_audit
- rule: Exec
  desc: an exec
  condition: ka.target.subresource=exec
  output: exec (user=%ka.user.name)
  priority: NOTICE
  source: k8s_audit
"""


class Run:
    """An engine, a correlator over a memory store, and helpers to feed them batches."""

    def __init__(self, tmp_path: Path, correlations: str, *, learn: bool = False) -> None:
        (tmp_path / "base.yaml").write_text(BASE)
        (tmp_path / "c.yaml").write_text(textwrap.dedent(correlations))
        self.engine = Engine.from_paths([tmp_path / "base.yaml", tmp_path / "c.yaml"], hostname="h")
        self.store = MemoryStore()
        self.correlator = Correlator.for_engine(self.engine, self.store, learn=learn)

    def batch(self, events: Iterable[dict[str, Any]], cluster: str = "prod") -> list[Alert]:
        batch = self.correlator.batch()
        for ev in events:
            _, matched = self.engine.judge(ev, EventContext(cluster=cluster))
            if matched:
                batch.add(ev, EventContext(cluster=cluster), matched)
        return batch.flush()


def event(
    n: int,
    minute: float,
    *,
    user: str = "mallory",
    code: int = 403,
    verb: str = "get",
    resource: str = "pods",
    name: str = "x",
    subresource: str | None = None,
    day: int = 11,
) -> dict[str, Any]:
    seconds = round(minute * 60)
    ref: dict[str, Any] = {"resource": resource, "name": name, "namespace": "demo"}
    if subresource:
        ref["subresource"] = subresource
    return {
        "kind": "Event",
        "auditID": f"id-{n}",
        "stage": "ResponseComplete",
        "stageTimestamp": f"2026-03-{day:02d}T{seconds // 3600:02d}:{seconds // 60 % 60:02d}:"
        f"{seconds % 60:02d}.000000Z",
        "verb": verb,
        "user": {"username": user},
        "objectRef": ref,
        "responseStatus": {"code": code},
    }


def count_of(alert: Alert) -> int:
    return int(alert.output_fields["falconet.correlation.count"])


EVENT_COUNT = """\
title: Denied burst
correlation:
  type: event_count
  rules: [Denied]
  group-by: [ka.user.name]
  timespan: 10m
  condition: {gte: 5}
"""


def test_event_count_fires_once_a_window_holds_enough(tmp_path: Path) -> None:
    run = Run(tmp_path, EVENT_COUNT)
    assert run.batch(event(n, n) for n in range(4)) == []  # 4 of 5: nothing yet
    (alert,) = run.batch([event(4, 4)])  # a later invocation crosses the threshold
    assert count_of(alert) == 5 and alert.output_fields["ka.user.name"] == "mallory"
    assert "count=5 (gte 5) within 10m" in alert.output
    assert run.batch([event(5, 5), event(6, 6)]) == []  # the same window: no second alert


def test_the_same_audit_event_counts_once(tmp_path: Path) -> None:
    run = Run(tmp_path, EVENT_COUNT)
    same = [event(1, 1)] * 10  # one event, delivered ten times
    assert run.batch(same) == []
    assert run.batch(same) == []
    assert run.store.requests["write"] == 1  # the second delivery changed nothing


def test_events_spread_wider_than_the_timespan_do_not_fire(tmp_path: Path) -> None:
    run = Run(tmp_path, EVENT_COUNT)
    assert run.batch(event(n, n * 3) for n in range(5)) == []  # 5 events over 12 minutes


def test_a_flood_raises_one_alert_per_timespan(tmp_path: Path) -> None:
    run = Run(tmp_path, EVENT_COUNT)
    alerts = []
    for n in range(60):  # one a minute for an hour, one invocation each
        alerts += run.batch([event(n, n)])
    assert len(alerts) == 6
    assert len({a.uuid for a in alerts}) == 6


def test_groups_count_apart(tmp_path: Path) -> None:
    run = Run(tmp_path, EVENT_COUNT)
    events = [event(n, n / 10, user=f"u{n % 3}") for n in range(12)]  # 4 per user
    assert run.batch(events) == []


def test_out_of_order_arrival_within_a_batch_does_not_matter(tmp_path: Path) -> None:
    forward = Run(tmp_path / "a", EVENT_COUNT) if (tmp_path / "a").mkdir() is None else None
    backward = Run(tmp_path / "b", EVENT_COUNT) if (tmp_path / "b").mkdir() is None else None
    assert forward is not None and backward is not None
    events = [event(n, n) for n in range(7)]
    (a,) = forward.batch(events)
    (b,) = backward.batch(reversed(events))
    assert (a.uuid, a.output_fields) == (b.uuid, b.output_fields)


def test_value_count_counts_distinct_values(tmp_path: Path) -> None:
    run = Run(
        tmp_path,
        """\
        title: Many secrets
        correlation:
          type: value_count
          rules: [Secret read]
          group-by: [ka.user.name]
          timespan: 1h
          condition: {field: ka.target.name, gte: 3}
          generate: true
        """,
    )
    reads = [event(n, n, code=200, resource="secrets", name="db") for n in range(10)]
    assert run.batch(reads) == []  # one secret read ten times
    more = [event(10 + n, 20 + n, code=200, resource="secrets", name=f"s{n}") for n in range(2)]
    (alert,) = run.batch(more)
    assert count_of(alert) == 3
    assert alert.output_fields["falconet.correlation.values"] == ["db", "s0", "s1"]
    assert alert.output_fields["falconet.correlation.field"] == "ka.target.name"


TEMPORAL_ORDERED = """\
title: Grant then exec
correlation:
  type: temporal_ordered
  rules: [Binding created, Exec]
  group-by: [ka.user.name]
  timespan: 30m
  generate: true
level: critical
"""


def test_temporal_ordered_needs_the_order(tmp_path: Path) -> None:
    grant = event(1, 10, code=201, verb="create", resource="rolebindings")
    exec_before = event(2, 5, code=101, verb="create", resource="pods", subresource="exec")
    exec_after = event(3, 20, code=101, verb="create", resource="pods", subresource="exec")
    run = Run(tmp_path, TEMPORAL_ORDERED)
    assert run.batch([exec_before, grant]) == []  # exec first: not the sequence
    (alert,) = run.batch([exec_after])
    assert alert.priority == "Critical"
    assert alert.output_fields["falconet.correlation.rules"] == ["Binding created", "Exec"]


def test_temporal_any_order(tmp_path: Path) -> None:
    run = Run(tmp_path, TEMPORAL_ORDERED.replace("temporal_ordered", "temporal"))
    grant = event(1, 10, code=201, verb="create", resource="rolebindings")
    exec_before = event(2, 5, code=101, verb="create", resource="pods", subresource="exec")
    (alert,) = run.batch([exec_before, grant])
    assert count_of(alert) == 2


FIRST_SEEN = """\
title: First secret read
correlation:
  type: first_seen
  rules: [Secret read]
  group-by: [ka.user.name]
  timespan: 30d
  learning: 1d
  generate: true
"""


def test_first_seen_after_learning_and_again_after_the_history(tmp_path: Path) -> None:
    run = Run(tmp_path, FIRST_SEEN)
    read = {"code": 200, "resource": "secrets"}
    assert run.batch([event(1, 0, user="old", **read)]) == []  # day 11: learning starts
    assert run.batch([event(2, 0, user="new", day=11, **read)]) == []  # still learning
    (alert,) = run.batch([event(3, 0, user="later", day=13, **read)])
    assert alert.output_fields["ka.user.name"] == "later"
    assert "first seen" in alert.output
    assert run.batch([event(4, 60, user="later", day=13, **read)]) == []  # seen now
    assert run.batch([event(5, 0, user="old", day=13, **read)]) == []  # learned on day 11


def test_learn_mode_records_and_raises_nothing(tmp_path: Path) -> None:
    run = Run(tmp_path, FIRST_SEEN.replace("  learning: 1d\n", ""), learn=True)
    assert run.batch([event(1, 0, user="a", code=200, resource="secrets")]) == []
    live = Correlator.for_engine(run.engine, run.store)  # the same store, learning off
    batch = live.batch()
    for ev in [event(2, 5, user="a", code=200, resource="secrets")]:
        _, matched = run.engine.judge(ev)
        batch.add(ev, EventContext(cluster="prod"), matched)
    assert batch.flush() == []  # "a" was learned


def test_upper_bound_conditions_are_decided_when_the_window_closes(tmp_path: Path) -> None:
    run = Run(
        tmp_path,
        EVENT_COUNT.replace("Denied burst", "Few denials").replace("{gte: 5}", "{lt: 3}"),
    )
    assert run.batch([event(1, 0), event(2, 1)]) == []  # window still open
    (alert,) = run.batch([event(3, 30)])  # a match past the window closes it
    assert count_of(alert) == 2
    (last,) = run.correlator.finish()  # the end of a scan decides the window left open
    assert count_of(last) == 1


def test_chained_correlations_feed_each_other(tmp_path: Path) -> None:
    run = Run(
        tmp_path,
        EVENT_COUNT.replace("title: Denied burst", "title: Denied burst\nname: burst")
        + textwrap.dedent(
            """\
            ---
            title: Bursts on two days
            correlation:
              type: event_count
              rules: [burst]
              group-by: [ka.user.name]
              timespan: 3d
              condition: {gte: 2}
            level: high
            """
        ),
    )
    day1 = [event(n, n, day=11) for n in range(5)]
    day2 = [event(10 + n, n, day=12) for n in range(5)]
    assert run.batch(day1) == []  # the inner alert feeds the outer one, and is not emitted
    (alert,) = run.batch(day2)
    assert alert.rule == "Bursts on two days" and count_of(alert) == 2


def test_undo_lets_a_retry_raise_the_alert_again(tmp_path: Path) -> None:
    run = Run(tmp_path, EVENT_COUNT)
    events = [event(n, n) for n in range(5)]
    batch = run.correlator.batch()
    for ev in events:
        _, matched = run.engine.judge(ev)
        batch.add(ev, EventContext(), matched)
    (first,) = batch.flush()
    batch.undo()  # its delivery failed
    (again,) = run.batch(events)  # the retried invocation
    assert again.uuid == first.uuid


@pytest.mark.parametrize("order", ["forward", "reversed"])
def test_alert_ids_are_stable(tmp_path: Path, order: str) -> None:
    run = Run(tmp_path, EVENT_COUNT)
    events = [event(n, n) for n in range(5)]
    (alert,) = run.batch(events if order == "forward" else events[::-1])
    fresh = Run(tmp_path / "x", EVENT_COUNT) if (tmp_path / "x").mkdir() is None else None
    assert fresh is not None
    (same,) = fresh.batch(events)
    assert alert.uuid == same.uuid


def test_a_key_seen_all_day_costs_one_write_and_one_read(tmp_path: Path) -> None:
    run = Run(tmp_path, FIRST_SEEN.replace("  learning: 1d\n", ""))
    read = {"code": 200, "resource": "secrets", "user": "alice"}
    alerts = []
    for n in range(48):  # one invocation every 30 minutes for a day
        alerts += run.batch([event(n, n * 30, **read)])
    assert len(alerts) == 1
    assert run.store.requests["write"] == 1  # the sighting moves on by less than a day
    assert run.store.requests["read"] == 1  # and this process knows it is recent
    fresh = Correlator.for_engine(run.engine, run.store)  # another instance: reads, no alert
    batch = fresh.batch()
    ev = event(100, 60 * 23, **read)
    batch.add(ev, EventContext(), run.engine.judge(ev)[1])
    assert batch.flush() == [] and run.store.requests["write"] == 1
