"""The alert model and Falco's JSON output shape.

An `Alert` is what the engine returns for an event that matched a rule. `to_dict()` is exactly the
object Falco prints with `json_output: true` (keys sorted, as nlohmann does), plus `uuid`, the
deterministic id Falcosidekick-style consumers use to deduplicate (same rule + same audit event ->
same id, so a retried batch can be deduplicated downstream).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

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
