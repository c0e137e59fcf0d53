"""The parts of Falco's configuration (`falco.yaml`) that adapt a shared ruleset without editing it.

    config = load_falco_config("falco.yaml", os.environ)   # FALCONET_FALCO_CONFIG, --falco-config
    engine = Engine.from_paths(paths, falco_config=config)

Read from a YAML file with Falco's keys; every other key of a real `falco.yaml` is ignored, so the
file Falco runs with can be given as it is:

- `rules`: enable and disable rules by name (`*` matches any text) or by tag, applied in order
  after loading (Falco 0.38+): `- disable: {rule: "*"}` then `- enable: {tag: k8s}` runs only the
  rules tagged `k8s`. A command that matches no rule is not an error (as in Falco).
- `append_output`: entries applied in order to every rule they match (`match`: `source`, `rule`,
  `tags`, all optional; `tags` must all be the rule's). `extra_output` is appended to the rule's
  output after a space (its fields join `output_fields`, as the rule's own do); `extra_fields`
  adds `output_fields` entries only: a field name gives the field's value, `{key: template}` the
  template's text. A later entry's key replaces an earlier one's; a rule's own output field keeps
  its key.
- `static_fields` (falconet): `{key: value}` added to every alert's `output_fields`.

`${VAR}` in `extra_output`, `extra_fields` and `static_fields` is replaced by the environment
variable's value, as Falco expands its configuration, except a variable that holds a credential or
a falconet setting (`FALCONET_*`, and names with TOKEN, SECRET, KEY, PASSWORD, CREDENTIAL,
CONNECTION, AUTH, SESSION or IDENTITY_HEADER): a falco.yaml written by others would otherwise copy
the function's credentials (AWS_SESSION_TOKEN, ...) into every alert and so to every sink; it is
refused by name. Everything is checked when the engine is built: a bad entry is a `ConfigError`
naming the file and the entry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from falconet.errors import ConfigError
from falconet.rules.model import Rule

SOURCE = "k8s_audit"
MAX_CONFIG_BYTES = 1 << 20  # Falco's own falco.yaml, every comment included, is ~80 KiB
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Never expanded (module docstring): credentials by their usual names, falconet settings.
_CREDENTIAL = re.compile(
    r"\AFALCONET_|TOKEN|SECRET|KEY|PASSW|CREDENTIAL|CONNECTION|AUTH|SESSION|IDENTITY_HEADER", re.I
)


@dataclass(frozen=True, slots=True)
class Selection:
    """One `rules:` command: enable or disable the rules whose name matches a glob or that
    carry a tag."""

    enable: bool
    rule: str | None = None  # a name glob (`*` matches any text)
    tag: str | None = None

    def matches(self, rule: Rule) -> bool:
        if self.tag is not None:
            return self.tag in rule.tags
        assert self.rule is not None
        return glob_match(self.rule, rule.name)


@dataclass(frozen=True, slots=True)
class AppendOutput:
    """One `append_output` entry."""

    source: str | None = None
    rule: str | None = None
    tags: frozenset[str] = frozenset()
    extra_output: str | None = None
    # (key, value, is_field): a field's value (`ka.verb`), or a template's text.
    extra_fields: tuple[tuple[str, str, bool], ...] = ()

    def matches(self, rule: Rule) -> bool:
        return (
            (self.source is None or self.source == SOURCE)
            and (self.rule is None or self.rule == rule.name)
            and self.tags <= set(rule.tags)
        )


@dataclass(frozen=True, slots=True)
class FalcoConfig:
    selection: tuple[Selection, ...] = ()
    append_output: tuple[AppendOutput, ...] = ()
    static_fields: tuple[tuple[str, str], ...] = ()
    origin: str = "falco config"  # where it was read, for error messages
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def select(self, rules: Iterable[Rule]) -> list[Rule]:
        """The rules with the `rules:` commands applied in order (copies where changed)."""
        out = []
        for rule in rules:
            enabled = rule.enabled
            for command in self.selection:
                if command.matches(rule):
                    enabled = command.enable
            out.append(rule if enabled == rule.enabled else replace_rule(rule, enabled=enabled))
        return out

    def appended(self, rule: Rule) -> tuple[str, dict[str, tuple[str, bool]]]:
        """The rule's output with every matching `extra_output` appended, and the extra
        `output_fields` of the matching entries (key -> (value or template, is a field))."""
        output = rule.output
        extra: dict[str, tuple[str, bool]] = {}
        for entry in self.append_output:
            if not entry.matches(rule):
                continue
            if entry.extra_output:
                output = f"{output} {entry.extra_output}"
            for key, value, is_field in entry.extra_fields:
                extra[key] = (value, is_field)
        return output, extra


def replace_rule(rule: Rule, **changes: Any) -> Rule:
    """A copy of `rule` with some attributes changed (loaded rules are shared: never mutated)."""
    from falconet.rules.model import _RULE_FIELDS

    return Rule(*(changes.get(name, getattr(rule, name)) for name in _RULE_FIELDS))


def glob_match(pattern: str, name: str) -> bool:
    """Whether `name` matches `pattern`, where `*` matches any text (nothing else is special).
    Part by part, leftmost first, which is exact for `*` alone and linear in the name for each
    part (a regex of `.*`s backtracked for hours on `*a*a*...*b` against a long name)."""
    if "*" not in pattern:
        return name == pattern
    first, *middle, last = pattern.split("*")
    if len(name) < len(first) + len(last):
        return False
    if not (name.startswith(first) and name.endswith(last)):
        return False
    at, end = len(first), len(name) - len(last)
    for part in middle:
        found = name.find(part, at, end)
        if found < 0:
            return False
        at = found + len(part)
    return True


def load_falco_config(path: str | Path, env: Mapping[str, str]) -> FalcoConfig:
    """Read a falco.yaml-style file, bounded as a rules file is (its size, what YAML aliases may
    add, its nesting). Raises ConfigError naming the file."""
    from falconet.errors import RuleError
    from falconet.rules.reader import read_documents

    where = str(path)
    try:
        with Path(path).open("rb") as stream:
            data = stream.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the Falco configuration: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{where}: the Falco configuration is over {MAX_CONFIG_BYTES} bytes")
    try:
        documents = read_documents(data.decode("utf-8", "replace"), where)
        document = documents[0].plain() if documents else None
    except RuleError as exc:
        raise ConfigError(str(exc).replace("error: ", "", 1)) from None
    return parse_falco_config(document, where, env)


def parse_falco_config(document: Any, where: str, env: Mapping[str, str]) -> FalcoConfig:
    """The configuration from a parsed falco.yaml document. Raises ConfigError."""
    if document is None:
        return FalcoConfig(origin=where)
    if not isinstance(document, dict):
        raise ConfigError(f"{where}: a Falco configuration is a mapping of keys")
    return FalcoConfig(
        selection=tuple(_selection(document.get("rules"), where)),
        append_output=tuple(_append_output(document.get("append_output"), where, env)),
        static_fields=tuple(_static_fields(document.get("static_fields"), where, env)),
        origin=where,
    )


def _items(value: Any, where: str, key: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{where}: '{key}' must be a list")
    return value


def _selection(value: Any, where: str) -> Iterable[Selection]:
    for n, item in enumerate(_items(value, where, "rules"), 1):
        at = f"{where}: rules entry {n}"
        if not isinstance(item, dict) or len(item) != 1:
            raise ConfigError(f"{at}: must be one of 'enable:' or 'disable:'")
        ((action, target),) = item.items()
        if action not in ("enable", "disable"):
            raise ConfigError(f"{at}: '{action}' is not 'enable' or 'disable'")
        if not isinstance(target, dict) or len(target) != 1:
            raise ConfigError(f"{at}: '{action}' takes one of 'rule: NAME' or 'tag: TAG'")
        ((kind, name),) = target.items()
        if kind not in ("rule", "tag") or not isinstance(name, str) or not name:
            raise ConfigError(f"{at}: '{action}' takes one of 'rule: NAME' or 'tag: TAG'")
        enable = action == "enable"
        yield Selection(enable, rule=name) if kind == "rule" else Selection(enable, tag=name)


def _append_output(value: Any, where: str, env: Mapping[str, str]) -> Iterable[AppendOutput]:
    for n, item in enumerate(_items(value, where, "append_output"), 1):
        at = f"{where}: append_output entry {n}"
        if not isinstance(item, dict):
            raise ConfigError(f"{at}: must be a mapping")
        unknown = set(item) - {"match", "extra_output", "extra_fields", "suggested_output"}
        if unknown:
            raise ConfigError(f"{at}: unknown key '{sorted(unknown)[0]}'")
        source, rule, tags = _match(item.get("match") or {}, at)
        extra_output = item.get("extra_output")
        if extra_output is not None:
            if not isinstance(extra_output, str):
                raise ConfigError(f"{at}: 'extra_output' must be a string")
            extra_output = _template(extra_output, env, f"{at}: extra_output")
        yield AppendOutput(
            source=source,
            rule=rule,
            tags=tags,
            extra_output=extra_output,
            extra_fields=tuple(_extra_fields(item.get("extra_fields"), at, env)),
        )


def _match(match: Any, at: str) -> tuple[str | None, str | None, frozenset[str]]:
    if not isinstance(match, dict) or set(match) - {"source", "rule", "tags"}:
        raise ConfigError(f"{at}: 'match' takes 'source', 'rule' and 'tags'")
    tags = match.get("tags") or []
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ConfigError(f"{at}: 'match.tags' must be a list of tags")
    for key in ("source", "rule"):
        if match.get(key) is not None and not isinstance(match[key], str):
            raise ConfigError(f"{at}: 'match.{key}' must be a string")
    return match.get("source"), match.get("rule"), frozenset(tags)


def _extra_fields(value: Any, at: str, env: Mapping[str, str]) -> Iterable[tuple[str, str, bool]]:
    for spec in _items(value, at, "extra_fields"):
        if isinstance(spec, str):
            yield spec, _field_name(spec, at), True
        elif isinstance(spec, dict) and len(spec) == 1:
            ((key, template),) = spec.items()
            if not isinstance(key, str) or not isinstance(template, str | int | float):
                raise ConfigError(f"{at}: an extra field is 'KEY: TEMPLATE'")
            yield key, _template(str(template), env, f"{at}: extra field '{key}'"), False
        else:
            raise ConfigError(f"{at}: an extra field is a field name or 'KEY: TEMPLATE'")


def _template(text: str, env: Mapping[str, str], at: str) -> str:
    """An output template with `${VAR}` expanded, checked as a rule's output is."""
    from falconet.rules.output import OutputFormatError, parse_output

    text = _expand(text, env, at)
    try:
        parse_output(text)
    except OutputFormatError as exc:
        raise ConfigError(f"{at}: {exc.message}") from None
    return text


def _field_name(spec: str, at: str) -> str:
    from falconet.rules.output import field_problem

    problem = field_problem(spec)
    if problem is not None:
        raise ConfigError(f"{at}: {problem}")
    return spec


def _static_fields(value: Any, where: str, env: Mapping[str, str]) -> Iterable[tuple[str, str]]:
    if value is None:
        return
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: 'static_fields' must be a mapping of keys to values")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str | int | float | bool):
            raise ConfigError(f"{where}: static field '{key}' must be a key and a scalar value")
        if isinstance(item, bool):
            item = "true" if item else "false"  # noqa: PLW2901 - YAML's true, as written
        yield key, _expand(str(item), env, f"{where}: static field '{key}'")


def _expand(text: str, env: Mapping[str, str], at: str) -> str:
    for found in _ENV.finditer(text):
        if _CREDENTIAL.search(found.group(1)):
            raise ConfigError(
                f"{at}: ${{{found.group(1)}}} is not expanded: it names a credential or a "
                "falconet setting, which alerts must not carry"
            )
    return _ENV.sub(lambda m: env.get(m.group(1), ""), text)
