"""Suppression through real boundaries: the S3 handler in separate processes (each its own cold
start, as separate Lambda instances are) sharing one DynamoDB state table on a moto server, the
alerts read back from an SQS queue.

What a user relies on, each shown by one test:
- a flood of one alert pattern spread over several objects and invocations within the hour gives
  one alert; the first alert after the hour comes with a digest counting the rest exactly;
- the digest's uuid is deterministic: re-delivering the object that raised it sends no second
  digest and counts nothing; a backtest (`falconet scan`) names the same digest with the same uuid;
- invocations at once on one group send the first alert once and lose no count;
- the bundled policy (FALCONET_RULES unset) holds back repeats of a bundled rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ROOT
from tests.functional.conftest import Aws, create_state_table
from tests.functional.test_correlations_aws import (
    CLUSTER,
    Deployment,
    audit_event,
    firehose_key,
    scan_alerts,
)

from falconet.suppress.suppressor import Period

BASE_RULES = """\
- required_engine_version: 15

- rule: Secret Read Denied
  desc: a request to read a secret was refused
  condition: >
    ka.verb in (get, list, watch) and ka.target.resource=secrets
    and ka.response.code in (401, 403)
  output: >
    Secret read denied (user=%ka.user.name ns=%ka.target.namespace name=%ka.target.name
    code=%ka.response.code)
  priority: WARNING
  source: k8s_audit
  tags: [k8s, test]
"""

POLICY = """\
suppress: Repeats of a denied secret read
name: denied_secret_repeats
match:
  rules: [Secret Read Denied]
group-by: [rule, ka.user.name, ka.target.namespace, ka.target.name, falconet.cluster]
period: 1h
limit: 1
"""

RULE = "Secret Read Denied"
POLICY_NAME = "denied_secret_repeats"
T0 = datetime(2026, 3, 11, 15, 0, 5, tzinfo=UTC)
MALLORY = "mallory@example.com"
FLOOD = 1_000
OBJECTS = 4


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


@pytest.fixture
def deployment(
    aws: Aws, tmp_path: Path, sqs_queue: str, audit_bucket: str
) -> Callable[[], Deployment]:
    """`deployment()`: a deployment of a rules dir of its own (one Falco rule, one policy)."""

    def make() -> Deployment:
        rules = tmp_path / "rules"
        rules.mkdir()
        (rules / "k8s_secrets.yaml").write_text(BASE_RULES)
        (rules / "policies.yaml").write_text(POLICY)
        return Deployment(aws, rules, create_state_table(aws), sqs_queue, audit_bucket)

    return make


def flood() -> list[dict[str, Any]]:
    """1,000 refused reads of one secret by one identity, 3 seconds apart (50 minutes)."""
    return [
        audit_event(T0 + timedelta(seconds=3 * n), MALLORY, audit_id=f"flood-{n:04d}")
        for n in range(FLOOD)
    ]


def put_flood(d: Deployment) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The flood in OBJECTS objects, each 12.5 minutes of it, unsorted within; their notes."""
    events = flood()
    size = FLOOD // OBJECTS
    notes = []
    for k in range(OBJECTS):
        part = events[k * size : (k + 1) * size][::-1]
        start = T0 + timedelta(seconds=3 * k * size)
        notes.append(d.put(firehose_key(start), part))
    return events, notes


def digests(alerts: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in alerts if a["output_fields"].get("falconet.suppress.digest")]


def plain(alerts: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in alerts if not a["output_fields"].get("falconet.suppress.digest")]


def periods(d: Deployment) -> dict[str, tuple[int, Period]]:
    """The suppression state: key -> (version, period)."""
    return {
        pk: (version, Period.loads(data))
        for pk, (version, data) in d.state().items()
        if pk.startswith("p/")
    }


def test_a_flood_over_invocations_gives_one_alert_then_a_digest_of_the_rest(
    deployment: Callable[[], Deployment],
) -> None:
    d = deployment()
    events, notes = put_flood(d)
    answers = [d.invoke(note).ok().answer for note in notes]  # one cold start each, in order
    assert [a["alerts"] for a in answers] == [250] * OBJECTS  # raised...
    assert [a.get("suppressed", 0) for a in answers] == [249, 250, 250, 250]  # ...held back

    (first,) = d.alerts()  # 1,000 alerts in the hour: one sent
    assert (first["rule"], first["time"]) == (RULE, iso(T0))
    fields = first["output_fields"]
    assert fields["falconet.suppress.policy"] == POLICY_NAME
    assert fields["falconet.suppress.until"] == iso(T0 + timedelta(hours=1))
    assert (fields["ka.user.name"], fields["falconet.cluster"]) == (MALLORY, CLUSTER)

    later_at = T0 + timedelta(hours=1, minutes=5)
    later = d.put(firehose_key(later_at), [audit_event(later_at, MALLORY, audit_id="later-0")])
    after = d.invoke(later).ok()
    assert after.answer["digests"] == 1
    alerts = d.alerts()
    (next_first,) = plain(alerts)
    (digest,) = digests(alerts)
    assert len(alerts) == 2
    assert next_first["time"] == iso(later_at)
    assert next_first["output_fields"]["falconet.suppress.until"] == iso(
        later_at + timedelta(hours=1)
    )
    held = digest["output_fields"]
    assert digest["rule"] == RULE and digest["priority"] == "Warning"
    assert held["falconet.suppress.count"] == FLOOD - 1
    assert held["falconet.suppress.policy"] == POLICY_NAME
    assert held["falconet.suppress.first_time"] == iso(T0 + timedelta(seconds=3))
    assert held["falconet.suppress.last_time"] == iso(T0 + timedelta(seconds=3 * (FLOOD - 1)))
    assert held["falconet.suppress.period_start"] == iso(T0)
    assert held["falconet.suppress.period_end"] == iso(T0 + timedelta(hours=1))
    assert held["falconet.suppress.audit_ids"] == [e["auditID"] for e in events[1:11]]
    assert (held["ka.user.name"], held["ka.target.name"]) == (MALLORY, "db-credentials")

    # S3 delivers the last object again, to a new instance: the new period's first alert is sent
    # again (same uuid), no second digest, nothing counted, nothing written.
    before = d.state()
    again = d.invoke(later).ok()
    assert again.answer.get("digests", 0) == 0 and again.answer.get("suppressed", 0) == 0
    (resent,) = d.alerts()
    assert resent["uuid"] == next_first["uuid"]
    assert d.state() == before
    ((_, period),) = periods(d).values()
    assert (period.sent, period.suppressed) == (1, 0)

    # A backtest over the same objects names the same digest with the same uuid.
    scanned = scan_alerts("--rules", str(d.rules), f"s3://{d.bucket}/cluster={CLUSTER}/")
    (scanned_digest,) = digests(scanned)
    assert scanned_digest["uuid"] == digest["uuid"]
    assert scanned_digest["output_fields"] == held
    assert sorted(a["uuid"] for a in plain(scanned)) == sorted([first["uuid"], next_first["uuid"]])


def test_invocations_at_once_send_the_first_alert_once_and_lose_no_count(
    deployment: Callable[[], Deployment], tmp_path: Path
) -> None:
    d = deployment()
    _, notes = put_flood(d)
    for run in d.invoke_at_once(notes, tmp_path):
        run.ok()
    (first,) = d.alerts()
    assert first["output_fields"]["falconet.suppress.policy"] == POLICY_NAME
    ((_, period),) = periods(d).values()
    assert (period.sent, period.suppressed) == (1, FLOOD - 1)  # no update lost

    # Whichever invocation opened the period, it ends within 2 hours of T0.
    later_at = T0 + timedelta(hours=2)
    d.invoke(d.put(firehose_key(later_at), [audit_event(later_at, MALLORY)])).ok()
    (digest,) = digests(d.alerts())
    assert digest["output_fields"]["falconet.suppress.count"] == FLOOD - 1


@dataclass
class BundledDeployment(Deployment):
    """A deployment of the bundled rules: FALCONET_RULES unset, as the template deploys it."""

    def env(self, **overrides: str) -> dict[str, str]:
        env = super().env(**overrides)
        del env["FALCONET_RULES"]
        return env


def test_the_bundled_policy_holds_back_repeats_of_a_bundled_rule(
    aws: Aws, sqs_queue: str, audit_bucket: str
) -> None:
    d = BundledDeployment(aws, ROOT / "rules", create_state_table(aws), sqs_queue, audit_bucket)
    events = [
        audit_event(T0 + timedelta(seconds=20 * n), MALLORY, audit_id=f"bundled-{n:02d}")
        for n in range(30)
    ]
    d.invoke(d.put(firehose_key(T0), events)).ok()
    (first,) = d.alerts()  # 30 raised, one sent
    assert first["rule"] == "Secret Access Denied"
    assert first["output_fields"]["falconet.suppress.policy"] == "falconet_repeats"

    later_at = T0 + timedelta(hours=1, minutes=1)
    d.invoke(d.put(firehose_key(later_at), [audit_event(later_at, MALLORY)])).ok()
    alerts = d.alerts()
    assert {a["rule"] for a in alerts} == {"Secret Access Denied"}
    (digest,) = digests(alerts)
    assert len(plain(alerts)) == 1
    held = digest["output_fields"]
    assert held["falconet.suppress.policy"] == "falconet_repeats"
    assert held["falconet.suppress.count"] == 29
    assert held["falconet.suppress.audit_ids"] == [e["auditID"] for e in events[1:11]]
    assert (held["ka.user.name"], held["ka.target.namespace"], held["ka.target.name"]) == (
        MALLORY,
        "payments",
        "db-credentials",
    )


def test_a_digest_whose_sqs_delivery_failed_is_sent_by_the_retry(
    deployment: Callable[[], Deployment],
) -> None:
    d = deployment()
    events = [audit_event(T0 + timedelta(minutes=n), MALLORY) for n in range(10)]
    d.invoke(d.put(firehose_key(T0), events)).ok()
    assert len(d.alerts()) == 1
    later_at = T0 + timedelta(hours=1, minutes=5)
    later = d.put(firehose_key(later_at), [audit_event(later_at, MALLORY)])
    sqs = d.aws.client("sqs")
    name = d.queue.rsplit("/", 1)[1]
    sqs.delete_queue(QueueUrl=d.queue)

    failed = d.invoke(later)
    assert failed.returncode == 1 and failed.answer["raised"] == "SinkError", failed.answer
    assert sqs.create_queue(QueueName=name)["QueueUrl"] == d.queue  # the sink is fixed
    d.invoke(later).ok()  # Lambda retries the asynchronous invocation
    alerts = d.alerts()
    assert len(plain(alerts)) == 1
    (digest,) = digests(alerts)
    assert digest["output_fields"]["falconet.suppress.count"] == 9
