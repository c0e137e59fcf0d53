"""`falconet coverage`: which rules cannot fire on a sample of a cluster's logs, and why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from falconet.cli import main
from tests.conftest import ROOT

ITEMS = json.loads((ROOT / "examples" / "audit-batch.json").read_text())["items"]


def write(path: Path, items: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in items))
    return path


def metadata_level(items: list[dict]) -> list[dict]:
    """The same requests as a Metadata-level audit policy logs them: no bodies."""
    return [
        {k: v for k, v in e.items() if k not in ("requestObject", "responseObject")} for e in items
    ]


def report(tmp_path: Path, items: list[dict], capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["coverage", "--json", str(write(tmp_path / "sample.jsonl", items))]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_metadata_level_sample_names_the_rules_that_need_bodies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    found = report(tmp_path, metadata_level(ITEMS), capsys)
    assert found["events"] == len(ITEMS) and found["facts"].get("request_body", 0) == 0
    rules = {r["rule"]: r for r in found["rules"]}
    cluster_admin = rules["Cluster-Admin Role Bound"]
    assert cluster_admin["matched"] == 0
    assert "ka.req.binding.role" in cluster_admin["missing_fields"]
    assert rules["K8s Namespace Deleted"]["matched"] == 1  # bodies are not needed for it


def test_with_request_bodies_the_same_rules_can_fire(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = {r["rule"]: r for r in report(tmp_path, ITEMS, capsys)["rules"]}
    assert rules["Cluster-Admin Role Bound"]["matched"] == 1
    assert rules["Cluster-Admin Role Bound"]["missing_fields"] == []


def test_the_text_report_says_what_the_policy_lacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = write(tmp_path / "sample.jsonl", metadata_level(ITEMS))
    assert main(["coverage", str(sample)]) == 0
    out = capsys.readouterr().out
    assert "Cluster-Admin Role Bound: ka.req.binding.role" in out
    assert "No event carries a request body" in out
