"""Where a batch of audit events came from: cluster, cloud account, region, origin.

An `EventContext` is built by the decoder from the envelope (EKS log group, GKE resource labels, AKS
resourceId) and from the trigger (URL parameter, object key, CloudEvent source). One instance is
shared by every event of the same envelope; the engine reads it for the `falconet.*` fields and adds
it to alerts. Frozen: the decoder derives a new one with `replace` when an envelope says more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

_set = object.__setattr__  # how the constructor writes its slots past `__setattr__`
_FIELDS = ("cluster", "account", "region", "origin")


class EventContext:
    """Immutable, with value equality, hashing and `repr` like the frozen dataclass it replaces;
    written out because a dataclass costs ~1 ms of `exec` at every import (a cold start)."""

    __slots__ = _FIELDS
    __match_args__ = ("cluster", "account", "region", "origin")

    cluster: str | None
    account: str | None
    region: str | None
    origin: str | None  # e.g. "s3://bucket/key", "webhook", a CloudEvent source

    def __init__(
        self,
        cluster: str | None = None,
        account: str | None = None,
        region: str | None = None,
        origin: str | None = None,
    ) -> None:
        _set(self, "cluster", cluster)
        _set(self, "account", account)
        _set(self, "region", region)
        _set(self, "origin", origin)

    def _key(self) -> tuple[str | None, str | None, str | None, str | None]:
        return (self.cluster, self.account, self.region, self.origin)

    def __eq__(self, other: Any) -> bool:
        if other.__class__ is EventContext:
            return (self.cluster, self.account, self.region, self.origin) == (
                other.cluster,
                other.account,
                other.region,
                other.origin,
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.cluster, self.account, self.region, self.origin))

    def __repr__(self) -> str:
        return (
            f"EventContext(cluster={self.cluster!r}, account={self.account!r}, "
            f"region={self.region!r}, origin={self.origin!r})"
        )

    def __reduce__(self) -> tuple[type[EventContext], tuple[str | None, ...]]:
        return (EventContext, self._key())  # copy and pickle, past `__setattr__`

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field '{name}': EventContext is frozen")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field '{name}': EventContext is frozen")

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
        if not changes:
            return self
        unknown = changes.keys() - set(_FIELDS)
        if unknown:  # what dataclasses.replace raised
            raise TypeError(f"EventContext has no field {sorted(unknown)[0]!r}")
        return EventContext(**{name: changes.get(name, getattr(self, name)) for name in _FIELDS})


EMPTY_CONTEXT = EventContext()
