"""MaxMind-format databases built by the tests themselves (mmdb-writer): no downloaded data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdb_writer import MMDBWriter
from netaddr import IPSet


def city(iso: str, country: str, name: str | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"country": {"iso_code": iso, "names": {"en": country, "fr": "x"}}}
    if name is not None:
        record["city"] = {"names": {"en": name, "de": "y"}}
    return record


def asn(number: int, org: str) -> dict[str, Any]:
    return {"autonomous_system_number": number, "autonomous_system_organization": org}


def build_db(
    path: Path,
    networks: dict[str, dict[str, Any]],
    *,
    ip_version: int = 6,
    database_type: str = "GeoLite2-City",
) -> str:
    writer = MMDBWriter(
        ip_version=ip_version,
        ipv4_compatible=ip_version == 6,
        database_type=database_type,
        languages=["en"],
        description="falconet test database",
    )
    for cidr, record in networks.items():
        writer.insert_network(IPSet([cidr]), record)
    writer.to_db_file(str(path))
    return str(path)
