"""Correlation rules: Sigma's correlation format over Falco rules, read and checked at load.

A correlation is a YAML mapping document in any rules path (a file holds either Falco rules or
correlation documents; see `falconet.rules.documents`). The format is Sigma's correlation rules
(specification v2):

    title: Burst of denied requests from one identity
    name: denied_burst                   # optional: how other correlations refer to this one
    correlation:
      type: event_count                  # event_count | value_count | temporal | temporal_ordered
      rules: [K8s Request Denied]        # Falco rule names, or other correlations' names / ids
      group-by: [ka.user.name, falconet.cluster]
      timespan: 10m                      # Ns, Nm, Nh, Nd
      condition: {gte: 20}               # gt gte lt lte eq (two for a range); value_count: field
      aliases: {...}                     # group name -> {rule: field}, per referenced rule
      generate: false                    # keep the referenced rules' own alerts (default: no)
    level: high                          # informational low medium high critical
    tags: [...]

plus a falconet extension, `type: first_seen` (`rules`, `group-by`: the key whose first occurrence
is reported; `timespan`: the history, a key unseen that long is new again; `learning`: no alerts
for that long from a cluster's first event). Field names are falconet's (`falconet fields`).

This module is the model (`Correlation`, `Condition`, `CorrelationSet`) and the limits; `loader`
reads and checks the documents.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from falconet.rules.model import Position

TYPES = ("event_count", "value_count", "temporal", "temporal_ordered", "first_seen")
WINDOWED = ("event_count", "value_count", "temporal", "temporal_ordered")
# Sigma levels -> Falco priorities.
LEVELS = {
    "informational": "Informational",
    "low": "Notice",
    "medium": "Warning",
    "high": "Error",
    "critical": "Critical",
}
DEFAULT_PRIORITY = "Warning"
OPERATORS = ("gt", "gte", "lt", "lte", "eq")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_TIMESPAN = re.compile(r"([0-9]{1,7})([smhd])")

# Limits (docs/correlations.md): they bound what one group's state may hold in the store.
MAX_THRESHOLD = 1000  # a count condition's value: state keeps up to this many ids per bucket
MAX_TIMESPAN_S = 31 * 86400  # windowed types
MAX_HISTORY_S = 400 * 86400  # first_seen history and learning
MAX_RULES = 32  # rules one correlation names (temporal keeps a bit per rule)
MAX_GROUP_BY = 8
MAX_CORRELATIONS = 1000
MAX_CHAIN = 8  # correlations on correlations, levels deep


@dataclass(frozen=True, slots=True)
class Condition:
    """A count condition: every bound must hold (`gt: 100, lte: 200` is a range)."""

    bounds: tuple[tuple[str, int], ...]

    def met(self, count: int) -> bool:
        for op, value in self.bounds:
            if op == "gt" and not count > value:
                return False
            if op == "gte" and not count >= value:
                return False
            if op == "lt" and not count < value:
                return False
            if op == "lte" and not count <= value:
                return False
            if op == "eq" and count != value:
                return False
        return True

    @property
    def at_once(self) -> bool:
        """True when the condition has no upper bound: it fires as soon as it is met. Otherwise
        it is decided when its window closes."""
        return all(op in ("gt", "gte") for op, _ in self.bounds)

    @property
    def cap(self) -> int:
        """How far counting must go to decide the condition: its largest value plus one."""
        return max(value for _, value in self.bounds) + 1

    def __str__(self) -> str:
        return ", ".join(f"{op} {value}" for op, value in self.bounds)


@dataclass(frozen=True, slots=True)
class Correlation:
    """One correlation, checked. `sources[rule]` is the field each group reads in the matches of
    `rule` (aliases resolved), `value_sources[rule]` the field value_count counts."""

    title: str
    type: str
    rules: tuple[str, ...]
    group_by: tuple[str, ...]
    sources: Mapping[str, tuple[str, ...]]
    timespan: int  # seconds
    condition: Condition
    value_field: str | None = None
    value_sources: Mapping[str, str] = field(default_factory=dict)
    name: str | None = None
    id: str | None = None
    priority: str = DEFAULT_PRIORITY
    generate: bool = False
    tags: tuple[str, ...] = ()
    description: str = ""
    learning: int = 0  # seconds (first_seen)
    position: Position | None = None
    key: str = ""  # the state's key: a hash of everything that shapes the state

    @property
    def label(self) -> str:
        """What alerts and logs call it: its name, else its title."""
        return self.name or self.title


@dataclass(frozen=True)
class CorrelationSet:
    """Every loaded correlation, in dependency order (a correlation after those it names)."""

    correlations: tuple[Correlation, ...] = ()
    counted: frozenset[str] = frozenset()  # Falco rules some correlation counts
    silenced: frozenset[str] = frozenset()  # Falco rules whose own alerts are not emitted
    quiet: frozenset[str] = frozenset()  # correlations (labels) whose alerts are not emitted

    def __bool__(self) -> bool:
        return bool(self.correlations)

    def __len__(self) -> int:
        return len(self.correlations)


def parse_timespan(text: str) -> int | None:
    """Seconds of a Sigma timespan (`90m`, `1h`, `7d`), or None."""
    m = _TIMESPAN.fullmatch(text.strip())
    return int(m.group(1)) * _UNITS[m.group(2)] if m else None
