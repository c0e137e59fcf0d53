"""The alert model and Falco's JSON output shape.

An `Alert` is what the engine returns for an event that matched a rule. `to_dict()` is exactly the
object Falco prints with `json_output: true` (keys sorted, as nlohmann does), plus `uuid`, the
deterministic id Falcosidekick-style consumers use to deduplicate (same rule + same audit event ->
same id, so a retried batch can be deduplicated downstream).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from falconet.context import EventContext
from falconet.timestamps import format_iso8601_ns, format_local_time_ns

SOURCE = "k8s_audit"


@dataclass(frozen=True, slots=True)
class Alert:
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
# Building alerts from rule outputs

_NAMESPACE = bytes.fromhex("6b8f0c1e4c7a5e3d9a1f2b3c4d5e6f70")  # falconet's uuid5-style namespace
_LIST_LIMIT = 1023  # Falco renders list values into a 1024-byte buffer
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _escape_control(match: re.Match[str]) -> str:
    c = match.group(0)
    return _ESCAPES.get(c) or f"\\u{ord(c):04x}"


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


def alert_uuid(rule: str, event: Mapping[str, Any], cluster: str | None) -> str:
    """Deterministic id: same rule + same audit event (+ cluster) -> same id (uuid5 layout)."""
    audit_id = event.get("auditID")
    if audit_id is not None:
        basis = (
            f"{rule}\x00{audit_id}\x00{event.get('stage')}\x00{event.get('stageTimestamp')}"
            f"\x00{cluster or ''}"
        )
    else:
        basis = rule + "\x00" + orjson.dumps(event, option=orjson.OPT_SORT_KEYS).decode()
    h = hashlib.sha1(_NAMESPACE + basis.encode(), usedforsecurity=False).hexdigest()
    # uuid5 layout: version nibble 5, RFC 4122 variant bits (10xx) on the 17th hex digit.
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"


Getter = Callable[[Mapping[str, Any], EventContext], Any]

_TIME = object()  # marks the evt.time entry among the output fields


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One `output_fields` entry: its key, its getter (without the auditID gate) and flags."""

    key: str
    getter: Getter
    gated: bool  # a ka.* field: absent when the event has no auditID
    optional: bool = False  # an extra field: left out when absent


class AlertFactory:
    """Turns a matched (rule, event) into an `Alert`: the rule's output compiled once.

    Every field is read once per alert; the output line and `output_fields` share the values.
    At build time the output becomes a `str.format` template (a `%20field` width is the format
    spec `<20.20`) and the `output_fields` keys are sorted once, evt.time included, so building an
    alert is one list of getter calls, one `format` and one `dict(zip(...))`.
    """

    __slots__ = (
        "gated",
        "getters",
        "hostname",
        "iso_prefix",
        "keys",
        "optional",
        "parts",
        "priority",
        "rule",
        "tags",
        "template",
        "time_index",
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
        self.getters = tuple(f.getter for f in specs)
        self.gated = tuple(f.gated for f in specs)
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
            values = [get(event, ctx) for get in self.getters]
        else:  # the k8saudit gate: every ka.* field is absent
            values = [
                None if gated else get(event, ctx)
                for get, gated in zip(self.getters, self.gated, strict=True)
            ]
        message = self.template.format(
            *[v if type(v) is str else render_value(v) for v in map(values.__getitem__, self.parts)]
        )
        if not message.isprintable():  # C-speed check; the regex runs only when needed
            message = _CONTROL.sub(_escape_control, message)
        values.insert(self.time_index, time_ns)
        output_fields = dict(zip(self.keys, values, strict=True))
        for key in self.optional:
            if output_fields[key] is None:
                del output_fields[key]
        iso = format_iso8601_ns(time_ns)
        cluster = output_fields.get("falconet.cluster") or ctx.cluster
        return Alert(
            rule=self.rule,
            priority=self.priority,
            output=f"{iso if self.iso_prefix else format_local_time_ns(time_ns)}: "
            f"{self.priority} {message}",
            time=iso,
            time_ns=time_ns,
            tags=self.tags,
            output_fields=output_fields,
            uuid=alert_uuid(self.rule, event, cluster if isinstance(cluster, str) else None),
            hostname=self.hostname,
            message=message,
        )
