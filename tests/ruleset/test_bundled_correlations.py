"""The bundled correlations (`rules/correlations.yaml`) as users deploy them.

Each correlation has a positive case (audit events that must raise exactly its alert: title,
priority, group values, count) and near misses (one short of the threshold, the same events spread
past the timespan, a platform identity, the wrong order, a key first seen while learning, ...).
Events are the rule fixtures of `tests/data/rules/` (real audit Event shape) re-timed and varied;
they go through the real engine and correlator with an in-memory store, as `falconet scan` runs
them: `Engine.judge`, one `Batch` per invocation, `flush`, then `finish`.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from falconet import Engine
from falconet.alerts import Alert
from falconet.context import EventContext
from falconet.correlate.correlator import Correlator
from falconet.geoip import GeoIP
from falconet.state import MemoryStore
from tests.conftest import ROOT
from tests.mmdb import build_db, city
from tests.ruleset.test_bundled_rules import DATA, RULES_DIR

CLUSTER = "prod-eu-1"  # the fixtures' cluster_name, and what the envelope says
CTX = EventContext(cluster=CLUSTER)
T0 = datetime(2026, 3, 11, 9, 0, 3, tzinfo=UTC)
MIN = timedelta(minutes=1)
DAY = timedelta(days=1)
PLATFORM_SA = "system:serviceaccount:kube-system:generic-garbage-collector"

# The bundled correlations: their title (the alert's rule) and Falco priority; and the base
# rules made for them, which they silence.
CORRELATIONS = {
    "falconet_denied_requests_by_identity": (
        "Many different requests denied to one identity",
        "Warning",
    ),
    "falconet_denied_requests_by_address": (
        "Many different anonymous requests denied from one address",
        "Warning",
    ),
    "falconet_secret_harvesting": ("One identity read many different secrets", "Error"),
    "falconet_resource_discovery": ("One identity enumerated many kinds of resources", "Warning"),
    "falconet_permission_probing": ("Burst of permission checks by one identity", "Warning"),
    "falconet_grant_then_run": (
        "RBAC grant followed by a workload or exec from the same identity",
        "Error",
    ),
    "falconet_mass_deletion": ("Mass deletion by one identity", "Error"),
    "falconet_first_exec": ("First pod exec by an identity", "Notice"),
    "falconet_first_secret_read": ("First secret read by an identity", "Notice"),
    "falconet_first_rbac_write": ("First RBAC change by an identity", "Notice"),
    "falconet_node_new_address": ("Node credentials used from a new public address", "Error"),
    "falconet_control_plane_new_address": (
        "Control-plane identity used from a new public address",
        "Warning",
    ),
    "falconet_new_country": ("Identity used from a new country", "Notice"),
    "falconet_new_user_agent": ("Identity used with a new user agent", "Notice"),
}
SILENCED = {
    "Control Plane Identity Request From Public Address",
    "Denied Anonymous Request",
    "Denied Request By Named Identity",
    "Node Identity Request From Public Address",
    "Object Deleted",
    "Permission Check Requested",
    "RBAC Object Written",
    "Request By Non-Platform Identity",
    "Request By Non-Platform Identity From Public Address",
    "Resource Read For Discovery",
    "Workload Or Exec Started",
}
GEOIP_SWITCH = DATA / "request-by-non-platform-identity-from-public-address" / "extra_rules.yaml"


# -- events --------------------------------------------------------------------------------------


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _uri(ref: dict[str, Any]) -> str:
    group = ref.get("apiGroup")
    path = f"/apis/{group}/{ref.get('apiVersion', 'v1')}" if group else "/api/v1"
    if ref.get("namespace"):
        path += f"/namespaces/{ref['namespace']}"
    path += f"/{ref['resource']}"
    for key in ("name", "subresource"):
        if ref.get(key):
            path += f"/{ref[key]}"
    return path


def event(fixture: str, n: int, at: datetime, **changes: Any) -> dict[str, Any]:
    """The rule fixture `fixture` ("<rule-slug>/<file stem>") as a new request: its own auditID,
    at time `at`, with `changes` (user, ip, agent, verb, code, uri, and objectRef's resource,
    namespace, name; the request URI follows objectRef unless `uri` is given)."""
    slug, stem = fixture.split("/")
    ev = copy.deepcopy(_fixture(slug, stem))
    ev["auditID"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{fixture}#{n}@{at.isoformat()}"))
    ev["requestReceivedTimestamp"] = _stamp(at - timedelta(milliseconds=3))
    ev["stageTimestamp"] = _stamp(at)
    if "user" in changes:
        ev["user"]["username"] = changes.pop("user")
    if "ip" in changes:
        ev["sourceIPs"] = [changes.pop("ip")]
    if "agent" in changes:
        ev["userAgent"] = changes.pop("agent")
    if "verb" in changes:
        ev["verb"] = changes.pop("verb")
    if "code" in changes:
        ev["responseStatus"]["code"] = changes.pop("code")
    uri = changes.pop("uri", None)
    ref_changes = {k: changes.pop(k) for k in ("resource", "namespace", "name") if k in changes}
    assert not changes, f"unknown changes {changes}"
    if ref_changes:
        ref = ev["objectRef"]
        ref.update(ref_changes)
        for key, value in ref_changes.items():
            if value is None:
                del ref[key]
        ev["requestURI"] = _uri(ref)
    if uri is not None:
        ev["requestURI"] = uri
    return ev


@cache
def _fixture(slug: str, stem: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((DATA / slug / f"{stem}.json").read_text())
    return value


def spread(count: int, start: datetime, step: timedelta) -> list[datetime]:
    return [start + i * step for i in range(count)]


# -- running -------------------------------------------------------------------------------------


@cache
def _engine(geoip: str | None = None, geoip_switch: bool = False) -> Engine:
    paths = [str(RULES_DIR)] + ([str(GEOIP_SWITCH)] if geoip_switch else [])
    return Engine.from_paths(paths, hostname="falconet", geoip=GeoIP.open(geoip) if geoip else None)


def correlate(
    *batches: Iterable[dict[str, Any]], engine: Engine | None = None
) -> tuple[list[Alert], list[Alert]]:
    """(correlation alerts, plain alerts) of `batches`, each one invocation, then a scan's end."""
    engine = engine or _engine()
    correlator = Correlator.for_engine(engine, MemoryStore())
    found: list[Alert] = []
    plain: list[Alert] = []
    for events in batches:
        batch = correlator.batch()
        for ev in events:
            alerts, matched = engine.judge(ev, CTX)
            plain += alerts
            if matched:
                batch.add(ev, CTX, matched)
        found += batch.flush()
    found += correlator.finish()
    return found, plain


def alerts_of(*batches: Iterable[dict[str, Any]], engine: Engine | None = None) -> list[Alert]:
    return correlate(*batches, engine=engine)[0]


def only(
    alerts: Sequence[Alert], name: str, groups: dict[str, str | None], count: int
) -> dict[str, Any]:
    """The one alert of `alerts`, checked: it is `name`'s, with these group values and count."""
    assert [a.output_fields["falconet.correlation.name"] for a in alerts] == [name]
    (alert,) = alerts
    correlation = next(c for c in _engine().correlations.correlations if c.name == name)
    assert (alert.rule, alert.priority) == CORRELATIONS[name]
    assert alert.source == "k8s_audit"
    assert "correlation" in alert.tags
    fields = alert.output_fields
    assert {g: fields[g] for g in correlation.group_by} == groups
    assert fields["falconet.correlation.count"] == count
    assert fields["falconet.correlation.type"] == correlation.type
    return fields


# -- loading -------------------------------------------------------------------------------------


def test_every_bundled_correlation_loads_and_silences_only_its_own_base_rules() -> None:
    engine = _engine()
    assert [c.name for c in engine.correlations.correlations] == list(CORRELATIONS)
    assert engine.correlations.silenced == SILENCED
    warnings = [str(d) for d in engine.diagnostics if d.severity == "warning"]
    silenced = sorted(w.split("rule '")[1].split("'")[0] for w in warnings)
    assert silenced == sorted(SILENCED)
    assert all("raises no alerts of its own" in w for w in warnings)
    assert not [d for d in engine.diagnostics if d.severity != "warning"]


def test_silenced_base_rules_are_the_ones_made_for_counting() -> None:
    """The rules made for counting are tagged so and INFO; no existing rule is silenced."""
    items = [
        item
        for path in sorted(RULES_DIR.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if isinstance(doc, list)
        for item in doc
        if "rule" in item
    ]
    base = {i["rule"] for i in items if "correlation_base" in i["tags"]}
    assert base == SILENCED
    for item in items:
        if item["rule"] in base:
            assert item["priority"] == "INFO"
            assert item["skip-if-unknown-filter"] is True  # Falco, without correlations, skips it
            assert "falconet_correlation_input" in item["condition"]


@pytest.mark.parametrize("rule_matching", ["first", "all"])
def test_correlations_change_no_rule_alert(rule_matching: str) -> None:
    """Every rule fixture raises the same alerts with the correlations as the Falco rules do
    alone, but for the silenced base rules' own: those take no part in first-match."""
    rule_files = [p for p in sorted(RULES_DIR.glob("*.yaml")) if p.name != "correlations.yaml"]
    alone = Engine.from_paths(rule_files, rule_matching=rule_matching, hostname="falconet")
    deployed = Engine.from_paths([RULES_DIR], rule_matching=rule_matching, hostname="falconet")
    assert alone.correlations.correlations == ()
    for path in sorted(DATA.glob("*/*.json")):
        ev = json.loads(path.read_text())
        expected = [a.output for a in alone.evaluate(ev) if a.rule not in SILENCED]
        assert [a.output for a in deployed.evaluate(ev)] == expected, path


def test_every_correlation_groups_by_cluster_and_has_tests() -> None:
    text = Path(__file__).read_text()
    for correlation in _engine().correlations.correlations:
        assert "falconet.cluster" in correlation.group_by
        assert correlation.label.startswith("falconet_")
        name = correlation.label.removeprefix("falconet_")
        assert f"def test_{name}_positive" in text, name
        assert f"def test_{name}_near_misses" in text, name


def test_validate_exits_0() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "falconet", "validate", "rules/"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "functions"), "PATH": "/usr/bin:/bin"},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"ok: 105 k8s_audit rules, {len(CORRELATIONS)} correlations, 1 suppression policies, "
        "0 error(s), "
        f"{len(SILENCED)} warning(s)\n"
    )


# -- 1, 2: denied requests ---------------------------------------------------------------------

DENIED = "denied-request-by-named-identity/positive"
ANONYMOUS = "denied-anonymous-request/positive"


def _denied(count: int, start: datetime, step: timedelta, **changes: Any) -> list[dict[str, Any]]:
    return [
        event(DENIED, i, at, resource="secrets", namespace=f"team-{i}", **changes)
        for i, at in enumerate(spread(count, start, step))
    ]


def test_denied_requests_by_identity_positive() -> None:
    fields = only(
        alerts_of(_denied(10, T0, timedelta(seconds=50))),
        "falconet_denied_requests_by_identity",
        {"ka.user.name": "mallory@example.com", "falconet.cluster": CLUSTER},
        10,
    )
    assert fields["falconet.correlation.field"] == "ka.uri"
    assert fields["falconet.correlation.rules"] == ["Denied Request By Named Identity"]


def test_denied_requests_by_identity_near_misses() -> None:
    assert alerts_of(_denied(9, T0, MIN)) == []  # one short
    assert alerts_of(_denied(10, T0, 2 * MIN)) == []  # 18 minutes: at most 5 in any window
    # A controller missing one permission retries the same request all day: one distinct value.
    retries = [event(DENIED, i, at) for i, at in enumerate(spread(200, T0, timedelta(seconds=30)))]
    assert alerts_of(retries) == []
    kubelet = "system:node:ip-10-0-1-23.eu-west-1.compute.internal"
    assert alerts_of(_denied(30, T0, timedelta(seconds=5), user=kubelet)) == []
    assert alerts_of(_denied(30, T0, timedelta(seconds=5), code=200)) == []  # allowed


def _scan(count: int, start: datetime, step: timedelta, **changes: Any) -> list[dict[str, Any]]:
    """A scanner's walk: `count` different requests (5 kinds, in 3 scopes, then a page size)."""
    kinds = ["secrets", "pods", "nodes", "configmaps", "serviceaccounts"]
    scopes: list[str | None] = [None, "kube-system", "default"]
    return [
        event(
            ANONYMOUS,
            i,
            at,
            resource=kinds[i % 5],
            namespace=scopes[i // 5 % 3],
            uri=None if i < 15 else f"/api/v1/{kinds[i % 5]}?limit={i}",
            **changes,
        )
        for i, at in enumerate(spread(count, start, step))
    ]


def test_denied_requests_by_address_positive() -> None:
    # A bad token (401, no user) first, then the anonymous walk: both count for the address;
    # the walk's request for kube-system's pods repeats the first one and counts once.
    unauthenticated = event("denied-anonymous-request/positive-unauthenticated", 99, T0)
    fields = only(
        alerts_of([unauthenticated, *_scan(15, T0 + MIN, timedelta(seconds=20))]),
        "falconet_denied_requests_by_address",
        {"falconet.src.ip": "198.51.100.23", "falconet.cluster": CLUSTER},
        15,
    )
    assert fields["falconet.correlation.rules"] == ["Denied Anonymous Request"]


def test_denied_requests_by_address_near_misses() -> None:
    assert alerts_of(_scan(14, T0, timedelta(seconds=20))) == []  # one short
    assert alerts_of(_scan(15, T0, MIN), _scan(15, T0 + DAY, MIN, ip="198.51.100.24")) == []
    # Load-balancer health checks without credentials, every 10 s for an hour.
    probe = "denied-anonymous-request/negative-health-probe"
    checks = [event(probe, i, at) for i, at in enumerate(spread(360, T0, timedelta(seconds=10)))]
    assert alerts_of(checks) == []
    # A named identity's refusals count per identity (above), not per address here.
    assert [
        a.output_fields["falconet.correlation.name"]
        for a in alerts_of(_denied(15, T0, timedelta(seconds=20), ip="198.51.100.23"))
    ] == ["falconet_denied_requests_by_identity"]


# -- 3: secrets --------------------------------------------------------------------------------

SECRET = "secret-read-by-non-platform-identity/positive"


def _reads(count: int, start: datetime, step: timedelta, **changes: Any) -> list[dict[str, Any]]:
    # The same secret name in different namespaces: ka.uri tells them apart.
    return [
        event(SECRET, i, at, namespace=f"team-{i}", **changes)
        for i, at in enumerate(spread(count, start, step))
    ]


def test_secret_harvesting_positive() -> None:
    found, plain = correlate(_reads(10, T0, timedelta(seconds=30)))
    fields = only(
        found,
        "falconet_secret_harvesting",
        {"ka.user.name": "alice@example.com", "falconet.cluster": CLUSTER},
        10,
    )
    assert fields["falconet.correlation.values"][:2] == [
        "/api/v1/namespaces/team-0/secrets/db-credentials",
        "/api/v1/namespaces/team-1/secrets/db-credentials",
    ]
    # generate: true: the base rule still alerts on every read, as before.
    assert [a.rule for a in plain] == ["Secret Read By Non-Platform Identity"] * 10


def test_secret_harvesting_near_misses() -> None:
    assert alerts_of(_reads(9, T0, MIN)) == []
    assert alerts_of(_reads(10, T0, 2 * MIN)) == []  # 18 minutes
    same = [event(SECRET, i, at) for i, at in enumerate(spread(50, T0, timedelta(seconds=5)))]
    assert alerts_of(same) == []  # one secret, read again and again
    assert alerts_of(_reads(20, T0, timedelta(seconds=5), user=PLATFORM_SA)) == []


# -- 4: discovery ------------------------------------------------------------------------------

READ = "resource-read-for-discovery/positive"
KINDS = [
    "pods", "services", "deployments", "replicasets", "statefulsets", "daemonsets", "jobs",
    "cronjobs", "replicationcontrollers", "configmaps", "secrets", "serviceaccounts", "roles",
    "rolebindings", "clusterroles", "clusterrolebindings", "nodes", "namespaces", "ingresses",
]  # fmt: skip
GET_ALL = KINDS[:9]  # what `kubectl get all` lists


def _kinds(kinds: Sequence[str], start: datetime, **changes: Any) -> list[dict[str, Any]]:
    step = timedelta(seconds=7)
    return [
        event(READ, i, start + i * step, resource=kind, **changes) for i, kind in enumerate(kinds)
    ]


def test_resource_discovery_positive() -> None:
    fields = only(
        alerts_of(_kinds(KINDS[:15], T0)),
        "falconet_resource_discovery",
        {"ka.user.name": "bob@example.com", "falconet.cluster": CLUSTER},
        15,
    )
    assert fields["falconet.correlation.field"] == "ka.target.resource"


def test_resource_discovery_near_misses() -> None:
    assert alerts_of(_kinds(KINDS[:14], T0)) == []
    # `kubectl get all` every minute for an hour: the same 9 kinds.
    assert alerts_of(*[_kinds(GET_ALL, T0 + i * MIN) for i in range(60)]) == []
    assert alerts_of(_kinds(KINDS[:8], T0), _kinds(KINDS[8:16], T0 + 15 * MIN)) == []
    argocd = "system:serviceaccount:argocd:argocd-application-controller"
    assert alerts_of(_kinds(KINDS, T0, user=argocd)) == []  # falconet_automation_controllers
    assert alerts_of(_kinds(KINDS, T0, user=PLATFORM_SA)) == []


# -- 5: permission probing ---------------------------------------------------------------------

REVIEW = "permission-check-requested/positive"


def _reviews(count: int, start: datetime, step: timedelta, **changes: Any) -> list[dict[str, Any]]:
    return [event(REVIEW, i, at, **changes) for i, at in enumerate(spread(count, start, step))]


def test_permission_probing_positive() -> None:
    only(
        alerts_of(_reviews(10, T0, timedelta(seconds=2))),
        "falconet_permission_probing",
        {"ka.user.name": "system:serviceaccount:shop:web", "falconet.cluster": CLUSTER},
        10,
    )


def test_permission_probing_near_misses() -> None:
    assert alerts_of(_reviews(9, T0, timedelta(seconds=2))) == []
    assert alerts_of(_reviews(10, T0, MIN)) == []  # 9 minutes: at most 5 in 5 minutes
    # A delegated authorizer (kube-rbac-proxy) checks every scrape it serves.
    proxy = "permission-check-requested/negative-delegated-authorizer"
    scrapes = [event(proxy, i, at) for i, at in enumerate(spread(100, T0, timedelta(seconds=3)))]
    assert alerts_of(scrapes) == []
    # Re-delivered events count once.
    burst = _reviews(9, T0, timedelta(seconds=2))
    assert alerts_of(burst, burst, burst) == []


# -- 6: grant, then workload or exec -----------------------------------------------------------

GRANT = "rbac-object-written/positive"
DEPLOY = "workload-or-exec-started/positive"
EXEC = "workload-or-exec-started/positive-exec"


def test_grant_then_run_positive() -> None:
    grant = event(GRANT, 1, T0)
    shell = event(EXEC, 2, T0 + 12 * MIN)
    found, plain = correlate([grant], [shell])
    fields = only(
        found,
        "falconet_grant_then_run",
        {"ka.user.name": "alice@example.com", "falconet.cluster": CLUSTER},
        2,
    )
    assert fields["falconet.correlation.rules"] == [
        "RBAC Object Written",
        "Workload Or Exec Started",
    ]
    assert set(fields["falconet.correlation.audit_ids"]) == {grant["auditID"], shell["auditID"]}
    # The binding (to the namespace's admin role) and the exec raise their own alerts
    # (first-match picks the specific one), as before: the silenced base rules add nothing.
    assert [a.rule for a in plain] == [
        "Admin Or System Role Bound",
        "Interactive Shell Exec In Pod",
    ]
    only(
        alerts_of([event(GRANT, 3, T0), event(DEPLOY, 4, T0 + 29 * MIN)]),
        "falconet_grant_then_run",
        {"ka.user.name": "alice@example.com", "falconet.cluster": CLUSTER},
        2,
    )


def test_grant_then_run_near_misses() -> None:
    # Wrong order: the workload first, then the binding.
    assert alerts_of([event(DEPLOY, 1, T0), event(GRANT, 2, T0 + 5 * MIN)]) == []
    # Too far apart.
    assert alerts_of([event(GRANT, 1, T0), event(EXEC, 2, T0 + 40 * MIN)]) == []
    # Two identities.
    assert alerts_of([event(GRANT, 1, T0), event(EXEC, 2, T0 + MIN, user="bob@example.com")]) == []
    # GitOps applying a binding and a deployment.
    flux = "system:serviceaccount:flux-system:kustomize-controller"
    assert alerts_of([event(GRANT, 1, T0, user=flux), event(DEPLOY, 2, T0 + MIN, user=flux)]) == []


# -- 7: mass deletion --------------------------------------------------------------------------

DELETE = "object-deleted/positive"


def _deletes(count: int, start: datetime, step: timedelta, **changes: Any) -> list[dict[str, Any]]:
    kinds = ["configmaps", "secrets", "services", "persistentvolumeclaims"]
    return [
        event(DELETE, i, at, **{"resource": kinds[i % 4], "name": f"obj-{i}", **changes})
        for i, at in enumerate(spread(count, start, step))
    ]


def test_mass_deletion_positive() -> None:
    only(
        alerts_of(_deletes(20, T0, timedelta(seconds=10))),
        "falconet_mass_deletion",
        {"ka.user.name": "mallory@example.com", "falconet.cluster": CLUSTER},
        20,
    )


def test_mass_deletion_near_misses() -> None:
    assert alerts_of(_deletes(19, T0, timedelta(seconds=10))) == []
    assert alerts_of(_deletes(20, T0, timedelta(seconds=20))) == []  # 6 min 20 s
    # A rollout deleting pods.
    assert alerts_of(_deletes(50, T0, timedelta(seconds=2), resource="pods")) == []
    # Velero restoring, Argo CD pruning.
    velero = "system:serviceaccount:velero:velero"
    assert alerts_of(_deletes(50, T0, timedelta(seconds=2), user=velero)) == []


# -- 8: first exec, first secret read, first RBAC write ----------------------------------------
#
# Learning starts with the cluster's first match of the correlation: the first batch below (day
# 0, another identity) starts it, and keys seen in the next 7 days are remembered silently. Alice
# works in the cluster from day 0 (kubectl get), so her kubectl is no "new user agent" later.

ATTACH = "pod-exec-or-attach/positive-attach"
KUBECTL = "kubectl/v1.30.2 (linux/amd64) kubernetes/39683505"


def _first_seen_cases(fixture: str) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
    routine = event(REQUEST, 100, T0, user="alice@example.com", agent=KUBECTL)
    start = [event(fixture, 0, T0, user="bob@example.com"), routine]
    new = [event(fixture, 1, T0 + 9 * DAY)]  # alice's first, after learning
    learning = [event(fixture, 2, T0 + 3 * DAY)]  # alice's first, while learning
    again = [event(fixture, 3, T0 + 20 * DAY)]  # alice again, 11 days later
    return start, new, learning, again


def test_first_exec_positive() -> None:
    start, new, _, _ = _first_seen_cases(ATTACH)
    found, plain = correlate(start, new)
    fields = only(
        found,
        "falconet_first_exec",
        {"ka.user.name": "alice@example.com", "falconet.cluster": CLUSTER},
        1,
    )
    assert fields["falconet.correlation.audit_ids"] == [new[0]["auditID"]]
    assert [a.rule for a in plain] == ["Pod Exec Or Attach"] * 2  # generate: true


def test_first_exec_near_misses() -> None:
    start, new, learning, again = _first_seen_cases(ATTACH)
    assert alerts_of(start, learning) == []  # first, but while learning
    assert alerts_of(start, learning, again) == []  # seen while learning: not new 17 days later
    assert [a.output_fields["ka.user.name"] for a in alerts_of(start, new, again)] == [
        "alice@example.com"  # reported once: 11 days is within the 30-day history
    ]


def test_first_secret_read_positive() -> None:
    start, new, _, _ = _first_seen_cases(SECRET)
    found, plain = correlate(start, new)
    only(
        found,
        "falconet_first_secret_read",
        {"ka.user.name": "alice@example.com", "falconet.cluster": CLUSTER},
        1,
    )
    assert [a.rule for a in plain] == ["Secret Read By Non-Platform Identity"] * 2


def test_first_secret_read_near_misses() -> None:
    start, _, learning, again = _first_seen_cases(SECRET)
    assert alerts_of(start, learning, again) == []
    kubelet = [event(SECRET, 9, T0 + 9 * DAY, user=PLATFORM_SA)]
    assert alerts_of(start, kubelet) == []  # the platform is not counted
    # Back after more than the history (30 days without a read): new again.
    late = [event(SECRET, 4, T0 + 3 * DAY + 31 * DAY)]
    found = alerts_of(start, learning, late)
    assert [a.rule for a in _by(found, "falconet_first_secret_read")] == [
        "First secret read by an identity"
    ]


def test_first_rbac_write_positive() -> None:
    start, new, _, _ = _first_seen_cases(GRANT)
    found, plain = correlate(start, new)
    only(
        found,
        "falconet_first_rbac_write",
        {"ka.user.name": "alice@example.com", "falconet.cluster": CLUSTER},
        1,
    )
    # Each binding (to the admin role) raises its own alert, as before; RBAC Object Written adds
    # nothing.
    assert [a.rule for a in plain] == ["Admin Or System Role Bound"] * 2


def test_first_rbac_write_near_misses() -> None:
    start, _, learning, again = _first_seen_cases(GRANT)
    assert alerts_of(start, learning, again) == []
    flux = "system:serviceaccount:flux-system:kustomize-controller"
    gitops = [event(GRANT, 5, T0 + 9 * DAY, user=flux)]  # (its first request: a new agent)
    assert _by(alerts_of(start, gitops), "falconet_first_rbac_write") == []
    read = [event("rbac-object-written/negative-read", 6, T0 + 9 * DAY)]
    assert alerts_of(start, read) == []


# -- 9: node and control-plane identities from new addresses -----------------------------------

NODE = "node-identity-request-from-public-address/positive"
NODE_B = "system:node:ip-10-0-7-41.eu-west-1.compute.internal"
NAT = "198.51.100.77"
SYSTEM = "control-plane-identity-request-from-public-address/positive"


def test_node_new_address_positive() -> None:
    learned = [event(NODE, 0, T0, ip=NAT)]
    stolen = [event(NODE, 1, T0 + 10 * DAY, ip="203.0.113.66")]
    only(
        alerts_of(learned, stolen),
        "falconet_node_new_address",
        {"falconet.src.ip": "203.0.113.66", "falconet.cluster": CLUSTER},
        1,
    )


def test_node_new_address_near_misses() -> None:
    learned = [event(NODE, 0, T0, ip=NAT)]
    # A new node (autoscaling) through the same NAT address: not new.
    assert alerts_of(learned, [event(NODE, 1, T0 + 10 * DAY, ip=NAT, user=NODE_B)]) == []
    # A new address while learning.
    assert alerts_of(learned, [event(NODE, 2, T0 + 2 * DAY, ip="203.0.113.66")]) == []
    # Private addresses change with every node: not counted.
    private = "node-identity-request-from-public-address/negative-private"
    assert alerts_of(learned, [event(private, 3, T0 + 10 * DAY, ip="10.0.9.9")]) == []


def test_control_plane_new_address_positive() -> None:
    learned = [event(SYSTEM, 0, T0, ip=NAT)]
    elsewhere = [event(SYSTEM, 1, T0 + 8 * DAY, ip="203.0.113.66")]
    only(
        alerts_of(learned, elsewhere),
        "falconet_control_plane_new_address",
        {
            "ka.user.name": "system:serviceaccount:kube-system:coredns",
            "falconet.src.ip": "203.0.113.66",
            "falconet.cluster": CLUSTER,
        },
        1,
    )


def test_control_plane_new_address_near_misses() -> None:
    learned = [event(SYSTEM, 0, T0, ip=NAT)]
    assert alerts_of(learned, [event(SYSTEM, 1, T0 + 8 * DAY, ip=NAT)]) == []
    assert alerts_of(learned, [event(SYSTEM, 2, T0 + 6 * DAY, ip="203.0.113.66")]) == []
    assert alerts_of(learned, [event(SYSTEM, 3, T0 + 8 * DAY, ip="10.0.2.99")]) == []
    # Not a kube-system identity.
    other = [event(SYSTEM, 4, T0 + 8 * DAY, user="system:serviceaccount:shop:web")]
    assert _by(alerts_of(learned, other), "falconet_control_plane_new_address") == []


# -- 10: new country, new user agent -----------------------------------------------------------

PUBLIC = "request-by-non-platform-identity-from-public-address/positive"
REQUEST = "request-by-non-platform-identity/positive"
FR, SE = "81.2.69.160", "89.160.20.112"


@pytest.fixture(scope="module")
def geoip_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_db(
        tmp_path_factory.mktemp("geo") / "city.mmdb",
        {"81.2.69.0/24": city("FR", "France"), "89.160.20.0/24": city("SE", "Sweden")},
    )


def _located(geoip_db: str) -> Engine:
    return _engine(geoip_db, geoip_switch=True)


def _by(alerts: list[Alert], name: str) -> list[Alert]:
    return [a for a in alerts if a.output_fields["falconet.correlation.name"] == name]


def test_new_country_positive(geoip_db: str) -> None:
    learned = [event(PUBLIC, 0, T0, ip=FR), event(PUBLIC, 1, T0 + 2 * DAY, ip="81.2.69.7")]
    abroad = [event(PUBLIC, 2, T0 + 12 * DAY, ip=SE)]
    found = alerts_of(learned, abroad, engine=_located(geoip_db))
    fields = only(
        _by(found, "falconet_new_country"),
        "falconet_new_country",
        {
            "ka.user.name": "alice@example.com",
            "falconet.src.country": "SE",
            "falconet.cluster": CLUSTER,
        },
        1,
    )
    assert fields["falconet.correlation.audit_ids"] == [abroad[0]["auditID"]]


def test_new_country_near_misses(geoip_db: str) -> None:
    learned = [event(PUBLIC, 0, T0, ip=FR)]
    engine = _located(geoip_db)
    home = [event(PUBLIC, 1, T0 + 12 * DAY, ip="81.2.69.99")]  # a new address, same country
    assert _by(alerts_of(learned, home, engine=engine), "falconet_new_country") == []
    trip = [event(PUBLIC, 2, T0 + 3 * DAY, ip=SE)]  # while learning
    assert _by(alerts_of(learned, trip, engine=engine), "falconet_new_country") == []
    vpn = [event(PUBLIC, 3, T0 + 12 * DAY, ip="10.8.0.14")]  # private: no country to compare
    assert _by(alerts_of(learned, vpn, engine=engine), "falconet_new_country") == []


def test_new_country_is_silent_without_its_switch(geoip_db: str) -> None:
    """Out of the box (switch off) nothing is counted, GeoIP or not: no key "no country"."""
    newcomer = [event(PUBLIC, 1, T0 + 12 * DAY, ip=SE, user="carol@example.com")]
    learned = [event(PUBLIC, 0, T0, ip=FR)]
    for engine in (_engine(), _engine(geoip_db)):
        assert _by(alerts_of(learned, newcomer, engine=engine), "falconet_new_country") == []


def test_new_country_without_geoip_keys_on_an_absent_country() -> None:
    """Why the switch exists: without a database the country is absent (None), and absent is a
    key like any other, so every identity new after learning would be a "new country"."""
    engine = _engine(None, geoip_switch=True)
    learned = [event(PUBLIC, 0, T0, ip=FR)]
    newcomer = [event(PUBLIC, 1, T0 + 12 * DAY, ip=SE, user="carol@example.com")]
    found = _by(alerts_of(learned, newcomer, engine=engine), "falconet_new_country")
    only(
        found,
        "falconet_new_country",
        {
            "ka.user.name": "carol@example.com",
            "falconet.src.country": None,
            "falconet.cluster": CLUSTER,
        },
        1,
    )
    assert "falconet.src.country=<NA>" in found[0].message


def test_new_user_agent_positive() -> None:
    learned = [event(REQUEST, 0, T0), event(REQUEST, 1, T0 + 5 * DAY)]
    kubectl = "kubectl/v1.30.2 (darwin/arm64) kubernetes/39683505"
    stolen = [event(REQUEST, 2, T0 + 9 * DAY, agent=kubectl)]
    only(
        alerts_of(learned, stolen),
        "falconet_new_user_agent",
        {
            "ka.user.name": "system:serviceaccount:shop:web",
            "ka.useragent": kubectl,
            "falconet.cluster": CLUSTER,
        },
        1,
    )


def test_new_user_agent_near_misses() -> None:
    learned = [event(REQUEST, 0, T0)]
    assert alerts_of(learned, [event(REQUEST, 1, T0 + 9 * DAY)]) == []  # the same agent
    assert alerts_of(learned, [event(REQUEST, 2, T0 + 2 * DAY, agent="curl/8.5.0")]) == []
    kubelet = "request-by-non-platform-identity/negative-kubelet"
    upgraded = "kubelet/v1.31.0 (linux/amd64) kubernetes/9edcffc"
    assert alerts_of(learned, [event(kubelet, 3, T0 + 9 * DAY, agent=upgraded)]) == []


# -- learning per cluster ----------------------------------------------------------------------


def test_learning_belongs_to_the_cluster_of_the_annotation() -> None:
    engine = _engine()
    correlator = Correlator.for_engine(engine, MemoryStore())
    no_envelope = EventContext()  # a plain JSON-lines file: the cluster is the annotation's
    old = event(ATTACH, 0, T0, user="bob@example.com")
    old["annotations"]["cluster_name"] = "old-cluster"
    new = event(ATTACH, 1, T0 + 30 * DAY)  # prod-eu-1's very first exec: learning, no alert
    found = []
    for ev in (old, new):
        batch = correlator.batch()
        batch.add(ev, no_envelope, engine.judge(ev, no_envelope)[1])
        found += batch.flush()
    assert _by(found, "falconet_first_exec") == []
