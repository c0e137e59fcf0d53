"""The fields a condition or output may name: one registry, one module per field family.

    from falconet import fields
    definition = fields.lookup("ka.user.name")      # a FieldDef, or None
    getter = definition.bind(None)                  # getter(event, context) -> value or None

- `registry`: `FieldDef`, the registry itself and the helpers the families share;
- `k8saudit`: `ka.*` fields of the request and its objects; `pods`: `ka.req.pod.*` and friends;
- `jevt`: the json plugin's `jevt.*` / `json.*`; `evt`: Falco's generic `evt.*`;
- `extensions`: falconet's own `falconet.*` (source address, cluster, account, ...).

Importing this package registers every family, in that order (the order `falconet fields` lists).
This module is the one public entry: the rule compiler, the alert code and the CLI use only what it
exports.
"""

from __future__ import annotations

# Each family registers its fields when imported, in this order (what `falconet fields` lists).
# isort: off
from falconet.fields import k8saudit  # noqa: F401
from falconet.fields import pods  # noqa: F401
from falconet.fields import jevt  # noqa: F401
from falconet.fields import evt  # noqa: F401
from falconet.fields import extensions  # noqa: F401

# isort: on
from falconet.fields.evt import TIME_TEXT_FIELDS
from falconet.fields.registry import (
    ARG_INDEX,
    ARG_KEY,
    ARG_NONE,
    EMPTY_ENV,
    MISSING,
    ArgumentError,
    BindEnv,
    Event,
    EventCounter,
    FieldDef,
    Getter,
    InlineRead,
    Step,
    Value,
    iter_fields,
    lookup,
    string_list,
    stringify,
    stringify_or_none,
    suggest,
)

__all__ = [
    "ARG_INDEX",
    "ARG_KEY",
    "ARG_NONE",
    "EMPTY_ENV",
    "MISSING",
    "ArgumentError",
    "BindEnv",
    "Event",
    "EventCounter",
    "TIME_TEXT_FIELDS",
    "FieldDef",
    "Getter",
    "InlineRead",
    "Value",
    "iter_fields",
    "lookup",
    "string_list",
    "stringify",
    "stringify_or_none",
    "suggest",
    "Step",
]
