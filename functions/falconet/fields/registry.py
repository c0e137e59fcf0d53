"""The field registry: every field a condition or output may name, and how it is read.

A `FieldDef` has a name, a type (`string`, or `number` for the numeric `evt.*` fields), whether
it is a list, its argument form, a description, and an extractor; the family modules beside this
one (`k8saudit`, `pods`, `jevt`, `evt`, `extensions`) register theirs here at import. The rule
compiler, the alert code and `falconet fields` read the registry through `falconet.fields`;
nothing else knows how a field is extracted.

Values follow Falco's string view of the k8saudit and json plugins:
- a field is *absent* (`None`) when its path is missing, when the plugin would return an error, and
  when a list field would be empty; every comparison on an absent field is false;
- JSON strings are their text; every other JSON value is its compact JSON text (`null` -> "null");
- list fields yield a non-empty `list[str]`;
- every `ka.*` field is absent when the event has no top-level `auditID` (the plugin's gate).

Extractors are bound once per field use (`FieldDef.bind(arg)`) so argument parsing happens at load
time; the bound getter takes `(event, context)` and never raises for any event content.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, NamedTuple

import orjson

from falconet.context import EventContext

Value = str | list[str] | int | None
Event = Mapping[str, Any]
Getter = Callable[[Event, EventContext], Any]

# Argument forms
ARG_NONE: Final = "none"
ARG_INDEX: Final = "index"  # optional [n], digits without a leading zero, below 10**19
ARG_KEY: Final = "key"  # required [text]

MISSING: Final = object()
# An index is a uint64 for the plugin (19 digits always fit); a longer one would fail int() at
# every evaluation (Python refuses integer texts over 4,300 digits).
_INDEX_RE = re.compile(r"(?:0|[1-9][0-9]{0,18})\Z")
_SHOWN = 64  # characters of a bad argument quoted in an error message


class ArgumentError(ValueError):
    """A field argument is missing, unexpected or malformed."""


def stringify(value: Any) -> str:
    """Falco's string view of a JSON value (strings as text, anything else as compact JSON)."""
    if type(value) is str:
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if type(value) is int:
        return str(value)
    if isinstance(value, str):  # a `Sourced` number or NUL string (Falco-exact decoding)
        return str.__str__(value)
    try:
        return orjson.dumps(value, default=_source_text, option=_SUBCLASSES).decode()
    except orjson.JSONEncodeError:  # nested past orjson's 255 levels (JSON reads up to 300)
        return _compact(value)


# `Sourced` strings reach `default` (rather than being written as strings) and are written as
# the JSON text they were read from: `1.50`, `"root\u0000x"`.
_SUBCLASSES = orjson.OPT_PASSTHROUGH_SUBCLASS


def _source_text(value: Any) -> Any:
    text = getattr(value, "json", None)
    if type(text) is not str:
        raise TypeError
    return orjson.Fragment(text)


def _compact(value: Any) -> str:
    """Compact JSON text of a value nested too deep for orjson: written without recursion."""
    out: list[str] = []
    todo: list[Any] = [value]
    close = object()  # marks: write the pending closing bracket
    while todo:
        item = todo.pop()
        if type(item) is tuple and len(item) == 2 and item[0] is close:
            out.append(item[1])
        elif type(item) is dict:
            out.append("{")
            todo.append((close, "}"))
            entries = list(item.items())
            for n, (key, val) in enumerate(reversed(entries)):
                todo.append(val)
                sep = "," if n < len(entries) - 1 else ""
                todo.append((close, sep + orjson.dumps(key).decode() + ":"))
        elif type(item) is list:
            out.append("[")
            todo.append((close, "]"))
            for n, val in enumerate(reversed(item)):
                todo.append(val)
                if n < len(item) - 1:
                    todo.append((close, ","))
        elif isinstance(item, str):
            text = getattr(item, "json", None)  # a `Sourced` value: its JSON text
            out.append(text if type(text) is str else orjson.dumps(item).decode())
        else:
            out.append(stringify(item))
    return "".join(out)


def walk(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if type(obj) is not dict:
            return MISSING
        obj = obj.get(key, MISSING)
        if obj is MISSING:
            return MISSING
    return obj


# --------------------------------------------------------------------------------------------
# Field definitions


# BindEnv and FieldDef are written out rather than frozen dataclasses: the two dataclasses cost
# ~1.8 ms of `exec` at every import (a cold start). Same constructors, immutability, value
# equality, hashing and repr.
_set = object.__setattr__  # how the constructors write their slots past `__setattr__`


def stringify_or_none(value: Any) -> str | None:
    """`stringify`, with the registry's missing marker as None (absent)."""
    return None if value is MISSING else stringify(value)


Step = tuple[str, int | None]  # a key; with an int, also an array index (a JSON pointer's digits)


class InlineRead(NamedTuple):
    """How generated code may read a field in place, giving exactly what its getter gives.

    `steps` walk the event from the top (each through an object key, or for a pointer's decimal
    part an array index); the value found is a string, the JSON text of a non-string, or None
    when absent. `context`: an `EventContext` attribute tried first (the steps are the fallback,
    possibly none). `as_list`: a JSON array of scalars read as a non-empty list of strings.
    """

    steps: tuple[Step, ...]
    context: str | None = None
    as_list: bool = False

    @property
    def plain(self) -> tuple[str, ...] | None:
        """The path, when this is a plain scalar read through object keys only."""
        if self.context or self.as_list or any(i is not None for _, i in self.steps):
            return None
        return tuple(k for k, _ in self.steps) or None


# A field's in-place read: the same for every argument, or made from the argument (JSON pointers).
Inline = InlineRead | Callable[[str | None], InlineRead | None]


class _Frozen:
    """Value semantics over `_FIELDS`, and no assignment after construction."""

    __slots__ = ()
    _FIELDS: tuple[str, ...] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._FIELDS)

    def __eq__(self, other: Any) -> bool:
        if other.__class__ is self.__class__:
            return self._values() == other._values()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._FIELDS)
        return f"{type(self).__qualname__}({values})"

    def __reduce__(self) -> tuple[Any, ...]:  # copy and pickle, past `__setattr__`
        return (type(self), self._values())

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field '{name}': {type(self).__name__} is frozen")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field '{name}': {type(self).__name__} is frozen")


class EventCounter:
    """The number of the event being evaluated among those one engine evaluated (1 for the
    first): Falco's `evt.num`, which numbers the events of a run. The engine counts, the
    `evt.num` getter reads."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


class BindEnv(_Frozen):
    """What some fields need besides the event: set once per engine.

    `geoip` is a `falconet.geoip.GeoIP` (typed loosely so this module stays import-light);
    `counter` the engine's `EventCounter` (for `evt.num`); `hostname` the alerts' host name
    (for `evt.hostname`).
    """

    __slots__ = ("counter", "geoip", "hostname")
    _FIELDS = __slots__

    counter: EventCounter | None
    geoip: Any
    hostname: str | None

    def __init__(
        self, geoip: Any = None, counter: EventCounter | None = None, hostname: str | None = None
    ) -> None:
        _set(self, "geoip", geoip)
        _set(self, "counter", counter)
        _set(self, "hostname", hostname)


EMPTY_ENV: Final = BindEnv()


class FieldDef(_Frozen):
    __slots__ = (
        "name",
        "desc",
        "binder",
        "is_list",
        "arg",
        "type",
        "path",
        "gated",
        "extension",
        "env_binder",
        "inline",
    )
    _FIELDS = __slots__

    name: str
    desc: str
    binder: Callable[[str | None], Getter]
    is_list: bool
    arg: str
    type: str
    path: tuple[str, ...] | None  # simple scalar path
    gated: bool  # absent unless the event has `auditID` (all ka.* fields)
    extension: bool  # a falconet field, not a Falco one
    env_binder: Callable[[str | None, BindEnv], Getter] | None
    inline: Inline | None  # an in-place read for extension, list and pointer fields (`inline_read`)

    def __init__(
        self,
        name: str,
        desc: str,
        binder: Callable[[str | None], Getter],
        is_list: bool = False,
        arg: str = ARG_NONE,
        type: str = "string",
        path: tuple[str, ...] | None = None,
        gated: bool = True,
        extension: bool = False,
        env_binder: Callable[[str | None, BindEnv], Getter] | None = None,
        inline: Inline | None = None,
    ) -> None:
        _set(self, "name", name)
        _set(self, "desc", desc)
        _set(self, "binder", binder)
        _set(self, "is_list", is_list)
        _set(self, "arg", arg)
        _set(self, "type", type)
        _set(self, "path", path)
        _set(self, "gated", gated)
        _set(self, "extension", extension)
        _set(self, "env_binder", env_binder)
        _set(self, "inline", inline)

    def raw_getter(self, arg: str | None, env: BindEnv = EMPTY_ENV) -> Getter:
        """The getter without the auditID gate (for callers that checked the gate already)."""
        if self.env_binder is not None:
            return self.env_binder(arg, env)
        return self.binder(arg)

    def inline_read(self, arg: str | None) -> InlineRead | None:
        """How generated code may read this field (with `arg`) in place, or None when only the
        getter knows (the compiler and the alert code both ask here)."""
        inline = self.inline
        if inline is not None:
            return inline if isinstance(inline, InlineRead) else inline(arg)
        if self.path is not None:
            return InlineRead(tuple((key, None) for key in self.path))
        return None

    def check_arg(self, arg: str | None) -> None:
        """Raise ArgumentError unless this field takes `arg` (None: no `[...]` given): the one
        check conditions, outputs and extra fields all pass at load time, so that no getter
        meets an argument it cannot parse while evaluating."""
        if self.arg == ARG_NONE and arg is not None:
            raise ArgumentError(f"field '{self.name}' does not take an argument")
        if self.arg == ARG_KEY and arg is None:
            raise ArgumentError(f"field '{self.name}' requires an argument")
        if self.arg == ARG_INDEX and arg is not None and not _INDEX_RE.match(arg):
            shown = arg if len(arg) <= _SHOWN else arg[:_SHOWN] + "..."
            raise ArgumentError(
                f"field '{self.name}' takes a numeric index argument, got '{shown}'"
            )

    def bind(self, arg: str | None, env: BindEnv = EMPTY_ENV) -> Getter:
        """A getter for this field with `arg` parsed once. Raises ArgumentError."""
        self.check_arg(arg)
        getter = self.raw_getter(arg, env)
        if not self.gated:
            return getter

        def gated(ev: Event, ctx: EventContext) -> Any:
            return getter(ev, ctx) if "auditID" in ev else None

        return gated


REGISTRY: dict[str, FieldDef] = {}


def register(field: FieldDef) -> None:
    REGISTRY[field.name] = field


def path_getter(path: tuple[str, ...]) -> Getter:
    """A getter for a scalar at a fixed path, specialised by path length (the hot fields)."""
    if len(path) == 1:
        (k0,) = path

        def get1(ev: Event, _ctx: EventContext) -> str | None:
            v = ev.get(k0, MISSING)
            return v if type(v) is str else (None if v is MISSING else stringify(v))

        return get1
    if len(path) == 2:
        k0, k1 = path

        def get2(ev: Event, _ctx: EventContext) -> str | None:
            o = ev.get(k0)
            v = o.get(k1, MISSING) if type(o) is dict else MISSING
            return v if type(v) is str else (None if v is MISSING else stringify(v))

        return get2

    def get(ev: Event, _ctx: EventContext) -> str | None:
        v = walk(ev, path)
        return v if type(v) is str else (None if v is MISSING else stringify(v))

    return get


def scalar_field(name: str, path: tuple[str, ...], desc: str) -> None:
    register(FieldDef(name, desc, lambda _arg: path_getter(path), path=path))


def custom_field(
    name: str,
    desc: str,
    fn: Callable[[Event, str | None], Value],
    *,
    is_list: bool = False,
    arg: str = ARG_NONE,
    gated: bool = True,
    type_: str = "string",
    extension: bool = False,
    ctx_fn: Callable[[Event, EventContext, str | None], Value] | None = None,
    inline: Inline | None = None,
) -> None:
    def binder(a: str | None) -> Getter:
        if ctx_fn is not None:
            cfn = ctx_fn
            return lambda ev, ctx: cfn(ev, ctx, a)
        return lambda ev, _ctx: fn(ev, a)

    register(
        FieldDef(
            name,
            desc,
            binder,
            is_list=is_list,
            arg=arg,
            type=type_,
            gated=gated,
            extension=extension,
            inline=inline,
        )
    )


def nonempty(values: list[str]) -> list[str] | None:
    return values or None


def string_list(value: Any) -> list[str] | None:
    if type(value) is not list:
        return None
    return nonempty([stringify(v) for v in value])


def index_arg(arg: str | None) -> int | None:
    return None if arg is None else int(arg)


def pick(items: list[Any], index: int | None) -> list[Any] | None:
    if index is None:
        return items
    if index >= len(items):
        return None
    return [items[index]]


def lookup(name: str) -> FieldDef | None:
    """The definition of a field, or None."""
    return REGISTRY.get(name)


def suggest(name: str) -> str | None:
    """The closest known field name, for 'did you mean' hints."""
    import difflib

    matches = difflib.get_close_matches(name, REGISTRY, n=1, cutoff=0.75)
    return matches[0] if matches else None


def iter_fields() -> Iterator[FieldDef]:
    """Every registered field, in registration order."""
    return iter(REGISTRY.values())
