"""`falconet intel`: feed files in, a rules file out that the bundled threat-IP rule uses.

What users rely on: the addresses of a feed (plain lines, comments, CSV, CIDR networks) end up in
the list; what cannot be used is refused with a named reason, never silently and never beyond the
bounds (feed size, line length, network size, list size); the file written loads after the
bundled rules, in falconet as in Falco's syntax, and makes "Request From Threat Source IP" fire.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from falconet import Engine, cli, intel
from falconet.errors import ConfigError
from tests.conftest import ROOT

RULE = "Request From Threat Source IP"
EVENT = ROOT / "tests" / "data" / "rules" / "request-from-threat-source-ip" / "positive.json"


def _feed(tmp_path: Path, text: str | bytes, name: str = "feed.txt") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    return path


def _fired(rules: list[Path], address: str) -> bool:
    event = json.loads(EVENT.read_text())
    event["sourceIPs"] = [address]
    engine = Engine.from_paths([str(p) for p in rules], rule_matching="all")
    return RULE in [a.rule for a in engine.evaluate(event)]


def test_feed_forms_become_one_sorted_list(tmp_path: Path) -> None:
    feed = _feed(
        tmp_path,
        "# Tor exit nodes\n"
        "185.220.101.47\n"
        "185.220.101.47   # listed twice\n"
        "45.155.205.0/30 ; SBL123456 (Spamhaus DROP form)\n"
        "193.142.146.17,scanner,2026-11-30 (CSV)\n"
        "\n"
        "2a0b:f4c2:0000::0013\n",
    )
    result = intel.build([str(feed)])
    assert result.sorted() == [
        "45.155.205.0",
        "45.155.205.1",
        "45.155.205.2",
        "45.155.205.3",
        "185.220.101.47",
        "193.142.146.17",
        "2a0b:f4c2::13",  # the API server's (Go's) canonical form
    ]
    assert result.networks == 1
    assert not result.refused


def test_unusable_entries_are_refused_with_their_reason(tmp_path: Path) -> None:
    feed = _feed(
        tmp_path,
        b"185.220.101.47\n"
        b"10.0.0.1\n"  # private: would turn the cluster's own traffic into alerts
        b"100.64.0.0/10\n"
        b"not-an-address\n"
        b"1.0.0.0/8\n"  # too many addresses to write out
        b"\xff\xfe1.2.3.4\n" + b"9" * (intel.MAX_LINE + 1) + b"\n",
    )
    result = intel.build([str(feed)])
    assert result.sorted() == ["185.220.101.47"]
    assert result.refused == {
        intel.NOT_PUBLIC: 2,
        intel.NOT_ADDRESS: 1,
        intel.TOO_LARGE: 1,
        intel.NOT_TEXT: 1,
        intel.TOO_LONG: 1,
    }
    assert any(":2: '10.0.0.1'" in s for s in result.samples)
    assert "refused 2 not a public address" in intel.summary(result, [str(feed)])


def test_a_feed_with_nothing_usable_is_an_error(tmp_path: Path) -> None:
    feed = _feed(tmp_path, "192.168.1.1\nhello\n")
    with pytest.raises(intel.IntelError, match="no usable address"):
        intel.build([str(feed)])


def test_bounds_on_list_size_and_feed_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    feed = _feed(tmp_path, "45.155.205.0/29\n185.220.101.47\n185.220.101.48\n")
    result = intel.build([str(feed)], max_addresses=9)
    assert len(result.addresses) == 9
    assert result.refused == {intel.FULL: 1}
    monkeypatch.setattr(intel, "MAX_FEED_BYTES", 16)
    with pytest.raises(intel.IntelError, match="larger than"):
        intel.build([str(feed)])
    with pytest.raises(intel.IntelError, match="cannot read"):
        intel.build([str(tmp_path / "missing.txt")])


def test_a_repeated_network_is_expanded_once(tmp_path: Path) -> None:
    """Expanding a /16 costs 65,536 addresses whether or not they are new: a 64 MiB feed of one
    /16 repeated (6 million lines) took days. Each distinct network is expanded once, so a feed
    costs at most its lines plus 17 expansions per kept address (one per prefix length)."""
    feed = _feed(tmp_path, "1.0.0.0/16\n" * 100 + "1.0.0.0/17\n1.0.128.0/17\n1.0.0.0/16\n")
    result = intel.build([str(feed)], max_addresses=3 * 65_536)
    assert result.networks == 3
    assert result.entries == 103
    assert len(result.addresses) == 65_536
    assert not result.refused  # a repeat adds nothing, so it never fills the list


@pytest.mark.parametrize("name", ["", "bad name", "x]\n- rule: evil", "9lives", "a" * 201])
def test_list_names_that_are_not_list_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigError):
        intel.check_list_name(name)


def test_cli_writes_a_rules_file_the_threat_rule_uses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feed = _feed(tmp_path, "185.220.101.47\n45.155.205.232/30\n")
    out = tmp_path / "threat_intel.yaml"
    assert cli.main(["intel", "--output", str(out), str(feed)]) == cli.EXIT_OK
    assert "falconet intel: 5 addresses from 1 feed(s)" in capsys.readouterr().err
    # Written through a temporary file that is gone (a reader sees the old list or the new one).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feed.txt", "threat_intel.yaml"]
    bundled = ROOT / "rules" / "k8s_audit_rules.yaml"
    assert _fired([bundled, out], "45.155.205.235")
    assert _fired([bundled, out], "185.220.101.47")
    assert not _fired([bundled, out], "45.155.205.236")
    # The shipped file is the empty list, and replacing it again replaces the addresses.
    shipped = ROOT / "rules" / "threat_intel.yaml"
    assert not _fired([bundled, shipped], "185.220.101.47")
    _feed(tmp_path, "193.142.146.17\n")
    assert cli.main(["intel", "-o", str(out), str(feed)]) == cli.EXIT_OK
    assert not _fired([bundled, out], "185.220.101.47")
    assert _fired([bundled, out], "193.142.146.17")


def test_cli_reports_a_bad_feed_and_keeps_the_old_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "threat_intel.yaml"
    out.write_text("- list: falconet_threat_source_ips\n  items: [185.220.101.47]\n")
    feed = _feed(tmp_path, "<html>rate limited</html>\n")
    assert cli.main(["intel", "-o", str(out), str(feed)]) == cli.EXIT_ERROR
    assert "no usable address" in capsys.readouterr().err
    assert "185.220.101.47" in out.read_text()
    assert cli.main(["intel", "--list", "x y", str(feed)]) == cli.EXIT_ERROR
