"""`make gcf-source`: a Cloud Functions / Cloud Run source directory that runs on its own (main.py,
the falconet package and the bundled rules side by side, a requirements.txt for the buildpack)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

SERVE = """\
import json, functions_framework
app = functions_framework.create_app(target="audit_http", source="main.py")
body = open(%r, "rb").read()
answer = app.test_client().post(
    "/?cluster=gcp", data=body, headers={"Authorization": "Bearer t"},
    content_type="application/json",
)
import falconet.config
print(json.dumps({"status": answer.status_code, "answer": answer.get_json(),
                  "rules": str(falconet.config.bundled_rules_dir()),
                  "falconet": falconet.__file__}))
"""


def test_the_staged_source_finds_its_rules_and_answers(tmp_path: Path) -> None:
    staged = tmp_path / "gcf"
    done = subprocess.run(
        ["make", "--no-print-directory", "gcf-source", f"GCF_SOURCE={staged}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (staged / "rules").iterdir()) == sorted(
        p.name for p in (ROOT / "rules").glob("*.yaml")
    )
    requirements = (staged / "requirements.txt").read_text()
    assert "functions-framework" in requirements and "orjson" in requirements
    env = {k: v for k, v in os.environ.items() if not k.startswith("FALCONET_")}
    env.update(PYTHONPATH=str(staged), FALCONET_WEBHOOK_TOKEN="t")
    run = subprocess.run(
        [sys.executable, "-c", SERVE % str(ROOT / "examples" / "audit-batch.json")],
        cwd=staged,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["falconet"].startswith(str(staged))  # the staged package, not the checkout's
    assert out["rules"] == str((staged / "rules").resolve())
    assert out["status"] == 200 and out["answer"]["alerts"] == 4
