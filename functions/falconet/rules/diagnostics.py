"""Rule problems with their place: the errors and warnings every loading stage reports.

A `Diagnostic` is a `RuleError` with a severity; it renders as `FILE:LINE:COL: severity: message`,
with the condition and a caret line under the place when there is one. The stages never stop at
the first problem: they record each one, and `falconet validate` prints them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from falconet import errors as errs

if TYPE_CHECKING:
    from falconet.rules.model import Position


class Diagnostic:
    """An error or warning with its place: rendered as `FILE:LINE:COL: severity: message`."""

    __slots__ = ("error", "severity")

    def __init__(self, error: errs.RuleError, severity: str = "error") -> None:
        self.error = error
        self.severity = severity

    def __str__(self) -> str:
        return self.error.render(self.severity)

    def __repr__(self) -> str:
        return f"Diagnostic(error={self.error!r}, severity={self.severity!r})"

    def __eq__(self, other: Any) -> bool:
        if other.__class__ is Diagnostic:
            return (self.error, self.severity) == (other.error, other.severity)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaces


def caret(text: str, offset: int) -> str:
    """`text` with a caret line under `offset` (the lexer, imported only when there is an error)."""
    from falconet.rules import lexer

    return lexer.caret(text, offset)


def located(
    message: str,
    position: Position | None,
    *,
    cls: type[errs.RuleError] = errs.RuleDefinitionError,
    kind: str | None = None,
    item: str | None = None,
    excerpt: str | None = None,
) -> errs.RuleError:
    """A rule error of class `cls` placed at `position` (a `RuleDefinitionError` by default)."""
    return cls(
        message,
        file=position.file if position else None,
        line=position.line if position else None,
        column=position.column if position else None,
        kind=kind,
        item=item,
        excerpt=excerpt,
    )


def in_line_order(diagnostics: list[Diagnostic], files: list[str]) -> list[Diagnostic]:
    """`diagnostics` file by file (in `files`' order, then any other file by first appearance),
    by line and column within a file: the stages report in their own order (a bad priority when
    the rule is collected, its condition's problems when it is compiled), a reader wants the
    file's. Problems without a line stay first in their file, in their order."""
    rank = {name: i for i, name in enumerate(files)}
    for d in diagnostics:
        rank.setdefault(d.error.file or "", len(rank))

    def key(d: Diagnostic) -> tuple[int, int, int]:
        e = d.error
        return (rank[e.file or ""], e.line or 0, e.column or 0)

    return sorted(diagnostics, key=key)
