"""Where a request came from: the scope of a client address and its location in a MaxMind database.

In: the text of a client address as an audit event carries it (the first entry of `sourceIPs`), and,
once per cold start, the path(s) of MaxMind-format databases from configuration (`FALCONET_GEOIP_DB`
or `--geoip-db`). Out: a `Address` (canonical address, scope, optional `Location`) that the field
registry turns into `falconet.src.scope`, `falconet.src.country`, `falconet.src.city`,
`falconet.src.asn`, and the short "where" text of `--explain` (`describe`).

Accepted address forms (anything else is "not an address": `None`, never an exception):
  - IPv4 dotted quad (`10.23.2.45`; leading zeros are rejected, as `ipaddress` does since 3.9.5);
  - IPv6 in any RFC 4291 form (`2a01:e0a::1`), with an optional zone (`fe80::1%eth0`, dropped);
  - IPv4-mapped IPv6 (`::ffff:81.2.69.160`), treated as the IPv4 address it carries, because a
    dual-stack API server reports IPv4 clients that way and the IPv4 tree is where they are located;
  - `host:port` only where it is unambiguous: `81.2.69.160:443` and `[2a01:e0a::1]:443`. A bare
    IPv6 address followed by `:port` cannot be told apart from an address, so it is not guessed at.
Kubernetes writes bare addresses in `sourceIPs`; the port forms are tolerated so that other callers
(a webhook's remote address, a log line) get the same answer instead of a silent "not an address".

Scope: see `ip_scope` for the ordered tables (in `falconet.ipscope`, re-exported here, so that
the scope field costs no database code). Only `public` addresses are ever looked up.

What this module never does: open a path that comes from an event (only `GeoIP.open`'s argument,
which comes from configuration, is opened); any I/O after `GeoIP.open` other than the reads of the
memory-mapped database that `maxminddb` does; execute or interpret event text (it is parsed by
`ipaddress` and used as a cache key, nothing else).

Threads: `maxminddb` readers are safe for concurrent reads, `functools.lru_cache` is thread-safe,
and `Location`/`Address` are immutable, so one `GeoIP` is shared by every thread of a process.
"""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import TYPE_CHECKING, Final

from falconet.config import GEOIP_DB
from falconet.errors import ConfigError
from falconet.ipscope import (  # re-exported: the scope half of this module's API
    DOCUMENTATION,
    LINK_LOCAL,
    LOOPBACK,
    MULTICAST,
    PRIVATE,
    PUBLIC,
    RESERVED,
    SCOPES,
    SHARED,
    UNSPECIFIED,
    ip_scope,
    parse_ip,
    scope_of,
)

if TYPE_CHECKING:
    import logging

    from maxminddb import Reader


def _log() -> logging.Logger:
    # logging (and the threading it pulls in) is ~4 ms of import: only for the rare warnings.
    import logging

    return logging.getLogger(__name__)


INSTALL_HINT: Final = "pip install 'falconet[geoip]'"
DOCS: Final = "docs/geoip.md"

# A batch has far fewer distinct client addresses than 4096 (an API server sees its nodes, its
# controllers and a handful of humans), so every distinct address of a batch is looked up once: that
# is how "looked up once per distinct IP per batch" is met without any per-batch state. Beyond 4096
# the least recently used are evicted and may be looked up again, which costs microseconds and
# changes no answer (the database does not change while the process lives). A full cache holds
# about 1.6 MiB (tracemalloc, 4096 public addresses, both caches of `GeoIP`).
DEFAULT_CACHE_SIZE: Final = 4096


@dataclass(frozen=True, slots=True)
class Location:
    """What the database(s) know about a public address. Every field may be None."""

    country: str | None = None  # ISO 3166-1 alpha-2, e.g. "FR"
    country_name: str | None = None  # English name, e.g. "France"
    city: str | None = None  # English name, e.g. "Paris"
    asn: int | None = None  # autonomous system number, e.g. 12322
    as_org: str | None = None  # autonomous system organisation, e.g. "Free SAS"


@dataclass(frozen=True, slots=True)
class Address:
    """A client address: canonical text, scope, and location (None unless public and known)."""

    ip: str  # canonical: "81.2.69.160", "2a01:e0a::1"; IPv4-mapped IPv6 as IPv4, no zone
    scope: str  # one of SCOPES
    location: Location | None = None


@dataclass(frozen=True, slots=True)
class GeoIPStats:
    """Counters for logs and the benchmark."""

    db_lookups: int  # public addresses looked up in the database(s): once each while cached
    cache_hits: int  # `resolve` answered from the cache
    cache_misses: int  # texts parsed and scoped (and looked up when public and not yet known)
    errors: int  # lookups a database failed (the address then has no location)


# A record's fields in `Location` order: country, country_name, city, asn, as_org.
_Fields = tuple[str | None, str | None, str | None, int | None, str | None]
_NO_FIELDS: Final[_Fields] = (None, None, None, None, None)


def _get(record: dict[str, object], *keys: str) -> object:
    # `dict`, not `Mapping`: maxminddb decodes maps to dicts, and an ABC isinstance check costs
    # more than the whole look-up.
    value: object = record
    for key in keys:
        if type(value) is not dict:
            return None
        value = value.get(key)
    return value


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _fields(record: object) -> _Fields:
    if type(record) is not dict:
        return _NO_FIELDS
    iso = _text(_get(record, "country", "iso_code"))
    asn = record.get("autonomous_system_number")
    if asn is None:
        asn = _get(record, "traits", "autonomous_system_number")
    as_org = record.get("autonomous_system_organization")
    if as_org is None:
        as_org = _get(record, "traits", "autonomous_system_organization")
    return (
        iso.upper() if iso is not None and len(iso) == 2 and iso.isascii() else None,
        _text(_get(record, "country", "names", "en")),
        _text(_get(record, "city", "names", "en")),
        # `type() is int` also refuses bool: a database saying `true` is not saying AS1.
        asn if type(asn) is int and asn > 0 else None,
        _text(as_org),
    )


def _location(fields: _Fields) -> Location | None:
    return None if fields == _NO_FIELDS else Location(*fields)


def location_from_record(record: object) -> Location | None:
    """Read the record shapes of GeoLite2/GeoIP2 City and Country, GeoLite2 ASN and DB-IP lite.

    City/Country: `country.iso_code`, `country.names.en`, `city.names.en`. ASN databases:
    `autonomous_system_number`, `autonomous_system_organization` at the top level (GeoIP2 ISP and
    Enterprise put them under `traits`, read as well). Values of an unexpected type are ignored,
    so an odd database yields fewer fields, never an exception.
    """
    return _location(_fields(record))


@dataclass(frozen=True, slots=True)
class _Database:
    path: str
    reader: Reader
    ip_version: int  # 4: an IPv4-only database, never asked about IPv6 (maxminddb raises)
    database_type: str


# Addresses looked up once when a database is opened. A corrupt search tree or data section is
# found by lookups, not by opening (the reader checks only the metadata and sizes); these probes
# walk the tree from its root down a few well-known paths so that a damaged file fails the cold
# start rather than the first batch. Lookup errors later are still caught (see `GeoIP._locate`).
_PROBES: Final = (IPv4Address("1.1.1.1"), IPv4Address("8.8.8.8"), IPv6Address("2606:4700::1111"))


# Words in the `database_type` of databases whose records have fields `_fields` reads: GeoLite2 and
# GeoIP2 City/Country/ASN/ISP/Enterprise, DBIP-City-Lite, DBIP-Country-Lite, DBIP-ASN-Lite,
# DBIP-Location-ISP. Others (Anonymous-IP, Connection-Type, Domain...) add nothing.
_USEFUL_TYPES: Final = ("city", "country", "asn", "isp", "enterprise", "location")


def _open_one(path: str, origin: str) -> _Database:
    try:
        import maxminddb  # the optional extra: imported only when a database is set
    except ImportError as error:
        raise ConfigError(
            f"{origin} is set but the maxminddb library is not installed ({error}); "
            f"install it with: {INSTALL_HINT}, or unset {origin} to run without geolocation"
        ) from None
    where = f"{origin}: {path}"
    fix = f"give the path of a MaxMind-format database (.mmdb), see {DOCS}"
    try:
        mode = Path(path).stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file; {fix}") from None
    except OSError as error:
        raise ConfigError(f"{where}: cannot read it ({error.strerror}); {fix}") from None
    if not stat.S_ISREG(mode):
        # A directory fails anyway, but a FIFO or a device would block or stream forever.
        raise ConfigError(f"{where}: not a regular file; {fix}")
    invalid = maxminddb.InvalidDatabaseError
    try:
        reader = maxminddb.open_database(path, maxminddb.MODE_AUTO)
    except (invalid, ValueError, OSError) as error:
        raise ConfigError(
            f"{where}: not a valid MaxMind DB file ({error}); "
            f"download it again (gunzip/untar it first), or unset {origin}"
        ) from None
    metadata = reader.metadata()
    database = _Database(
        path=path,
        reader=reader,
        ip_version=int(metadata.ip_version),
        database_type=str(metadata.database_type),
    )
    for probe in _PROBES:
        if probe.version <= database.ip_version:
            try:
                reader.get(probe)
            except (invalid, ValueError, OSError) as error:
                reader.close()
                raise ConfigError(
                    f"{where}: the MaxMind DB file is corrupt ({error}); "
                    f"download it again, or unset {origin}"
                ) from None
    if not any(word in database.database_type.lower() for word in _USEFUL_TYPES):
        # Opening succeeded, so this is a configuration mistake that fails nothing: say so once.
        _log().warning(
            "geoip database %s is of type %r, which has none of the fields falconet reads "
            "(country, city, autonomous system); expected a City, Country or ASN database",
            path,
            database.database_type,
        )
    return database


def split_paths(setting: str) -> list[str]:
    """The database paths of a `FALCONET_GEOIP_DB` value: separated by `os.pathsep` (":" on
    Linux, like PATH), surrounding spaces and empty entries ignored."""
    return [part.strip() for part in setting.split(os.pathsep) if part.strip()]


_warned_off: list[bool] = []  # once per process: see `warn_off`


def warn_off() -> None:
    """Log, once per process, that geolocation is off and how to turn it on (the CLI, when a
    scan would show a location)."""
    if not _warned_off:
        _warned_off.append(True)
        _log_off()


def _log_off() -> None:
    _log().warning(
        "geolocation is off: falconet.src.country, falconet.src.city and falconet.src.asn "
        "will be absent. To enable it, %s and set %s (or --geoip-db) to a GeoLite2 or "
        "DB-IP lite .mmdb file; see %s",
        INSTALL_HINT,
        GEOIP_DB,
        DOCS,
    )


class GeoIP:
    """Scope and location of client addresses, from zero or more MaxMind-format databases.

    Build it once per cold start (`open`, `from_setting`, or `disabled`), share it, call `resolve`
    per event. With several databases (e.g. GeoLite2-City then GeoLite2-ASN) each public address
    is looked up in every one and the answers merged field by field, the first database that has
    a field winning. With none, `resolve` still gives the scope and never a location.
    """

    __slots__ = (
        "_cache",
        "_databases",
        "_db_lookups",
        "_errors",
        "_lock",
        "_locate_cached",
        "_warned",
    )

    def __init__(self, databases: Sequence[_Database] = (), cache_size: int = DEFAULT_CACHE_SIZE):
        if cache_size < 1:
            raise ConfigError(f"geoip cache size must be at least 1, got {cache_size}")
        self._databases = tuple(databases)
        import threading  # only with a GeoIP (see `_log`)

        self._lock = threading.Lock()  # guards the counters and the warn-once set only
        self._db_lookups = 0
        self._errors = 0
        self._warned: set[str] = set()
        # Two caches: by text (what events carry: parse + scope skipped on a hit) and by address
        # (so `81.2.69.160`, `::ffff:81.2.69.160` and `81.2.69.160:443` cost one database lookup).
        self._cache = functools.lru_cache(maxsize=cache_size)(self._resolve)
        self._locate_cached = functools.lru_cache(maxsize=cache_size)(self._locate)

    @classmethod
    def open(
        cls,
        path: str | Sequence[str],
        *,
        origin: str = GEOIP_DB,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> GeoIP:
        """Open the database(s) at `path`: one path, an `os.pathsep`-separated list, or a sequence.

        `origin` names the setting in error messages (`FALCONET_GEOIP_DB` or `--geoip-db`).
        Raises ConfigError, naming the path and the reason, when `maxminddb` is not installed, a
        file is missing, unreadable, not a regular file, not a MaxMind DB file, or corrupt.
        """
        paths = split_paths(path) if isinstance(path, str) else [p for p in path if p]
        if not paths:
            raise ConfigError(f"{origin}: no database path given; {DOCS} says how to get one")
        databases: list[_Database] = []
        try:
            for one in paths:
                databases.append(_open_one(one, origin))
        except ConfigError:
            for database in databases:
                database.reader.close()
            raise
        return cls(databases, cache_size)

    @classmethod
    def disabled(cls, *, cache_size: int = DEFAULT_CACHE_SIZE) -> GeoIP:
        """No database: scopes only, every location absent."""
        return cls((), cache_size)

    @classmethod
    def from_setting(
        cls, setting: str | None, *, origin: str = GEOIP_DB, cache_size: int = DEFAULT_CACHE_SIZE
    ) -> GeoIP:
        """`open(setting)`, or, when the setting is unset or blank, `disabled()` and one warning
        saying how to enable geolocation. Call it once per cold start. Raises as `open` does."""
        if setting is None or not setting.strip():
            _log_off()
            return cls.disabled(cache_size=cache_size)
        return cls.open(setting, origin=origin, cache_size=cache_size)

    @property
    def enabled(self) -> bool:
        """True when at least one database is open."""
        return bool(self._databases)

    @property
    def databases(self) -> tuple[str, ...]:
        """`path (database type)` of each open database, for the cold-start log line."""
        return tuple(f"{db.path} ({db.database_type})" for db in self._databases)

    def resolve(self, text: object) -> Address | None:
        """The `Address` of the address in `text`, or None when it is not an address.

        Public addresses are looked up in the database(s) on the first request for a given text and
        answered from the cache after that; other scopes are never looked up. Never raises.
        """
        if not isinstance(text, str):  # lists, numbers, None from a malformed event
            return None
        return self._cache(text)

    def lookup(self, ip: object) -> Location | None:
        """The location of `ip`, or None when it is not a public address or nothing is known."""
        source = self.resolve(ip)
        return None if source is None else source.location

    def stats(self) -> GeoIPStats:
        info = self._cache.cache_info()
        with self._lock:
            return GeoIPStats(self._db_lookups, info.hits, info.misses, self._errors)

    def clear_cache(self) -> None:
        """Forget cached answers (for the benchmark; answers never go stale on their own)."""
        self._cache.cache_clear()
        self._locate_cached.cache_clear()

    def close(self) -> None:
        """Close the readers. Not needed in a function (the process ends); for tests and tools."""
        for database in self._databases:
            database.reader.close()

    def _resolve(self, text: str) -> Address | None:
        address = parse_ip(text)
        if address is None:
            return None
        scope = scope_of(address)
        location = self._locate_cached(address) if scope == PUBLIC and self._databases else None
        return Address(ip=str(address), scope=scope, location=location)

    def _locate(self, address: IPv4Address | IPv6Address) -> Location | None:
        with self._lock:
            self._db_lookups += 1
        merged = _NO_FIELDS
        for database in self._databases:
            if address.version > database.ip_version:
                continue
            try:
                record = database.reader.get(address)
            except (RuntimeError, ValueError, OSError) as error:
                # InvalidDatabaseError is a RuntimeError. A damaged part of the file that the
                # cold-start probes did not reach: this address gets no location from this
                # database, the batch goes on, and the log says so once per database.
                self._lookup_failed(database.path, address, error)
                continue
            found = _fields(record)
            if merged == _NO_FIELDS:
                merged = found
            elif found != _NO_FIELDS:  # the first database that has a field wins it
                merged = (
                    merged[0] if merged[0] is not None else found[0],
                    merged[1] if merged[1] is not None else found[1],
                    merged[2] if merged[2] is not None else found[2],
                    merged[3] if merged[3] is not None else found[3],
                    merged[4] if merged[4] is not None else found[4],
                )
        return _location(merged)

    def _lookup_failed(
        self, path: str, address: IPv4Address | IPv6Address, error: Exception
    ) -> None:
        with self._lock:
            self._errors += 1
            first = path not in self._warned
            self._warned.add(path)
        if first:
            _log().warning("geoip database %s failed to look up %s: %s", path, address, error)


def describe(ip: str | None, location: Location | None, scope: str | None = None) -> str:
    """The short "where" of an alert: `81.2.69.160 (Paris, FR)`, `10.23.2.45 (private)`, or just
    the address when nothing is known. `<NA>` (Falco's word for missing) when there is no address.

    Pass `scope` when it is known (`Address.scope`) to spare parsing `ip` again: with a resolved
    source that is `describe(source.ip, source.location, source.scope)`.
    """
    if not ip:
        return "<NA>"
    if location is not None:
        place = ", ".join(part for part in (location.city, location.country) if part)
        if not place and location.asn is not None:
            place = f"AS{location.asn}" + (f" {location.as_org}" if location.as_org else "")
        if place:
            return f"{ip} ({place})"
    if scope is None:
        scope = ip_scope(ip)
    return f"{ip} ({scope})" if scope is not None and scope != PUBLIC else ip


__all__ = [
    "DEFAULT_CACHE_SIZE",
    "DOCS",
    "DOCUMENTATION",
    "INSTALL_HINT",
    "LINK_LOCAL",
    "LOOPBACK",
    "MULTICAST",
    "PRIVATE",
    "PUBLIC",
    "RESERVED",
    "SCOPES",
    "SHARED",
    "UNSPECIFIED",
    "GeoIP",
    "GeoIPStats",
    "Location",
    "Address",
    "describe",
    "ip_scope",
    "location_from_record",
    "parse_ip",
    "scope_of",
    "split_paths",
    "warn_off",
]
