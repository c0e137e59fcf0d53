"""Pipeline.run pauses the cyclic collector while it decodes and evaluates, never while sinks work,
and always leaves it as it found it; alerts fit the sinks; correlations leave through the sinks."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from falconet import EventContext, pipeline
from falconet.alerts import Alert, wire_size
from falconet.correlate.correlator import Correlator
from falconet.deadline import Deadline
from falconet.engine import Engine
from falconet.errors import SinkError
from falconet.pipeline import Pipeline
from falconet.sinks import Tally
from falconet.state import MemoryStore
from tests.conftest import BUNDLED_RULES, ROOT

BATCH = (ROOT / "examples" / "audit-batch.json").read_bytes()


class Recorder:
    """A sink noting whether the collector ran when it was called."""

    name = "recorder"
    max_alert_bytes = None

    def __init__(self) -> None:
        self.emitted: list[bool] = []
        self.flushed: list[bool] = []
        self.alerts: list[Alert] = []
        self.tally = Tally("recorder")

    def open(self, deadline: Deadline) -> Recorder:
        return self

    def emit(self, alerts: Sequence[Alert]) -> None:
        self.emitted.append(gc.isenabled())
        self.alerts.extend(alerts)

    def flush(self) -> None:
        self.flushed.append(gc.isenabled())


class Watching:
    """The engine, noting the collector's state at every evaluation."""

    def __init__(self, engine: Engine, fail: bool = False) -> None:
        self.engine = engine
        self.fail = fail
        self.states: list[bool] = []

    def evaluate(self, event: Any, context: Any) -> list[Alert]:
        self.states.append(gc.isenabled())
        if self.fail:
            raise RuntimeError("boom")
        return self.engine.evaluate(event, context)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.from_paths([BUNDLED_RULES])


@pytest.fixture
def collector() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


@pytest.mark.usefixtures("collector")
def test_paused_while_evaluating_running_while_sinks_work(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "EMIT_CHUNK", 1)  # emit from inside the loop, alert by alert
    watching, sink = Watching(engine), Recorder()
    result = Pipeline(watching, [sink]).run(BATCH)  # type: ignore[arg-type]
    assert result.alerts == 4 and len(sink.alerts) == 4
    assert watching.states and not any(watching.states)
    assert sink.emitted == [True] * 4
    assert sink.flushed == [True]
    assert gc.isenabled()


@pytest.mark.usefixtures("collector")
def test_turned_back_on_when_evaluation_raises(engine: Engine) -> None:
    with pytest.raises(RuntimeError):
        Pipeline(Watching(engine, fail=True), [Recorder()]).run(BATCH)  # type: ignore[arg-type]
    assert gc.isenabled()


def test_left_off_when_the_caller_turned_it_off(engine: Engine) -> None:
    was = gc.isenabled()
    gc.disable()
    try:
        sink = Recorder()
        Pipeline(Watching(engine), [sink]).run(BATCH)  # type: ignore[arg-type]
        assert sink.emitted == [False]
        assert not gc.isenabled()
    finally:
        if was:
            gc.enable()


class Failing(Recorder):
    """A sink whose destination is down: the first hand-over fails."""

    name = "failing"

    def emit(self, alerts: Sequence[Alert]) -> None:
        raise SinkError("failing: down")


class Small(Recorder):
    """A sink that accepts alerts of at most 1000 bytes (the batch's alerts are ~1000-1200)."""

    name = "small"
    max_alert_bytes = 1000  # type: ignore[assignment]


def test_a_sink_error_carries_the_calls_counters(engine: Engine) -> None:
    sink = Recorder()
    with pytest.raises(SinkError) as caught:
        Pipeline(engine, [sink, Failing()]).run(BATCH)
    result = caught.value.result
    assert result.events == 6 and result.alerts == 4
    assert result.to_dict()["alerts"] == 4 and result.duration_ms > 0


def test_alerts_are_fitted_to_the_smallest_sink_limit(engine: Engine) -> None:
    small, large = Small(), Recorder()
    result = Pipeline(engine, [large, small]).run(BATCH)
    assert result.alerts == 4
    # Every sink gets the same fitted alerts, each within the smallest limit or dropped whole.
    assert small.alerts == large.alerts
    assert len(small.alerts) == 4 and all(wire_size(a) <= 1000 for a in small.alerts)
    fitted = [a for a in small.alerts if "…[truncated " in str(a.to_dict())]
    assert len(fitted) == result.truncated == 3
    assert all(a.output_fields.get("ka.auditid") for a in fitted)


def test_an_alert_that_cannot_fit_is_counted_and_logged(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    tiny = Small()
    tiny.max_alert_bytes = 300  # type: ignore[misc]
    result = Pipeline(engine, [tiny]).run(BATCH)
    assert tiny.alerts == [] and result.dropped == {"all sinks": 4}
    assert len(result.to_dict()["dropped_alerts"]) == 4
    assert caplog.text.count("cannot fit in 300 bytes") == 4


def test_a_passed_deadline_reaches_the_sinks(engine: Engine) -> None:
    seen: list[Deadline] = []

    class Noting(Recorder):
        def open(self, deadline: Deadline) -> Recorder:
            seen.append(deadline)
            return self

    passed = Deadline(at=0.0, clock=lambda: 1.0)
    Pipeline(engine, [Noting()], timeout=60).run(BATCH, deadline=passed)
    Pipeline(engine, [Noting()], timeout=60).run(BATCH)
    assert seen[0] is passed
    assert 59 < seen[1].remaining() <= 60  # none given: the configured timeout from now


# -- correlations ------------------------------------------------------------------------------

CORRELATED_RULES = """\
- rule: Denied
  desc: a denied request
  condition: ka.response.code in (401, 403)
  output: denied (user=%ka.user.name)
  priority: INFO
  source: k8s_audit
"""
BURST = """\
title: Denied burst
correlation:
  type: event_count
  rules: [Denied]
  group-by: [ka.user.name, falconet.cluster]
  timespan: 10m
  condition: {gte: 3}
"""


def _denied(n: int) -> bytes:
    return orjson.dumps(
        {
            "kind": "Event",
            "auditID": f"id-{n}",
            "stage": "ResponseComplete",
            "stageTimestamp": f"2026-03-11T15:0{n}:00.000000Z",
            "verb": "get",
            "user": {"username": "mallory"},
            "objectRef": {"resource": "pods", "namespace": "demo", "name": "x"},
            "responseStatus": {"code": 403},
        }
    )


def _correlating(tmp_path: Path, sinks: Sequence[Any]) -> Pipeline:
    (tmp_path / "rules.yaml").write_text(CORRELATED_RULES)
    (tmp_path / "burst.yaml").write_text(BURST)
    engine = Engine.from_paths([tmp_path / "rules.yaml", tmp_path / "burst.yaml"])
    return Pipeline(engine, sinks, correlator=Correlator.for_engine(engine, MemoryStore()))


def test_correlation_alerts_leave_through_the_sinks_with_counters(tmp_path: Path) -> None:
    sink = Recorder()
    pipeline = _correlating(tmp_path, [sink])
    context = EventContext(cluster="prod")
    first = pipeline.run(b"\n".join(_denied(n) for n in range(2)), context=context)
    assert sink.alerts == [] and first.alerts == 0  # "Denied" is silenced: it only counts
    second = pipeline.run(_denied(2), context=context)
    (alert,) = sink.alerts
    assert alert.rule == "Denied burst" and alert.output_fields["falconet.cluster"] == "prod"
    assert second.alerts_by_rule == {"Denied burst": 1}
    assert second.to_dict()["correlation"]["state_writes"] == 1


def test_an_undelivered_correlation_alert_is_raised_again_by_the_retry(tmp_path: Path) -> None:
    class Failing(Recorder):
        fail = True

        def flush(self) -> None:
            if self.fail:
                raise SinkError("down")

    sink = Failing()
    pipeline = _correlating(tmp_path, [sink])
    body = b"\n".join(_denied(n) for n in range(3))
    with pytest.raises(SinkError):
        pipeline.run(body)
    sink.fail = False
    sink.alerts.clear()
    pipeline.run(body)  # the trigger's retry of the same input
    assert [a.rule for a in sink.alerts] == ["Denied burst"]
    pipeline.run(body)  # delivered again later: nothing new
    assert len(sink.alerts) == 1
