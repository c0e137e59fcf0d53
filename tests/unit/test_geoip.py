"""falconet.geoip: address scopes, lookups in real MaxMind-format databases built here, failures.

Every database is written by `mmdb_writer` into a temporary directory; no downloaded data.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import maxminddb
import pytest
from hypothesis import given
from hypothesis import strategies as st

from falconet import ipscope
from falconet.errors import ConfigError
from falconet.geoip import (
    SCOPES,
    GeoIP,
    Location,
    describe,
    ip_scope,
    location_from_record,
    parse_ip,
    split_paths,
)
from tests.mmdb import asn, build_db, city

CITY_NETWORKS = {
    "81.2.69.0/24": city("GB", "United Kingdom", "London"),
    "89.160.20.0/24": city("SE", "Sweden"),  # a Country-level answer: no city
    "2a01:e0a::/32": city("FR", "France", "Paris"),
}
ASN_NETWORKS = {
    "81.2.69.0/24": asn(20712, "Andrews & Arnold Ltd"),
    "2a01:e0a::/32": asn(12322, "Free SAS"),
    "1.128.0.0/11": asn(1221, "Telstra"),  # known to the ASN database only
}


@pytest.fixture(scope="module")
def dbdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("geoip")


@pytest.fixture(scope="module")
def city_db(dbdir: Path) -> str:
    return build_db(dbdir / "city.mmdb", CITY_NETWORKS)


@pytest.fixture(scope="module")
def asn_db(dbdir: Path) -> str:
    return build_db(dbdir / "asn.mmdb", ASN_NETWORKS, database_type="GeoLite2-ASN")


@pytest.fixture
def geo(city_db: str, asn_db: str) -> GeoIP:
    return GeoIP.open([city_db, asn_db])


@pytest.fixture(scope="module")
def shared_geo(city_db: str, asn_db: str) -> GeoIP:
    """One instance for the hypothesis tests (which may not use function-scoped fixtures)."""
    return GeoIP.open([city_db, asn_db])


# --- scopes ------------------------------------------------------------------------------------

SCOPE_CASES = [
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("::1", "loopback"),
    ("169.254.169.254", "link-local"),  # the cloud metadata service
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("224.0.0.251", "multicast"),
    ("ff02::1", "multicast"),
    ("10.23.2.45", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("fd12:3456::1", "private"),
    ("100.64.0.1", "shared"),
    ("100.127.255.255", "shared"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("0.1.2.3", "reserved"),
    ("192.0.0.8", "reserved"),
    ("198.18.0.1", "reserved"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("100::1", "reserved"),
    ("2001:2::1", "reserved"),
    ("::81.2.69.160", "reserved"),  # deprecated IPv4-compatible form: not the IPv4 address
    ("4000::1", "reserved"),  # outside global unicast
    ("172.32.0.1", "public"),  # just past 172.16/12
    ("100.128.0.1", "public"),  # just past 100.64/10
    ("81.2.69.160", "public"),
    ("2a01:e0a::1", "public"),
    ("64:ff9b::102:304", "public"),  # NAT64 well-known prefix
    # IPv4-mapped IPv6 takes the scope of its IPv4 address.
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.1.2.3", "private"),
    ("::ffff:81.2.69.160", "public"),
    ("::ffff:5102:45a0", "public"),
    # Unambiguous host:port forms.
    ("10.1.2.3:6443", "private"),
    ("81.2.69.160:443", "public"),
    ("[::1]:6443", "loopback"),
    ("[2a01:e0a::1]", "public"),
    ("[fe80::1%eth0]:22", "link-local"),
]


@pytest.mark.parametrize(("text", "scope"), SCOPE_CASES, ids=[c[0] for c in SCOPE_CASES])
def test_scope(text: str, scope: str) -> None:
    assert ip_scope(text) == scope


NOT_ADDRESSES: list[object] = [
    None,
    "",
    "hello",
    "10.1.2",
    "10.1.2.3.4",
    "256.1.1.1",
    "010.1.2.3",  # leading zeros: octal or decimal? refused, as ipaddress does
    "１０.1.2.3",  # full-width digits
    " 10.1.2.3",
    "10.1.2.3 ",
    "10.1.2.3:",
    "10.1.2.3:65536",
    "10.1.2.3:²",
    "10.1.2.3:http",
    "10.1.2.3%eth0",  # zones are IPv6 only
    "fe80::1%",
    "[10.1.2.3]:80",  # brackets are IPv6 only
    "[::1",
    "[::1]x",
    "[::1]:",
    "gggg::1",
    "::1::2",
    "a" * 65,
    "1" * 1000,
    "10.1.2.3\x00",
    "'; import os",
    17,
    3.5,
    ["10.1.2.3"],
    b"10.1.2.3",
    {"ip": "10.1.2.3"},
]


@pytest.mark.parametrize("text", NOT_ADDRESSES, ids=[repr(t)[:20] for t in NOT_ADDRESSES])
def test_not_an_address(text: object, geo: GeoIP) -> None:
    assert parse_ip(text) is None
    assert ip_scope(text) is None
    assert geo.resolve(text) is None
    assert geo.lookup(text) is None


def test_bare_ipv6_with_a_port_like_suffix_is_read_as_ipv6() -> None:
    # "::1:80" is a valid IPv6 address; it is not guessed to be "::1" port 80.
    assert parse_ip("::1:80") == IPv6Address("::0.1.0.128")
    assert ip_scope("::1:80") == "reserved"


def test_parse_canonicalises() -> None:
    assert parse_ip("::ffff:81.2.69.160") == IPv4Address("81.2.69.160")
    assert parse_ip("2A01:0E0A:0000::0001") == IPv6Address("2a01:e0a::1")
    assert str(parse_ip("fe80::1%eth0")) == "fe80::1"
    assert str(parse_ip("[fe80::1%eth0]:22")) == "fe80::1"


@given(st.text(max_size=80))
def test_any_text_is_an_address_or_none(text: str) -> None:
    scope = ip_scope(text)
    assert scope is None or scope in SCOPES


@given(st.one_of(st.text(max_size=70), st.from_regex(r"\[?[0-9a-f:.%]{0,60}\]?(:[0-9]{0,6})?")))
def test_resolve_never_raises(shared_geo: GeoIP, text: str) -> None:
    source = shared_geo.resolve(text)
    assert source is None or (source.scope in SCOPES and parse_ip(source.ip) is not None)


@given(st.ip_addresses(v=4))
def test_ipv4_scope_is_the_same_in_every_form(address: IPv4Address) -> None:
    scope = ip_scope(str(address))
    assert scope in SCOPES
    assert ip_scope(f"::ffff:{address}") == scope
    assert ip_scope(f"{address}:443") == scope
    assert ip_scope(f"[::ffff:{address}]:443") == scope


def _scope_by_ipaddress(text: str) -> str | None:
    """The scope as `ipaddress` reads `text` and the table's networks decide it (the reference for
    the dotted-quad fast path, which uses neither)."""
    try:
        address = IPv4Address(text)
    except ValueError:
        return None
    for scope, networks in ipscope._V4_TABLE:
        if any(address in network for network in networks):
            return scope
    return "public"


@given(
    st.one_of(
        st.ip_addresses(v=4).map(str),
        # near misses: leading zeros, octets above 255, missing or extra parts, signs, spaces
        st.from_regex(r"\A[0-9]{1,4}(\.[0-9]{1,4}){2,4}\Z"),
        st.from_regex(r"\A[0-9+ _٣.]{1,16}\Z"),
        st.builds(
            lambda a, b, c, d: f"{a}.{b}.{c}.{d}",
            *[st.sampled_from([0, 1, 10, 100, 127, 169, 172, 192, 198, 203, 224, 240, 255, 256])]
            * 4,
        ),
    )
)
def test_dotted_quad_fast_path_agrees_with_ipaddress(text: str) -> None:
    expected = _scope_by_ipaddress(text)
    assert ipscope.quad_scope(text) == expected
    if expected is not None:
        assert ip_scope(text) == expected


@given(st.ip_addresses(v=6))
def test_every_ipv6_address_has_a_scope(address: IPv6Address) -> None:
    assert ip_scope(str(address)) in SCOPES
    assert ip_scope(address.exploded) == ip_scope(str(address))


# --- lookups -----------------------------------------------------------------------------------


def test_public_ipv4_located_from_city_and_asn_databases(geo: GeoIP) -> None:
    source = geo.resolve("81.2.69.160")
    assert source is not None
    assert source.ip == "81.2.69.160"
    assert source.scope == "public"
    assert source.location == Location(
        country="GB",
        country_name="United Kingdom",
        city="London",
        asn=20712,
        as_org="Andrews & Arnold Ltd",
    )


def test_public_ipv6_located(geo: GeoIP) -> None:
    assert geo.lookup("2a01:e0a::1") == Location(
        country="FR", country_name="France", city="Paris", asn=12322, as_org="Free SAS"
    )
    assert geo.lookup("[2a01:e0a:ffff::2]:443") == geo.lookup("2a01:e0a::1")


def test_ipv4_mapped_ipv6_located_as_the_ipv4(geo: GeoIP) -> None:
    source = geo.resolve("::ffff:81.2.69.160")
    assert source is not None
    assert source.ip == "81.2.69.160"
    assert source.location is not None
    assert source.location.city == "London"


def test_country_level_answer_has_no_city(geo: GeoIP) -> None:
    assert geo.lookup("89.160.20.112") == Location(country="SE", country_name="Sweden")


def test_asn_only_answer(geo: GeoIP) -> None:
    assert geo.lookup("1.128.0.1") == Location(asn=1221, as_org="Telstra")


@pytest.mark.parametrize("ip", ["8.8.8.8", "81.2.70.1", "2a02::1"])
def test_unknown_public_address_has_no_location(geo: GeoIP, ip: str) -> None:
    source = geo.resolve(ip)
    assert source is not None
    assert source.scope == "public"
    assert source.location is None
    assert geo.stats().db_lookups == 1


NON_PUBLIC = ["10.1.2.3", "127.0.0.1", "169.254.1.1", "100.64.0.1", "192.0.2.1", "fd00::1", "::1"]


def test_non_public_addresses_are_never_looked_up(dbdir: Path) -> None:
    # A (wrong) database that locates private, loopback, link-local... ranges too.
    wrong = build_db(
        dbdir / "wrong.mmdb",
        {
            "10.0.0.0/8": city("US", "United States", "Nowhere"),
            "127.0.0.0/8": city("US", "United States", "Nowhere"),
            "169.254.0.0/16": city("US", "United States", "Nowhere"),
            "100.64.0.0/10": city("US", "United States", "Nowhere"),
            "192.0.2.0/24": city("US", "United States", "Nowhere"),
            "fd00::/8": city("US", "United States", "Nowhere"),
            "::1/128": city("US", "United States", "Nowhere"),
            "81.2.69.0/24": city("GB", "United Kingdom", "London"),
        },
    )
    with maxminddb.open_database(wrong) as reader:  # the database does answer for them
        assert all(reader.get(ip) is not None for ip in NON_PUBLIC)
    geo = GeoIP.open(wrong)
    for ip in NON_PUBLIC:
        source = geo.resolve(ip)
        assert source is not None
        assert source.scope != "public"
        assert source.location is None
    assert geo.stats().db_lookups == 0
    assert geo.lookup("81.2.69.1") is not None  # and the same database does locate public ones
    assert geo.stats().db_lookups == 1


def test_each_distinct_address_is_looked_up_once_per_batch(geo: GeoIP) -> None:
    batch = ["10.0.0.1", "81.2.69.160", "127.0.0.1", "2a01:e0a::1", "8.8.8.8"] * 200
    batch += ["::ffff:81.2.69.160", "81.2.69.160:443"]  # same address, other texts
    locations = [geo.lookup(ip) for ip in batch]
    assert sum(1 for loc in locations if loc is not None) == 402
    stats = geo.stats()
    assert stats.db_lookups == 3  # 81.2.69.160, 2a01:e0a::1, 8.8.8.8
    assert stats.cache_misses == 7  # distinct texts
    assert stats.cache_hits == len(batch) - 7


def test_cache_is_bounded(city_db: str) -> None:
    geo = GeoIP.open(city_db, cache_size=2)
    for ip in ["81.2.69.1", "81.2.69.2", "81.2.69.3", "81.2.69.1"]:
        assert geo.lookup(ip) is not None
    # The first address was evicted by the third, so it was looked up again.
    assert geo.stats().db_lookups == 4
    with pytest.raises(ConfigError, match="at least 1"):
        GeoIP.open(city_db, cache_size=0)


def test_disabled_gives_scopes_and_no_locations() -> None:
    geo = GeoIP.disabled()
    assert not geo.enabled
    assert geo.databases == ()
    source = geo.resolve("81.2.69.160")
    assert source is not None
    assert (source.scope, source.location) == ("public", None)
    assert geo.stats().db_lookups == 0


def test_concurrent_resolves_agree(geo: GeoIP, city_db: str, asn_db: str) -> None:
    ips = [f"81.2.69.{i}" for i in range(50)] + ["10.0.0.1", "2a01:e0a::1", "8.8.4.4"]
    reference = GeoIP.open([city_db, asn_db])
    expected = {ip: reference.resolve(ip) for ip in ips}
    barrier = threading.Barrier(8)

    def work(seed: int) -> list[tuple[str, object]]:
        barrier.wait()
        order = ips[seed:] + ips[:seed]
        return [(ip, geo.resolve(ip)) for ip in order * 20]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(8)))
    assert all(answer == expected[ip] for result in results for ip, answer in result)
    assert geo.stats().db_lookups <= 2 * 52  # a racing miss may look up twice, never more


# --- several databases -------------------------------------------------------------------------


def test_first_database_wins_field_by_field(dbdir: Path, city_db: str) -> None:
    other = build_db(
        dbdir / "other.mmdb",
        {"81.2.69.0/24": {**city("IE", "Ireland", "Dublin"), **asn(1, "First AS")}},
    )
    assert GeoIP.open([city_db, other]).lookup("81.2.69.9") == Location(
        country="GB", country_name="United Kingdom", city="London", asn=1, as_org="First AS"
    )
    assert GeoIP.open([other, city_db]).lookup("81.2.69.9") == Location(
        country="IE", country_name="Ireland", city="Dublin", asn=1, as_org="First AS"
    )


def test_pathsep_list(city_db: str, asn_db: str) -> None:
    setting = f" {city_db}{os.pathsep}{os.pathsep}{asn_db}{os.pathsep}"
    assert split_paths(setting) == [city_db, asn_db]
    geo = GeoIP.open(setting)
    assert geo.databases == (f"{city_db} (GeoLite2-City)", f"{asn_db} (GeoLite2-ASN)")
    location = geo.lookup("81.2.69.160")
    assert location is not None
    assert (location.city, location.asn) == ("London", 20712)


def test_ipv4_only_database_is_not_asked_about_ipv6(dbdir: Path, city_db: str) -> None:
    asn4 = build_db(
        dbdir / "asn4.mmdb",
        {"81.2.69.0/24": asn(20712, "Andrews & Arnold Ltd")},
        ip_version=4,
        database_type="DBIP-ASN-Lite",
    )
    geo = GeoIP.open([asn4, city_db])
    assert geo.lookup("2a01:e0a::1") == Location(country="FR", country_name="France", city="Paris")
    location = geo.lookup("::ffff:81.2.69.160")
    assert location is not None
    assert (location.city, location.asn) == ("London", 20712)
    assert geo.stats().errors == 0


# --- configuration and failures ----------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "GeoLite2-City.mmdb"
    with pytest.raises(ConfigError) as error:
        GeoIP.open(str(path))
    assert str(error.value) == (
        f"FALCONET_GEOIP_DB: {path}: no such file; "
        "give the path of a MaxMind-format database (.mmdb), see docs/geoip.md"
    )


def test_error_names_the_cli_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--geoip-db: .*nope\.mmdb: no such file"):
        GeoIP.open(str(tmp_path / "nope.mmdb"), origin="--geoip-db")


def test_second_missing_file_is_named(city_db: str, tmp_path: Path) -> None:
    missing = tmp_path / "asn.mmdb"
    with pytest.raises(ConfigError, match=f"{missing}: no such file"):
        GeoIP.open([city_db, str(missing)])


@pytest.mark.parametrize("setting", ["", os.pathsep, "  "])
def test_empty_path_list_for_open(setting: str) -> None:
    with pytest.raises(ConfigError, match="no database path given"):
        GeoIP.open(setting)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"{tmp_path}: not a regular file"):
        GeoIP.open(str(tmp_path))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "db.mmdb"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        GeoIP.open(str(fifo))


def corrupt_copies(city_db: str, directory: Path) -> dict[str, Path]:
    data = Path(city_db).read_bytes()
    with maxminddb.open_database(city_db) as reader:
        meta = reader.metadata()
        tree = meta.node_count * meta.record_size * 2 // 8
    files = {
        "random-bytes": os.urandom(4096),
        "empty": b"",
        "text": b"not a database\n",
        "gzip-not-gunzipped": b"\x1f\x8b\x08\x00" + data[:200],
        "truncated-half": data[: len(data) // 2],
        "truncated-tail": data[:-10],
    }
    paths = {}
    for name, content in files.items():
        path = directory / f"{name}.mmdb"
        path.write_bytes(content)
        paths[name] = path
    # Metadata intact, search tree overwritten: the reader opens it; the cold-start probe fails.
    broken_tree = directory / "broken-tree.mmdb"
    broken_tree.write_bytes(b"\xff" * tree + data[tree:])
    paths["broken-tree"] = broken_tree
    return paths


CORRUPT = [
    "random-bytes",
    "empty",
    "text",
    "gzip-not-gunzipped",
    "truncated-half",
    "truncated-tail",
    "broken-tree",
]


@pytest.mark.parametrize("name", CORRUPT)
def test_corrupt_file_fails_the_cold_start(city_db: str, tmp_path: Path, name: str) -> None:
    path = corrupt_copies(city_db, tmp_path)[name]
    with pytest.raises(ConfigError) as error:
        GeoIP.open(str(path))
    message = str(error.value)
    assert message.startswith(f"FALCONET_GEOIP_DB: {path}: ")
    if name == "broken-tree":  # opens, then fails the probe lookups
        assert "the MaxMind DB file is corrupt (" in message
        assert "search tree is corrupt" in message
        assert message.endswith("); download it again, or unset FALCONET_GEOIP_DB")
    else:
        assert ": not a valid MaxMind DB file (" in message
        assert message.endswith(
            "); download it again (gunzip/untar it first), or unset FALCONET_GEOIP_DB"
        )


def test_corrupt_file_golden_message(city_db: str, tmp_path: Path) -> None:
    path = corrupt_copies(city_db, tmp_path)["text"]
    with pytest.raises(ConfigError) as error:
        GeoIP.open(str(path), origin="--geoip-db")
    assert str(error.value) == (
        f"--geoip-db: {path}: not a valid MaxMind DB file (Error opening database file ({path}). "
        "Is this a valid MaxMind DB file?); download it again (gunzip/untar it first), "
        "or unset --geoip-db"
    )


def test_pure_python_reader_fails_the_same_way(city_db: str, asn_db: str, tmp_path: Path) -> None:
    # Where maxminddb has no C extension (no wheel for the platform), MODE_AUTO falls back to the
    # pure-Python reader, whose errors differ (an empty file is a ValueError from mmap there).
    paths = [str(p) for p in corrupt_copies(city_db, tmp_path).values()]
    script = textwrap.dedent(
        """
        import sys
        sys.modules["maxminddb.extension"] = None  # as if no C extension were built
        import maxminddb
        assert maxminddb._extension is None
        from falconet.errors import ConfigError
        from falconet.geoip import GeoIP
        good = GeoIP.open(sys.argv[1:3])
        print(good.lookup("81.2.69.160"))
        for path in sys.argv[3:]:
            try:
                GeoIP.open(path)
            except ConfigError as error:
                print("ConfigError", str(error).startswith(f"FALCONET_GEOIP_DB: {path}: "))
            else:
                print("opened", path)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, city_db, asn_db, *paths],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "Location(country='GB', country_name='United Kingdom', city='London', "
        "asn=20712, as_org='Andrews & Arnold Ltd')"
    )
    assert lines[1:] == ["ConfigError True"] * len(paths)


def test_damage_found_only_at_lookup_costs_that_location_not_the_batch(
    city_db: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = bytearray(Path(city_db).read_bytes())
    with maxminddb.open_database(city_db) as reader:
        meta = reader.metadata()
        tree = meta.node_count * meta.record_size * 2 // 8
    data[tree + 16 : tree + 76] = b"\xff" * 60  # the start of the data section
    damaged = tmp_path / "damaged.mmdb"
    damaged.write_bytes(bytes(data))
    geo = GeoIP.open(str(damaged))  # the probes' addresses are not in it: the damage is not seen
    with caplog.at_level(logging.WARNING, logger="falconet.geoip"):
        first = geo.resolve("81.2.69.160")
        second = geo.resolve("2a01:e0a::1")
    assert first is not None and first.location is None and first.scope == "public"
    assert second is not None and second.location is None
    assert geo.stats().errors == 2
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1  # once per database
    assert warnings[0].startswith(f"geoip database {damaged} failed to look up 81.2.69.160: ")


def test_maxminddb_not_installed(city_db: str) -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["maxminddb"] = None  # makes `import maxminddb` raise ImportError
        from falconet.errors import ConfigError
        from falconet.geoip import GeoIP
        source = GeoIP.from_setting(None).resolve("81.2.69.160")  # no database: still fine
        assert source is not None and source.scope == "public", source
        try:
            GeoIP.open(sys.argv[1])
        except ConfigError as error:
            print(error)
        else:
            print("opened")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, city_db], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == (
        "FALCONET_GEOIP_DB is set but the maxminddb library is not installed "
        "(import of maxminddb halted; None in sys.modules); install it with: "
        "pip install 'falconet[geoip]', or unset FALCONET_GEOIP_DB to run without geolocation"
    )


@pytest.mark.parametrize("setting", [None, "", "   "], ids=["unset", "empty", "blank"])
def test_no_database_configured_warns_once(
    setting: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="falconet.geoip"):
        geo = GeoIP.from_setting(setting)
        for ip in ["81.2.69.160", "10.0.0.1", "2a01:e0a::1"]:
            assert geo.lookup(ip) is None
    assert not geo.enabled
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "geolocation is off" in message
    assert "FALCONET_GEOIP_DB" in message
    assert "pip install 'falconet[geoip]'" in message
    assert "docs/geoip.md" in message


def test_database_without_useful_fields_warns(
    dbdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = build_db(
        dbdir / "anon.mmdb",
        {"81.2.69.0/24": {"is_anonymous": True}},
        database_type="GeoIP2-Anonymous-IP",
    )
    with caplog.at_level(logging.WARNING, logger="falconet.geoip"):
        geo = GeoIP.open(path)
    assert [r.getMessage() for r in caplog.records] == [
        f"geoip database {path} is of type 'GeoIP2-Anonymous-IP', which has none of the fields "
        "falconet reads (country, city, autonomous system); "
        "expected a City, Country or ASN database"
    ]
    assert geo.lookup("81.2.69.1") is None
    assert geo.stats().db_lookups == 1


def test_configured_database_does_not_warn(city_db: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="falconet.geoip"):
        geo = GeoIP.from_setting(city_db, origin="--geoip-db")
    assert geo.enabled
    assert caplog.records == []


def test_from_setting_raises_like_open(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^--geoip-db: "):
        GeoIP.from_setting(str(tmp_path / "x.mmdb"), origin="--geoip-db")


# --- records and describe ----------------------------------------------------------------------

RECORDS: list[tuple[str, object, Location | None]] = [
    (
        "geolite2-city",
        {
            "city": {"geoname_id": 2988507, "names": {"en": "Paris", "fr": "Paris"}},
            "continent": {"code": "EU"},
            "country": {"iso_code": "FR", "names": {"en": "France"}},
            "location": {"latitude": 48.8, "longitude": 2.3},
        },
        Location(country="FR", country_name="France", city="Paris"),
    ),
    (
        "geolite2-asn",
        {"autonomous_system_number": 12322, "autonomous_system_organization": "Free SAS"},
        Location(asn=12322, as_org="Free SAS"),
    ),
    (
        "geoip2-enterprise-traits",
        {"traits": {"autonomous_system_number": 3215, "autonomous_system_organization": "Orange"}},
        Location(asn=3215, as_org="Orange"),
    ),
    ("lowercase-iso", {"country": {"iso_code": "fr"}}, Location(country="FR")),
    ("three-letter-iso", {"country": {"iso_code": "FRA"}}, None),
    ("bool-asn", {"autonomous_system_number": True}, None),
    ("string-asn", {"autonomous_system_number": "12322"}, None),
    ("zero-asn", {"autonomous_system_number": 0}, None),
    ("names-not-a-map", {"city": {"names": ["Paris"]}, "country": "FR"}, None),
    ("empty-name", {"city": {"names": {"en": ""}}}, None),
    ("empty-record", {}, None),
    ("not-a-map", ["FR"], None),
    ("none", None, None),
]


@pytest.mark.parametrize(
    ("record", "expected"), [r[1:] for r in RECORDS], ids=[r[0] for r in RECORDS]
)
def test_location_from_record(record: object, expected: Location | None) -> None:
    assert location_from_record(record) == expected


DESCRIBE = [
    (
        "81.2.69.160",
        Location(country="FR", country_name="France", city="Paris"),
        "81.2.69.160 (Paris, FR)",
    ),
    ("89.160.20.112", Location(country="SE"), "89.160.20.112 (SE)"),
    ("1.128.0.1", Location(asn=1221, as_org="Telstra"), "1.128.0.1 (AS1221 Telstra)"),
    ("1.128.0.1", Location(asn=1221), "1.128.0.1 (AS1221)"),
    ("10.23.2.45", None, "10.23.2.45 (private)"),
    ("127.0.0.1", None, "127.0.0.1 (loopback)"),
    ("fe80::1", None, "fe80::1 (link-local)"),
    ("8.8.8.8", None, "8.8.8.8"),
    ("8.8.8.8", Location(), "8.8.8.8"),
    ("not-an-ip", None, "not-an-ip"),
    ("", None, "<NA>"),
    (None, None, "<NA>"),
]


@pytest.mark.parametrize(("ip", "location", "text"), DESCRIBE, ids=[d[2] for d in DESCRIBE])
def test_describe(ip: str | None, location: Location | None, text: str) -> None:
    assert describe(ip, location) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("::ffff:81.2.69.160", "81.2.69.160 (London, GB)"),
        ("[::1]:6443", "::1 (loopback)"),
        ("100.64.0.1", "100.64.0.1 (shared)"),
        ("8.8.8.8", "8.8.8.8"),
    ],
)
def test_describe_from_a_resolved_source(geo: GeoIP, text: str, expected: str) -> None:
    source = geo.resolve(text)
    assert source is not None
    assert describe(source.ip, source.location, source.scope) == expected
    assert describe(source.ip, source.location) == expected


def test_describe_trusts_the_given_scope() -> None:
    assert describe("10.23.2.45", None, "public") == "10.23.2.45"
    assert describe("81.2.69.160", None, "private") == "81.2.69.160 (private)"


def test_bench_script_runs_and_looks_up_each_distinct_address_once() -> None:
    from bench.geoip_cost import measure

    figures = measure(events=300, rounds=1)
    meta = figures.pop("_meta")
    assert meta["db_lookups_per_batch"] == meta["distinct_public"] > 0
    assert 0.5 < meta["private_share"] < 0.9
    assert all(v["median_us"] > 0 for v in figures.values())
