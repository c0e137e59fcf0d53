"""What the loader produces: compiled-ready rules with their resolved condition trees."""

from __future__ import annotations

from dataclasses import dataclass, field

from falconet.rules import ast

PRIORITIES: tuple[str, ...] = (
    "Emergency",
    "Alert",
    "Critical",
    "Error",
    "Warning",
    "Notice",
    "Informational",
    "Debug",
)
_PRIORITY_BY_NAME = {p.lower(): i for i, p in enumerate(PRIORITIES)}
_PRIORITY_BY_NAME["info"] = PRIORITIES.index("Informational")


def parse_priority(text: str) -> int | None:
    """Falco's priority number (0 = Emergency ... 7 = Debug) for a case-insensitive name."""
    return _PRIORITY_BY_NAME.get(text.strip().lower())


@dataclass(frozen=True, slots=True)
class Source:
    """Where an item or a piece of condition text came from, for error messages."""

    file: str
    line: int  # 1-based
    column: int  # 1-based


@dataclass(slots=True)
class Rule:
    name: str
    position: int  # first-definition order: evaluation order under rule_matching
    condition_text: str  # after exceptions and list substitution
    condition: ast.Expr  # macros resolved
    output: str
    desc: str
    priority: int
    enabled: bool
    tags: tuple[str, ...]
    source: Source
    fields_used: frozenset[str] = field(default_factory=frozenset)

    @property
    def priority_name(self) -> str:
        return PRIORITIES[self.priority]
