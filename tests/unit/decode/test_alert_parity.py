"""Alert level: the same audit events in every envelope raise the same alerts as the plain file.

Rules: Falco's own k8saudit v0.18.0 ruleset from ../shared/conformance; events: this repo's canned
events plus every Falco k8s_audit trace file. Envelope-specific context (account, region, origin)
is left out of the comparison; the cluster is part of it.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import pytest

from falconet import Engine
from falconet.context import EventContext
from tests.conftest import SHARED
from tests.unit.decode.test_envelopes import ENVELOPES
from tests.unit.decode.wrap import jsonl, load_events, run

RULES = SHARED / "conformance" / "falco-plugins-k8saudit" / "v0.18.0" / "k8s_audit_rules.yaml"
TRACES = SHARED / "conformance" / "falco-legacy-tests" / "test" / "trace_files" / "k8s_audit"
ENVELOPE_ONLY = ("falconet.account", "falconet.region", "falconet.origin")

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(not RULES.is_file(), reason=f"Falco rules absent: {RULES}"),
]


@functools.cache
def _engine() -> Engine:
    return Engine.from_paths([RULES], rule_matching="all")


@functools.cache
def _corpus() -> tuple[dict[str, Any], ...]:
    events = load_events()
    for path in sorted(TRACES.glob("*.json")):
        found, _, _ = run(path.read_bytes())
        events += found
    return tuple(events)


def _alerts(data: bytes, context: EventContext) -> list[tuple[Any, ...]]:
    events, contexts, stats = run(data, context)
    assert stats.rejected_total == 0, stats.problems
    out = []
    for event, ctx in zip(events, contexts, strict=True):
        for alert in _engine().evaluate(event, ctx):
            fields = {k: v for k, v in alert.output_fields.items() if k not in ENVELOPE_ONLY}
            out.append(
                (alert.rule, alert.priority, alert.output, alert.time, sorted(fields.items()))
            )
    return out


@functools.cache
def _expected() -> list[tuple[Any, ...]]:
    return _alerts(jsonl(list(copy.deepcopy(_corpus()))), EventContext(cluster="demo"))


def test_the_corpus_raises_alerts_with_the_cluster() -> None:
    alerts = _expected()
    assert len({a[0] for a in alerts}) >= 10  # a comparison over many different rules
    for alert in alerts:
        fields = dict(alert[4])
        assert fields["ka.cluster.name"] == fields["falconet.cluster"] == "demo"


@pytest.mark.parametrize("envelope", sorted(ENVELOPES), ids=str)
def test_every_envelope_raises_the_alerts_of_the_plain_file(envelope: str) -> None:
    data = ENVELOPES[envelope](list(copy.deepcopy(_corpus())))
    names_cluster = envelope.startswith(("firehose", "awslogs", "aks")) and (
        envelope != "firehose-members-of-jsonl"
    )
    context = EventContext() if names_cluster else EventContext(cluster="demo")
    assert _alerts(data, context) == _expected()


@pytest.mark.parametrize(("rpc_code", "alerted"), [(None, True), (0, True), (7, False)])
def test_gke_denied_secret_read_raises_no_success_alert(
    rpc_code: int | None, alerted: bool
) -> None:
    import orjson

    from tests.unit.decode.test_gke import log_entry

    status = None if rpc_code is None else {"code": rpc_code}
    entry = log_entry(
        "io.k8s.core.v1.secrets.get", "core/v1/namespaces/prod/secrets/db", status=status
    )
    events, contexts, _ = run(orjson.dumps(entry))
    rules = [a.rule for a in _engine().evaluate(events[0], contexts[0])]
    assert ("K8s Secret Get Successfully" in rules) is alerted
    assert all(
        a.output_fields["ka.cluster.name"] == "gke-prod"
        for a in _engine().evaluate(events[0], contexts[0])
    )
