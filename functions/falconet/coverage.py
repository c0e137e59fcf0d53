"""Which rules can fire on a cluster's logs: `falconet coverage SAMPLE...`.

A cluster's audit policy and its provider decide what the log carries: GKE logs no user groups,
a `Metadata`-level policy logs no request bodies, AKS cuts records at 16 KiB, a policy may drop
`ResponseStarted`. A rule that reads what the log never carries cannot fire there, and nobody
notices. Given a sample of a cluster's logs, this reports, for every loaded rule, how often it
matched (every rule evaluated, as with `rule_matching: all`) and which of the fields it reads the
sample never carried; and the facts about the sample that explain them (request bodies, response
bodies, stages, groups).

    report = measure(engine, events)          # events: (event, context) pairs, decoded
    print(report.render())
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from falconet import fields
from falconet.context import EventContext
from falconet.engine import Engine
from falconet.rules.checker import field_names

_STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")


@dataclass
class Report:
    events: int = 0
    matched: Counter[str] = field(default_factory=Counter)  # rule -> events it matched
    present: Counter[str] = field(default_factory=Counter)  # field -> events carrying it
    reads: dict[str, tuple[str, ...]] = field(default_factory=dict)  # rule -> fields it reads
    facts: Counter[str] = field(default_factory=Counter)  # what the sample carries

    def missing(self, rule: str) -> list[str]:
        """The fields `rule` reads that no event of the sample carried."""
        return [f for f in self.reads[rule] if f in self.present and not self.present[f]]

    def silent(self) -> list[tuple[str, list[str]]]:
        """Rules that matched nothing and read a field the sample never carried: the rules that
        cannot fire on logs like these (unless the field is only tested for absence)."""
        return [
            (rule, missing)
            for rule in self.reads
            if not self.matched[rule] and (missing := self.missing(rule))
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "facts": {k: self.facts[k] for k in sorted(self.facts)},
            "rules": [
                {"rule": rule, "matched": self.matched[rule], "missing_fields": self.missing(rule)}
                for rule in self.reads
            ],
        }

    def render(self) -> str:
        n = self.events
        lines = [f"{n} events in the sample"]
        for fact, label in (
            ("request_body", "carry a request body (level Request or RequestResponse)"),
            ("response_body", "carry a response body (level RequestResponse)"),
            ("user_groups", "name the user's groups"),
            ("source_ip", "carry a source address"),
            *((f"stage_{s}", f"are at stage {s}") for s in _STAGES),
        ):
            lines.append(f"  {self.facts[fact]:8d} {label}")
        silent = self.silent()
        lines.append("")
        lines.append(
            f"{len(silent)} of {len(self.reads)} rules matched nothing and read fields this "
            "sample never carries (they cannot fire on logs like these):"
        )
        for rule, missing in sorted(silent):
            lines.append(f"  {rule}: {', '.join(missing)}")
        if not self.facts["request_body"]:
            lines.append("")
            lines.append(
                "No event carries a request body: the audit policy logs these requests at level "
                "Metadata. Rules on pod specs, role bindings, exec commands and the like need "
                "level Request or RequestResponse for them (docs/inputs.md, audit policy)."
            )
        return "\n".join(lines)


def measure(engine: Engine, events: Iterable[tuple[Mapping[str, Any], EventContext]]) -> Report:
    """Evaluate every rule of `engine` (built with `rule_matching="all"`) on `events` and note
    which fields each event carries."""
    report = Report()
    env = fields.BindEnv()
    readers: dict[str, Any] = {}
    memo: dict[int, Any] = {}
    for rule in engine.active_rules():
        used = field_names(rule.condition, memo)  # the condition's: outputs do not decide firing
        report.reads[rule.name] = tuple(sorted(used))
        for name in used:
            definition = fields.lookup(name)
            if definition is not None and definition.arg == "none" and name not in readers:
                readers[name] = definition.raw_getter(None, env)
    for name in readers:
        report.present[name] = 0
    for event, ctx in events:
        report.events += 1
        alerts, matched = engine.judge(event, ctx)
        for name in {a.rule for a in alerts} | set(matched):
            report.matched[name] += 1
        for name, read in readers.items():
            value = read(event, ctx)
            if value is not None and value != []:
                report.present[name] += 1
        _facts(report.facts, event)
    return report


def _facts(facts: Counter[str], event: Mapping[str, Any]) -> None:
    if isinstance(event.get("requestObject"), dict):
        facts["request_body"] += 1
    if isinstance(event.get("responseObject"), dict):
        facts["response_body"] += 1
    user = event.get("user")
    if isinstance(user, dict) and user.get("groups"):
        facts["user_groups"] += 1
    if event.get("sourceIPs"):
        facts["source_ip"] += 1
    stage = event.get("stage")
    if stage in _STAGES:
        facts[f"stage_{stage}"] += 1
