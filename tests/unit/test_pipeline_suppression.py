"""Suppression in the pipeline: one warm process, several invocations (`Pipeline.run` calls), the
policies' state kept between them; what the sinks get and what each invocation's Result says."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest

from falconet import pipeline
from falconet.alerts import Alert
from falconet.engine import Engine
from falconet.errors import SinkError
from falconet.pipeline import Pipeline
from falconet.state import MemoryStore
from falconet.suppress.suppressor import Suppressor
from tests.unit.suppress.test_suppressor import BASE, DEDUP, HOUR, event, iso
from tests.unit.test_pipeline import Recorder


class Flaky(Recorder):
    """A sink whose destination is down while `down` is set."""

    name = "flaky"

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def emit(self, alerts: Sequence[Alert]) -> None:
        if self.down:
            raise SinkError("flaky: down")
        super().emit(alerts)


def warm(tmp_path: Path, sink: Recorder) -> Pipeline:
    """A pipeline as one warm instance has it: built once, its store in memory."""
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "policies.yaml").write_text(DEDUP)
    engine = Engine.from_paths([tmp_path / "base.yaml", tmp_path / "policies.yaml"], hostname="h")
    return Pipeline(engine, [sink], suppressor=Suppressor.for_engine(engine, MemoryStore()))


def body(first: int, count: int, *, start: float, every: float = 1.0) -> bytes:
    """One request body: `count` denied reads of one secret by one user (JSON lines)."""
    return b"\n".join(orjson.dumps(event(first + k, start + k * every)) for k in range(count))


def digests(alerts: Sequence[Alert]) -> list[Alert]:
    return [a for a in alerts if a.output_fields.get("falconet.suppress.digest")]


def test_a_flood_across_invocations_gives_one_alert_then_the_digest(tmp_path: Path) -> None:
    sink = Recorder()
    p = warm(tmp_path, sink)
    first = p.run(body(0, 1, start=0))
    assert len(sink.alerts) == 1
    assert "suppressed" not in first.to_dict()  # nothing held back: no counters shown

    held = []
    for first_id, count, start in ((1, 300, 60), (301, 699, 600)):  # 699: past EMIT_CHUNK
        result = p.run(body(first_id, count, start=start, every=2))
        held.append(result.suppressed)
        assert result.to_dict()["suppressed"] == result.suppressed
        assert result.to_dict()["digests"] == 0
    assert held == [300, 699]
    assert len(sink.alerts) == 1  # 1,000 alerts in the hour: one went out

    after = p.run(body(1000, 1, start=HOUR + 60))
    assert after.digests == 1 and after.to_dict()["digests"] == 1
    assert after.suppressed == 0
    new_period, digest = sink.alerts[1:]
    assert new_period.time == iso(HOUR + 60)
    assert digest.output_fields["falconet.suppress.digest"] is True
    assert digest.output_fields["falconet.suppress.count"] == 999
    assert digest.output_fields["falconet.suppress.first_time"] == iso(60)
    assert digest.output_fields["falconet.suppress.last_time"] == iso(600 + 698 * 2)
    assert p.run(body(1001, 5, start=HOUR + 120)).suppressed == 5
    assert digests(sink.alerts) == [digest]


def test_alerts_held_in_chunks_are_counted_across_the_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "EMIT_CHUNK", 7)  # a chunk of alerts, several per invocation
    sink = Recorder()
    p = warm(tmp_path, sink)
    result = p.run(body(0, 50, start=0, every=30))
    assert (len(sink.alerts), result.suppressed) == (1, 49)
    p.run(body(100, 1, start=HOUR))
    assert [a.output_fields["falconet.suppress.count"] for a in digests(sink.alerts)] == [49]


def test_without_a_suppressor_every_alert_goes_out(tmp_path: Path) -> None:
    sink = Recorder()
    p = warm(tmp_path, sink)
    plain = Pipeline(p.engine, [sink])  # FALCONET_SUPPRESS=off builds this
    result = plain.run(body(0, 20, start=0))
    assert len(sink.alerts) == 20
    assert (result.suppressed, result.digests) == (0, 0)
    assert not any("falconet.suppress.policy" in a.output_fields for a in sink.alerts)


def test_a_digest_whose_delivery_failed_is_sent_by_the_retry(tmp_path: Path) -> None:
    sink = Flaky()
    p = warm(tmp_path, sink)
    p.run(body(0, 10, start=0, every=60))
    later = body(100, 1, start=HOUR + 1)
    sink.down = True
    with pytest.raises(SinkError):
        p.run(later)
    sink.down = False
    p.run(later)  # the platform retries the invocation
    (digest,) = digests(sink.alerts)
    assert digest.output_fields["falconet.suppress.count"] == 9
