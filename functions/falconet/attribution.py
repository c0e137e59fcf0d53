"""Attribution: the person behind a controller's pod. Workload writes in, `falconet.owner.*` out.

A pod created by a Deployment is created by `replicaset-controller`, so alerts on it name the
controller. This room remembers, in the state store, who wrote each workload (Deployment,
ReplicaSet, DaemonSet, StatefulSet, Job, CronJob) and which workload controls it, and gives every
event on a pod or workload with a controller ownerReference the top of that chain:

    attributor = Attributor(store, cluster=engine.field_getter("falconet.cluster"))  # per process
    batch = attributor.batch(deadline)                                 # per invocation
    for event, ctx in events:
        ctx = batch.look(event, ctx)            # records a write, names the owner in ctx
        ...evaluate(event, ctx)...
    batch.flush()                               # one conditional put per changed record

- **Recorded**: a successful (2xx, ResponseComplete) create, update or patch of a workload (not of
  a subresource): its last writer and time, its last writer that is not a platform controller
  (`is_platform`), and its controller ownerReference (kind, name), from `responseObject` when the
  audit policy logged it, else `requestObject`. Keyed by cluster, namespace, kind and name
  (hashed). A record expires `TTL_DAYS` after its last change.
- **Resolved**: an event (any verb, any outcome) on a pod or workload whose body names a controller
  ownerReference to a workload: the chain is followed (Pod -> ReplicaSet -> Deployment, Pod -> Job
  -> CronJob, Pod -> DaemonSet / StatefulSet) to the top, the first workload without a controller
  owner (or whose owner is a kind not recorded, such as an Argo Rollout: the chain ends at the last
  recorded workload). `owner_user` is the top's last writer that is not a platform controller, else
  its last writer (a controller, a GitOps tool); `owner_kind`, `owner_name` are the top's. When a
  workload on the way is not recorded (written before attribution ran, or its event not handled
  yet: events arrive out of order), the event gets no owner.
- **Order inside one invocation**: a record is visible to the events after it in the same batch at
  once (the Deployment, its ReplicaSet and its first pod usually arrive in one object), and written
  to the store at `flush`: one batched read of the changed records and one conditional put per
  record that changed, re-applied on a conflict (writes are merged by time, so re-applying and
  re-delivering are harmless, and a re-delivered object writes nothing).
- **Reads**: only for resolving, only for records not in this process's memory (an LRU of
  `CACHE_ENTRIES` records, each trusted for `CACHE_SECONDS`); the next level of the usual chains is
  guessed from the name (ReplicaSet `web-7d4b9c` -> Deployment `web`, Job `backup-2903040` ->
  CronJob `backup`) and read in the same request, so a pod's chain usually costs one read.

Never raises for event content; raises StateError when the store fails.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, NamedTuple

import orjson

from falconet.context import EventContext
from falconet.deadline import Deadline
from falconet.state import Item, Put, StateStore, update
from falconet.timestamps import parse_rfc3339_ns

# resource -> (kind, API group): the workloads recorded (apps/v1, batch/v1)
WORKLOADS: Final = {
    "deployments": ("Deployment", "apps"),
    "replicasets": ("ReplicaSet", "apps"),
    "daemonsets": ("DaemonSet", "apps"),
    "statefulsets": ("StatefulSet", "apps"),
    "jobs": ("Job", "batch"),
    "cronjobs": ("CronJob", "batch"),
}
_KIND_GROUP: Final = dict(WORKLOADS.values())
# The resources whose events may name an owner: what the pipeline's quick check tests.
ATTRIBUTED: Final = frozenset({"pods", *WORKLOADS})
# The usual next level, guessed from a name: read with the level that names it.
_PARENT_GUESS: Final = {"ReplicaSet": "Deployment", "Job": "CronJob"}
WRITES: Final = frozenset({"create", "update", "patch"})
QUIET_VERBS: Final = frozenset({"list", "watch", "deletecollection"})  # bodies are lists: no owner
TTL_DAYS = 30  # a record expires this long after its last change (or after now, for old events)
CACHE_ENTRIES = 50_000  # records a process keeps (a few MB)
CACHE_SECONDS = 300.0  # how long a record read from the store is trusted (another instance's
# later write is seen after at most this long)
MAX_DEPTH = 4  # ownerReference levels followed (Pod -> Job -> CronJob is 2)
FLUSH_RECORDS = 10_000  # changed records buffered before a flush
_MAX_TEXT = 512  # characters of a user, kind or name kept
_NS = 1_000_000_000
_log = logging.getLogger("falconet.attribution")

# Identities that act for someone else: skipped when looking for the person behind a workload.
_PLATFORM_USERS: Final = frozenset(
    {"system:kube-controller-manager", "system:kube-scheduler", "system:apiserver"}
)
_KUBE_SYSTEM = "system:serviceaccount:kube-system:"
_KUBE_SYSTEM_CONTROLLERS: Final = frozenset(
    {"generic-garbage-collector", "horizontal-pod-autoscaler", "persistent-volume-binder"}
)


def is_platform(user: str) -> bool:
    """Whether `user` is a platform controller: kube-controller-manager (as itself or through
    its `kube-system` service accounts, `*-controller` and a few others), the scheduler, the
    API server, a node. A GitOps tool or an operator is not: it is reported when it wrote last."""
    if user in _PLATFORM_USERS or user.startswith("system:node:"):
        return True
    if user.startswith(_KUBE_SYSTEM):
        account = user[len(_KUBE_SYSTEM) :]
        return account.endswith("-controller") or account in _KUBE_SYSTEM_CONTROLLERS
    return False


class Owner(NamedTuple):
    """The top of an object's controller chain."""

    user: str
    kind: str
    name: str


class Record(NamedTuple):
    """What is known of one workload. Times in ns of event time; each part is the one of the
    latest write that said something about it, so writes merge in any order."""

    user: str  # its last writer
    time: int
    human: str | None  # its last writer that is not a platform controller
    human_time: int
    owner: tuple[str, str] | None  # its controller ownerReference: kind, name
    owner_time: int

    def dumps(self) -> bytes:
        return orjson.dumps(
            {
                "u": self.user,
                "t": self.time,
                "h": self.human,
                "ht": self.human_time,
                "o": self.owner,
                "ot": self.owner_time,
            }
        )

    @classmethod
    def loads(cls, data: bytes | None, pk: str) -> Record | None:
        if data is None:
            return None
        try:
            d = orjson.loads(data)
            owner = d["o"]
            return cls(
                str(d["u"]),
                int(d["t"]),
                None if d["h"] is None else str(d["h"]),
                int(d["ht"]),
                None if owner is None else (str(owner[0]), str(owner[1])),
                int(d["ot"]),
            )
        except (ValueError, KeyError, TypeError, IndexError):
            _log.warning("falconet: state item %s is not one this version wrote: ignored", pk)
            return None


class Write(NamedTuple):
    """One recorded write of a workload."""

    user: str
    time: int
    owner: tuple[str, str] | None  # None: the body named none (or there was no body)
    has_body: bool  # a full object was logged: its lack of an owner is a fact


def merge(record: Record | None, write: Write) -> Record:
    """`record` with `write` applied: each part keeps the latest write's (ties broken by value),
    so the same writes in any order, any number of times, give the same record."""
    human = None if is_platform(write.user) else write.user
    says_owner = write.owner is not None or write.has_body  # a full object without one says so
    if record is None:
        return Record(
            write.user,
            write.time,
            human,
            write.time if human else 0,
            write.owner,
            write.time if says_owner else 0,
        )
    user, when = max((write.user, write.time), (record.user, record.time), key=_by_time)
    last_human, human_time = record.human, record.human_time
    if human is not None and (write.time, human) > (human_time, last_human or ""):
        last_human, human_time = human, write.time
    owner, owner_time = record.owner, record.owner_time
    if says_owner and (write.time, write.owner or ("", "")) > (owner_time, owner or ("", "")):
        owner, owner_time = write.owner, write.time
    return Record(user, when, last_human, human_time, owner, owner_time)


def _by_time(pair: tuple[str, int]) -> tuple[int, str]:
    return pair[1], pair[0]


def _text(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return value[:_MAX_TEXT]


def controller_of(obj: Any) -> tuple[str, str] | None:
    """The (kind, name) of the workload an object's controller ownerReference names, if any."""
    metadata = obj.get("metadata") if type(obj) is dict else None
    refs = metadata.get("ownerReferences") if type(metadata) is dict else None
    if type(refs) is not list:
        return None
    for ref in refs:
        if type(ref) is not dict or ref.get("controller") is not True:
            continue
        kind, name, api = ref.get("kind"), _text(ref.get("name")), ref.get("apiVersion")
        group = _KIND_GROUP.get(kind) if isinstance(kind, str) else None
        if group is None or name is None or not isinstance(api, str):
            return None
        if api.split("/", 1)[0] != group:
            return None
        return kind, name  # type: ignore[return-value]
    return None


def _body(event: Mapping[str, Any]) -> Any:
    """The logged object: the response (the object as stored) when present, else the request."""
    response = event.get("responseObject")
    if type(response) is dict and type(response.get("metadata")) is dict:
        return response
    request = event.get("requestObject")
    return request if type(request) is dict else None


Key = tuple[str, str, str, str]  # cluster, namespace, kind, name: how this process keys a record


def _state_key(key: Key) -> str:
    """The store's key of a record (hashed: bounded, and no names in the table's keys)."""
    h = hashlib.sha256()
    for part in key:
        h.update(part.encode("utf-8", "surrogatepass") + b"\x00")
    return "a/" + h.hexdigest()[:32]


Getter = Callable[[Mapping[str, Any], EventContext], Any]


class Attributor:
    """The process-wide part: the store, the cluster getter and the record cache."""

    def __init__(
        self,
        store: StateStore,
        *,
        cluster: Getter,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        cache_entries: int = CACHE_ENTRIES,
    ) -> None:
        self.store = store
        self.cluster = cluster
        self.clock = clock
        self.monotonic = monotonic
        self.cache_entries = cache_entries
        self._cache: OrderedDict[Key, tuple[Record, float]] = OrderedDict()
        self._lock = threading.Lock()

    def batch(self, deadline: Deadline | None = None) -> AttributionBatch:
        """A new invocation's part; its store requests end by `deadline`."""
        return AttributionBatch(self, deadline)

    def cached(self, key: Key) -> Record | None:
        """The record of `key` this process read or wrote within CACHE_SECONDS, or None."""
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return None
            if self.monotonic() - entry[1] > CACHE_SECONDS:
                del self._cache[key]
                return None
            self._cache.move_to_end(key)
            return entry[0]

    def remember(self, key: Key, record: Record) -> None:
        with self._lock:
            self._cache[key] = (record, self.monotonic())
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_entries:
                self._cache.popitem(last=False)  # the least recently used


_UNREAD: Final = object()


class AttributionBatch:
    """One invocation's records and lookups (see the module docstring)."""

    def __init__(self, attributor: Attributor, deadline: Deadline | None = None) -> None:
        self.attributor = attributor
        self.deadline = deadline
        self.writes: dict[Key, list[Write]] = defaultdict(list)
        # What this batch read from the store (None: absent), or took from the process cache.
        self.base: dict[Key, Record | None] = {}
        # Chains this batch resolved (forgotten at each write it records): a ReplicaSet's pods
        # after the first cost one dictionary lookup.
        self.resolved: dict[Key, Owner | None] = {}
        self.counters: dict[str, int] = defaultdict(int)

    # -- per event ---------------------------------------------------------------------------

    def look(self, event: Mapping[str, Any], ctx: EventContext) -> EventContext:
        """`see`, behind the quick check every event gets first (only writes and reads of pods
        and workloads may name an owner), flushing once FLUSH_RECORDS writes are buffered: what
        the pipeline and `falconet scan` call for each event. Raises StateError."""
        ref = event.get("objectRef")
        if (
            type(ref) is dict
            and ref.get("resource") in ATTRIBUTED
            and event.get("verb") not in QUIET_VERBS
        ):
            ctx = self.see(event, ctx)
            if len(self.writes) >= FLUSH_RECORDS:
                self.flush()
        return ctx

    def see(self, event: Mapping[str, Any], ctx: EventContext) -> EventContext:
        """Record `event` if it writes a workload; `ctx` with the owner of its object when known.
        Call it only for events whose objectRef.resource is in ATTRIBUTED. Raises StateError."""
        ref = event.get("objectRef")
        if type(ref) is not dict:
            return ctx
        namespace = _text(ref.get("namespace"))
        subresource = ref.get("subresource")
        if namespace is None or subresource == "status":
            return ctx  # pods and workloads are namespaced; status writes are the controllers'
        body = _body(event)
        owner = controller_of(body)
        cluster: str | None = None
        workload = WORKLOADS.get(ref.get("resource"))  # type: ignore[arg-type]
        if workload is not None and not subresource and ref.get("apiGroup") == workload[1]:
            cluster = self._cluster(event, ctx)
            self._record(event, ref, body, owner, cluster, namespace, workload[0])
        if owner is None:
            return ctx
        if cluster is None:
            cluster = self._cluster(event, ctx)
        start = (cluster, namespace, owner[0], owner[1])
        if start in self.resolved:
            found = self.resolved[start]
        else:
            found = self.resolved[start] = self.resolve(cluster, namespace, owner)
        if found is None:
            self.counters["unknown"] += 1
            return ctx
        self.counters["attributed"] += 1
        return EventContext(
            ctx.cluster, ctx.account, ctx.region, ctx.origin, found.user, found.kind, found.name
        )

    def _cluster(self, event: Mapping[str, Any], ctx: EventContext) -> str:
        value = self.attributor.cluster(event, ctx)
        return value if type(value) is str else ""

    def _record(
        self,
        event: Mapping[str, Any],
        ref: Mapping[str, Any],
        body: Any,
        owner: tuple[str, str] | None,
        cluster: str,
        namespace: str,
        kind: str,
    ) -> None:
        if event.get("verb") not in WRITES or event.get("stage") != "ResponseComplete":
            return
        status = event.get("responseStatus")
        code = status.get("code") if type(status) is dict else None
        if type(code) is not int or not 200 <= code < 300:
            return
        user_info = event.get("user")
        user = _text(user_info.get("username")) if type(user_info) is dict else None
        when = parse_rfc3339_ns(event.get("stageTimestamp"))
        metadata = body.get("metadata") if type(body) is dict else None
        name = _text(ref.get("name")) or (
            _text(metadata.get("name")) if type(metadata) is dict else None
        )
        if user is None or when is None or name is None:
            return
        # A create or update sends the whole object; a patch only what changes.
        full = type(metadata) is dict and (
            event.get("verb") != "patch" or body is event.get("responseObject")
        )
        self.writes[(cluster, namespace, kind, name)].append(Write(user, when, owner, full))
        self.resolved.clear()
        self.counters["recorded"] += 1

    # -- lookups -----------------------------------------------------------------------------

    def resolve(self, cluster: str, namespace: str, owner: tuple[str, str]) -> Owner | None:
        """The top of the chain that starts at workload `owner` (kind, name), or None when a
        workload on the way is not known. Raises StateError."""
        top: tuple[str, str, Record] | None = None
        current: tuple[str, str] | None = owner
        for _level in range(MAX_DEPTH):
            if current is None:
                break
            kind, name = current
            record = self._lookup((cluster, namespace, kind, name))
            if record is None:
                return None  # a workload on the way is not known (yet)
            top = (kind, name, record)
            current = record.owner
        else:
            if current is not None:
                return None  # deeper than any chain Kubernetes builds: not trusted
        if top is None:
            return None
        kind, name, record = top
        return Owner(record.human or record.user, kind, name)

    def _lookup(self, key: Key) -> Record | None:
        base = self.base.get(key, _UNREAD)
        writes = self.writes.get(key)
        if base is _UNREAD and writes:
            # Written by this invocation: what it wrote is enough when it logged the whole object
            # (so the owner is known) and, for a top workload, a person wrote it; the stored
            # record is read at the flush anyway.
            ours = _fold(None, writes)
            if ours.owner_time and (ours.owner is not None or ours.human is not None):
                return ours
        if base is _UNREAD:
            base = self.attributor.cached(key)
            if base is None:
                keys = [key]
                cluster, namespace, kind, name = key
                parent = _PARENT_GUESS.get(kind)
                if parent is not None and "-" in name:
                    guess = (cluster, namespace, parent, name.rsplit("-", 1)[0])
                    if guess not in self.base and self.attributor.cached(guess) is None:
                        keys.append(guess)
                self._read(keys)
                base = self.base[key]
            else:
                self.base[key] = base
        record: Record | None = base  # type: ignore[assignment]
        for write in writes or ():
            record = merge(record, write)
        return record

    def _read(self, keys: Sequence[Key]) -> None:
        pks = {_state_key(key): key for key in keys}
        items = self.attributor.store.get_many(list(pks), deadline=self.deadline)
        self.counters["state_reads"] += len(keys)
        for pk, key in pks.items():
            record = Record.loads(items[pk].data, pk)
            self.base[key] = record
            if record is not None:
                self.attributor.remember(key, record)

    # -- flushing ----------------------------------------------------------------------------

    @property
    def size(self) -> int:
        return len(self.writes)

    def flush(self) -> None:
        """Write every changed record: one batched read, one conditional put per record that
        changed, re-applied on a conflict. Raises StateError."""
        attributor = self.attributor
        keys = {_state_key(key): key for key in self.writes}

        def change(pk: str, item: Item) -> tuple[Put, Record]:
            record = _fold(Record.loads(item.data, pk), self.writes[keys[pk]])
            expires = max(record.time // _NS, int(attributor.clock())) + TTL_DAYS * 86400
            return Put(record.dumps(), expires), record

        done = update(
            attributor.store,
            keys,
            change,
            what="attribution",
            noun="record(s)",
            deadline=self.deadline,
            counters=self.counters,
        )
        for pk, record in done.items():
            attributor.remember(keys[pk], record)
        for key in self.writes:
            self.base.pop(key, None)  # the next events read the merged record from the cache
        self.writes.clear()


def _fold(record: Record | None, writes: Iterable[Write]) -> Record:
    for write in writes:
        record = merge(record, write)
    assert record is not None  # at least one write
    return record
