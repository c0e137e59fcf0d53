"""What the loader produces: compiled-ready rules with their resolved condition trees.

Plain slotted classes rather than dataclasses: see `Position`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

    from falconet.rules import ast

_set = object.__setattr__  # how Position's constructor writes its slots past `__setattr__`

SOURCE = "k8s_audit"  # the one Falco event source falconet evaluates

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


class Position:
    """Where an item or a piece of condition text came from, for error messages.

    Immutable, with value equality and hashing, like the frozen dataclass it replaces (written by
    hand: a dataclass costs ~0.5 ms of `exec` at each import, see `rules/ast.py`).
    """

    __slots__ = ("column", "file", "line")

    file: str
    line: int  # 1-based
    column: int  # 1-based

    def __init__(self, file: str, line: int, column: int) -> None:
        _set(self, "file", file)
        _set(self, "line", line)
        _set(self, "column", column)

    def __eq__(self, other: Any) -> bool:
        if other.__class__ is Position:
            return (self.file, self.line, self.column) == (other.file, other.line, other.column)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.file, self.line, self.column))

    def __repr__(self) -> str:
        return f"Position(file={self.file!r}, line={self.line!r}, column={self.column!r})"

    def __reduce__(self) -> tuple[Any, ...]:  # copy and pickle, past `__setattr__`
        return (Position, (self.file, self.line, self.column))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field '{name}': Position is frozen")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field '{name}': Position is frozen")


class Rule:
    """A loaded rule: what the engine compiles and the alerts describe."""

    __slots__ = (
        "condition",
        "condition_text",
        "desc",
        "enabled",
        "fields_used",
        "name",
        "output",
        "output_parts",
        "order",
        "priority",
        "defined_at",
        "tags",
    )

    def __init__(
        self,
        name: str,
        order: int,  # first-definition order: evaluation order under rule_matching
        condition_text: str,  # after exceptions and list substitution
        condition: ast.Expr,  # macros resolved
        output: str,
        desc: str,
        priority: int,
        enabled: bool,
        tags: tuple[str, ...],
        defined_at: Position,
        fields_used: frozenset[str] = frozenset(),
        output_parts: tuple[Any, ...] = (),  # the output parsed by rules.output.parse_output
    ) -> None:
        self.name = name
        self.order = order
        self.condition_text = condition_text
        self.condition = condition
        self.output = output
        self.desc = desc
        self.priority = priority
        self.enabled = enabled
        self.tags = tags
        self.defined_at = defined_at
        self.fields_used = fields_used
        self.output_parts = output_parts

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _RULE_FIELDS)

    def __eq__(self, other: Any) -> bool:
        if other.__class__ is Rule:
            return self._fields() == other._fields()
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaces

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name in _RULE_FIELDS)
        return f"Rule({values})"

    @property
    def priority_name(self) -> str:
        return PRIORITIES[self.priority]


_RULE_FIELDS = (
    "name",
    "order",
    "condition_text",
    "condition",
    "output",
    "desc",
    "priority",
    "enabled",
    "tags",
    "defined_at",
    "fields_used",
    "output_parts",
)
