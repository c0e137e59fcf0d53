"""Issue: alerts answer who, what, when and where. The seed scenario end to end.

A user deletes namespace `demo` from a public address (81.2.69.160, in a MaxMind-format database
the test builds as "Paris, FR", AS 20712): the alert carries falconet.src.ip / country / city /
asn and the cluster, through `falconet scan --json` and through the HTTP function.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from functions_framework import create_app
from tests.conftest import ROOT
from tests.mmdb import asn, build_db, city

from falconet.config import Settings
from falconet.errors import ConfigError
from falconet.notify import NotifyConfig, alerts_from_message, deliver
from falconet.runtime import build_pipeline

SAMPLE = ROOT / "examples" / "audit-batch.json"
RULE = "K8s Namespace Deleted"


@pytest.fixture(scope="module")
def geoip_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    d = tmp_path_factory.mktemp("geo")
    city_db = build_db(
        d / "city.mmdb",
        {
            "81.2.69.0/24": city("FR", "France", "Paris"),
            "2a01:e0a::/32": city("FR", "France", "Paris"),
        },
    )
    asn_db = build_db(
        d / "asn.mmdb", {"81.2.69.0/24": asn(20712, "Example Net")}, database_type="GeoLite2-ASN"
    )
    return os.pathsep.join([city_db, asn_db])


def scan(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "falconet", "scan", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "functions"), **(env or {})},
        check=False,
    )


def deletion(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    (alert,) = [a for a in alerts if a["rule"] == RULE]
    return alert


def test_scan_json_carries_who_and_where(geoip_db: str) -> None:
    done = scan("--json", "--geoip-db", geoip_db, "--cluster", "prod-eu", str(SAMPLE))
    assert done.returncode == 0, done.stderr
    alert = deletion([json.loads(line) for line in done.stdout.splitlines()])
    fields = alert["output_fields"]
    assert fields["falconet.src.ip"] == "81.2.69.160"
    assert fields["falconet.src.scope"] == "public"
    assert fields["falconet.src.country"] == "FR"
    assert fields["falconet.src.city"] == "Paris"
    assert fields["falconet.src.asn"] == "20712"
    assert fields["falconet.cluster"] == "prod-eu"
    assert fields["ka.user.name"] == "toto.tata@example.com"
    assert alert["time"] == "2026-03-11T15:45:02.123456000Z"
    assert "warning: geolocation is off" not in done.stderr


def test_summary_line(geoip_db: str) -> None:
    done = scan("--summary", "--geoip-db", geoip_db, "--cluster", "prod-eu", str(SAMPLE))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    index = next(i for i, line in enumerate(lines) if RULE in line)
    assert lines[index + 1].strip() == (
        "who=toto.tata@example.com (groups: developers,system:authenticated) "
        "what=delete namespaces/demo -> 200 when=2026-03-11T15:45:02.123456000Z "
        "where=81.2.69.160 (Paris, FR) cluster=prod-eu"
    )


def test_private_addresses_are_scoped_not_located(geoip_db: str, tmp_path: Path) -> None:
    doc = json.loads(SAMPLE.read_text())
    doc["items"][1]["sourceIPs"] = ["10.23.2.45"]
    path = tmp_path / "private.json"
    path.write_text(json.dumps(doc))
    done = scan("--json", "--geoip-db", geoip_db, str(path))
    fields = deletion([json.loads(x) for x in done.stdout.splitlines()])["output_fields"]
    assert fields["falconet.src.ip"] == "10.23.2.45"
    assert fields["falconet.src.scope"] == "private"
    assert "falconet.src.country" not in fields and "falconet.src.city" not in fields


def test_without_a_database_location_is_absent_and_one_warning_says_how() -> None:
    # The default outputs lose nothing the user asked for: no warning.
    done = scan("--json", str(SAMPLE), env={"FALCONET_GEOIP_DB": ""})
    assert done.returncode == 0, done.stderr
    fields = deletion([json.loads(x) for x in done.stdout.splitlines()])["output_fields"]
    assert fields["falconet.src.ip"] == "81.2.69.160" and fields["falconet.src.scope"] == "public"
    assert "falconet.src.country" not in fields
    assert "geolocation is off" not in done.stderr
    # Asking for a location field: one warning saying how to get it.
    done = scan(
        "--json",
        "--extra-field",
        "falconet.src.country",
        str(SAMPLE),
        str(SAMPLE),
        env={"FALCONET_GEOIP_DB": ""},
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("geolocation is off") == 1
    assert "FALCONET_GEOIP_DB" in done.stderr


def test_a_corrupt_database_fails_the_cold_start(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mmdb"
    bad.write_bytes(os.urandom(4096))
    with pytest.raises(ConfigError, match="broken.mmdb"):
        build_pipeline(Settings({"FALCONET_GEOIP_DB": str(bad)}))
    done = scan("--geoip-db", str(bad), str(SAMPLE))
    assert done.returncode == 1
    assert "broken.mmdb" in done.stderr and "Traceback" not in done.stderr


@pytest.fixture
def http_client(geoip_db: str) -> Iterator[Any]:
    saved = os.environ.get("FALCONET_GEOIP_DB")
    os.environ["FALCONET_GEOIP_DB"] = geoip_db
    try:
        yield create_app("audit_http", str(ROOT / "functions" / "main.py"), "http").test_client()
    finally:
        if saved is None:
            os.environ.pop("FALCONET_GEOIP_DB", None)
        else:
            os.environ["FALCONET_GEOIP_DB"] = saved


def test_http_function_alert_carries_who_and_where(
    http_client: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    capfd.readouterr()
    r = http_client.post(
        "/?cluster=prod-eu", data=SAMPLE.read_bytes(), content_type="application/json"
    )
    assert r.status_code == 200, r.get_data()
    printed = [json.loads(x) for x in capfd.readouterr().out.splitlines() if x.startswith("{")]
    fields = deletion(printed)["output_fields"]
    assert fields["falconet.src.country"] == "FR"
    assert fields["falconet.src.city"] == "Paris"
    assert fields["falconet.cluster"] == "prod-eu"
    assert fields["falconet.origin"] == "webhook"


def test_notify_function_summarizes_a_queued_alert(geoip_db: str, http_receiver: Any) -> None:
    """The alert as the notify function reads it back from the queue: Falco JSON only."""
    done = scan("--json", "--geoip-db", geoip_db, "--cluster", "prod-eu", str(SAMPLE))
    queued = json.dumps(deletion([json.loads(x) for x in done.stdout.splitlines()]))
    config = NotifyConfig.from_settings(
        Settings(
            {
                "FALCONET_NOTIFY_URL": http_receiver.url,
                "FALCONET_NOTIFY_FORMAT": "text",
                "FALCONET_NOTIFY_SUMMARY": "true",
            }
        ).notify
    )
    assert deliver(config, [("m-1", alerts_from_message(queued))]) == []
    (request,) = http_receiver.requests
    headline, explained = request.body.decode().splitlines()
    assert headline.startswith("[Warning] K8s Namespace Deleted: K8s Namespace Deleted (user=")
    assert explained.strip() == (
        "who=toto.tata@example.com (groups: developers,system:authenticated) "
        "what=delete namespaces/demo -> 200 when=2026-03-11T15:45:02.123456000Z "
        "where=81.2.69.160 (Paris, FR) cluster=prod-eu"
    )
