"""The alert model and Falco's JSON output shape.

An `Alert` is what the engine returns for an event that matched a rule. `to_dict()` is exactly the
object Falco prints with `json_output: true` (keys sorted, as nlohmann does), plus `uuid`, the
deterministic id Falcosidekick-style consumers use to deduplicate (same rule + same audit event ->
same id, so a retried batch can be deduplicated downstream).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from falconet.context import EventContext
from falconet.timestamps import format_times

if TYPE_CHECKING:
    from falconet.fields import InlineRead

SOURCE = "k8s_audit"


class Alert(NamedTuple):
    """One alert: immutable. A named tuple rather than a frozen dataclass because the engine
    builds one per match and a frozen dataclass's `__init__` (one `object.__setattr__` per
    field) cost ~2 us of the ~20 us an alert took; a tuple is built in ~0.3 us."""

    rule: str
    priority: str  # Falco's capitalised name: "Warning", "Informational", ...
    output: str  # the full text line: "<evt.time>: <Priority> <message>"
    time: str  # event time, UTC RFC 3339 with nanoseconds: "2026-03-11T15:45:00.123456789Z"
    time_ns: int  # the same, in nanoseconds since the epoch
    tags: tuple[str, ...]  # sorted
    output_fields: Mapping[str, Any]  # str, list[str] or None per field; evt.time is an int
    uuid: str
    hostname: str = ""
    source: str = SOURCE
    message: str = ""  # `output` without the "<evt.time>: <Priority> " prefix

    @property
    def cluster(self) -> str | None:
        """The cluster the event came from, when known."""
        value = self.output_fields.get("falconet.cluster") or self.output_fields.get(
            "ka.cluster.name"
        )
        return value if isinstance(value, str) else None

    def to_dict(self) -> dict[str, Any]:
        """Falco's JSON alert (`json_output: true`), keys in Falco's (alphabetical) order."""
        return {
            "hostname": self.hostname,
            "output": self.output,
            "output_fields": dict(self.output_fields),
            "priority": self.priority,
            "rule": self.rule,
            "source": self.source,
            "tags": list(self.tags),
            "time": self.time,
            "uuid": self.uuid,
        }

    def to_json(self) -> bytes:
        """`to_dict()` as compact JSON bytes (orjson)."""
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        """Rebuild an alert from its Falco JSON form (e.g. a message read back from SQS).

        Raises KeyError or TypeError when `data` is not a Falco alert.
        """
        output = str(data["output"])
        priority = str(data["priority"])
        fields = data.get("output_fields") or {}
        if not isinstance(fields, Mapping):
            raise TypeError("output_fields is not an object")
        time_ns = fields.get("evt.time")
        prefix_end = output.find(f" {priority} ")
        message = output[prefix_end + len(priority) + 2 :] if prefix_end >= 0 else output
        return cls(
            rule=str(data["rule"]),
            priority=priority,
            output=output,
            time=str(data.get("time", "")),
            time_ns=time_ns if isinstance(time_ns, int) else 0,
            tags=tuple(data.get("tags") or ()),
            output_fields=dict(fields),
            uuid=str(data.get("uuid", "")),
            hostname=str(data.get("hostname", "")),
            source=str(data.get("source", SOURCE)),
            message=message,
        )


# --------------------------------------------------------------------------------------------
# Fitting an alert to the sinks' size limit

AUDIT_ID_FIELD = "ka.auditid"
TRUNCATED = "…[truncated {} bytes]"
TRUNCATED_ITEMS = "…[truncated {} more items, {} bytes]"
_SEARCHED_MIN = 32  # a cut value at least this long is also cut where it appears in `output`
_CLOSE_ENOUGH = 16  # bytes: the search for the largest cap that fits stops this close


def wire_size(alert: Alert) -> int:
    """The bytes of the largest message a sink makes of `alert`'s JSON (SQS escapes U+FFFE and
    U+FFFF, 3 bytes each in UTF-8, as 6-byte `\\uXXXX` sequences)."""
    data = alert.to_json()
    return len(data) + 3 * (data.count(b"\xef\xbf\xbe") + data.count(b"\xef\xbf\xbf"))


def _cut(text: str, cap: int) -> str:
    """`text` cut to its first `cap` UTF-8 bytes (never inside a character) plus the marker, or
    `text` itself when that would not make it shorter."""
    data = text.encode()
    if len(data) <= cap:
        return text
    kept = data[:cap].decode(errors="ignore")
    removed = len(data) - len(kept.encode())
    cut = kept + TRUNCATED.format(removed)
    return cut if len(cut.encode()) < len(data) else text


def _cut_list(items: list[Any], cap: int) -> list[Any]:
    """A list field's items kept while they add up to `cap` bytes, then one marker item."""
    sizes = [len(str(item).encode()) for item in items]
    if sum(sizes) <= cap:
        return items
    kept: list[Any] = []
    used = 0
    for index, (item, size) in enumerate(zip(items, sizes, strict=True)):
        if used + size > cap:
            if not kept and isinstance(item, str):
                kept.append(_cut(item, cap))
                index += 1  # noqa: PLW2901 - the first item, cut, stands for itself
            rest = sizes[index:]
            if rest:
                kept.append(TRUNCATED_ITEMS.format(len(rest), sum(rest)))
            return kept
        kept.append(item)
        used += size
    return kept


def fit(alert: Alert, max_bytes: int, *, audit_id: str | None = None) -> Alert | None:
    """`alert` itself if its `wire_size` is at most `max_bytes`; else the same alert (same uuid,
    rule, priority, time) with its longest values cut, each followed by a visible marker
    (`…[truncated 139000 bytes]`), and the audit event's id added as `ka.auditid` so the full
    event can be found in the audit log; None if it cannot fit even with every value cut.

    Every string and list value of `output_fields` is cut to the same number of bytes, the
    largest that fits (a binary search: oversize alerts are rare, a few serialisations each); a
    cut value is cut the same way where it appears in `output`, which is cut at its end only if
    it is still longer than that. Why here, once: the pipeline fits each alert to the smallest
    limit of the configured sinks, so every sink gets the same alert and none refuses it.
    """
    if wire_size(alert) <= max_bytes:
        return alert
    fields = dict(alert.output_fields)
    if audit_id is not None and fields.get(AUDIT_ID_FIELD) is None:
        fields[AUDIT_ID_FIELD] = audit_id
        fields = dict(sorted(fields.items()))  # Falco's key order

    def shrunk(cap: int) -> Alert:
        cut_fields: dict[str, Any] = {}
        replaced: list[tuple[str, str]] = []
        for key, value in fields.items():
            if isinstance(value, str) and key != AUDIT_ID_FIELD:
                cut = _cut(value, cap)
                if cut is not value and len(value) >= _SEARCHED_MIN:
                    replaced.append((value, cut))
                value = cut  # noqa: PLW2901 - the cut value replaces it
            elif isinstance(value, list):
                value = _cut_list(value, cap)  # noqa: PLW2901
            cut_fields[key] = value
        # `output` is "<time>: <Priority> <message>": the prefix is kept, the message cut.
        structured = bool(alert.message) and alert.output.endswith(alert.message)
        text = alert.message if structured else alert.output
        allowance = cap  # plus the values already cut inside it
        for original, cut in replaced:
            if original in text:
                text = text.replace(original, cut, 1)
                allowance += len(cut.encode())
        text = _cut(text, allowance)
        if structured:
            prefix = alert.output[: len(alert.output) - len(alert.message)]
            return alert._replace(output=prefix + text, output_fields=cut_fields, message=text)
        message = _cut(alert.message, allowance)
        return alert._replace(output=text, output_fields=cut_fields, message=message)

    smallest = shrunk(0)
    if wire_size(smallest) > max_bytes:
        return None
    longest = max(
        [len(alert.output.encode())]
        + [len(str(v).encode()) for v in fields.values() if isinstance(v, str | list)]
    )
    fits, too_big = 0, longest
    while too_big - fits > _CLOSE_ENOUGH:
        middle = (fits + too_big) // 2
        if wire_size(shrunk(middle)) <= max_bytes:
            fits = middle
        else:
            too_big = middle
    return shrunk(fits) if fits else smallest


# --------------------------------------------------------------------------------------------
# Building alerts from rule outputs

_NAMESPACE = bytes.fromhex("6b8f0c1e4c7a5e3d9a1f2b3c4d5e6f70")  # falconet's uuid5-style namespace
_LIST_LIMIT = 1023  # Falco renders list values into a 1024-byte buffer
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _escape_control(match: re.Match[str]) -> str:
    c = match.group(0)
    return _ESCAPES.get(c) or f"\\u{ord(c):04x}"


def text_line(text: str) -> str:
    """`text` (an alert's `output`) as one safe line: control characters escaped (`\\n`, `\\t`,
    `\\u001b`), so an event value cannot forge alert lines in a text stream. Alerts keep the raw
    text, as Falco's do (in JSON it is escaped anyway)."""
    if text.isprintable():  # C-speed check; the regex runs only when needed
        return text
    return _CONTROL.sub(_escape_control, text)


def render_value(value: Any) -> str:
    """A field value as Falco prints it in an output line."""
    if value is None:
        return "<NA>"
    if isinstance(value, list):
        text = "(" + ",".join(value) + ")"
        if len(text) > _LIST_LIMIT:
            text = text.encode()[:_LIST_LIMIT].decode(errors="ignore")
        return text
    return str(value)


def _uuid_base(rule: str) -> Any:
    """The sha1 state after the namespace and the rule name: a factory hashes it once and copies
    it per alert (the id hashes `namespace + rule + NUL + event identity`)."""
    return hashlib.sha1(_NAMESPACE + rule.encode() + b"\x00", usedforsecurity=False)


def _uuid_of(base: Any, event: Mapping[str, Any], cluster: str | None) -> str:
    h = base.copy()
    audit_id = event.get("auditID")
    if audit_id is not None:
        h.update(
            f"{audit_id}\x00{event.get('stage')}\x00{event.get('stageTimestamp')}"
            f"\x00{cluster or ''}".encode()
        )
    else:
        try:
            h.update(orjson.dumps(event, option=orjson.OPT_SORT_KEYS))
        except orjson.JSONEncodeError:  # nested past orjson's 255 levels (JSON reads up to 1024)
            from falconet.fields import stringify  # rare: no import cycle at load time

            h.update(stringify(event).encode())
    d = h.hexdigest()
    # uuid5 layout: version nibble 5, RFC 4122 variant bits (10xx) on the 17th hex digit.
    return f"{d[:8]}-{d[8:12]}-5{d[13:16]}-{_VARIANT[d[16]]}{d[17:20]}-{d[20:32]}"


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def stable_uuid(*parts: str) -> str:
    """A uuid5-style id of `parts` in falconet's namespace: the same parts, the same id (a
    correlation alert's id, from its correlation, group and window, so a retry repeats it)."""
    h = hashlib.sha1(_NAMESPACE + "\x00".join(parts).encode(), usedforsecurity=False)
    d = h.hexdigest()
    return f"{d[:8]}-{d[8:12]}-5{d[13:16]}-{_VARIANT[d[16]]}{d[17:20]}-{d[20:32]}"


Getter = Callable[[Mapping[str, Any], EventContext], Any]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One `output_fields` entry: its key, its getter (without the auditID gate) and flags;
    `inline` is the registry's in-place read of the field (`FieldDef.inline_read`), which the
    generated alert code uses instead of calling `getter` (same value)."""

    key: str
    getter: Getter
    gated: bool  # a ka.* field: absent when the event has no auditID
    optional: bool = False  # an extra field: left out when absent
    inline: InlineRead | None = None
    listed: bool = True  # False: only printed in the output line, not in `output_fields`


Filler = Callable[[Mapping[str, Any], EventContext, int], tuple[str, dict[str, Any]]]


def compile_filler(
    specs: Sequence[FieldSpec],
    keys: Sequence[str],
    time_index: int,
    template: str,
    parts: Sequence[int],
) -> Filler:
    """One generated function for a rule's alert: `fill(event, ctx, time_ns)` returns the
    message and `output_fields` (keys in sorted order, absent optional fields left out).

    Why: an alert reads ~20 fields (the rule's output and the default extra fields); one getter
    call per field, then a list, a zip and a dict, cost most of the ~20 us an alert took. Here
    every field is read into a local (each intermediate object such as `objectRef` once), the
    dict is built in place and the message formatted from the locals. Same safety rules as the
    rule compiler: keys, getters and the template travel in the namespace; the source holds only
    compiler-made names. Events without auditID never come here (the k8saudit gate).
    """
    from falconet.codegen import StatementReads, compile_module  # at a rule's first alert

    constants: dict[str, Any] = {"R": render_value, "T": template}
    lines = ["def fill(ev, ctx, t):"]

    def const(value: Any) -> str:
        name = f"k{len(constants)}"
        constants[name] = value
        return name

    reads = StatementReads(lines, const)
    values: list[str] = []
    for n, spec in enumerate(specs):
        local = f"v{n}"
        values.append(local)
        if spec.inline is None:
            lines.append(f"    {local} = {const(spec.getter)}(ev, ctx)")
        else:
            reads.assign(local, spec.inline)
    args = ", ".join(
        f"({values[i]} if type({values[i]}) is str else R({values[i]}))" for i in parts
    )
    lines.append(f"    m = T.format({args})")
    ordered: list[tuple[str, str, bool, bool]] = [
        (key, value, spec.optional, spec.listed)
        for key, value, spec in zip(
            [*keys[:time_index], *keys[time_index + 1 :]], values, specs, strict=True
        )
    ]
    ordered.insert(time_index, (keys[time_index], "t", False, True))
    lines.append("    d = {}")
    for key, value, optional, listed in ordered:
        if not listed:  # printed in the output line only
            continue
        if optional:
            lines.append(f"    if {value} is not None:")
            lines.append(f"        d[{const(key)}] = {value}")
        else:
            lines.append(f"    d[{const(key)}] = {value}")
    lines.append("    return m, d")
    module, _ = compile_module("\n".join(lines), constants, filename="<falconet-alert>")
    return module["fill"]  # type: ignore[no-any-return]


class AlertFactory:
    """Turns a matched (rule, event) into an `Alert`: the rule's output compiled once.

    Every field is read once per alert; the output line and `output_fields` share the values.
    At build time the output becomes a `str.format` template (a `%20field` width is the format
    spec `<20.20`) and the `output_fields` keys are sorted once, evt.time included, so building an
    alert is one generated read of every field (compiled at the rule's first alert: most rules
    never fire in a container's life, and compiling all at cold start would cost ~10 ms), one
    `format` and one `dict(zip(...))`.
    """

    __slots__ = (
        "hostname",
        "iso_prefix",
        "keys",
        "optional",
        "parts",
        "filler",
        "priority",
        "rule",
        "specs",
        "tags",
        "template",
        "time_index",
        "uuid_base",
    )

    def __init__(
        self,
        rule: str,
        priority: str,
        tags: tuple[str, ...],
        parts: list[str | tuple[str, int | None]],
        fields: list[FieldSpec],
        extras: list[FieldSpec],
        *,
        hostname: str,
        iso_prefix: bool,
    ) -> None:
        self.rule = rule
        self.priority = priority
        self.tags = tags
        self.hostname = hostname
        self.iso_prefix = iso_prefix
        keys = {f.key for f in fields}
        specs = sorted(fields + [e for e in extras if e.key not in keys], key=lambda f: f.key)
        self.specs = tuple(specs)
        self.filler: Filler | None = None
        self.uuid_base = _uuid_base(rule)
        index = {f.key: i for i, f in enumerate(specs)}
        time_key = "evt.time.iso8601" if iso_prefix else "evt.time"
        self.time_index = sum(1 for f in specs if f.key < time_key)
        self.keys = tuple(
            [f.key for f in specs[: self.time_index]]
            + [time_key]
            + [f.key for f in specs[self.time_index :]]
        )
        self.optional = tuple(f.key for f in specs if f.optional)
        template: list[str] = []
        positions: list[int] = []
        for part in parts:
            if isinstance(part, str):
                template.append(part.replace("{", "{{").replace("}", "}}"))
            else:
                positions.append(index[part[0]])
                template.append("{" if part[1] is None else f"{{:<{part[1]}.{part[1]}")
                template.append("}")
        self.template = "".join(template)
        self.parts = tuple(positions)

    def make(self, event: Mapping[str, Any], ctx: EventContext, time_ns: int) -> Alert:
        if "auditID" in event:
            fill = self.filler
            if fill is None:
                fill = self.filler = compile_filler(
                    self.specs, self.keys, self.time_index, self.template, self.parts
                )
            message, output_fields = fill(event, ctx, time_ns)
        else:  # the k8saudit gate: every ka.* field is absent
            message, output_fields = self.getter_fields(event, ctx, time_ns, gate=True)
        iso, local = format_times(time_ns)
        cluster = output_fields.get("falconet.cluster") or ctx.cluster
        return Alert(
            self.rule,
            self.priority,
            f"{iso if self.iso_prefix else local}: {self.priority} {message}",
            iso,
            time_ns,
            self.tags,
            output_fields,
            _uuid_of(self.uuid_base, event, cluster if isinstance(cluster, str) else None),
            self.hostname,
            SOURCE,
            message,
        )

    def getter_fields(
        self, event: Mapping[str, Any], ctx: EventContext, time_ns: int, *, gate: bool
    ) -> tuple[str, dict[str, Any]]:
        """Message and output fields from the field getters, one call each: for an event without
        auditID (`gate`: every gated field absent), and the reference the generated code is
        tested against."""
        values = [None if gate and spec.gated else spec.getter(event, ctx) for spec in self.specs]
        message = self.template.format(
            *[v if type(v) is str else render_value(v) for v in map(values.__getitem__, self.parts)]
        )
        values.insert(self.time_index, time_ns)
        output_fields = dict(zip(self.keys, values, strict=True))
        for key in self.optional:
            if output_fields[key] is None:
                del output_fields[key]
        for spec in self.specs:
            if not spec.listed:
                del output_fields[spec.key]
        return message, output_fields
