"""The in-process state store: `falconet scan`, tests, one functions-framework instance."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence

from falconet import state
from falconet.deadline import Deadline


class MemoryStore:
    """Items in a dictionary, behind a lock (a functions-framework server runs threads).

    `clock` gives the epoch second that `expires` is compared with (default: wall time); an item
    past its `expires` reads as absent."""

    name = "memory"
    shared = False

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._items: dict[str, tuple[bytes, int, int]] = {}
        self._due: dict[str, int] = {}  # key -> epoch second it is due
        self._lock = threading.Lock()
        self._clock = clock
        self.requests: Counter[str] = Counter()

    def get_many(
        self, keys: Sequence[str], *, deadline: Deadline | None = None
    ) -> dict[str, state.Item]:
        now = self._clock()
        found: dict[str, state.Item] = {}
        with self._lock:
            self.requests["read"] += len(keys)
            for key in keys:
                stored = self._items.get(key)
                if stored is None:
                    found[key] = state.ABSENT
                elif stored[2] < now:
                    # Expired: absent, but the next version must still be greater (a writer that
                    # read it before it expired must not overwrite a newer item).
                    found[key] = state.Item(None, stored[1])
                else:
                    found[key] = state.Item(stored[0], stored[1])
        return found

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
        state.check_item(key, data)
        with self._lock:
            stored = self._items.get(key)
            current = stored[1] if stored is not None else 0
            if current != version:
                self.requests["conflict"] += 1
                return False
            self.requests["write"] += 1
            self._items[key] = (bytes(data), version + 1, int(expires))
            if due is None:
                self._due.pop(key, None)
            else:
                self._due[key] = int(due)
            return True

    def due_keys(
        self, before: int, *, limit: int = 1000, deadline: Deadline | None = None
    ) -> list[str]:
        with self._lock:
            self.requests["query"] += 1
            found = sorted((at, key) for key, at in self._due.items() if at <= before)
        return [key for _, key in found[:limit]]

    def __len__(self) -> int:
        return len(self._items)
