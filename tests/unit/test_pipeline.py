"""Pipeline.run pauses the cyclic collector while it decodes and evaluates, never while sinks work,
and always leaves it as it found it."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from falconet import pipeline
from falconet.alerts import Alert
from falconet.deadline import Deadline
from falconet.engine import Engine
from falconet.pipeline import Pipeline
from falconet.sinks import Tally
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
