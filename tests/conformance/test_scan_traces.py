"""`falconet scan --rules <upstream k8s_audit_rules.yaml> --json` over all 47 Falco traces."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT, shared_path

KEYS = ["hostname", "output", "output_fields", "priority", "rule", "source", "tags", "time", "uuid"]


def test_upstream_rules_over_all_traces_print_valid_falco_json() -> None:
    rules = shared_path("conformance", "falco-plugins-k8saudit", "v0.18.0", "k8s_audit_rules.yaml")
    traces = sorted(
        shared_path("conformance", "falco-legacy-tests", "test", "trace_files", "k8s_audit").glob(
            "*.json"
        )
    )
    assert len(traces) == 47
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "falconet",
            "scan",
            "--rules",
            str(rules),
            "--json",
            *map(str, traces),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    alerts = [json.loads(line) for line in done.stdout.splitlines()]
    # 41 traces alert once and create_configmap_sensitive_values alerts on each of its 6 events;
    # 6 traces raise nothing (the v0.18.0 rules alone, first match, as real Falco).
    assert len(alerts) == 46
    for alert in alerts:
        assert list(alert) == KEYS
        assert alert["source"] == "k8s_audit"
        assert alert["priority"] in {"Warning", "Notice", "Informational", "Error", "Critical"}
        assert alert["output"].split(": ", 1)[1].startswith(alert["priority"] + " ")
        assert isinstance(alert["output_fields"]["evt.time"], int)
        assert alert["time"].endswith("Z") and len(alert["time"]) == 30
    assert "fal_01_003.json:1: data not recognized as a k8s audit event" in done.stderr
    assert "51 events evaluated, 1 records rejected, 46 alerts" in done.stderr
