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
    digest = bytearray(hashlib.sha1(_NAMESPACE + basis.encode(), usedforsecurity=False).digest())
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest[:16].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


Getter = Callable[[Mapping[str, Any], EventContext], Any]


class AlertFactory:
    """Turns a matched (rule, event) into an `Alert`: the rule's output compiled once.

    `parts` is the rule output split into literal text and (getter, width) pairs; `keys` are the
    `output_fields` entries (each field once, plus the configured extra fields).
    """

    __slots__ = ("hostname", "iso_prefix", "keys", "optional", "parts", "priority", "rule", "tags")

    def __init__(
        self,
        rule: str,
        priority: str,
        tags: tuple[str, ...],
        parts: list[str | tuple[Getter, int | None]],
        keys: list[tuple[str, Getter]],
        optional: list[tuple[str, Getter]],
        *,
        hostname: str,
        iso_prefix: bool,
    ) -> None:
        self.rule = rule
        self.priority = priority
        self.tags = tags
        self.parts = parts
        self.keys = keys
        self.optional = optional  # extra fields: included only when present
        self.hostname = hostname
        self.iso_prefix = iso_prefix

    def make(self, event: Mapping[str, Any], ctx: EventContext, time_ns: int) -> Alert:
        pieces = []
        for part in self.parts:
            if isinstance(part, str):
                pieces.append(part)
            else:
                getter, width = part
                text = render_value(getter(event, ctx))
                if width is not None:
                    text = text[:width].ljust(width)
                pieces.append(text)
        message = "".join(pieces)
        if _CONTROL.search(message):
            message = _CONTROL.sub(_escape_control, message)
        prefix = format_iso8601_ns(time_ns) if self.iso_prefix else format_local_time_ns(time_ns)
        output_fields: dict[str, Any] = {}
        for key, getter in self.keys:
            output_fields[key] = getter(event, ctx)
        for key, getter in self.optional:
            if key not in output_fields:
                value = getter(event, ctx)
                if value is not None:
                    output_fields[key] = value
        output_fields["evt.time.iso8601" if self.iso_prefix else "evt.time"] = time_ns
        fields_sorted = dict(sorted(output_fields.items()))
        cluster = output_fields.get("falconet.cluster") or ctx.cluster
        return Alert(
            rule=self.rule,
            priority=self.priority,
            output=f"{prefix}: {self.priority} {message}",
            time=format_iso8601_ns(time_ns),
            time_ns=time_ns,
            tags=self.tags,
            output_fields=fields_sorted,
            uuid=alert_uuid(self.rule, event, cluster if isinstance(cluster, str) else None),
            hostname=self.hostname,
            message=message,
        )
