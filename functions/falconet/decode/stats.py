"""Per-record accounting for decoders: what was read, what was evaluated, what was not and why.

Invariant kept by every decoder: `records == events + rejected_total + skipped_total`. A record is
the smallest unit an envelope holds (a line, an array item, an EventList item, a CloudWatch log
event, an AKS record, a LogEntry); a record that is not handed on is counted under exactly one
reason. `rejected` is bad input (someone should look); `skipped` is input that is expected and
deliberately not evaluated (a health-check message, a klog stream sharing the log group).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Reasons a record is rejected (bad input). The first is Falco's own wording (k8saudit plugin).
NOT_AUDIT_EVENT = "data not recognized as a k8s audit event"
NOT_JSON = "not JSON"
BAD_TIMESTAMP = "no or invalid stageTimestamp"
TOO_LARGE = "event over the size limit"
TRUNCATED = "truncated record"  # EKS "[Truncated...]", AKS 16 KiB cut
BAD_COMPRESSION = "corrupt or truncated compressed data"
BAD_ENVELOPE = "malformed envelope"  # e.g. awslogs.data not base64, logEvents not a list

# Reasons a record is refused by a decode limit (`falconet.decode.limits`): the input is hostile or
# bigger than the limits allow. The `input over ...` ones stop the input: one record is counted
# where reading stopped, and the rest of the input is not read.
LIMIT_DOCUMENT = "document over the size limit"  # a line, document or base64 payload
LIMIT_DEPTH = "document nested over 300 levels"  # Falco's JSON parser refuses it too
LIMIT_INFLATED = "input over the inflated size limit"
LIMIT_RATIO = "input over the compression ratio limit"
LIMIT_LAYERS = "input over the gzip nesting limit"
LIMIT_RECORDS = "input over the record limit"

# Reasons a record is skipped (expected, not an audit event, nothing to fix).
SKIP_CONTROL = "CloudWatch control message"
SKIP_STREAM = "not an audit log stream"  # EKS: kube-apiserver-*, authenticator-*, ...
SKIP_CATEGORY = "not an audit log category"  # AKS: kube-apiserver, kube-controller-manager, ...
SKIP_NOT_K8S = "not a Kubernetes audit log entry"  # GKE sink: other services' LogEntries


def reason_of(exc: ValueError) -> str:
    """The reason a JSON text was rejected for: `NOT_JSON`, or the one a parser named
    (`falconet.decode.source.SourceError.reason`: nesting over 300 levels)."""
    reason = getattr(exc, "reason", NOT_JSON)
    return reason if type(reason) is str else NOT_JSON


MAX_PROBLEMS = 10  # how many rejected records are kept with their position and a snippet


@dataclass(frozen=True, slots=True)
class Problem:
    reason: str
    position: str  # e.g. "audit.log:3", "s3://bucket/key:record 17"
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.position}: {self.reason}" + (f" ({self.detail})" if self.detail else "")


@dataclass(slots=True)
class DecodeStats:
    records: int = 0  # records looked at: lines, array items, log events
    events: int = 0  # audit events handed on for evaluation
    rejected: Counter[str] = field(default_factory=Counter)  # bad input, by reason
    skipped: Counter[str] = field(default_factory=Counter)  # expected non-audit records, by reason
    problems: list[Problem] = field(default_factory=list)  # the first MAX_PROBLEMS rejections

    def reject(self, reason: str, position: str, detail: str = "") -> None:
        """Count one bad record (the caller has already counted it in `records`)."""
        self.rejected[reason] += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(reason, position, detail[:200]))

    def skip(self, reason: str, count: int = 1) -> None:
        """Count `count` expected non-audit records (already counted in `records`)."""
        self.skipped[reason] += count

    @property
    def unreadable(self) -> str | None:
        """Why the input could not be read whole (its compressed stream is corrupt or truncated:
        what followed the damage was never read), else None."""
        return BAD_COMPRESSION if self.rejected.get(BAD_COMPRESSION) else None

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def merge(self, other: DecodeStats) -> None:
        self.records += other.records
        self.events += other.events
        self.rejected.update(other.rejected)
        self.skipped.update(other.skipped)
        room = MAX_PROBLEMS - len(self.problems)
        if room > 0:
            self.problems.extend(other.problems[:room])

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "events": self.events,
            "rejected": self.rejected_total,
            "skipped": self.skipped_total,
            "rejected_by_reason": dict(self.rejected),
            "skipped_by_reason": dict(self.skipped),
            "problems": [str(p) for p in self.problems],
        }
