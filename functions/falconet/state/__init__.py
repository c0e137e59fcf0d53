"""The state store: what detections that span events remember between invocations.

One interface, two backends: `MemoryStore` (one process: `falconet scan`, tests, a single
functions-framework instance) and `DynamoDBStore` (one table shared by every function instance;
`FALCONET_STATE_TABLE`). Correlations and first-seen use it; only events that match a base rule
ever reach it.

    store = MemoryStore()                       # or DynamoDBStore("falconet-state")
    found = store.get_many(["c:1f...", "c:2a..."])     # key -> Item (absent: data None, version 0)
    ok = store.put("c:1f...", data, version=found["c:1f..."].version, expires=1767225600)
    due = store.due_keys(before=int(time.time()))        # keys put with `due=` now passed

The store keeps opaque bytes per key with a version: `put` writes only if the stored version is
still the one read (optimistic concurrency: two invocations updating one key cannot lose each
other's update; the loser reads again and re-applies its change). `expires` is the epoch second
after which the item reads as absent (DynamoDB's TTL deletes it some time later).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from falconet.deadline import Deadline
from falconet.errors import StateError

MAX_KEY_BYTES = 1024  # DynamoDB allows 2048 for a partition key; our keys are hashes
MAX_ITEM_BYTES = 350_000  # DynamoDB's item limit is 400 KB, attribute names and key included

__all__ = [
    "MAX_ITEM_BYTES",
    "Item",
    "MemoryStore",
    "Put",
    "StateError",
    "StateStore",
    "update",
]


@dataclass(frozen=True, slots=True)
class Item:
    """A key's stored bytes and version; `data` None and `version` 0 when the key is absent."""

    data: bytes | None
    version: int


ABSENT = Item(None, 0)


class StateStore(Protocol):
    """What correlations need from a store (see the module docstring)."""

    name: str  # for logs: "memory", "dynamodb:<table>"
    shared: bool  # True when every instance of the function sees the same state
    requests: Counter[str]  # "read", "write", "conflict": what this process asked of it

    def get_many(self, keys: Sequence[str], *, deadline: Deadline | None = None) -> dict[str, Item]:
        """The current item of every key (consistent reads). Raises StateError, also when
        `deadline` leaves no time for another attempt."""
        ...

    def put(
        self,
        key: str,
        data: bytes,
        *,
        version: int,
        expires: int,
        deadline: Deadline | None = None,
        due: int | None = None,
    ) -> bool:
        """Store `data` as version `version + 1` if the key is still at `version` (0: absent).
        True when written, False when another writer got there first. `due` (epoch seconds):
        the key is listed by `due_keys` from then on, until a put without it. Raises
        StateError."""
        ...

    def due_keys(
        self, before: int, *, limit: int = 1000, deadline: Deadline | None = None
    ) -> list[str]:
        """Keys whose `due` is at most `before` (epoch seconds), at most `limit` of them: what a
        scheduled sweep must look at. Raises StateError."""
        ...


MAX_ATTEMPTS = 8  # reads of a key `update` makes before it gives up on a contended key

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Put:
    """What `update`'s change function wants stored for a key (see `StateStore.put`)."""

    data: bytes
    expires: int
    due: int | None = None


def update(
    store: StateStore,
    keys: Iterable[str],
    change: Callable[[str, Item], tuple[Put | None, T]],
    *,
    what: str,
    noun: str = "key(s)",
    deadline: Deadline | None = None,
    counters: MutableMapping[str, int] | None = None,
) -> dict[str, T]:
    """Optimistic read-modify-write of many keys: one batched read, then for each key
    `change(key, item)` gives what to store (None, or the same bytes: nothing) and what to report
    once that holds; a key another writer changed in between is read again and changed again.
    Returns the reports of every key. `counters` counts `state_reads`, `state_writes` and
    `conflicts`. Raises StateError (`what`: who, in the message) after MAX_ATTEMPTS reads of a
    key that kept changing, or from the store."""
    done: dict[str, T] = {}
    todo = list(dict.fromkeys(keys))
    tally: MutableMapping[str, int] = {} if counters is None else counters

    def count(name: str, n: int = 1) -> None:
        tally[name] = tally.get(name, 0) + n

    for _attempt in range(MAX_ATTEMPTS):
        if not todo:
            return done
        items = store.get_many(todo, deadline=deadline)
        count("state_reads", len(todo))
        retry = []
        for key in todo:
            item = items[key]
            put, report = change(key, item)
            if put is not None and put.data != item.data:
                due = {} if put.due is None else {"due": put.due}  # absent: not due
                if not store.put(
                    key,
                    put.data,
                    version=item.version,
                    expires=put.expires,
                    deadline=deadline,
                    **due,
                ):
                    count("conflicts")
                    retry.append(key)
                    continue
                count("state_writes")
            done[key] = report
        todo = retry
    if not todo:
        return done
    raise StateError(f"{what}: {len(todo)} {noun} kept changing after {MAX_ATTEMPTS} attempts")


def check_item(key: str, data: bytes) -> None:
    """StateError for a key or an item over the limits every backend enforces."""
    if len(key.encode()) > MAX_KEY_BYTES:
        raise StateError(f"state key over {MAX_KEY_BYTES} bytes")
    if len(data) > MAX_ITEM_BYTES:
        raise StateError(f"state item {key} is {len(data)} bytes, over {MAX_ITEM_BYTES}")


from falconet.state.memory import MemoryStore  # noqa: E402 - the backends use the names above
