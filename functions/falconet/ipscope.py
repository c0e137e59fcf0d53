"""The scope of a client address: `unspecified`, `loopback`, `private`, ..., `public`.

Split from `falconet.geoip` (which re-exports every name here) so that `falconet.src.scope`, a
default extra field of every alert, costs one small module at a cold start: the database half of
geoip (logging, threads, record parsing, four classes) is imported only when a GeoIP database is
configured. The accepted address forms are listed in `falconet.geoip`'s docstring; the ordered
scope table is in `ip_scope`'s. Never raises for any input; event text is parsed by `ipaddress`,
except a plain dotted quad (at most 15 characters), which one anchored ASCII regex reads.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Final

# The longest address form accepted, `[` + IPv6 with embedded IPv4 (45) + `%` zone + `]:65535`, fits
# in 64 characters with a zone name of up to 10. Longer text is not an address; refusing it before
# parsing keeps cache keys small whatever an event carries.
_MAX_TEXT = 64

# Scope names, as `falconet.src.scope` shows them.
UNSPECIFIED: Final = "unspecified"
LOOPBACK: Final = "loopback"
LINK_LOCAL: Final = "link-local"
MULTICAST: Final = "multicast"
PRIVATE: Final = "private"
SHARED: Final = "shared"
DOCUMENTATION: Final = "documentation"
RESERVED: Final = "reserved"
PUBLIC: Final = "public"
SCOPES: Final = (
    UNSPECIFIED,
    LOOPBACK,
    LINK_LOCAL,
    MULTICAST,
    PRIVATE,
    SHARED,
    DOCUMENTATION,
    RESERVED,
    PUBLIC,
)

# The scope tables, checked in this order, first match wins (IANA special-purpose address
# registries, RFC 6890 and successors). The order matters where ranges nest: 0.0.0.0 is
# `unspecified` before 0.0.0.0/8 is `reserved`; ::1 and :: come before the IPv6 catch-all below.
# Python's own `is_private`/`is_global` are not used: `is_private` is also true for loopback,
# link-local, documentation and benchmarking ranges, and its tables changed in CPython patch
# releases (gh-113171), so the same address could change scope with the interpreter.
_V4_TABLE: Final[tuple[tuple[str, tuple[IPv4Network, ...]], ...]] = tuple(
    (scope, tuple(IPv4Network(net) for net in nets))
    for scope, nets in (
        (UNSPECIFIED, ("0.0.0.0/32",)),
        (LOOPBACK, ("127.0.0.0/8",)),
        (LINK_LOCAL, ("169.254.0.0/16",)),
        (MULTICAST, ("224.0.0.0/4",)),
        (PRIVATE, ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")),  # RFC 1918
        (SHARED, ("100.64.0.0/10",)),  # RFC 6598 carrier-grade NAT
        (DOCUMENTATION, ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")),  # RFC 5737
        (
            RESERVED,
            (
                "0.0.0.0/8",  # "this network" (RFC 791)
                "192.0.0.0/24",  # IETF protocol assignments (RFC 6890)
                "198.18.0.0/15",  # benchmarking (RFC 2544)
                "240.0.0.0/4",  # future use, and 255.255.255.255 broadcast
            ),
        ),
    )
)
_V6_TABLE: Final[tuple[tuple[str, tuple[IPv6Network, ...]], ...]] = tuple(
    (scope, tuple(IPv6Network(net) for net in nets))
    for scope, nets in (
        (UNSPECIFIED, ("::/128",)),
        (LOOPBACK, ("::1/128",)),
        (LINK_LOCAL, ("fe80::/10",)),
        (MULTICAST, ("ff00::/8",)),
        (PRIVATE, ("fc00::/7",)),  # unique local addresses (RFC 4193)
        (DOCUMENTATION, ("2001:db8::/32", "3fff::/20")),  # RFC 3849, RFC 9637
        (RESERVED, ("100::/64", "2001:2::/48")),  # discard-only (RFC 6666), benchmarking (RFC 5180)
    )
)
# After the table, an IPv6 address is public only inside global unicast (2000::/3) or the NAT64
# well-known prefix; the rest of the space is unassigned or special (e.g. deprecated IPv4-compatible
# `::a.b.c.d`) and reported as `reserved`.
_V6_PUBLIC: Final = (IPv6Network("2000::/3"), IPv6Network("64:ff9b::/96"))


def _is_port(text: str) -> bool:
    # str.isdigit() alone accepts non-ASCII digits such as "²"; a port is 1 to 5 ASCII digits.
    return 0 < len(text) <= 5 and text.isascii() and text.isdigit() and int(text) <= 65535


def parse_ip(text: object) -> IPv4Address | IPv6Address | None:
    """The address in `text` (forms in the module docstring), or None when it is not one.

    IPv4-mapped IPv6 comes back as the IPv4 address; an IPv6 zone is dropped. Never raises.
    """
    if not isinstance(text, str) or not text or len(text) > _MAX_TEXT:
        return None
    host = text
    if host.startswith("["):  # "[v6]" or "[v6]:port"
        end = host.find("]")
        rest = host[end + 1 :]
        if end < 0 or (rest and not (rest.startswith(":") and _is_port(rest[1:]))):
            return None
        host = host[1:end]
        if ":" not in host:  # brackets are for IPv6 only
            return None
    elif host.count(":") == 1:  # "a.b.c.d:port": any IPv6 address has at least two colons
        host, _, port = host.partition(":")
        if not _is_port(port) or "." not in host:
            return None
    if "%" in host:  # zone: meaningful only on the host that logged it, not for scope or location
        host, _, zone = host.partition("%")
        if not zone or ":" not in host:
            return None
    try:
        address = ip_address(host)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _ranges(
    table: Sequence[tuple[str, Sequence[IPv4Network | IPv6Network]]],
) -> tuple[tuple[int, int, str], ...]:
    return tuple(
        (int(net.network_address), int(net.broadcast_address), scope)
        for scope, nets in table
        for net in nets
    )


# The tables flattened to integer bounds, same order: comparing ints is several times cheaper than
# `address in network` (bench/geoip_cost.py, "per distinct public address").
_V4_RANGES: Final = _ranges(_V4_TABLE)
_V6_RANGES: Final = _ranges(_V6_TABLE)
_V6_PUBLIC_RANGES: Final = _ranges([(PUBLIC, _V6_PUBLIC)])


def scope_of(address: IPv4Address | IPv6Address) -> str:
    """The scope of a parsed address (see `ip_scope`)."""
    value = int(address)
    v4 = address.version == 4
    for low, high, scope in _V4_RANGES if v4 else _V6_RANGES:
        if low <= value <= high:
            return scope
    if v4 or any(low <= value <= high for low, high, _ in _V6_PUBLIC_RANGES):
        return PUBLIC
    return RESERVED


def _first_octet_scopes() -> tuple[str | None, ...]:
    """Per first octet of an IPv4 address: its scope when the whole /8 has one (no row of the
    table splits it), else None (the rows are checked in order)."""
    out: list[str | None] = []
    for octet in range(256):
        low, high = octet << 24, (octet << 24) | 0xFFFFFF
        scope: str | None = PUBLIC
        for row_low, row_high, row_scope in _V4_RANGES:
            if row_low <= low and high <= row_high:  # covers the /8: first match wins
                scope = row_scope
                break
            if row_low <= high and low <= row_high:  # covers part of it
                scope = None
                break
        out.append(scope)
    return tuple(out)


_V4_FIRST: Final = {str(n): scope for n, scope in enumerate(_first_octet_scopes())}
# A plain dotted quad as `ipaddress` accepts it: four octets of 1-3 ASCII digits, no leading zero,
# at most 255. One match is ~3x cheaper than splitting and checking the parts in Python.
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_QUAD: Final = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")


def quad_scope(text: str) -> str | None:
    """The scope of a plain dotted quad, or None when `text` is not one."""
    match = _QUAD.fullmatch(text) if len(text) <= 15 else None
    if match is None:
        return None
    scope = _V4_FIRST[match[1]]
    if scope is not None:
        return scope
    value = int.from_bytes(bytes(map(int, match.groups())), "big")
    for low, high, row_scope in _V4_RANGES:
        if low <= value <= high:
            return row_scope
    return PUBLIC


def ip_scope(text: object) -> str | None:
    """The scope of the address in `text`, or None when `text` is not an address.

    One of `SCOPES`, decided by the first matching row of this ordered table:

    ==============  ===========================================  ===============================
    scope           IPv4                                         IPv6
    ==============  ===========================================  ===============================
    unspecified     0.0.0.0                                      ::
    loopback        127.0.0.0/8                                  ::1
    link-local      169.254.0.0/16                               fe80::/10
    multicast       224.0.0.0/4                                  ff00::/8
    private         10/8, 172.16/12, 192.168/16                  fc00::/7 (unique local)
    shared          100.64.0.0/10 (carrier-grade NAT)            -
    documentation   192.0.2/24, 198.51.100/24, 203.0.113/24      2001:db8::/32, 3fff::/20
    reserved        0/8, 192.0.0/24, 198.18/15, 240/4            100::/64, 2001:2::/48, and all
                    (255.255.255.255 included)                   outside 2000::/3 and 64:ff9b::/96
    public          everything else                              2000::/3, 64:ff9b::/96 (NAT64)
    ==============  ===========================================  ===============================

    IPv4-mapped IPv6 addresses take the scope of their IPv4 address. Never raises.

    A plain dotted quad (most client addresses) is read without `ipaddress`: a per-alert cost that
    no cache can hide when an API server sees tens of thousands of clients.
    """
    if type(text) is str:
        scope = quad_scope(text)
        if scope is not None:
            return scope
    address = parse_ip(text)
    return None if address is None else scope_of(address)
