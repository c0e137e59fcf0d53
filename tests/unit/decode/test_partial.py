"""Decoding only what is read (`falconet.decode.partial`): the same events, bar what nothing reads,
and the same alerts, as decoding every event whole with orjson."""

from __future__ import annotations

import gzip
import importlib.util
import itertools
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from falconet.context import EventContext
from falconet.decode import DecodeStats, decode
from falconet.decode.partial import BODIES, SKIM, SKIM_BYTES, SKIP, WHOLE, BodyPlan, read_line
from falconet.engine import Engine
from falconet.pipeline import Pipeline
from tests.conftest import BUNDLED_RULES, ROOT, SHARED

UPSTREAM = SHARED / "conformance/falco-plugins-k8saudit/v0.18.0/k8s_audit_rules.yaml"
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _hard_corpus(count: int) -> list[dict[str, Any]]:
    spec = importlib.util.spec_from_file_location("bench_corpus", ROOT / "bench" / "corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(itertools.islice(module.hard_events(seed=11), count))


def _without(event: dict[str, Any], level: int) -> dict[str, Any]:
    """`event` as a plan at `level` leaves it: no bodies (SKIP), no managedFields (SKIM)."""
    for name in BODIES:
        if name not in event:
            continue
        if level == SKIP:
            del event[name]
        elif level == SKIM:
            body = event[name]
            if type(body) is dict and type(body.get("metadata")) is dict:
                body["metadata"].pop("managedFields", None)
    return event


# -- generated events: read_line gives orjson's event (bar what the plan skips), or steps aside --

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_names = st.sampled_from(["get", "list", "create", "patch", "update", "delete"])
_resources = st.sampled_from(["pods", "secrets", "configmaps", "roles", "nodes"])
_metadata = st.fixed_dictionaries(
    {"name": st.text(max_size=8)},
    optional={
        "managedFields": st.lists(_json, max_size=3),
        "labels": st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=3),
        "ownerReferences": _json,
    },
)
_body = st.one_of(
    st.fixed_dictionaries(
        {"kind": st.text(max_size=6), "metadata": _metadata}, optional={"spec": _json}
    ),
    _json,
)
_odd = st.one_of(_json, st.integers(min_value=2**63, max_value=2**70))
_good = st.fixed_dictionaries(
    {"kind": st.just("Event"), "auditID": st.uuids().map(str)},
    optional={
        "apiVersion": st.just("audit.k8s.io/v1"),
        "stage": st.just("ResponseComplete"),
        "verb": _names,
        "user": st.fixed_dictionaries(
            {"username": st.text(max_size=10)},
            optional={
                "groups": st.lists(st.text(max_size=6), max_size=3),
                "extra": st.dictionaries(st.text(max_size=4), st.lists(st.text(max_size=4))),
            },
        ),
        "impersonatedUser": st.fixed_dictionaries({"username": st.text(max_size=6)}),
        "sourceIPs": st.lists(st.text(max_size=8), max_size=2),
        "objectRef": st.fixed_dictionaries(
            {"resource": _resources}, optional={"name": st.text(max_size=6)}
        ),
        "responseStatus": st.fixed_dictionaries(
            {"code": st.integers(100, 599)},
            optional={"metadata": st.just({}), "status": st.text(max_size=6)},
        ),
        "requestObject": _body,
        "responseObject": _body,
        "stageTimestamp": st.just("2026-03-11T02:24:56.567013Z"),
        "annotations": st.dictionaries(st.text(max_size=6), st.text(max_size=6)),
    },
)
# A realistic event, sometimes with one member of another type, or another key
_event = st.tuples(
    _good,
    st.none()
    | st.tuples(
        st.sampled_from(
            ["kind", "auditID", "verb", "user", "impersonatedUser", "sourceIPs", "objectRef"]
            + ["responseStatus", "annotations", "stageTimestamp", "somethingElse"]
        ),
        _odd,
    ),
).map(lambda pair: pair[0] if pair[1] is None else {**pair[0], pair[1][0]: pair[1][1]})
_readers = st.lists(
    st.tuples(
        st.none() | st.frozensets(_names, max_size=3),
        st.none() | st.frozensets(_resources, max_size=3),
        st.booleans(),
    ),
    max_size=3,
)


@PROPERTY
@given(_event, _readers, st.booleans(), st.booleans())
def test_read_line_gives_orjsons_event_or_steps_aside(
    event: dict[str, Any], readers: list[Any], duplicate: bool, escaped: bool
) -> None:
    # json.dumps: integers past 64 bits, and text escaped (\\uXXXX) or as UTF-8
    line = json.dumps(event, ensure_ascii=escaped).encode()
    if duplicate and "verb" in event:  # a key twice: the last one wins, in both readings
        line = line[:-1] + b',"verb":"patch"}'
    plan = BodyPlan()
    for verbs, resources, managed in readers:
        plan.add(verbs, resources, managed=managed)
    full = orjson.loads(line)
    got = read_line(line, plan)
    if got is None:
        return  # the full path reads it, as before
    ref = full.get("objectRef")
    level = plan.needs(full.get("verb"), ref.get("resource") if type(ref) is dict else None)
    assert level != WHOLE or not any(name in full for name in BODIES)
    # SKIM: managedFields may be left out (they are, when the metadata is large)
    assert got == (full if level == SKIM and got == full else _without(full, level))
    assert type(got.get("auditID")) is str and got["kind"] == "Event"


@pytest.mark.parametrize(
    "line",
    [
        b'{"kind":"Event","auditID":"a","verb":"\xff"}',  # not UTF-8
        # bytes skipped, and the line is not ASCII: skipped bytes are not checked for UTF-8
        b'{"kind":"Event","auditID":"a","verb":"caf\xc3\xa9","requestObject":{}}',
        b'{"kind":"Event","auditID":"a","verb":"\\ud800"}',  # a lone surrogate
        b'{"kind":"Event","auditID":"a","requestObject":{"a":"\xff"}}',  # invalid UTF-8
        b'{"kind":"Event","auditID":"a","responseStatus":{"code":18446744073709551616}}',
        b'{"kind":"Event","auditID":"a","verb":1}',
        b'{"kind":"Event","auditID":"a","level":"Metadata","x":1}',  # a key the envelope lacks
        b'{"kind":"Event","verb":"get"}',  # no auditID: the reference path reads it whole
        b'{"kind":"EventList","auditID":"a","items":[]}',
        b'[{"kind":"Event","auditID":"a"}]',
        b'{"kind":"Event","auditID":"a"} {}',
    ],
)
def test_what_orjson_or_falco_reads_otherwise_takes_the_full_path(line: bytes) -> None:
    plan = BodyPlan()
    plan.add(None, None)
    assert read_line(line, plan) is None
    assert read_line(line, BodyPlan()) is None


@pytest.mark.parametrize("fields", [1, 200])
def test_managed_fields_are_left_out_of_a_large_metadata(fields: int) -> None:
    managed = [{"manager": f"m{i}", "operation": "Update"} for i in range(fields)]
    body = {"kind": "Pod", "metadata": {"name": "p", "managedFields": managed}, "spec": {"a": 1}}
    event = {"kind": "Event", "auditID": "a", "verb": "create", "requestObject": body}
    line = orjson.dumps(event)
    plan = BodyPlan(min_bytes=0)
    plan.add(frozenset({"create"}), None)
    got = read_line(line, plan)
    large = len(orjson.dumps(body["metadata"])) >= SKIM_BYTES
    assert large == (fields > 1)
    assert got == (_without(orjson.loads(line), SKIM) if large else orjson.loads(line))


def test_text_beyond_ascii_is_read_when_nothing_is_skipped() -> None:
    line = '{"kind":"Event","auditID":"a","verb":"café","user":{"username":"zoë"}}'.encode()
    assert read_line(line, BodyPlan()) == orjson.loads(line)


def test_a_body_orjson_refuses_takes_the_full_path_when_it_is_read() -> None:
    line = (
        b'{"kind":"Event","auditID":"a","verb":"create","requestObject":{"spec":1e400},'
        b'"stageTimestamp":"2026-03-11T02:24:56.567013Z"}'
    )
    plan = BodyPlan(min_bytes=0)
    plan.add(frozenset({"create"}), None)
    assert read_line(line, plan) is None
    read = [event for event, _ in decode(line, stats=DecodeStats(), bodies=plan)]
    assert read == [event for event, _ in decode(line, stats=DecodeStats())]
    assert read[0]["requestObject"]["spec"] == "1e400"  # Falco's reading, as without a plan


# -- plans made from rules ---------------------------------------------------------------------


def _plan(tmp_path: Path, condition: str, output: str = "%ka.user.name") -> BodyPlan | None:
    readers = _rules(tmp_path, condition, output).body_readers()
    return None if readers is None else BodyPlan.of(readers)


def _rules(tmp_path: Path, condition: str, output: str = "%ka.user.name") -> Engine:
    path = tmp_path / "rules.yaml"
    path.write_text(
        f"- rule: r\n  desc: d\n  condition: {condition}\n  output: '{output}'\n"
        "  priority: WARNING\n  source: k8s_audit\n"
    )
    return Engine.from_paths([path])


def test_plan_follows_the_rules_index_keys(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path, "ka.verb=create and ka.target.resource=pods and ka.req.pod.host_network=true"
    )
    assert plan is not None
    assert plan.needs("create", "pods") == SKIM
    assert plan.needs("get", "pods") == SKIP
    assert plan.needs("create", "secrets") == SKIP


def test_plan_reads_a_body_named_by_the_output(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "ka.verb=patch", "%jevt.value[/requestObject]")
    assert plan is not None
    assert plan.needs("patch", "roles") == WHOLE
    assert plan.needs("get", "roles") == SKIP


@pytest.mark.parametrize("output", ["%jevt.obj", "%jevt.value[/]", "%jevt.value[]"])
def test_a_reader_of_the_whole_event_means_no_plan(tmp_path: Path, output: str) -> None:
    assert _plan(tmp_path, "ka.verb=get", output) is None


def test_envelope_only_rules_skip_every_body(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "ka.user.name=admin and jevt.value[/sourceIPs/0]=x")
    assert plan is not None
    assert plan.needs("create", "pods") == SKIP


# -- alerts: byte-identical with and without a plan --------------------------------------------


def _alerts(engine: Engine, data: bytes, plan: BodyPlan | None) -> list[bytes]:
    stats = DecodeStats()
    context = EventContext(cluster="prod")
    out = [
        orjson.dumps(alert.to_dict())
        for event, ctx in decode(data, stats=stats, context=context, bodies=plan)
        for alert in engine.evaluate(event, ctx)
    ]
    assert stats.rejected_total == 0
    return out


@pytest.mark.parametrize("ruleset", ["bundled", "upstream"])
def test_alerts_are_byte_identical_with_and_without_a_plan(ruleset: str) -> None:
    if ruleset == "upstream" and not UPSTREAM.is_file():
        pytest.skip(f"Falco rules absent: {UPSTREAM}")
    engine = Engine.from_paths([BUNDLED_RULES if ruleset == "bundled" else UPSTREAM])
    lines = [orjson.dumps(e) for e in _hard_corpus(2500)]
    data = gzip.compress(b"\n".join(lines) + b"\n")
    plan = Pipeline(engine, []).bodies()  # what the pipeline gives `decode`
    assert plan is not None
    expected = _alerts(engine, data, None)
    assert expected  # the corpus raises alerts
    assert _alerts(engine, data, plan) == expected
    plan.min_bytes = 0  # every line through the fast path, not only the long ones
    assert _alerts(engine, data, plan) == expected
    # and the plan did leave bodies out: some events reach the engine without them
    events = decode(data, stats=DecodeStats(), bodies=plan)
    skipped = sum(
        1
        for (event, _), line in zip(events, lines, strict=True)
        if "requestObject" not in event and b'"requestObject"' in line
    )
    assert skipped > 0
