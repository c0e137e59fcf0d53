"""Window edges as properties (hypothesis), on `falconet.correlate.windows` directly.

The correlations are real ones, loaded from YAML by the engine's loader; the matches are made
here. `deliver` applies one batch the way `correlator.Batch._windowed` does (load the stored bytes,
add, fire or decide, prune, dump), so every property also crosses the state's byte form.

The properties are the module docstring's promises:
(a) matches less than `timespan - granularity` apart always share a window, more than
    `timespan + granularity` apart never;
(b) delivering the same matches again changes nothing, and a time-ordered sequence split into
    batches fires the same windows as one batch;
(c) the stored form round-trips exactly;
(d) no two fired windows of a group overlap (at most one per `k` buckets), whatever the order;
(e) `gte N` fires exactly the windows a brute-force single pass finds, and fires at all iff some
    window holds N distinct events (time-ordered arrival);
(f) a fired window taken back (`undo`) fires again when the same batch is retried.

A batch may span any time (`falconet scan` folds up to FLUSH_MATCHES matches at once, over days):
`test_one_batch_is_a_single_pass_over_a_time_ordered_sequence` holds it to the single pass.
"""

from __future__ import annotations

import functools
import random
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from falconet import Engine
from falconet.correlate.model import MAX_TIMESPAN_S, Correlation
from falconet.correlate.windows import NS, Geometry, GroupState, Match, Window

BASE = """\
- rule: A
  desc: a
  condition: ka.verb=get
  output: a (user=%ka.user.name)
  priority: INFO
  source: k8s_audit
- rule: B
  desc: b
  condition: ka.verb=list
  output: b (user=%ka.user.name)
  priority: INFO
  source: k8s_audit
- rule: C
  desc: c
  condition: ka.verb=watch
  output: c (user=%ka.user.name)
  priority: INFO
  source: k8s_audit
"""

# Timespans with every kind of geometry: one-second buckets (7s), a window longer than the
# timespan (95s: 10 buckets of 10 s; 433s: 10 of 44 s), exact ones, long ones.
PAIR_SPANS = ("7s", "10s", "59s", "95s", "100s", "433s", "10m", "1h", "7d")
THRESHOLDS = (1, 2, 3, 5)
THRESHOLD_SPANS = ("7s", "95s")
T0 = 1_773_243_900 * NS  # 2026-03-11T15:45:00Z


def _doc(name: str, kind: str, rules: str, timespan: str, condition: str | None) -> str:
    lines = [
        f"title: {name}",
        f"name: {name}",
        "correlation:",
        f"  type: {kind}",
        f"  rules: [{rules}]",
        "  group-by: [ka.user.name]",
        f"  timespan: {timespan}",
        "  generate: true",
    ]
    if condition is not None:
        lines.append(f"  condition: {condition}")
    return "\n".join(lines) + "\n"


def _documents() -> Iterator[str]:
    for span in PAIR_SPANS:
        yield _doc(f"pair_{span}", "event_count", "A", span, "{gte: 2}")
    for span in THRESHOLD_SPANS:
        for n in THRESHOLDS:
            yield _doc(f"gte{n}_{span}", "event_count", "A", span, f"{{gte: {n}}}")
    yield _doc("values", "value_count", "A", "95s", "{field: ka.target.name, gte: 3}")
    yield _doc("temporal", "temporal", "A, B", "95s", None)
    yield _doc("ordered", "temporal_ordered", "A, B, C", "95s", None)
    yield _doc("few", "event_count", "A", "95s", "{lt: 3}")
    yield _doc("range", "event_count", "A", "95s", "{gt: 1, lte: 4}")


@functools.cache
def correlations() -> dict[str, Correlation]:
    """Every correlation above, loaded once by the engine's loader (by name)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "base.yaml").write_text(BASE)
        (root / "correlations.yaml").write_text("---\n".join(_documents()))
        engine = Engine.from_paths([root / "base.yaml", root / "correlations.yaml"])
    loaded = {c.label: c for c in engine.correlations.correlations}
    assert len(loaded) == len(list(_documents()))
    return loaded


# ---- the run-time steps, as the correlator takes them --------------------------------------------


def deliver(
    data: bytes | None, batch: Sequence[Match], correlation: Correlation
) -> tuple[bytes, list[Window]]:
    """One batch folded into the state stored as `data`: the new bytes, the windows fired."""
    geometry = Geometry.of(correlation.timespan)
    state = GroupState.loads(data)
    touched = state.add(batch, correlation, geometry)
    if correlation.condition.at_once:
        windows = state.fire_at_once(touched, correlation, geometry)
    else:
        windows = state.decide_closed(None, correlation, geometry)
    state.prune(geometry)
    return state.dumps(), windows


def deliver_all(
    batches: Sequence[Sequence[Match]], correlation: Correlation
) -> tuple[bytes | None, list[Window]]:
    data: bytes | None = None
    fired: list[Window] = []
    for batch in batches:
        data, windows = deliver(data, batch, correlation)
        fired += windows
    return data, fired


def starts(windows: Sequence[Window]) -> list[int]:
    return [w.start for w in windows]


# ---- strategies ----------------------------------------------------------------------------------


@st.composite
def events(
    draw: st.DrawFn,
    *,
    max_events: int = 24,
    span_s: int = 600,
    rules: int = 1,
    values: bool = False,
) -> list[Match]:
    """Distinct audit events (some delivered more than once), in no particular order."""
    base = T0 + draw(st.integers(0, 3600)) * NS  # bucket edges fall anywhere
    count = draw(st.integers(1, max_events))
    out = []
    for n in range(count):
        time_ns = base + draw(st.integers(0, span_s * NS))
        rule = draw(st.integers(0, rules - 1))
        value = draw(st.sampled_from(["db", "api", "tls", "ci"])) if values else None
        out.append(Match(time_ns, f"id-{n}", rule, value))
    repeats = draw(st.lists(st.sampled_from(out), max_size=4))
    return draw(st.permutations(out + repeats))


def split(matches: Sequence[Match], cuts: Sequence[int]) -> list[list[Match]]:
    """`matches` cut into consecutive batches before each index in `cuts`."""
    edges = sorted({c for c in cuts if 0 < c < len(matches)})
    batches, last = [], 0
    for edge in [*edges, len(matches)]:
        batches.append(list(matches[last:edge]))
        last = edge
    return [b for b in batches if b]


def time_ordered(matches: Sequence[Match], geometry: Geometry, rng: random.Random) -> list[Match]:
    """`matches` in bucket order, shuffled within each bucket (time order at bucket granularity,
    what the guarantee asks for)."""
    keyed = [(geometry.bucket(m.time_ns), rng.random(), m) for m in matches]
    return [m for _, _, m in sorted(keyed, key=lambda item: item[:2])]


def within_two_windows(batches: list[list[Match]], geometry: Geometry) -> list[list[Match]]:
    """`batches` (time-ordered) cut further so that no batch spans more than two windows."""
    out: list[list[Match]] = []
    for batch in batches:
        current: list[Match] = []
        for m in batch:
            if current and geometry.bucket(m.time_ns) - geometry.bucket(current[0].time_ns) > (
                2 * geometry.k
            ):
                out.append(current)
                current = []
            current.append(m)
        out.append(current)
    return out


def oracle(matches: Sequence[Match], geometry: Geometry, threshold: int) -> list[int]:
    """The windows a single pass finds for `gte threshold`: from the earliest bucket holding a
    match, a window of `k` buckets starting there fires when it holds `threshold` distinct
    events and overlaps no window fired before."""
    buckets: dict[int, set[str]] = {}
    for m in matches:
        buckets.setdefault(geometry.bucket(m.time_ns), set()).add(m.audit_id)
    fired: list[int] = []
    for s in sorted(buckets):
        if any(abs(s - f) < geometry.k for f in fired):
            continue
        held = set().union(*(buckets.get(i, set()) for i in range(s, s + geometry.k)))
        if len(held) >= threshold:
            fired.append(s)
    return fired


def most_in_a_window(matches: Sequence[Match], geometry: Geometry) -> int:
    """Brute force: the most distinct events any `k` consecutive buckets hold."""
    buckets = sorted({geometry.bucket(m.time_ns) for m in matches})
    best = 0
    for s in range(buckets[0] - geometry.k, buckets[-1] + 1):
        held = {m.audit_id for m in matches if s <= geometry.bucket(m.time_ns) < s + geometry.k}
        best = max(best, len(held))
    return best


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---- (a) window edges ----------------------------------------------------------------------------


@given(
    timespan=st.integers(1, MAX_TIMESPAN_S),
    first=st.integers(0, 10**18),
    apart=st.integers(0, 2 * MAX_TIMESPAN_S * NS),
)
@FAST
def test_bucket_distance_bounds_hold_for_every_timespan(
    timespan: int, first: int, apart: int
) -> None:
    g = Geometry.of(timespan)
    assert g.granularity * g.k >= timespan  # a window covers the timespan, rounded up
    assert g.granularity * (g.k - 1) < timespan
    distance = g.bucket(first + apart) - g.bucket(first)
    if apart < (timespan - g.granularity) * NS:
        assert distance <= g.k - 1  # the window starting at the first one holds both
    if apart > (timespan + g.granularity) * NS:
        assert distance >= g.k  # no window of k buckets holds both


@given(
    span=st.sampled_from(PAIR_SPANS),
    first=st.integers(0, 3600 * NS),
    apart=st.integers(0, 3 * 7 * 86400 * NS),
    delivery=st.sampled_from(["one batch", "in order", "reversed"]),
)
@FAST
def test_two_matches_closer_than_the_edge_fire_one_window_farther_never(
    span: str, first: int, apart: int, delivery: str
) -> None:
    c = correlations()[f"pair_{span}"]
    g = Geometry.of(c.timespan)
    if g.k * g.granularity * NS * 3 < apart:
        apart %= g.k * g.granularity * NS * 3  # keep the pairs near the edges interesting
    a = Match(T0 + first, "id-a", 0)
    b = Match(T0 + first + apart, "id-b", 0)
    batches = {"one batch": [[a, b]], "in order": [[a], [b]], "reversed": [[b], [a]]}[delivery]
    _, fired = deliver_all(batches, c)
    if apart < (c.timespan - g.granularity) * NS:
        (window,) = fired
        assert window.count == 2
        assert (window.first_ns, window.last_ns) == (a.time_ns, b.time_ns)
    if apart > (c.timespan + g.granularity) * NS:
        assert fired == []


# ---- (b) idempotence and batching ----------------------------------------------------------------


@given(
    name=st.sampled_from(["pair_95s", "gte3_95s", "gte1_7s", "values", "temporal", "ordered"]),
    data=st.data(),
)
@FAST
def test_delivering_the_same_matches_again_changes_nothing(name: str, data: st.DataObject) -> None:
    c = correlations()[name]
    matches = data.draw(
        events(span_s=400, rules=len(c.rules), values=c.type == "value_count"), label="matches"
    )
    cuts = data.draw(st.lists(st.integers(0, len(matches))), label="cuts")
    stored, _ = deliver_all(split(matches, cuts), c)
    again = data.draw(
        st.lists(st.sampled_from(matches), min_size=1, max_size=len(matches)), label="again"
    )
    for batch in split(again, data.draw(st.lists(st.integers(0, len(again))), label="cuts2")):
        after, fired = deliver(stored, batch, c)
        assert fired == []
        assert after == stored


COUNTS = [f"gte{n}_{s}" for n in THRESHOLDS for s in THRESHOLD_SPANS]


@given(name=st.sampled_from(COUNTS), seed=st.integers(0, 2**32), data=st.data())
@FAST
def test_batches_of_a_time_ordered_sequence_fire_what_one_batch_fires(
    name: str, seed: int, data: st.DataObject
) -> None:
    c = correlations()[name]
    g = Geometry.of(c.timespan)
    # The whole sequence within two windows: one batch of it drops nothing as late.
    span_s = 2 * g.k * g.granularity - 1
    matches = time_ordered(data.draw(events(span_s=span_s)), g, random.Random(seed))
    cuts = data.draw(st.lists(st.integers(0, len(matches))), label="cuts")
    _, fired = deliver_all(split(matches, cuts), c)
    _, reference = deliver_all([matches], c)
    assert starts(fired) == starts(reference)


# ---- (c) the stored form -------------------------------------------------------------------------


@given(
    name=st.sampled_from(["pair_95s", "gte1_7s", "values", "temporal", "ordered", "few", "range"]),
    data=st.data(),
)
@FAST
def test_the_stored_state_round_trips_exactly(name: str, data: st.DataObject) -> None:
    c = correlations()[name]
    g = Geometry.of(c.timespan)
    matches = data.draw(
        events(span_s=600, rules=len(c.rules), values=c.type == "value_count"), label="matches"
    )
    stored: bytes | None = None
    for batch in split(matches, data.draw(st.lists(st.integers(0, len(matches))), label="cuts")):
        state = GroupState.loads(stored)
        touched = state.add(batch, c, g)
        if c.condition.at_once:
            state.fire_at_once(touched, c, g)
        else:
            state.decide_closed(None, c, g)
        state.prune(g)
        stored = state.dumps()
        state.late = 0  # per batch, never stored
        back = GroupState.loads(stored)
        assert back == state
        assert back.dumps() == stored


# ---- (d) no overlapping windows ------------------------------------------------------------------


@given(
    name=st.sampled_from([*COUNTS, "pair_7s", "pair_433s", "values", "temporal", "ordered"]),
    data=st.data(),
)
@FAST
def test_fired_windows_never_overlap_whatever_the_arrival_order(
    name: str, data: st.DataObject
) -> None:
    c = correlations()[name]
    g = Geometry.of(c.timespan)
    matches = data.draw(
        events(
            max_events=40,
            span_s=data.draw(st.sampled_from([g.k * g.granularity, 8 * g.k * g.granularity])),
            rules=len(c.rules),
            values=c.type == "value_count",
        ),
        label="matches",
    )
    cuts = data.draw(st.lists(st.integers(0, len(matches))), label="cuts")
    _, fired = deliver_all(split(matches, cuts), c)
    fired_starts = sorted(starts(fired))
    assert all(b - a >= g.k for a, b in zip(fired_starts, fired_starts[1:], strict=False))


def test_a_flood_fires_one_window_per_timespan() -> None:
    c = correlations()["gte3_95s"]  # 10 buckets of 10 s
    flood = [Match(T0 + n * NS, f"id-{n}", 0) for n in range(1000)]  # one a second
    _, fired = deliver_all([flood[i : i + 7] for i in range(0, len(flood), 7)], c)
    assert [w.start - fired[0].start for w in fired] == list(range(0, 100, 10))


# ---- (e) gte N against a brute-force single pass -------------------------------------------------


@given(name=st.sampled_from(COUNTS), seed=st.integers(0, 2**32), data=st.data())
@FAST
def test_gte_fires_the_windows_of_a_single_pass(name: str, seed: int, data: st.DataObject) -> None:
    c = correlations()[name]
    g = Geometry.of(c.timespan)
    (threshold,) = (value for _, value in c.condition.bounds)
    span_s = data.draw(st.sampled_from([g.k * g.granularity, 6 * g.k * g.granularity]))
    matches = time_ordered(data.draw(events(span_s=span_s)), g, random.Random(seed))
    cuts = data.draw(st.lists(st.integers(0, len(matches))), label="cuts")
    batches = within_two_windows(split(matches, cuts), g)  # see the module docstring
    _, fired = deliver_all(batches, c)
    assert starts(fired) == oracle(matches, g, threshold)
    assert bool(fired) == (most_in_a_window(matches, g) >= threshold)
    for window in fired:
        held = {m.audit_id for m in matches if 0 <= g.bucket(m.time_ns) - window.start < g.k}
        assert threshold <= window.count <= len(held)


ONE_BATCH_LATE = [
    Match(T0, "id-0", 0),
    Match(T0 + NS, "id-1", 0),
    Match(T0 + 1000 * NS, "id-2", 0),  # ten windows later, in the same batch
]


@given(name=st.sampled_from(COUNTS), seed=st.integers(0, 2**32), matches=events(span_s=3000))
@example(name="gte2_95s", seed=0, matches=ONE_BATCH_LATE)
@FAST
def test_one_batch_is_a_single_pass_over_a_time_ordered_sequence(
    name: str, seed: int, matches: list[Match]
) -> None:
    c = correlations()[name]
    g = Geometry.of(c.timespan)
    (threshold,) = (value for _, value in c.condition.bounds)
    ordered = time_ordered(matches, g, random.Random(seed))
    _, fired = deliver_all([ordered], c)
    assert starts(fired) == oracle(ordered, g, threshold)


# ---- (f) undo ------------------------------------------------------------------------------------


@given(name=st.sampled_from(COUNTS), data=st.data())
@FAST
def test_a_window_taken_back_fires_again_on_the_retry(name: str, data: st.DataObject) -> None:
    c = correlations()[name]
    g = Geometry.of(c.timespan)
    matches = data.draw(events(span_s=2 * g.k * g.granularity - 1), label="matches")
    cuts = data.draw(st.lists(st.integers(0, len(matches))), label="cuts")
    batches = split(matches, cuts)
    stored: bytes | None = None
    for batch in batches:
        before = stored
        stored, fired = deliver(stored, batch, c)
        if not fired:
            continue
        # The delivery failed: `Batch.undo` takes the windows back, in the stored state...
        state = GroupState.loads(stored)
        for window in fired:
            state.fired.remove(window.start)
            state.unfired.append(window.start)
        # ...and the retried invocation brings the same batch again.
        stored, again = deliver(state.dumps(), batch, c)
        assert again == fired
        assert before is None or stored != before
