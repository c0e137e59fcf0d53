"""Correlation documents at load: what loads, what is refused (located), and what the engine does
with the rules a correlation counts or silences."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from falconet import Engine
from falconet.correlate.correlator import Correlator
from falconet.errors import RuleError, RuleLimitError
from falconet.rules.loader import load_rules
from falconet.state import MemoryStore

BASE = """\
- rule: Denied
  desc: a denied request
  condition: ka.response.code in (401, 403)
  output: denied (user=%ka.user.name)
  priority: INFO
  source: k8s_audit
- rule: Namespace deleted
  desc: a namespace deleted
  condition: ka.verb=delete and ka.target.resource=namespaces
  output: deleted (user=%ka.user.name ns=%ka.target.name)
  priority: WARNING
  source: k8s_audit
- rule: Any delete
  desc: anything deleted
  condition: ka.verb=delete
  output: delete (user=%ka.user.name)
  priority: NOTICE
  source: k8s_audit
"""

BURST = """\
title: Denied burst
name: denied_burst
correlation:
  type: event_count
  rules: [Denied]
  group-by: [ka.user.name, falconet.cluster]
  timespan: 10m
  condition: {gte: 3}
level: high
tags: [T1110]
"""


def write(tmp_path: Path, correlations: str, base: str = BASE) -> list[Path]:
    rules = tmp_path / "base.yaml"
    rules.write_text(base)
    docs = tmp_path / "correlations.yaml"
    docs.write_text(textwrap.dedent(correlations))
    return [rules, docs]


def engine(tmp_path: Path, correlations: str, **kwargs: Any) -> Engine:
    return Engine.from_paths(write(tmp_path, correlations), hostname="h", **kwargs)


def refused(tmp_path: Path, correlations: str) -> RuleError:
    with pytest.raises(RuleError) as info:
        engine(tmp_path, correlations)
    return info.value


def event(n: int, *, code: int = 403, verb: str = "get", resource: str = "pods") -> dict[str, Any]:
    return {
        "kind": "Event",
        "auditID": f"id-{n}",
        "stage": "ResponseComplete",
        "stageTimestamp": f"2026-03-11T15:{n:02d}:00.000000Z",
        "verb": verb,
        "user": {"username": "mallory"},
        "objectRef": {"resource": resource, "name": f"n{n}", "namespace": "demo"},
        "responseStatus": {"code": code},
    }


def test_a_correlation_loads_with_its_parts(tmp_path: Path) -> None:
    (c,) = engine(tmp_path, BURST).correlations.correlations
    assert (c.title, c.name, c.type, c.timespan) == (
        "Denied burst",
        "denied_burst",
        "event_count",
        600,
    )
    assert c.group_by == ("ka.user.name", "falconet.cluster")
    assert c.sources == {"Denied": ("ka.user.name", "falconet.cluster")}
    assert c.condition.bounds == (("gte", 3),) and c.condition.at_once
    assert (c.priority, c.generate, c.tags) == ("Error", False, ("T1110",))


def test_aliases_give_each_rule_its_field(tmp_path: Path) -> None:
    (c,) = engine(
        tmp_path,
        """\
        title: Grant then delete
        correlation:
          type: temporal_ordered
          rules: [Denied, Namespace deleted]
          group-by: [who]
          timespan: 30m
          aliases:
            who: {Denied: ka.user.name, Namespace deleted: ka.impuser.name}
          generate: true
        """,
    ).correlations.correlations
    assert c.sources == {"Denied": ("ka.user.name",), "Namespace deleted": ("ka.impuser.name",)}
    assert c.condition.bounds == (("gte", 2),)  # temporal: every rule, by default


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("correlation:\n  type: event_count\n", "needs a `title`", 1),
        ("title: t\ndetection: {x: 1}\n", "Sigma detection rule", 1),
        (BURST.replace("type: event_count", "type: burst"), "unknown correlation type 'burst'", 4),
        (BURST.replace("rules: [Denied]", "rules: [Nope]"), "'Nope' is neither a loaded Falco", 5),
        (BURST.replace("ka.user.name,", "ka.user.nam,"), "unknown field 'ka.user.nam'", 6),
        (BURST.replace("timespan: 10m", "timespan: 10 minutes"), "number and a unit", 7),
        (BURST.replace("timespan: 10m", "timespan: 32d"), "longer than 31 days", 7),
        (BURST.replace("{gte: 3}", "{gte: many}"), "needs a whole number", 8),
        (BURST.replace("{gte: 3}", "{gte: 1001}"), "over the limit of 1000", 8),
        (BURST.replace("{gte: 3}", "{above: 3}"), "unknown condition 'above'", 8),
        (BURST.replace("{gte: 3}", "{gte: 3, lt: 9, eq: 4}"), "one bound, or two", 8),
        (BURST.replace("  condition: {gte: 3}\n", ""), "event_count needs a `condition`", 1),
        (BURST.replace("level: high", "level: severe"), "unknown level 'severe'", 9),
        (BURST.replace("  timespan", "  window: 1h\n  timespan"), "unknown key 'window'", 7),
    ],
)
def test_problems_are_located(tmp_path: Path, text: str, message: str, line: int) -> None:
    error = refused(tmp_path, text)
    assert message in error.message
    assert (Path(error.file or "").name, error.line) == ("correlations.yaml", line)


def test_value_count_needs_its_field(tmp_path: Path) -> None:
    text = BURST.replace("event_count", "value_count")
    assert "value_count needs `field`" in refused(tmp_path, text).message
    ok = text.replace("{gte: 3}", "{field: ka.target.name, gte: 3}")
    (c,) = engine(tmp_path, ok).correlations.correlations
    assert c.value_sources == {"Denied": "ka.target.name"}


def test_chains_resolve_in_order_and_loops_are_refused(tmp_path: Path) -> None:
    chained = BURST + textwrap.dedent(
        """\
        ---
        title: Burst then delete
        correlation:
          type: temporal_ordered
          rules: [denied_burst, Namespace deleted]
          group-by: [ka.user.name]
          timespan: 1h
        """
    )
    loaded = engine(tmp_path, chained).correlations
    assert [c.title for c in loaded.correlations] == ["Denied burst", "Burst then delete"]
    assert loaded.quiet == {"denied_burst"}  # named by another, generate false: it only feeds
    assert loaded.silenced == {"Denied", "Namespace deleted"}
    wrong = chained.replace(
        "group-by: [ka.user.name]\n  timespan: 1h", "group-by: [ka.verb]\n  timespan: 1h"
    )
    assert "carries only its group-by fields" in refused(tmp_path, wrong).message
    loop = BURST.replace("rules: [Denied]", "rules: [Denied, other]") + textwrap.dedent(
        """\
        ---
        title: Other
        name: other
        correlation:
          type: event_count
          rules: [denied_burst]
          group-by: [ka.user.name]
          timespan: 1h
          condition: {gte: 2}
        """
    )
    loop = loop.replace("group-by: [ka.user.name, falconet.cluster]", "group-by: [ka.user.name]")
    assert "loop" in refused(tmp_path, loop).message


def test_a_file_holds_rules_or_correlations_not_both(tmp_path: Path) -> None:
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text(BASE + "---\n" + BURST)
    _, ruleset = load_rules([mixed])
    (error,) = ruleset.errors
    assert "either Falco rules" in error.message
    assert error.line == BASE.count("\n") + 2  # the first line of the mapping document


def test_validate_lists_silenced_rules(tmp_path: Path) -> None:
    warnings = engine(tmp_path, BURST).warnings
    assert any("'Denied'" in w and "raises no alerts of its own" in w for w in warnings)


def test_limits_bound_what_a_correlation_may_hold(tmp_path: Path) -> None:
    many = "rules: [" + ", ".join(["Denied"] * 40) + "]"
    error = refused(tmp_path, BURST.replace("rules: [Denied]", many))
    assert isinstance(error, RuleLimitError)


# -- what the engine does with counted and silenced rules ------------------------------------


def test_a_silenced_rule_emits_nothing_and_shadows_nothing(tmp_path: Path) -> None:
    # "Denied" comes first and matches a denied delete; silenced, it must not take the event's
    # one alert (first-match) from "Namespace deleted", and must still be counted.
    e = engine(tmp_path, BURST)
    alerts, matched = e.judge(event(1, code=403, verb="delete", resource="namespaces"))
    assert [a.rule for a in alerts] == ["Namespace deleted"]
    assert matched == ["Denied"]
    assert [a.rule for a in e.evaluate(event(2, code=403))] == []


def test_a_counted_rule_below_min_priority_is_still_counted(tmp_path: Path) -> None:
    e = engine(tmp_path, BURST.replace("  generate", "") + "", min_priority="warning")
    alerts, matched = e.judge(event(1, code=403))
    assert (alerts, matched) == ([], ["Denied"])


def test_generate_true_keeps_the_rule_alerts(tmp_path: Path) -> None:
    e = engine(tmp_path, BURST.replace("level: high", "level: high\ngenerate: true"))
    alerts, matched = e.judge(event(1, code=403))
    assert [a.rule for a in alerts] == ["Denied"] and matched == ["Denied"]


def test_first_match_still_counts_every_matching_rule(tmp_path: Path) -> None:
    # Two counted rules match one event: both count, whatever rule_matching says.
    text = (
        BURST
        + "---\n"
        + BURST.replace("Denied burst", "Deletes")
        .replace("denied_burst", "deletes")
        .replace("rules: [Denied]", "rules: [Any delete]")
        .replace("level: high", "generate: true")
    )
    e = engine(tmp_path, text)
    alerts, matched = e.judge(event(1, code=403, verb="delete", resource="namespaces"))
    assert sorted(matched) == ["Any delete", "Denied"]
    assert [a.rule for a in alerts] == ["Namespace deleted"]


def test_correlations_survive_the_load_cache(tmp_path: Path) -> None:
    paths = write(tmp_path, BURST)
    cache = tmp_path / "cache"
    first = Engine.from_paths(paths, code_cache=cache, hostname="h")
    cached = Engine.from_paths(paths, code_cache=cache, hostname="h")
    assert cached.correlations == first.correlations
    assert any(cache.glob("loaded-*"))


def test_the_burst_fires_once_through_the_correlator(tmp_path: Path) -> None:
    e = engine(tmp_path, BURST)
    correlator = Correlator.for_engine(e, MemoryStore())
    batch = correlator.batch()
    for n in range(6):
        ev = event(n)
        _, matched = e.judge(ev)
        batch.add(ev, _ctx("prod"), matched)
    (alert,) = batch.flush()
    fields = alert.output_fields
    assert (alert.rule, alert.priority) == ("Denied burst", "Error")
    assert (fields["ka.user.name"], fields["falconet.cluster"]) == ("mallory", "prod")
    # One batch: the window starting at the first match holds all six (one alert, not two).
    assert fields["falconet.correlation.count"] == 6
    assert fields["falconet.correlation.audit_ids"] == [f"id-{n}" for n in range(6)]
    assert alert.time == "2026-03-11T15:05:00.000000000Z"


def _ctx(cluster: str) -> Any:
    from falconet.context import EventContext

    return EventContext(cluster=cluster)
