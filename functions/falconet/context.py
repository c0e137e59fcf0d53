"""Where a batch of audit events came from: cluster, cloud account, region, origin; and, per
event, the workload behind the object it touches.

An `EventContext` is built by the decoder from the envelope (EKS log group, GKE resource labels, AKS
resourceId) and from the trigger (URL parameter, object key, CloudEvent source). One instance is
shared by every event of the same envelope; the engine reads it for the `falconet.*` fields and adds
it to alerts. Frozen: the decoder derives a new one with `updated` when an envelope says more, and
the pipeline derives one per event that attribution names an owner for (`owner_user`,
`owner_kind`, `owner_name`: the top workload of the object's controller chain and who last wrote
it; see `falconet.attribution`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

_set = object.__setattr__  # how the constructor writes its slots past `__setattr__`
_FIELDS = ("cluster", "account", "region", "origin", "owner_user", "owner_kind", "owner_name")
_Key = tuple[str | None, str | None, str | None, str | None, str | None, str | None, str | None]


class EventContext:
    """Immutable, with value equality, hashing and `repr` like the frozen dataclass it replaces;
    written out because a dataclass costs ~1 ms of `exec` at every import (a cold start)."""

    __slots__ = _FIELDS
    __match_args__ = (
        "cluster",
        "account",
        "region",
        "origin",
        "owner_user",
        "owner_kind",
        "owner_name",
    )

    cluster: str | None
    account: str | None
    region: str | None
    origin: str | None  # e.g. "s3://bucket/key", "webhook", a CloudEvent source
    owner_user: str | None  # who last wrote the top workload behind the event's object
    owner_kind: str | None  # that workload's kind: Deployment, CronJob, DaemonSet, ...
    owner_name: str | None  # and its name (in the event's namespace)

    def __init__(
        self,
        cluster: str | None = None,
        account: str | None = None,
        region: str | None = None,
        origin: str | None = None,
        owner_user: str | None = None,
        owner_kind: str | None = None,
        owner_name: str | None = None,
    ) -> None:
        _set(self, "cluster", cluster)
        _set(self, "account", account)
        _set(self, "region", region)
        _set(self, "origin", origin)
        _set(self, "owner_user", owner_user)
        _set(self, "owner_kind", owner_kind)
        _set(self, "owner_name", owner_name)

    def _key(self) -> _Key:
        return (
            self.cluster,
            self.account,
            self.region,
            self.origin,
            self.owner_user,
            self.owner_kind,
            self.owner_name,
        )

    def __eq__(self, other: Any) -> bool:
        if other.__class__ is EventContext:
            return self._key() == other._key()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        owner = ""
        if self.owner_user or self.owner_kind or self.owner_name:  # only when set: logs stay short
            owner = (
                f", owner_user={self.owner_user!r}, owner_kind={self.owner_kind!r}, "
                f"owner_name={self.owner_name!r}"
            )
        return (
            f"EventContext(cluster={self.cluster!r}, account={self.account!r}, "
            f"region={self.region!r}, origin={self.origin!r}{owner})"
        )

    def __reduce__(self) -> tuple[type[EventContext], _Key]:
        return (EventContext, self._key())  # copy and pickle, past `__setattr__`

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field '{name}': EventContext is frozen")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field '{name}': EventContext is frozen")

    def with_defaults(self, other: EventContext) -> EventContext:
        """This context, with every unset value taken from `other`."""
        return EventContext(*(a or b for a, b in zip(self._key(), other._key(), strict=True)))

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
