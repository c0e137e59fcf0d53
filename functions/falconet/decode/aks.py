"""AKS audit logs through diagnostic settings: Event Hub bodies and storage-account blobs.

Event Hub delivers `{"records": [record, ...]}`; a storage account appends one record per line to
`PT1H.json` blobs (JSON lines, no outer array since 2018-11-01). A record is
`{"category": ..., "resourceId": ..., "properties": {"log": "<Event JSON as a string>", ...}}`.

* Only categories `kube-audit` and `kube-audit-admin` hold audit events; the others hold klog text
  and are skipped per record (`SKIP_CATEGORY`).
* Azure cuts `properties.log` at 16 KiB (Azure/AKS#4635): a log that fails to parse because it ends
  early, at about that length, is counted as `TRUNCATED`; other parse failures as `NOT_JSON`.
* The cluster name and the subscription (our `account`) come from `resourceId`, which Azure writes
  in upper case: they are lower-cased (Azure names are case-insensitive; users write them lower).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from falconet.decode.stats import (
    BAD_ENVELOPE,
    NOT_AUDIT_EVENT,
    SKIP_CATEGORY,
    TRUNCATED,
    reason_of,
)

if TYPE_CHECKING:
    from falconet.context import EventContext
    from falconet.decode.records import Decoded, Reader

AUDIT_CATEGORIES = frozenset({"kube-audit", "kube-audit-admin"})
AKS_LOG_LIMIT = 16 * 1024
_TRUNCATION_SLACK = 512  # how far below the cut a truncated log may end (escapes, UTF-8)
_UTF8_MAX = 4


def ids_from_resource_id(resource_id: object) -> tuple[str | None, str | None]:
    """(cluster, subscription) from an AKS `resourceId`, lower-cased; None where absent."""
    if type(resource_id) is not str:
        return None, None
    parts = resource_id.strip("/").split("/")
    lowered = [p.lower() for p in parts]
    cluster = subscription = None
    for index, part in enumerate(lowered[:-1]):
        if part == "managedclusters":
            cluster = lowered[index + 1] or None
        elif part == "subscriptions":
            subscription = lowered[index + 1] or None
    return cluster, subscription


def read_records(reader: Reader, records: list[Any], where: int, depth: int) -> Decoded:
    """Audit events of an Event Hub body's `records` array."""
    for index, record in enumerate(records):
        if type(record) is not dict:
            reader.reject(NOT_AUDIT_EVENT, where, "record is not an object", f"records[{index}]")
            continue
        yield from read_record(reader, record, where, depth, f"records[{index}]")


def read_record(
    reader: Reader, record: dict[str, Any], where: int, depth: int, sub: str
) -> Decoded:
    """Audit events of one diagnostic-settings record."""
    category = record.get("category")
    if type(category) is not str or category not in AUDIT_CATEGORIES:
        reader.skip(SKIP_CATEGORY)
        return
    properties = record.get("properties")
    log = properties.get("log") if type(properties) is dict else None
    if type(log) is not str:
        reader.reject(BAD_ENVELOPE, where, "properties.log is not a string", sub)
        return
    cluster, subscription = ids_from_resource_id(record.get("resourceId"))
    ctx: EventContext = reader.context_for(cluster, account=subscription)
    try:
        value = reader.parse(log)
    except orjson.JSONDecodeError as exc:
        ended_early = str(exc).startswith("unexpected end of data")
        size = len(log.encode(errors="surrogatepass"))
        if ended_early and size >= AKS_LOG_LIMIT - _TRUNCATION_SLACK:
            reader.reject(TRUNCATED, where, f"properties.log cut at {size} bytes", sub)
        else:
            reader.reject(reason_of(exc), where, str(exc), sub)
        return
    yield from reader.value(value, where, len(log) * _UTF8_MAX, ctx, depth + 1)
