"""Cost of the falconet.src.* enrichment (scope + geolocation), with a database and without.

Builds a City-like and an ASN-like MaxMind database with mmdb-writer in a temporary directory (or
uses `--db PATH[:PATH]`, e.g. a real GeoLite2-City), a seeded batch of events whose `sourceIPs[0]`
is 70 % private/loopback and 30 % public drawn from 200 distinct addresses, and measures, in
interleaved rounds (median and best of `--rounds`):

- per event, cold: a fresh cache, the whole batch resolved (what one batch costs a new process);
- per event, warm: the same batch again (a warm function's next batch);
- per alert: resolve + `describe` (the `--explain` text) for an event that raised an alert;
- per distinct lookup: the 200 public addresses resolved once each from an empty cache;
- `orjson.loads` of a 1.7 KB audit event, the project's yardstick.

Usage: .venv/bin/python bench/geoip_cost.py [--events N] [--rounds N] [--db PATH]
`measure()` returns the figures as a dict so that `bench/bench.py` can fold them in.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import maxminddb
import orjson
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from falconet.geoip import GeoIP, describe

DISTINCT_PUBLIC = 200
PRIVATE_SHARE = 0.70

CITIES = [
    ("FR", "France", "Paris"),
    ("GB", "United Kingdom", "London"),
    ("DE", "Germany", "Frankfurt am Main"),
    ("US", "United States", "Ashburn"),
    ("SG", "Singapore", "Singapore"),
    ("BR", "Brazil", "São Paulo"),
]


def public_networks(rng: random.Random, count: int) -> list[str]:
    """Distinct public /24s (first octet 11-99 avoids every special range but 100.64/10)."""
    nets: set[str] = set()
    while len(nets) < count:
        nets.add(f"{rng.randint(11, 99)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.0/24")
    return sorted(nets)


def build_databases(directory: Path, networks: list[str]) -> str:
    """A City-like (IPv4 + IPv6) and an ASN-like database; returns the FALCONET_GEOIP_DB value."""
    city = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City")
    asn = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN")
    for i, net in enumerate(networks):
        iso, country, name = CITIES[i % len(CITIES)]
        record = {"country": {"iso_code": iso, "names": {"en": country}}}
        record["city"] = {"names": {"en": name}}
        city.insert_network(IPSet([net]), record)
        asn.insert_network(
            IPSet([net]),
            {"autonomous_system_number": 64_000 + i, "autonomous_system_organization": f"AS {i}"},
        )
    city.insert_network(IPSet(["2a01:e0a::/32"]), {"country": {"iso_code": "FR"}})
    city_path, asn_path = directory / "city.mmdb", directory / "asn.mmdb"
    city.to_db_file(str(city_path))
    asn.to_db_file(str(asn_path))
    return f"{city_path}:{asn_path}"


def make_events(rng: random.Random, count: int, networks: list[str]) -> list[dict[str, Any]]:
    # 80 % of the public addresses are in the database, 20 % are not (unknown public).
    located = [str(IPv4Address(net.split("/")[0]) + rng.randint(1, 254)) for net in networks]
    unknown = [f"{rng.randint(101, 126)}.{rng.randint(0, 255)}.0.{i}" for i in range(40)]
    public = located[: DISTINCT_PUBLIC - len(unknown)] + unknown
    private = ["127.0.0.1", "::1", "10.0.0.1", "10.0.12.7", "172.16.3.4", "192.168.0.10"]
    private += [f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{i}" for i in range(40)]
    events = []
    for i in range(count):
        ip = rng.choice(private) if rng.random() < PRIVATE_SHARE else rng.choice(public)
        events.append({"auditID": f"id-{i}", "verb": "get", "sourceIPs": [ip, "10.0.0.2"]})
    return events


def reference_event() -> bytes:
    """A 1.7 KB Request-level audit event, the size of the project's reference corpus."""
    event = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Request",
        "auditID": "5c2a4b6e-0f39-4f65-9d0f-6a3c5b2f1e11",
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/payments/pods?fieldManager=kubectl-client-side-apply",
        "verb": "create",
        "user": {
            "username": "alice@example.com",
            "groups": ["system:authenticated", "platform-admins"],
            "extra": {"accessKeyId": ["AKIAEXAMPLE"], "arn": ["arn:aws:sts::1:assumed-role/a/b"]},
        },
        "sourceIPs": ["81.2.69.160"],
        "userAgent": "kubectl/v1.30.2 (linux/amd64) kubernetes/3968350",
        "objectRef": {
            "resource": "pods",
            "namespace": "payments",
            "name": "debug",
            "apiVersion": "v1",
        },
        "responseStatus": {"metadata": {}, "code": 201},
        "requestObject": {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {"name": "debug", "namespace": "payments", "labels": {"app": "debug"}},
            "spec": {
                "hostNetwork": True,
                "hostPID": True,
                "containers": [
                    {
                        "name": "shell",
                        "image": "docker.io/library/busybox:1.36",
                        "command": ["sh", "-c", "sleep 3600"],
                        "securityContext": {"privileged": True, "runAsUser": 0},
                        "volumeMounts": [{"name": "host", "mountPath": "/host"}],
                    }
                ],
                "volumes": [{"name": "host", "hostPath": {"path": "/", "type": "Directory"}}],
            },
        },
        "requestReceivedTimestamp": "2026-03-11T15:45:00.123456Z",
        "stageTimestamp": "2026-03-11T15:45:00.134567Z",
        "annotations": {
            "authorization.k8s.io/decision": "allow",
            "authorization.k8s.io/reason": 'RBAC: allowed by ClusterRoleBinding "admins"',
            "pod-security.kubernetes.io/enforce-policy": "privileged:latest",
        },
    }
    text = orjson.dumps(event)
    return text + b" " * max(0, 1700 - len(text))  # pad to the corpus mean


def enrich(geo: GeoIP, events: list[dict[str, Any]]) -> int:
    """What the field registry does per event: scope, country, city, asn of sourceIPs[0]."""
    found = 0
    for event in events:
        source = geo.resolve(event["sourceIPs"][0])
        if source is not None and source.location is not None:
            location = source.location
            found += (location.country, location.city, location.asn, source.scope) is not None
    return found


def explain(geo: GeoIP, events: list[dict[str, Any]]) -> int:
    """What an alert adds: the resolved source and its `describe` text."""
    total = 0
    for event in events:
        source = geo.resolve(event["sourceIPs"][0])
        if source is not None:
            total += len(describe(source.ip, source.location, source.scope))
    return total


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter_ns()
    fn()
    return float(time.perf_counter_ns() - start)


def measure(
    *, events: int = 20_000, rounds: int = 5, db: str | None = None, seed: int = 7
) -> dict[str, Any]:
    """Median and best figures in µs, for database "on" and "off"."""
    rng = random.Random(seed)
    networks = public_networks(rng, 2_000)
    with tempfile.TemporaryDirectory() as tmp:
        setting = db or build_databases(Path(tmp), networks)
        on, off = GeoIP.open(setting), GeoIP.disabled()
    batch = make_events(rng, events, networks)
    distinct = sorted({e["sourceIPs"][0] for e in batch if on.resolve(e["sourceIPs"][0])})
    public = [ip for ip in distinct if (s := on.resolve(ip)) is not None and s.scope == "public"]
    ref = [reference_event()] * 2_000

    samples: dict[str, list[float]] = {}

    def add(name: str, ns: float, per: int) -> None:
        samples.setdefault(name, []).append(ns / per / 1000)

    for _ in range(rounds):  # interleaved: a noisy neighbour hurts every variant alike
        add("orjson.loads per event", _time(lambda: [orjson.loads(b) for b in ref]), len(ref))
        for name, geo in (("on", on), ("off", off)):
            geo.clear_cache()
            add(f"{name}: per event, cold cache", _time(lambda g=geo: enrich(g, batch)), events)
            add(f"{name}: per event, warm cache", _time(lambda g=geo: enrich(g, batch)), events)
            add(
                f"{name}: per alert (resolve + describe)",
                _time(lambda g=geo: explain(g, batch)),
                events,
            )
            geo.clear_cache()
            add(
                f"{name}: per distinct public address",
                _time(lambda g=geo: enrich_ips(g, public)),
                len(public),
            )
    before = on.stats().db_lookups
    on.clear_cache()
    enrich(on, batch)
    lookups_per_batch = on.stats().db_lookups - before
    on.close()
    figures: dict[str, Any] = {
        name: {"median_us": statistics.median(v), "best_us": min(v)} for name, v in samples.items()
    }
    figures["_meta"] = {
        "events": events,
        "rounds": rounds,
        "distinct_texts": len(distinct),
        "distinct_public": len(public),
        "private_share": sum(1 for e in batch if not _is_public(on, e)) / events,
        "reader": "C extension" if _has_extension() else "pure Python",
        "databases": on.databases,
        "db_lookups_per_batch": lookups_per_batch,
    }
    return figures


def enrich_ips(geo: GeoIP, ips: list[str]) -> None:
    for ip in ips:
        geo.resolve(ip)


def _is_public(geo: GeoIP, event: dict[str, Any]) -> bool:
    source = geo.resolve(event["sourceIPs"][0])
    return source is not None and source.scope == "public"


def _has_extension() -> bool:
    extension = getattr(maxminddb, "extension", None)
    return extension is not None and hasattr(extension, "Reader")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--db", help="FALCONET_GEOIP_DB-style path list (default: built here)")
    args = parser.parse_args()
    figures = measure(events=args.events, rounds=args.rounds, db=args.db)
    meta = figures.pop("_meta")
    print(
        f"geoip enrichment: {meta['events']} events, {meta['private_share']:.0%} non-public, "
        f"{meta['distinct_public']} distinct public addresses, maxminddb {meta['reader']}, "
        f"median and best of {meta['rounds']} interleaved rounds"
    )
    print(f"databases: {', '.join(meta['databases'])}")
    print(f"database lookups for one batch from a cold cache: {meta['db_lookups_per_batch']}")
    ref = figures["orjson.loads per event"]["median_us"]
    width = max(len(name) for name in figures)
    print(f"{'':{width}}  {'median µs':>10}  {'best µs':>9}  {'× orjson':>8}")
    for name, v in figures.items():
        print(
            f"{name:{width}}  {v['median_us']:10.3f}  {v['best_us']:9.3f}"
            f"  {v['median_us'] / ref:8.3f}"
        )


if __name__ == "__main__":
    main()
