"""Decoding only what is read: an audit event without the request and response objects, or
their managedFields, when nothing reads them.

`orjson.loads` of every whole event was the largest cost of a detection run end to end (a real
event is mostly `requestObject` and `responseObject`: pod specs, managedFields), though most rules
read only the envelope (verb, user, objectRef, ...). `read_line` decodes one JSON line with msgspec
into a typed `_Envelope` whose two bodies stay raw (their members found, none decoded), and makes
the event dict from it. The bodies are decoded, by orjson, only when the event's (verb, resource)
is one a reader of bodies admits (`BodyPlan`: made from `Engine.body_readers`, what the rules,
outputs and correlations read, plus attribution, by the pipeline), and then without the
`metadata.managedFields` of a large metadata unless a reader may read those
(`falconet.fields.reads`). Lines under `MIN_BYTES` are decoded whole: there it costs more than
it saves.

The fast path gives exactly what `orjson.loads` gives, bar what the plan leaves out, or steps
aside: `read_line` returns None (the caller then decodes the line as before) for an object with
a key the envelope does not list, a value of a type it does not expect (a number where a string
is, an integer past 64 bits), no `auditID`, bodies to be read whole, a line that is not ASCII when
bytes are skipped (skipped bytes are not checked for UTF-8; what msgspec decodes, it checks as
strictly as orjson), or anything msgspec or orjson refuses. What msgspec reads, it reads as orjson
does (strings, escapes, the last of duplicate keys); hypothesis checks it
(tests/unit/decode/test_partial.py). The one difference left: skipped bytes are checked for JSON
syntax but not for a number beyond a double's range (`1e400`), which makes orjson refuse the whole
line and the full path then read the event Falco's way (`falconet.decode.source`); here the
envelope is read as orjson reads it. The two readings of an envelope differ only for duplicate
keys, NULs and numbers as written, which the API server does not write there.

The event dict's top-level keys are in the envelope's order, not the line's: only a reader of the
whole event could tell, and such a reader (`jevt.obj`, a pointer to the root) means no plan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated, Any

import msgspec
import orjson
from msgspec import UNSET, Meta, Raw, UnsetType

# Integers within int64 (orjson reads larger ones as float, msgspec as int, and msgspec bounds
# stop at int64): a bounded type makes msgspec refuse the rest, which take the full path.
_Int = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
_Str = str | UnsetType
# A body: its members found, each left raw (not an object: the event takes the full path).
_Body = dict[str, Raw] | UnsetType
_UserInfo = dict[str, str | list[str] | dict[str, list[str]]] | UnsetType
# metav1.Status: code, status, message, reason, metadata {}, details (name, kind, causes[], ...)
_Status = dict[str, str | _Int | dict[str, str | _Int | list[dict[str, str]]]] | UnsetType

BODIES = ("requestObject", "responseObject")
# Below these sizes the fast path costs more than it saves: a line (msgspec makes an envelope's
# objects ~15 % slower than orjson, and decoding a small body member by member costs a call per
# member: on the bench's 1.5 KB corpus every line under 4 KiB lost, 2.6 -> 2.8-3.0 x parse end to
# end at 0 or 2 KiB), and an object's metadata (found member by member only when large).
MIN_BYTES = 4096
SKIM_BYTES = 1024


class _Envelope(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The fields of an audit.k8s.io/v1 Event, typed as the API server writes them. Any other
    shape fails to decode here and the line takes the full path."""

    kind: _Str = UNSET
    apiVersion: _Str = UNSET
    level: _Str = UNSET
    auditID: _Str = UNSET
    stage: _Str = UNSET
    requestURI: _Str = UNSET
    verb: _Str = UNSET
    user: _UserInfo = UNSET
    impersonatedUser: _UserInfo = UNSET
    sourceIPs: list[str] | UnsetType = UNSET
    userAgent: _Str = UNSET
    objectRef: dict[str, str] | UnsetType = UNSET
    responseStatus: _Status = UNSET
    requestObject: _Body = UNSET
    responseObject: _Body = UNSET
    requestReceivedTimestamp: _Str = UNSET
    stageTimestamp: _Str = UNSET
    annotations: dict[str, str] | UnsetType = UNSET


_decode = msgspec.json.Decoder(_Envelope).decode
_parts = msgspec.json.Decoder(dict[str, Raw]).decode  # an object's members, each left raw
_MsgspecError = msgspec.MsgspecError


def _builder() -> Callable[[_Envelope], dict[str, Any]]:
    """`envelope -> dict` of its set fields but the bodies, unrolled (a loop of `getattr` over
    the fields cost twice as much). Generated from the fixed field list above, nothing else."""
    lines = ["def build(e):", "    out = {}"]
    for name in _Envelope.__struct_fields__:
        if name not in BODIES:
            lines += [f"    if (v := e.{name}) is not U:", f"        out[{name!r}] = v"]
    lines.append("    return out")
    scope: dict[str, Any] = {"U": UNSET}
    exec(compile("\n".join(lines), "<falconet.decode.partial>", "exec"), scope)  # noqa: S102
    return scope["build"]  # type: ignore[no-any-return]


_build = _builder()

# What an event's bodies need (`BodyPlan.needs`).
SKIP = 0  # nothing reads them: left out
SKIM = 1  # read, but not their `metadata.managedFields`: decoded without those
WHOLE = 2  # read whole: the event takes the full path


class BodyPlan:
    """How much of the request and response objects an event needs, by its verb and resource:
    the most any reader of bodies admitting them needs. A reader is the verbs and resources it
    is limited to (None: any) -- a rule's index keys, attribution's resources -- and whether
    it may read `managedFields` (`reads_managed`)."""

    __slots__ = ("_cache", "_readers", "min_bytes")

    def __init__(self, min_bytes: int = MIN_BYTES) -> None:
        self._readers: list[tuple[frozenset[str] | None, frozenset[str] | None, int]] = []
        self._cache: dict[tuple[str | None, str | None], int] = {}
        self.min_bytes = min_bytes  # shorter lines are decoded whole (0 in tests: every line)

    @classmethod
    def of(
        cls, readers: Iterable[tuple[frozenset[str] | None, frozenset[str] | None, bool]]
    ) -> BodyPlan:
        """A plan of readers (verbs, resources, managed), as `Engine.body_readers` gives them."""
        plan = cls()
        for verbs, resources, managed in readers:
            plan.add(verbs, resources, managed=managed)
        return plan

    def add(
        self,
        verbs: frozenset[str] | None,
        resources: frozenset[str] | None,
        *,
        managed: bool = False,
    ) -> None:
        """A reader of the bodies of events with one of `verbs` and one of `resources`."""
        self._readers.append((verbs, resources, WHOLE if managed else SKIM))
        self._cache.clear()

    def needs(self, verb: str | None, resource: str | None) -> int:
        """SKIP, SKIM or WHOLE for an event with this verb and resource (None: absent)."""
        key = (verb, resource)
        found = self._cache.get(key)
        if found is None:
            found = max(
                (
                    level
                    for verbs, resources, level in self._readers
                    if (verbs is None or verb in verbs)
                    and (resources is None or resource in resources)
                ),
                default=SKIP,
            )
            if len(self._cache) >= 4096:
                self._cache.clear()
            self._cache[key] = found
        return found


def _skim(parts: dict[str, Raw]) -> dict[str, Any]:
    """A request or response object (its members, raw) as `orjson.loads` gives it, but for the
    `managedFields` of a large metadata (the largest part of most objects, read by no field),
    left out; each member is decoded by orjson (a small metadata whole: one call costs less than
    finding its members)."""
    loads = orjson.loads
    body: dict[str, Any] = {}
    for key, part in parts.items():
        if key != "metadata" or len(part) < SKIM_BYTES:
            body[key] = loads(memoryview(part))
            continue
        try:
            fields = _parts(part)
        except _MsgspecError:  # not an object
            body[key] = loads(memoryview(part))
            continue
        body[key] = {k: loads(memoryview(v)) for k, v in fields.items() if k != "managedFields"}
    return body


def read_line(line: bytes, plan: BodyPlan) -> dict[str, Any] | None:
    """The audit event on `line` as `orjson.loads` would give it, without what nothing reads
    (`plan`): its request and response objects, or their `metadata.managedFields`; None when the
    line must take the full path (what the module's docstring lists). Raises nothing."""
    try:
        envelope = _decode(line)
    except _MsgspecError:
        return None
    if envelope.auditID is UNSET or envelope.kind != "Event":
        return None
    event = _build(envelope)
    request = envelope.requestObject
    response = envelope.responseObject
    if request is UNSET and response is UNSET:
        return event
    verb = envelope.verb
    ref = envelope.objectRef
    need = plan.needs(
        None if verb is UNSET else verb, ref.get("resource") if type(ref) is dict else None
    )
    if need == WHOLE or not line.isascii():  # what is skipped is not checked for UTF-8
        return None
    if need == SKIP:
        return event
    try:
        if request is not UNSET:
            event["requestObject"] = _skim(request)
        if response is not UNSET:
            event["responseObject"] = _skim(response)
    except orjson.JSONDecodeError:
        return None  # what orjson refuses in a part: the full path reads it as before
    return event
