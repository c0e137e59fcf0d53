"""The README's rules example, as a user would deploy it: `falconet scan` raises its alert.

The README's own rule used to sit after the bundled rules, where first-match gave every event it
matched to *Secret Read By Non-Platform Identity*: it never fired (issue 14). The blocks are read
from README.md itself, so the test follows the text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from falconet.cli import main

REPO = Path(__file__).resolve().parents[2]
EVENT = REPO / "tests" / "data" / "rules" / "secret-read-by-non-platform-identity" / "positive.json"


def _block(first_line: str) -> str:
    """The README's YAML block whose first line starts with `first_line`."""
    for block in re.findall(r"```yaml\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL):
        if block.startswith(first_line):
            return str(block)
    raise AssertionError(f"no README block starts with {first_line!r}")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name in ("my-first-rules.yaml", "my-rules.yaml"):
        path = tmp_path / name
        path.write_text(_block(f"# {name}"))
        out[name] = path
    event = json.loads(EVENT.read_text())
    event["objectRef"]["namespace"] = "payments"
    event["requestURI"] = "/api/v1/namespaces/payments/secrets/db-credentials"
    (tmp_path / "event.json").write_text(json.dumps(event))
    out["event"] = tmp_path / "event.json"
    return out


def _scan(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    capsys.readouterr()
    assert main(["scan", "--json", "--no-suppress", *args]) == 0
    return [json.loads(line)["rule"] for line in capsys.readouterr().out.splitlines()]


def test_the_readme_rule_fires_loaded_as_the_readme_says(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rules = ["--rules", str(files["my-first-rules.yaml"]), "--rules", str(REPO / "rules")]
    rules += ["--rules", str(files["my-rules.yaml"])]
    assert _scan(capsys, *rules, str(files["event"])) == ["Secret Read By Unexpected Human"]


def test_after_the_bundled_rules_it_fires_only_with_all(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rules = ["--rules", str(REPO / "rules"), "--rules", str(files["my-first-rules.yaml"])]
    assert _scan(capsys, *rules, str(files["event"])) == ["Secret Read By Non-Platform Identity"]
    assert _scan(capsys, "--rule-matching", "all", *rules, str(files["event"])) == [
        "Secret Read By Non-Platform Identity",
        "Secret Read By Unexpected Human",
    ]


def test_the_readme_files_validate(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    paths = [str(files["my-first-rules.yaml"]), str(REPO / "rules"), str(files["my-rules.yaml"])]
    assert main(["validate", *paths]) == 0
    assert "error" not in capsys.readouterr().err
