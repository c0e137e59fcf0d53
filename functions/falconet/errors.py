"""The error tree of falconet: one root, one branch per room.

Everything a user can get wrong (a rules file, an event, a request, a setting) raises a subclass of
`FalconetError` whose message names the place and, where one exists, the fix.
"""

from __future__ import annotations

from typing import Any


class FalconetError(Exception):
    """Root of every error falconet raises on purpose."""


class RuleError(FalconetError):
    """A rules file could not be loaded or compiled.

    `str(error)` renders like a compiler diagnostic::

        rules/k8s.yaml:42:17: rule 'Create Privileged Pod': unknown field 'ka.req.pod.privileged'
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        item: str | None = None,
        kind: str | None = None,
        excerpt: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.item = item
        self.kind = kind
        self.excerpt = excerpt
        super().__init__(self.render())

    @property
    def location(self) -> str:
        parts = [self.file or "<rules>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def render(self, severity: str = "error", *, with_excerpt: bool = True) -> str:
        who = f"{self.kind} '{self.item}': " if self.kind and self.item is not None else ""
        text = f"{self.location}: {severity}: {who}{self.message}"
        if with_excerpt and self.excerpt:
            text += "\n" + self.excerpt
        return text


class RuleSyntaxError(RuleError):
    """A condition, output or YAML document does not parse."""


class UnknownFieldError(RuleError):
    """A condition or output names a field the registry does not know."""


class FieldArgumentError(RuleError):
    """A field got an argument it does not take, lacks a required one, or got a bad one."""


class OperatorError(RuleError):
    """An operator is not allowed on the field's type (e.g. `contains` on a list field)."""


class UndefinedMacroError(RuleError):
    """A condition references a macro that is not defined (or not visible)."""


class MacroLoopError(RuleError):
    """Macros reference each other in a loop."""


class RuleDefinitionError(RuleError):
    """A list, macro or rule item is malformed (missing key, bad priority, bad append...)."""


class RequirementError(RuleError):
    """`required_engine_version` / `required_plugin_versions` cannot be satisfied."""


class RuleLimitError(RuleError):
    """A rules file goes past one of falconet's documented limits (the size of a file, of a YAML
    alias expansion or of a condition, the depth of a condition, an output field width): limits
    that keep a cold start bounded in time and memory whatever a rules file holds."""


class DecodeError(FalconetError):
    """A whole input could not be decoded (per-record problems are counted, never raised)."""


class ConfigError(FalconetError):
    """A configuration value (environment variable or CLI option) is invalid."""


class SinkError(FalconetError):
    """A sink could not deliver alerts after its retries.

    `result`: the counters of the pipeline call it failed (`falconet.pipeline.Result`), set by the
    pipeline, for the entry point's log line and answer; None when raised outside a pipeline."""

    result: Any = None


class StateError(FalconetError):
    """The state store (correlations, first-seen) could not be read or written after its retries.

    Fails the invocation, as a sink failure does: the trigger retries it, and the audit events it
    re-delivers are counted once (state is keyed by auditID where counts matter). `result`: the
    counters of the pipeline call it failed, as for SinkError."""

    result: Any = None


class StorageError(FalconetError):
    """An object or file could not be listed or read."""


class ObjectGone(StorageError):
    """The object a trigger names no longer exists (deleted, or its bucket is gone).

    Entry points acknowledge it with this reason instead of failing: a retry cannot succeed."""

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(f"{url} no longer exists")
