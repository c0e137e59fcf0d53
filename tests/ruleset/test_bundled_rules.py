"""The bundled ruleset (`rules/`) as users deploy it.

Every rule has a directory `tests/data/rules/<rule-slug>/` holding small audit events:
`positive*.json` must make the rule fire (under rule_matching=all, so an earlier rule cannot hide
it) with the message recorded in `expect.yaml`; `negative*.json` are near misses that must not make
it fire. `extra_rules.yaml`, when present, is loaded after the bundled rules: it switches on an
opt-in rule or extends one of our lists, exactly as a user would. A rule that a bundled
correlation silences (`generate: false`, rules/correlations.yaml) raises no alert of its own: its
positives must match it (`Engine.judge`), and its message is that of the Falco rules alone.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "rules"
DATA = REPO / "tests" / "data" / "rules"
TRACES_EXPECT = REPO / "tests" / "data" / "bundled_rules_traces.yaml"
SHARED = REPO.parent / "shared"
TRACES = SHARED / "conformance" / "falco-legacy-tests" / "test" / "trace_files" / "k8s_audit"
SAMPLES = SHARED / "samples"


def _rule_files() -> list[Path]:
    """The bundled files of Falco rules (a file of correlations holds mapping documents)."""
    return [
        path
        for path in sorted(RULES_DIR.glob("*.yaml"))
        if all(isinstance(doc, list) for doc in yaml.safe_load_all(path.read_text()) if doc)
    ]


def _bundled_items() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for path in _rule_files():
        items.extend(yaml.safe_load(path.read_text()) or [])
    return items


BUNDLED_RULES = [item for item in _bundled_items() if "rule" in item]


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


@cache
def _engine(extra: str | None, rule_matching: str, correlations: bool = True) -> Any:
    from falconet import Engine

    rules = [str(RULES_DIR)] if correlations else [str(p) for p in _rule_files()]
    return Engine.from_paths(rules + ([extra] if extra else []), rule_matching=rule_matching)


def _cases(kind: str) -> list[Any]:
    cases = []
    for rule_dir in sorted(p for p in DATA.iterdir() if p.is_dir()):
        expect = yaml.safe_load((rule_dir / "expect.yaml").read_text())
        extra = rule_dir / "extra_rules.yaml"
        for event_file in sorted(rule_dir.glob(f"{kind}*.json")):
            message = expect["positives"].get(event_file.name) if kind == "positive" else None
            cases.append(
                pytest.param(
                    expect["rule"],
                    event_file,
                    message,
                    str(extra) if extra.exists() else None,
                    id=f"{rule_dir.name}/{event_file.stem}",
                )
            )
    return cases


@pytest.mark.parametrize(("rule", "event_file", "message", "extra"), _cases("positive"))
def test_rule_fires_on_positive_event(
    rule: str, event_file: Path, message: str, extra: str | None
) -> None:
    event = json.loads(event_file.read_text())
    engine = _engine(extra, "all")
    emitted, matched = engine.judge(event)
    if rule in engine.correlations.silenced:
        assert rule in matched, f"{rule!r} did not match {event_file.name}"
        emitted = _engine(extra, "all", correlations=False).evaluate(event)
    alerts = [a for a in emitted if a.rule == rule]
    assert alerts, f"{rule!r} did not fire on {event_file.name}"
    assert alerts[0].message == message


@pytest.mark.parametrize(("rule", "event_file", "message", "extra"), _cases("negative"))
def test_rule_ignores_near_miss(
    rule: str, event_file: Path, message: None, extra: str | None
) -> None:
    event = json.loads(event_file.read_text())
    emitted, matched = _engine(extra, "all").judge(event)
    assert rule not in [a.rule for a in emitted] + matched


def test_every_rule_has_a_positive_and_a_negative_fixture() -> None:
    for rule in BUNDLED_RULES:
        rule_dir = DATA / _slug(rule["rule"])
        assert (rule_dir / "expect.yaml").is_file(), f"no fixtures for {rule['rule']!r}"
        expect = yaml.safe_load((rule_dir / "expect.yaml").read_text())
        assert expect["rule"] == rule["rule"]
        positives = sorted(p.name for p in rule_dir.glob("positive*.json"))
        assert positives, f"{rule['rule']!r} has no positive event"
        assert sorted(expect["positives"]) == positives
        assert list(rule_dir.glob("negative*.json")), f"{rule['rule']!r} has no near miss"
    assert {p.name for p in DATA.iterdir()} == {_slug(r["rule"]) for r in BUNDLED_RULES}


@pytest.mark.parametrize("rule", BUNDLED_RULES, ids=lambda r: _slug(r["rule"]))
def test_rule_metadata_answers_who_what_where(rule: dict[str, Any]) -> None:
    """What operators rely on in every alert: source, stage guard, tags and the output fields."""
    assert rule["source"] == "k8s_audit"
    assert rule["desc"].strip()
    condition = " ".join(rule["condition"].split())
    assert any(guard in condition for guard in ("falconet_complete", "falconet_stream_opened"))
    output = rule["output"]
    for field in (
        "%ka.user.name",
        "%ka.verb",
        "%ka.target.resource",
        "%jevt.value[/sourceIPs/0]",
        "%ka.useragent",
        "%ka.cluster.name",
    ):
        assert field in output, f"output lacks {field}"
    assert "falconet." not in output.replace("falconet_", "")  # stays loadable by Falco
    tags = rule["tags"]
    assert "k8s" in tags
    if "activity" not in tags and "debug" not in tags:
        assert any(t.startswith("mitre_") for t in tags), "no MITRE tactic tag"
        assert any(re.fullmatch(r"T\d{4}(\.\d{3})?", t) for t in tags), "no ATT&CK technique"


@pytest.mark.parametrize("rule_matching", ["first", "all"])
def test_whole_ruleset_loads_and_orders_specific_before_generic(rule_matching: str) -> None:
    """An interactive `kubectl exec -it ... bash`: the specific rule wins under first-match."""
    event = json.loads((DATA / "interactive-shell-exec-in-pod" / "positive.json").read_text())
    fired = [a.rule for a in _engine(None, rule_matching).evaluate(event)]
    if rule_matching == "first":
        assert fired == ["Interactive Shell Exec In Pod"]
    else:
        assert fired == ["Interactive Shell Exec In Pod", "Pod Exec Or Attach"]


def test_namespace_deleted_keeps_readme_output() -> None:
    event = json.loads((DATA / "k8s-namespace-deleted" / "positive.json").read_text())
    (alert,) = _engine(None, "first").evaluate(event)
    assert alert.rule == "K8s Namespace Deleted"
    assert alert.message.startswith("K8s Namespace Deleted (user=alice@example.com ")
    assert alert.priority == "Warning"


def _trace_events(path: Path) -> list[dict[str, Any]]:
    events = []
    for line in path.read_text().splitlines():
        if line.strip():
            value = json.loads(line)
            if isinstance(value, dict):
                events.append(value)
    return events


@pytest.mark.shared
@pytest.mark.parametrize(
    "trace",
    sorted(yaml.safe_load(TRACES_EXPECT.read_text())),
    ids=lambda t: t.removesuffix(".json"),
)
def test_upstream_trace_alerts(trace: str) -> None:
    if not TRACES.is_dir():
        pytest.skip(f"{TRACES} is absent (the shared conformance data is not checked out)")
    expected = yaml.safe_load(TRACES_EXPECT.read_text())[trace]
    for mode in ("first", "all"):
        fired = [
            a.rule for e in _trace_events(TRACES / trace) for a in _engine(None, mode).evaluate(e)
        ]
        assert Counter(fired) == Counter(expected[mode]), mode


def test_trace_expectations_cover_every_upstream_trace() -> None:
    if not TRACES.is_dir():
        pytest.skip(f"{TRACES} is absent (the shared conformance data is not checked out)")
    assert sorted(p.name for p in TRACES.glob("*.json")) == sorted(
        yaml.safe_load(TRACES_EXPECT.read_text())
    )


ROUTINE = REPO / "tests" / "data" / "routine"


@pytest.mark.parametrize("event_file", sorted(ROUTINE.glob("*.json")), ids=lambda p: p.stem)
def test_platform_traffic_raises_no_alert(event_file: Path) -> None:
    """Kubelets, controllers, health checks and EKS/GKE/AKS system users doing their daily work."""
    event = json.loads(event_file.read_text())
    assert [a.rule for a in _engine(None, "all").evaluate(event)] == []


ROUTINE_SAMPLES = [
    "k8s-v1-event/khi-test-log.event.json",  # kube-scheduler renews its lease
    "aks/dynatrace-kube-audit-record.json",  # metrics-server SubjectAccessReview, public source IP
    "aks/derived-PT1H.json",  # the same in an AKS diagnostic blob, next to a klog line
    "gke/derived-gcs-sink_activity_01-00-00_01-59-59_S0.json",  # replicaset-controller, kubelet
    "gke/derived-pubsub-push-envelope.json",
]


@pytest.mark.shared
@pytest.mark.parametrize("sample", ROUTINE_SAMPLES)
def test_routine_control_plane_samples_are_quiet(sample: str) -> None:
    """Real-format control-plane traffic from ../shared/samples, through the real decoders."""
    path = SAMPLES / sample
    if not path.is_file():
        pytest.skip(f"{path} is absent (the shared samples are not checked out)")
    from falconet.decode import DecodeStats, decode

    engine = _engine(None, "all")
    events = list(decode(path.read_bytes(), stats=DecodeStats()))
    assert events, "the sample decoded to no audit event"
    assert [a.rule for event, ctx in events for a in engine.evaluate(event, ctx)] == []


@pytest.mark.shared
def test_eks_sample_secret_listing_is_flagged() -> None:
    """The EKS sample is a human listing kube-system secrets: that one should alert."""
    sample = SAMPLES / "eks" / "synthetic-eks-audit-event.json"
    if not sample.is_file():
        pytest.skip(f"{sample} is absent (the shared samples are not checked out)")
    fired = [a.rule for a in _engine(None, "first").evaluate(json.loads(sample.read_text()))]
    assert fired == ["Secrets Enumerated"]


def test_docs_rules_table_is_current() -> None:
    from tools import rules_table

    doc = rules_table.DOC.read_text()
    assert rules_table.render_doc(doc, rules_table.load_rules()) == doc, (
        "docs/rules.md is stale: run python tools/rules_table.py --write"
    )


def test_every_rule_is_mapped_to_its_equivalents() -> None:
    """The rules table says, for every rule, which GuardDuty / Sigma / Falco rule it matches
    ("" when none): a new rule fails here until someone has looked."""
    from tools import rules_table

    assert set(rules_table.EQUIVALENTS) == {r["rule"] for r in BUNDLED_RULES}


def _doc_examples() -> str:
    doc = (REPO / "docs" / "rules.md").read_text()
    # A block inside a list item is indented with it: dedent each (fence included).
    blocks = re.findall(r"^( *)```yaml\n(.*?)^ *```", doc, flags=re.S | re.M)
    return "\n".join(
        textwrap.dedent(indent + "x\n" + body)[2:]
        for indent, body in blocks
        if not body.startswith("# falco.yaml")  # a Falco configuration, not rules
    )


def test_docs_extension_examples_load_and_take_effect(tmp_path: Path) -> None:
    """The extension examples in docs/rules.md are valid after the bundled rules and work."""
    extra = tmp_path / "my_rules.yaml"
    extra.write_text(_doc_examples())
    engine = _engine(str(extra), "all")
    enumeration = json.loads(
        (DATA / "secrets-enumerated" / "positive-cluster-wide.json").read_text()
    )
    assert "Secrets Enumerated" in [a.rule for a in engine.evaluate(enumeration)]
    enumeration["user"] = {"username": "system:serviceaccount:velero:velero", "groups": []}
    assert "Secrets Enumerated" not in [a.rule for a in engine.evaluate(enumeration)]
    exec_event = json.loads((DATA / "pod-exec-or-attach" / "positive-attach.json").read_text())
    (alert,) = [a for a in engine.evaluate(exec_event) if a.rule == "Pod Exec Or Attach"]
    assert alert.priority == "Warning"
    ingress = json.loads((DATA / "ingress-without-tls-created" / "positive.json").read_text())
    assert "Ingress Without TLS Created" not in [a.rule for a in engine.evaluate(ingress)]
    secret = json.loads(
        (DATA / "secret-read-by-non-platform-identity" / "positive.json").read_text()
    )
    assert "Secret Read By Non-Platform Identity" in [a.rule for a in engine.evaluate(secret)]
    secret["objectRef"]["namespace"] = "payments"  # the exception that makes room for your rule
    assert "Secret Read By Non-Platform Identity" not in [a.rule for a in engine.evaluate(secret)]
