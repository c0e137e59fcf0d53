"""Suppression at run time through a real engine and the in-memory store: what goes out, what a
digest counts, when it comes, and what re-delivery, event time and correlations do to it."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from falconet import Engine, EventContext
from falconet.alerts import Alert
from falconet.config import Settings
from falconet.correlate.correlator import Correlator
from falconet.runtime import build_pipeline
from falconet.state import MemoryStore
from falconet.suppress.suppressor import Suppressor

BASE = """\
- rule: Secret read denied
  desc: a denied secret read
  condition: ka.verb=get and ka.target.resource=secrets and ka.response.code=403
  output: denied secret (user=%ka.user.name ns=%ka.target.namespace name=%ka.target.name)
  priority: WARNING
  source: k8s_audit
  tags: [k8s, credentials]
- rule: Namespace deleted
  desc: a namespace deleted
  condition: ka.verb=delete and ka.target.resource=namespaces
  output: deleted (user=%ka.user.name ns=%ka.target.name)
  priority: NOTICE
  source: k8s_audit
  tags: [k8s]
"""

DEDUP = """\
suppress: Repeats of a rule for one identity and object
name: repeats
group-by: [rule, ka.user.name, ka.target.name]
period: 1h
"""

T0 = datetime(2026, 3, 11, 10, 0, 0, tzinfo=UTC)
HOUR = 3600


class Run:
    """An engine with the policies (and correlations) given, a suppressor over a memory store,
    and helpers to feed it invocations as the pipeline does."""

    def __init__(self, tmp_path: Path, policies: str, *, correlations: str = "") -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        paths = [tmp_path / "base.yaml", tmp_path / "policies.yaml"]
        paths[0].write_text(BASE)
        paths[1].write_text(textwrap.dedent(policies))
        if correlations:
            paths.append(tmp_path / "correlations.yaml")
            paths[2].write_text(textwrap.dedent(correlations))
        self.engine = Engine.from_paths(paths, hostname="h")
        self.store = MemoryStore()
        self.suppressor = Suppressor.for_engine(self.engine, self.store)
        self.correlator = (
            Correlator.for_engine(self.engine, self.store) if self.engine.correlations else None
        )
        self.suppressed = 0
        self.digests = 0

    def batch(self, events: Iterable[dict[str, Any]], cluster: str = "prod") -> list[Alert]:
        """One invocation: the alerts of `events` (and the correlation alerts they raise), through
        the policies; what goes out."""
        ctx = EventContext(cluster=cluster)
        pairs: list[tuple[Alert, str | None]] = []
        correlate = self.correlator.batch() if self.correlator is not None else None
        for ev in events:
            alerts, matched = self.engine.judge(ev, ctx)
            if matched and correlate is not None:
                correlate.add(ev, ctx, matched)
            pairs += [(a, ev["auditID"]) for a in alerts]
        if correlate is not None:
            pairs += [(a, None) for a in correlate.flush()]
        batch = self.suppressor.batch()
        out = [alert for alert, _ in batch.filter(pairs)]
        self.suppressed += batch.suppressed
        self.digests += batch.digests
        return out


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event(
    n: int,
    seconds: float,
    *,
    user: str = "mallory",
    name: str = "db-credentials",
    verb: str = "get",
    resource: str = "secrets",
    code: int = 403,
) -> dict[str, Any]:
    """An audit event as the API server writes it (level Metadata), `seconds` after T0."""
    when = at(seconds)
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": f"a{n:05d}-0000-4000-8000-000000000000",
        "stage": "ResponseComplete",
        "requestURI": f"/api/v1/namespaces/payments/{resource}/{name}",
        "verb": verb,
        "user": {"username": user, "groups": ["developers", "system:authenticated"]},
        "sourceIPs": ["10.20.3.17"],
        "userAgent": "kubectl/v1.30.2 (linux/amd64) kubernetes/3968350",
        "objectRef": {
            "resource": resource,
            "namespace": "payments",
            "name": name,
            "apiVersion": "v1",
        },
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": stamp(when - timedelta(milliseconds=3)),
        "stageTimestamp": stamp(when),
    }


def audit_id(n: int) -> str:
    return f"a{n:05d}-0000-4000-8000-000000000000"


def iso(seconds: float) -> str:
    return at(seconds).strftime("%Y-%m-%dT%H:%M:%S.000000000Z")


def digests(alerts: Iterable[Alert]) -> list[Alert]:
    return [a for a in alerts if a.output_fields.get("falconet.suppress.digest")]


def plain(alerts: Iterable[Alert]) -> list[Alert]:
    return [a for a in alerts if not a.output_fields.get("falconet.suppress.digest")]


def count_of(alert: Alert) -> int:
    return int(alert.output_fields["falconet.suppress.count"])


def flood(first: int = 0, count: int = 10, *, every: float = 60, start: float = 0) -> list[Any]:
    """`count` denied reads of one secret by one user, `every` seconds apart from `start`."""
    return [event(first + k, start + k * every) for k in range(count)]


# ---- dedup (limit 1) -----------------------------------------------------------------------------


def test_a_flood_in_one_batch_sends_one_alert_with_the_suppress_fields(tmp_path: Path) -> None:
    run = Run(tmp_path, DEDUP)
    (sent,) = run.batch(flood(count=10))
    assert sent.rule == "Secret read denied"
    assert sent.output_fields["ka.user.name"] == "mallory"
    assert sent.time == iso(0)  # the first by event time
    assert sent.output_fields["falconet.suppress.policy"] == "repeats"
    assert sent.output_fields["falconet.suppress.until"] == iso(HOUR)
    assert run.suppressed == 9
    assert run.digests == 0  # no digest while the period runs


def test_the_digest_comes_with_the_first_alert_after_the_period(tmp_path: Path) -> None:
    run = Run(tmp_path, DEDUP)
    run.batch(flood(count=10))  # 0..9 minutes
    assert run.batch([event(10, 30 * 60)]) == []  # still in the period: counted
    out = run.batch([event(11, HOUR + 1)])
    (next_first,) = plain(out)
    (digest,) = digests(out)
    assert next_first.time == iso(HOUR + 1)
    assert next_first.output_fields["falconet.suppress.until"] == iso(2 * HOUR + 1)

    fields = digest.output_fields
    assert count_of(digest) == 10
    assert fields["falconet.suppress.policy"] == "repeats"
    assert fields["falconet.suppress.first_time"] == iso(60)  # the first one held back
    assert fields["falconet.suppress.last_time"] == iso(30 * 60)
    assert fields["falconet.suppress.period_start"] == iso(0)
    assert fields["falconet.suppress.period_end"] == iso(HOUR)
    assert fields["falconet.suppress.audit_ids"] == [audit_id(n) for n in range(1, 11)]
    assert (fields["ka.user.name"], fields["ka.target.name"]) == ("mallory", "db-credentials")
    assert "rule" not in fields  # the pseudo-field names no output field
    assert (digest.rule, digest.priority) == ("Secret read denied", "Warning")
    assert "digest" in digest.tags and "credentials" in digest.tags
    assert digest.time == iso(30 * 60) and fields["evt.time"] == digest.time_ns
    assert digest.message == (
        "10 more alert(s) of Secret read denied suppressed by 'Repeats of a rule for one identity "
        "and object' (ka.user.name=mallory ka.target.name=db-credentials from "
        f"{iso(60)} to {iso(30 * 60)})"
    )
    assert run.digests == 1


def test_finish_sends_the_digest_once_at_the_end_of_a_scan(tmp_path: Path) -> None:
    run = Run(tmp_path, DEDUP)
    run.batch(flood(count=10))
    (digest,) = run.suppressor.finish()
    assert count_of(digest) == 9
    assert digest.output_fields["falconet.suppress.audit_ids"] == [
        audit_id(n) for n in range(1, 10)
    ]
    assert run.suppressor.finish() == []  # said once
    (after,) = run.batch([event(99, HOUR + 5)])  # the next period: no second digest of the first
    assert not after.output_fields.get("falconet.suppress.digest")


def test_no_digest_when_nothing_was_held_back(tmp_path: Path) -> None:
    run = Run(tmp_path, DEDUP)
    run.batch([event(0, 0)])
    assert run.suppressor.finish() == []
    (only,) = run.batch([event(1, HOUR + 1)])
    assert only.time == iso(HOUR + 1)


def test_a_digest_names_at_most_ten_audit_ids_and_counts_them_all(tmp_path: Path) -> None:
    run = Run(tmp_path, DEDUP)
    run.batch(flood(count=40, every=30))
    (digest,) = run.suppressor.finish()
    assert count_of(digest) == 39
    assert digest.output_fields["falconet.suppress.audit_ids"] == [
        audit_id(n) for n in range(1, 11)
    ]
    assert digest.output_fields["falconet.suppress.last_time"] == iso(39 * 30)


def test_digest_false_suppresses_without_a_digest(tmp_path: Path) -> None:
    run = Run(tmp_path, DEDUP + "digest: false\n")
    assert len(run.batch(flood(count=10))) == 1
    assert run.suppressor.finish() == []
    (only,) = run.batch([event(50, HOUR + 1)])
    assert not only.output_fields.get("falconet.suppress.digest")


# ---- rate caps and groups ------------------------------------------------------------------------

RATE_CAP = """\
suppress: At most three alerts of a rule every ten minutes
name: rate
group-by: [rule]
period: 10m
limit: 3
"""


def test_a_rate_cap_grouped_by_rule_sends_the_first_n_of_each_rule(tmp_path: Path) -> None:
    run = Run(tmp_path, RATE_CAP)
    reads = [event(n, n * 10, user=f"u{n}", name=f"s{n}") for n in range(8)]
    deletes = [
        event(
            100 + n, n * 10 + 5, user=f"u{n}", name=f"ns{n}", verb="delete", resource="namespaces"
        )
        for n in range(6)
    ]
    out = run.batch(reads + deletes)
    sent = {(a.rule, a.output_fields["ka.user.name"]) for a in out}
    assert sent == {
        (rule, u)
        for rule in ("Secret read denied", "Namespace deleted")
        for u in ("u0", "u1", "u2")
    }
    assert len(out) == 6
    by_rule = {d.rule: d for d in run.suppressor.finish()}
    assert {rule: count_of(d) for rule, d in by_rule.items()} == {
        "Secret read denied": 5,
        "Namespace deleted": 3,
    }
    read_digest = by_rule["Secret read denied"].output_fields
    assert read_digest["falconet.suppress.audit_ids"] == [audit_id(n) for n in range(3, 8)]
    assert "ka.user.name" not in read_digest  # grouped by rule alone: no other field is the group's


def test_the_cap_opens_again_in_the_next_period(tmp_path: Path) -> None:
    run = Run(tmp_path, RATE_CAP)
    assert len(run.batch(event(n, n, user=f"u{n}") for n in range(5))) == 3
    out = run.batch(event(10 + n, 600 + n, user=f"v{n}") for n in range(5))
    assert len(plain(out)) == 3
    (digest,) = digests(out)
    assert count_of(digest) == 2


def test_groups_are_counted_apart(tmp_path: Path) -> None:
    run = Run(tmp_path, DEDUP)
    events = [
        event(n, n * 10, user=user, name=name)
        for n, (user, name) in enumerate(
            [(u, s) for u in ("alice", "bob") for s in ("db", "api")] * 5
        )
    ]
    out = run.batch(events)
    groups = {(a.output_fields["ka.user.name"], a.output_fields["ka.target.name"]) for a in out}
    assert len(out) == len(groups) == 4
    finished = run.suppressor.finish()
    assert sorted(count_of(d) for d in finished) == [4, 4, 4, 4]
    assert len({d.uuid for d in finished}) == 4


def test_alerts_a_policy_does_not_match_pass_untouched(tmp_path: Path) -> None:
    run = Run(tmp_path, DEDUP.replace("group-by", "match: {rules: [Namespace deleted]}\ngroup-by"))
    out = run.batch(flood(count=5))
    assert len(out) == 5
    assert not any("falconet.suppress.policy" in a.output_fields for a in out)
    assert run.suppressor.finish() == []


def test_a_rate_cap_at_the_largest_limit_holds_a_flood_past_it(tmp_path: Path) -> None:
    run = Run(tmp_path, RATE_CAP.replace("limit: 3", "limit: 10000"))
    out = run.batch(event(n, n % 600, user=f"u{n}") for n in range(18_000))
    assert len(out) == 10_000
    (digest,) = run.suppressor.finish()
    assert count_of(digest) == 8_000


# ---- re-delivery ---------------------------------------------------------------------------------


def test_redelivery_counts_nothing_twice_and_sends_the_admitted_alert_again(tmp_path: Path) -> None:
    run = Run(tmp_path, DEDUP)
    events = flood(count=10)
    (first,) = run.batch(events)
    writes = run.store.requests["write"]
    (again,) = run.batch(events)  # S3 delivers the object again
    assert (again.uuid, again.output_fields) == (first.uuid, first.output_fields)
    assert run.store.requests["write"] == writes  # nothing new to remember
    (again2,) = run.batch(reversed(events[:6]))  # and a part of it, in another order
    assert again2.uuid == first.uuid
    (digest,) = run.suppressor.finish()
    assert count_of(digest) == 9


def test_redelivery_mixed_with_new_alerts_counts_only_the_new(tmp_path: Path) -> None:
    run = Run(tmp_path, DEDUP)
    run.batch(flood(count=10))
    (resent,) = run.batch(flood(count=10) + flood(first=10, count=5, start=20 * 60))
    assert resent.time == iso(0)
    (digest,) = run.batch([event(99, HOUR)])[1:]
    assert count_of(digest) == 14
    assert digest.output_fields["falconet.suppress.last_time"] == iso(20 * 60 + 4 * 60)


def test_a_late_redelivery_after_the_next_period_began_counts_nothing_twice(
    tmp_path: Path,
) -> None:
    run = Run(tmp_path, DEDUP)
    events = flood(count=10)
    run.batch(events)
    (digest,) = digests(run.batch([event(99, HOUR + 1)]))
    assert count_of(digest) == 9
    run.batch(events)  # S3 delivers the first object again, late
    assert run.suppressor.finish() == []  # nothing new was held back in the second period


class Racing(MemoryStore):
    """A memory store where another instance writes the group just before this one's first put
    (two invocations on one group at once: the loser reads again and decides again)."""

    def __init__(self) -> None:
        super().__init__()
        self.rival: Any = None

    def put(self, key: str, data: bytes, **kwargs: Any) -> bool:
        rival, self.rival = self.rival, None
        if rival is not None:
            rival()
        return super().put(key, data, **kwargs)


def test_a_write_conflict_counts_each_alert_once_in_the_invocation_counters(
    tmp_path: Path,
) -> None:
    run = Run(tmp_path, DEDUP)
    store = Racing()
    run.store = store
    run.suppressor = Suppressor.for_engine(run.engine, store)
    rival = Suppressor.for_engine(run.engine, store)
    run.batch([event(0, 0)])  # the period's first alert

    def rival_invocation() -> None:
        (alert,) = run.engine.evaluate(event(50, 100))
        assert rival.batch().filter([(alert, audit_id(50))]) == []

    store.rival = rival_invocation
    assert run.batch(event(n, n * 10) for n in range(1, 6)) == []
    assert store.requests["conflict"] == 1
    (digest,) = run.suppressor.finish()
    assert count_of(digest) == 6  # the stored count: both invocations' alerts, once
    assert run.suppressed == 5  # what this invocation held back


# ---- event time ----------------------------------------------------------------------------------


def test_periods_follow_event_time_whatever_the_order_in_a_batch(tmp_path: Path) -> None:
    events = [event(n, n * 10 * 60) for n in range(8)]  # 0, 10, ... 70 minutes
    forward = Run(tmp_path / "forward", DEDUP)
    backward = Run(tmp_path / "backward", DEDUP)
    shuffled = Run(tmp_path / "shuffled", DEDUP)
    outs = [
        forward.batch(events),
        backward.batch(reversed(events)),
        shuffled.batch([events[n] for n in (5, 2, 7, 0, 3, 6, 1, 4)]),
    ]
    for out in outs:
        assert sorted(a.time for a in plain(out)) == [iso(0), iso(HOUR)]  # 0 and 60 minutes
        (digest,) = digests(out)
        assert count_of(digest) == 5  # 10..50 minutes
        assert digest.output_fields["falconet.suppress.first_time"] == iso(600)
        assert digest.output_fields["falconet.suppress.last_time"] == iso(3000)
    assert len({tuple(sorted(a.uuid for a in out)) for out in outs}) == 1
    for run in (forward, backward, shuffled):
        (last,) = run.suppressor.finish()  # 70 minutes, in the second period
        assert count_of(last) == 1


def test_the_period_is_measured_in_event_time_not_arrival_time(tmp_path: Path) -> None:
    run = Run(tmp_path, DEDUP)
    run.batch([event(0, 0)])
    assert run.batch([event(1, HOUR - 1)]) == []  # a second before the period ends
    assert len(run.batch([event(2, HOUR)])) == 2  # the period ends: the next first, the digest


# ---- digest identity -----------------------------------------------------------------------------


def test_the_digest_uuid_is_the_same_in_every_run_and_however_it_is_sent(tmp_path: Path) -> None:
    """At-least-once delivery downstream: a digest sent twice must be recognisable as one."""
    one = Run(tmp_path / "one", DEDUP)
    two = Run(tmp_path / "two", DEDUP)
    three = Run(tmp_path / "three", DEDUP)
    for run in (one, two, three):
        run.batch(flood(count=10))
    (by_next_alert,) = digests(one.batch([event(99, HOUR + 1)]))
    (by_finish,) = two.suppressor.finish()
    (by_finish_too,) = three.suppressor.finish()
    assert by_next_alert.uuid == by_finish.uuid == by_finish_too.uuid
    assert by_next_alert.output_fields == by_finish.output_fields

    later = Run(tmp_path / "later", DEDUP)
    later.batch(flood(count=10, start=60))  # another period: another digest
    (other,) = later.suppressor.finish()
    assert other.uuid != by_finish.uuid


# ---- correlations --------------------------------------------------------------------------------

BURST = """\
title: Denied secret reads in a burst
name: denied_burst
correlation:
  type: event_count
  rules: [Secret read denied]
  group-by: [ka.user.name]
  timespan: 5m
  condition: {gte: 3}
generate: true
"""

ONE_BURST_AN_HOUR = """\
suppress: One burst alert an hour
name: bursts
match: {rules: [Denied secret reads in a burst]}
group-by: [rule, ka.user.name]
period: 1h
"""


def test_correlation_alerts_pass_through_the_policies(tmp_path: Path) -> None:
    run = Run(tmp_path, ONE_BURST_AN_HOUR, correlations=BURST)
    out = []
    for window in range(4):  # a burst of 3 every 10 minutes: one correlation alert each
        out += run.batch(flood(first=window * 3, count=3, every=20, start=window * 600))
    bursts = [a for a in out if a.rule == "Denied secret reads in a burst"]
    assert len([a for a in out if a.rule == "Secret read denied"]) == 12  # not this policy's
    (burst,) = bursts
    assert burst.output_fields["falconet.suppress.policy"] == "bursts"
    assert burst.output_fields["falconet.correlation.count"] == 3
    (digest,) = run.suppressor.finish()
    assert (digest.rule, count_of(digest)) == ("Denied secret reads in a burst", 3)
    assert digest.output_fields["falconet.suppress.audit_ids"] == []  # correlations name none


# ---- FALCONET_SUPPRESS ---------------------------------------------------------------------------


def test_falconet_suppress_off_builds_no_suppressor(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "policies.yaml").write_text(DEDUP)
    rules = f"{tmp_path}/base.yaml,{tmp_path}/policies.yaml"
    on = build_pipeline(Settings({"FALCONET_RULES": rules}))
    assert on.suppressor is not None and [p.name for p in on.suppressor.policies] == ["repeats"]
    assert isinstance(on.suppressor.store, MemoryStore)  # no FALCONET_STATE_TABLE
    off = build_pipeline(Settings({"FALCONET_RULES": rules, "FALCONET_SUPPRESS": "off"}))
    assert off.suppressor is None
    assert off.correlator is None  # nothing else needed a state store
    none = build_pipeline(Settings({"FALCONET_RULES": f"{tmp_path}/base.yaml"}))
    assert none.suppressor is None  # no policies: nothing to run
