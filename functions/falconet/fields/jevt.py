"""The json plugin's fields, `jevt.*` and its alias `json.*`: any value of the event by JSON
pointer, the whole event, its time. Not gated on `auditID` (the json plugin reads any JSON)."""

from __future__ import annotations

from typing import Any

from falconet.context import EventContext
from falconet.fields.registry import (
    ARG_KEY,
    MISSING,
    Event,
    FieldDef,
    Getter,
    InlineRead,
    register,
    stringify,
)
from falconet.timestamps import parse_rfc3339_ns


def _pointer_parts(arg: str | None) -> tuple[str, ...]:
    text = arg or ""
    if text.startswith("/"):
        text = text[1:]
    if not text:
        return ()
    return tuple(p.replace("~1", "/").replace("~0", "~") for p in text.split("/"))


def _pointer_steps(arg: str | None) -> tuple[tuple[str, int | None], ...]:
    # A part of ASCII digits may also index an array; one of 19 digits or more indexes nothing
    # (and int() refuses texts over 4,300 digits): it stays a key only.
    return tuple(
        (p, int(p) if p.isdigit() and p.isascii() and len(p) < 19 else None)
        for p in _pointer_parts(arg)
    )


def _pointer_read(arg: str | None) -> InlineRead | None:
    """The in-place read of `jevt.value[arg]` (the empty pointer, the whole event, is the
    getter's job)."""
    steps = _pointer_steps(arg)
    return InlineRead(steps) if steps else None


def _json_value(arg: str | None) -> Getter:
    # Each step is (key, index): a decimal part may index an array (fastjson's Get); computed
    # once here rather than per event.
    steps = _pointer_steps(arg)

    def get(ev: Event, _ctx: EventContext) -> str | None:
        obj: Any = ev
        for key, index in steps:
            kind = type(obj)
            if kind is dict:
                obj = obj.get(key, MISSING)
                if obj is MISSING:
                    return None
            elif kind is list and index is not None and index < len(obj):
                obj = obj[index]
            else:
                return None
        return obj if type(obj) is str else stringify(obj)

    return get


def _json_obj(_arg: str | None) -> Getter:
    import json  # only when a rule prints %jevt.obj

    def get(ev: Event, _ctx: EventContext) -> str:
        # Go's json.Indent(data, "", "  "); escapes are Python's (see README: known differences).
        try:
            return json.dumps(ev, indent=2, ensure_ascii=False)
        except RecursionError:  # Python's indenting writer recurses: past ~300 levels, compact
            return stringify(ev)

    return get


def _json_rawtime(_arg: str | None) -> Getter:
    def get(ev: Event, _ctx: EventContext) -> str | None:
        ns = parse_rfc3339_ns(ev.get("stageTimestamp"))
        return None if ns is None else str(ns)

    return get


for _prefix in ("json", "jevt"):
    register(
        FieldDef(
            f"{_prefix}.value",
            "A value of the event JSON selected by a JSON pointer (jevt.value[/user/username])",
            _json_value,
            arg=ARG_KEY,
            gated=False,
            inline=_pointer_read,
        )
    )
    register(FieldDef(f"{_prefix}.obj", "The whole event JSON, indented", _json_obj, gated=False))
    register(
        FieldDef(
            f"{_prefix}.rawtime",
            "The event time in nanoseconds since the epoch",
            _json_rawtime,
            gated=False,
        )
    )
