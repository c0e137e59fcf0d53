"""Which parts of an audit event a field reads: what lets the decoder leave the rest undecoded.

The engine asks this of every field its rules, outputs and correlations read
(`Engine.body_readers`), to tell the decoder which events need their request and response
objects, and whether their `metadata.managedFields` (`falconet.decode.partial`). A field this
module cannot place is taken to read the whole event: the safe answer.
"""

from __future__ import annotations

from falconet.fields.jevt import _pointer_parts as pointer_parts
from falconet.fields.registry import lookup

BODIES = ("requestObject", "responseObject")
POINTERS = frozenset({"jevt.value", "json.value"})  # the fields whose argument says what they read

# Fields without a simple path, and which top-level keys they read (None: the whole event).
_CUSTOM_READS: dict[str, frozenset[str] | None] = {
    "ka.user.groups": frozenset({"user"}),
    "ka.uri.param": frozenset({"requestURI"}),
    "ka.target.pod.name": frozenset({"objectRef", "responseObject"}),
    "ka.sourceips": frozenset({"requestObject"}),  # upstream's quirk: requestObject.rules
}
_ENVELOPE_PREFIXES = ("evt.", "falconet.", "jevt.rawtime", "json.rawtime")


def reads_of(name: str, arg: str | None) -> frozenset[str] | None:
    """The top-level event keys the field `name[arg]` reads; None when it may read any (the whole
    event, or a field this table does not know: the safe answer)."""
    if name in POINTERS:
        parts = pointer_parts(arg)
        return frozenset(parts[:1]) if parts else None
    if name in _CUSTOM_READS:
        return _CUSTOM_READS[name]
    if name.startswith("ka.req."):
        return frozenset({"requestObject"})
    if name.startswith(_ENVELOPE_PREFIXES) and name not in ("jevt.obj", "json.obj"):
        return frozenset()
    definition = lookup(name)
    if definition is not None and definition.path:
        return frozenset({definition.path[0]})
    return None


def reads_managed(name: str, arg: str | None) -> bool:
    """Whether the field `name[arg]` may read a body's `metadata.managedFields`: a path into it,
    or to the body or its metadata whole. The custom `ka.req.*` fields read a body's spec,
    data, rules, subjects or roleRef, and `ka.target.pod.name` the response's name."""
    if name in POINTERS:
        path = pointer_parts(arg)
    else:
        definition = lookup(name)
        path = definition.path if definition is not None and definition.path else ()
        if not path:
            return reads_of(name, arg) is None
    if not path or path[0] not in BODIES:
        return not path
    return len(path) == 1 or (
        path[1] == "metadata" and (len(path) == 2 or path[2] == "managedFields")
    )


def split_spec(spec: str) -> tuple[str, str | None]:
    """`jevt.value[/a/b]` -> ("jevt.value", "/a/b"); `ka.verb` -> ("ka.verb", None)."""
    name, bracket, rest = spec.partition("[")
    return (name, rest[:-1] if bracket and rest.endswith("]") else None)
