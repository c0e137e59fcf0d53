"""Alert outputs as the engine builds them: what each rule's alert prints and gives in
`output_fields`, from the rule's output, falconet's extra fields and falco.yaml's
`append_output` / `static_fields` (`falconet.rules.falcoconfig`).

Each value an alert shows is a `FieldSpec` (`falconet.alerts`): a field read once per alert. The
specs follow Falco's rendering: a `%field` token is printed and also given in `output_fields`,
except a transformer token (`%len(x)`: printed only) and the time texts (`%evt.datetime`: printed
as text, given as the event time in nanoseconds).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from falconet import fields
from falconet.alerts import AlertFactory, FieldSpec, render_value
from falconet.context import EventContext
from falconet.errors import ConfigError
from falconet.rules.falcoconfig import FalcoConfig, replace_rule
from falconet.rules.model import Rule
from falconet.rules.output import FieldToken, OutputFormatError, parse_output
from falconet.rules.parser import parse_operand
from falconet.rules.reference import ReferenceEvaluator


def extra_spec(spec: str, env: fields.BindEnv) -> FieldSpec:
    try:
        parts = parse_output("%" + spec)
    except OutputFormatError as exc:  # a bad argument or width
        raise ConfigError(f"extra field '{spec}': {exc.message}") from None
    token = parts[0] if len(parts) == 1 else None
    if not isinstance(token, FieldToken) or token.expr is not None:
        raise ConfigError(f"extra field '{spec}' is not a field name")
    definition = fields.lookup(token.name)
    assert definition is not None
    try:
        definition.bind(token.arg, env)  # validates the argument
    except fields.ArgumentError as exc:
        raise ConfigError(f"extra field '{spec}': {exc}") from None
    return FieldSpec(
        token.key,
        definition.raw_getter(token.arg, env),
        definition.gated,
        optional=True,
        inline=definition.inline_read(token.arg),
    )


def factory(
    rule: Rule, extras: list[FieldSpec], hostname: str, iso: bool, env: fields.BindEnv
) -> AlertFactory:
    parts: list[str | tuple[str, int | None]] = []
    specs: dict[str, FieldSpec] = {}
    time_key = "evt.time.iso8601" if iso else "evt.time"
    for part in rule.output_parts or parse_output(rule.output):
        if isinstance(part, str):
            parts.append(part)
            continue
        text = _text_key(part.key)
        if part.key not in specs and text not in specs:
            specs.update(_output_specs(part, env, time_key))
        parts.append((text if text in specs else part.key, part.width))
    return AlertFactory(
        rule.name,
        rule.priority_name,
        rule.tags,
        parts,
        list(specs.values()),
        extras,
        hostname=hostname,
        iso_prefix=iso,
    )


def _text_key(key: str) -> str:
    """The spec key of a value printed in the output line only (never an `output_fields` key)."""
    return "\0text " + key


def _output_specs(part: FieldToken, env: fields.BindEnv, time_key: str) -> dict[str, FieldSpec]:
    """The specs of one output token, by key, as Falco renders it: the value printed in the
    output line is also the `output_fields` value, except for a transformer (`%len(x)`: printed
    only) and the time texts (`%evt.datetime`: printed as text, given as the event time in
    nanoseconds; the alert's own time key already holds it)."""
    definition = fields.lookup(part.name)
    assert definition is not None  # checked by the loader
    if part.expr is not None:
        operand, _ = parse_operand(part.expr)
        reference = ReferenceEvaluator(env)

        def transformed(ev: Mapping[str, Any], ctx: EventContext) -> Any:
            return reference.operand(operand, ev, ctx)

        key = _text_key(part.key)
        return {key: FieldSpec(key, transformed, definition.gated, listed=False)}
    spec = FieldSpec(
        part.key,
        definition.raw_getter(part.arg, env),
        definition.gated,
        inline=definition.inline_read(part.arg),
    )
    if part.name not in fields.TIME_TEXT_FIELDS:
        return {part.key: spec}
    text = {_text_key(part.key): replace(spec, key=_text_key(part.key), listed=False)}
    if part.key == time_key:
        return text
    rawtime = fields.lookup("evt.rawtime")
    assert rawtime is not None
    return {**text, part.key: FieldSpec(part.key, rawtime.raw_getter(None, env), gated=False)}


def appended(
    rule: Rule, config: FalcoConfig | None, extras: list[FieldSpec], env: fields.BindEnv
) -> tuple[Rule, list[FieldSpec]]:
    """The rule as its alerts render it with falco.yaml's `append_output` and `static_fields`:
    its output with the matching `extra_output` appended, and the extra `output_fields` (these
    replace falconet's default extra fields of the same key)."""
    if config is None or not (config.append_output or config.static_fields):
        return rule, extras
    output, added = config.appended(rule)
    if output != rule.output:
        try:
            parts = tuple(parse_output(output))
        except OutputFormatError as exc:  # each part parsed alone at load; a width, together
            raise ConfigError(
                f"{config.origin}: append_output, rule '{rule.name}': {exc}"
            ) from None
        used = rule.fields_used | {p.name for p in parts if isinstance(p, FieldToken)}
        rule = replace_rule(rule, output=output, output_parts=parts, fields_used=used)
    specs = {key: _constant_spec(key, value) for key, value in config.static_fields}
    for key, (value, is_field) in added.items():
        specs[key] = _field_spec(value, env) if is_field else _template_spec(key, value, env)
    return rule, [e for e in extras if e.key not in specs] + list(specs.values())


def _constant_spec(key: str, value: str) -> FieldSpec:
    return FieldSpec(key, lambda _ev, _ctx: value, gated=False)


def _field_spec(name: str, env: fields.BindEnv) -> FieldSpec:
    """`extra_fields: [ka.verb]`: the field's value, under its own name (checked at load)."""
    (token,) = parse_output("%" + name)
    assert isinstance(token, FieldToken)
    definition = fields.lookup(token.name)
    assert definition is not None
    return FieldSpec(
        token.key,
        definition.raw_getter(token.arg, env),
        definition.gated,
        inline=definition.inline_read(token.arg),
    )


def _template_spec(key: str, template: str, env: fields.BindEnv) -> FieldSpec:
    """`extra_fields: [{key: "text %field"}]`: the template's text, as an output renders it."""
    pieces: list[str | tuple[fields.Getter, bool, int | None]] = []
    for part in parse_output(template):
        if isinstance(part, str):
            pieces.append(part)
            continue
        spec = next(iter(_output_specs(part, env, "").values()))
        pieces.append((spec.getter, spec.gated, part.width))

    def render(ev: Mapping[str, Any], ctx: EventContext) -> str:
        out = []
        for piece in pieces:
            if isinstance(piece, str):
                out.append(piece)
                continue
            getter, gated, width = piece
            value = None if gated and "auditID" not in ev else getter(ev, ctx)
            text = value if type(value) is str else render_value(value)
            out.append(text if width is None else f"{text:<{width}.{width}}")
        return "".join(out)

    return FieldSpec(key, render, gated=False)
