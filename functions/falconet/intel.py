"""Threat-intelligence address lists for the bundled rules (`falconet intel`).

    falconet intel --output rules/threat_intel.yaml tor-exits.txt drop.txt

reads downloaded feed files (one IP address or CIDR network a line: the Tor bulk exit list,
Spamhaus DROP, FireHOL level 1, ... ; `#` and `;` start comments, a CSV line's first column
counts) and writes a rules file that replaces one list of the bundled rules,
`falconet_threat_source_ips` by default ("Request From Threat Source IP"). The file is plain Falco
syntax, so Falco loads it too; the bundled `rules/threat_intel.yaml` is the empty one it replaces.

The rules language compares addresses as text (`jevt.value[/sourceIPs/0] in (list)`), so a
network is written out address by address: a network larger than `MAX_NETWORK_ADDRESSES` is
refused (and named), as is anything once the list holds `max_addresses`. Addresses that are not
public (private, loopback, link-local, reserved) are refused too: a poisoned or careless feed must
not turn the cluster's own traffic into alerts. Every refusal is counted with its reason and the
first lines are shown; nothing in a feed is executed or opened.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from falconet.errors import ConfigError, FalconetError

DEFAULT_LIST = "falconet_threat_source_ips"
MAX_FEED_BYTES = 64 * 1024 * 1024  # a feed file; the big public ones are a few MB
MAX_LINE = 4096  # characters; a longer line is refused, not read
MAX_NETWORK_ADDRESSES = 65_536  # an IPv4 /16
DEFAULT_MAX_ADDRESSES = 200_000
MAX_SAMPLES = 5  # refused lines shown per reason

# What a list name may be: Falco's list-name syntax, without anything YAML would read as more.
_LIST_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,199}\Z")
_SPLIT = re.compile(r"[\s,]+")

NOT_TEXT = "not ASCII text"
TOO_LONG = f"line longer than {MAX_LINE} characters"
NOT_ADDRESS = "not an IP address or CIDR network"
NOT_PUBLIC = "not a public address"
TOO_LARGE = f"network of more than {MAX_NETWORK_ADDRESSES} addresses"
FULL = "list full (--max-addresses)"


class IntelError(FalconetError):
    """A feed could not be read, or gave nothing to write."""


@dataclass
class Result:
    """The addresses a build kept, and what it refused and why."""

    addresses: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = field(default_factory=set)
    lines: int = 0
    entries: int = 0
    networks: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    # Networks already expanded: a repeat costs nothing, so the work is bounded by the addresses
    # kept (each is in at most 17 networks of 1 to MAX_NETWORK_ADDRESSES addresses), not the lines.
    expanded: set[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=set)

    def refuse(self, reason: str, where: str, text: str) -> None:
        self.refused[reason] += 1
        if sum(1 for s in self.samples if s.endswith(f"({reason})")) < MAX_SAMPLES:
            self.samples.append(f"{where}: {text[:80]!r} ({reason})")

    def sorted(self) -> list[str]:
        return [str(a) for a in sorted(self.addresses, key=lambda a: (a.version, int(a)))]


def check_list_name(name: str) -> str:
    if not _LIST_NAME.match(name):
        raise ConfigError(
            f"'{name[:80]}' is not a list name (letters, digits, '_', '.', ':' and '-', "
            "starting with a letter or '_')"
        )
    return name


def read_feed(path: str) -> bytes:
    """The bytes of a feed file ('-' is standard input), at most MAX_FEED_BYTES."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_FEED_BYTES + 1)
        else:
            with Path(path).open("rb") as handle:
                data = handle.read(MAX_FEED_BYTES + 1)
    except OSError as exc:
        raise IntelError(f"{path}: cannot read the feed: {exc.strerror or exc}") from None
    if len(data) > MAX_FEED_BYTES:
        raise IntelError(
            f"{path}: the feed is larger than {MAX_FEED_BYTES // (1024 * 1024)} MiB; "
            "split it or filter it first"
        )
    return data


def add_feed(
    result: Result, name: str, data: bytes, max_addresses: int = DEFAULT_MAX_ADDRESSES
) -> None:
    """Parse one feed's bytes into `result`."""
    for number, raw in enumerate(data.splitlines(), 1):
        result.lines += 1
        where = f"{name}:{number}"
        if len(raw) > MAX_LINE:
            result.refuse(TOO_LONG, where, raw[:80].decode("ascii", "replace"))
            continue
        try:
            line = raw.decode("ascii")
        except UnicodeDecodeError:
            result.refuse(NOT_TEXT, where, raw.decode("ascii", "replace"))
            continue
        text = line.split("#", 1)[0].split(";", 1)[0].strip()
        if not text:
            continue
        token = _SPLIT.split(text, 1)[0]
        result.entries += 1
        try:
            network = ipaddress.ip_network(token, strict=False)
        except ValueError:
            result.refuse(NOT_ADDRESS, where, token)
            continue
        if not network.is_global:
            result.refuse(NOT_PUBLIC, where, token)
            continue
        if network.num_addresses > MAX_NETWORK_ADDRESSES:
            result.refuse(TOO_LARGE, where, token)
            continue
        if network in result.expanded or (
            network.num_addresses == 1 and network.network_address in result.addresses
        ):
            continue  # nothing to add
        if len(result.addresses) + network.num_addresses > max_addresses:
            result.refuse(FULL, where, token)
            continue
        if network.num_addresses == 1:
            result.addresses.add(network.network_address)
        else:
            result.networks += 1
            result.expanded.add(network)
            result.addresses.update(_addresses(network))


def _addresses(
    network: ipaddress.IPv4Network | ipaddress.IPv6Network,
) -> Iterable[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address of a network; a source address may be any of them (also the first, the
    last: an attacker's host can hold the network or broadcast address of a larger route)."""
    first = int(network.network_address)
    for value in range(first, first + network.num_addresses):
        yield ipaddress.IPv4Address(value) if network.version == 4 else ipaddress.IPv6Address(value)


def build(paths: list[str], max_addresses: int = DEFAULT_MAX_ADDRESSES) -> Result:
    result = Result()
    for path in paths:
        add_feed(result, path, read_feed(path), max_addresses)
    if not result.addresses and result.entries:
        raise IntelError(
            f"no usable address in {', '.join(paths)}: {_refusals(result)}"
            + "".join(f"\n  {s}" for s in result.samples)
        )
    return result


def render(result: Result, list_name: str, sources: list[str], now: datetime | None = None) -> str:
    """The rules file: one list that replaces the bundled one, with where it came from."""
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    names = ", ".join(Path(s).name if s != "-" else "standard input" for s in sources)
    items = result.sorted()
    lines = [
        f"# Generated by `falconet intel` at {stamp} from {names}.",
        f"# {len(items)} addresses. Refresh by running the command again on a newer feed;",
        "# loaded after k8s_audit_rules.yaml (Falco: list this file after it).",
        "",
        f"- list: {list_name}",
    ]
    if items:
        lines.append("  items:")
        lines.extend(f'    - "{item}"' for item in items)
    else:
        lines.append("  items: []")
    lines += ["  override:", "    items: replace", ""]
    return "\n".join(lines)


def write_atomically(path: str, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same directory, so a reader (a
    function starting, a scan) sees the old list or the new one, never half of one."""
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    except OSError as exc:
        raise IntelError(f"{path}: cannot write: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(text)
        Path(tmp).replace(target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise IntelError(f"{path}: cannot write: {exc.strerror or exc}") from None


def summary(result: Result, paths: list[str]) -> str:
    text = (
        f"falconet intel: {len(result.addresses)} addresses from {len(paths)} feed(s) "
        f"({result.lines} lines, {result.entries} entries, {result.networks} networks expanded"
    )
    if result.refused:
        text += f"; refused {_refusals(result)}"
    return text + ")" + "".join(f"\n  {s}" for s in result.samples)


def _refusals(result: Result) -> str:
    return ", ".join(f"{count} {reason}" for reason, count in result.refused.most_common())
