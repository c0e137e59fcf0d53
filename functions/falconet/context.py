"""Where a batch of audit events came from: cluster, cloud account, region, origin.

An `EventContext` is built by the decoder from the envelope (EKS log group, GKE resource labels, AKS
resourceId) and from the trigger (URL parameter, object key, CloudEvent source). One instance is
shared by every event of the same envelope; the engine reads it for the `falconet.*` fields and adds
it to alerts. Frozen: the decoder derives a new one with `replace` when an envelope says more.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class EventContext:
    cluster: str | None = None
    account: str | None = None
    region: str | None = None
    origin: str | None = None  # e.g. "s3://bucket/key", "webhook", a CloudEvent source

    def with_defaults(self, other: EventContext) -> EventContext:
        """This context, with every unset value taken from `other`."""
        return EventContext(
            cluster=self.cluster or other.cluster,
            account=self.account or other.account,
            region=self.region or other.region,
            origin=self.origin or other.origin,
        )

    def updated(self, **values: str | None) -> EventContext:
        """A copy with the given values set (None values are ignored)."""
        changes = {k: v for k, v in values.items() if v}
        return replace(self, **changes) if changes else self


EMPTY_CONTEXT = EventContext()
