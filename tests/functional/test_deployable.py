"""functions/ is the deployable source directory: what `gcloud functions deploy --source functions`
and `gcloud run deploy --source functions` upload, and what functions/Containerfile builds.

- The upload is functions/ alone, as gcloud takes it (symbolic links are not followed into the
  Cloud Functions zip and are kept as dangling links in Cloud Run's source tarball, so the
  directory holds none); installed into a fresh venv from its requirements.txt alone, by the
  Containerfile's own RUN step, and served by the Containerfile's own CMD from that directory,
  as the buildpack and the image run it: a POSTed audit batch is answered with its alerts.
- `functions-framework --source functions/main.py --target audit_http` from the repository root
  answers an EventList as the kube-apiserver's (or IKS's) audit webhook sends it.

The fresh venv needs PyPI (pip's cache makes a rerun quick); skipped with the reason without it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import venv
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ROOT
from tests.functional.servers import free_port, serving

DEPLOYABLE = ROOT / "functions"
BATCH = ROOT / "examples" / "audit-batch.json"
TOKEN = "t0ken"
IGNORED = ("__pycache__", ".pyc")  # functions/.gcloudignore


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without this checkout on the path or falconet settings of the session."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FALCONET_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env.update(extra)
    return env


def _upload(dest: Path) -> Path:
    """functions/ as gcloud's source upload takes it (.gcloudignore's patterns left out)."""
    links = [p for p in DEPLOYABLE.rglob("*") if p.is_symlink()]
    assert not links, f"gcloud does not upload what these links point to: {links}"
    for root, dirs, files in os.walk(DEPLOYABLE):
        dirs[:] = [d for d in dirs if d not in IGNORED]
        for name in files:
            if not name.endswith(IGNORED):
                source = Path(root) / name
                target = dest / source.relative_to(DEPLOYABLE)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
    return dest


def _containerfile() -> tuple[list[list[str]], list[str]]:
    """The Containerfile's RUN commands and its CMD."""
    runs, cmd = [], []
    for line in (DEPLOYABLE / "Containerfile").read_text().splitlines():
        word, _, rest = line.partition(" ")
        if word == "RUN":
            runs.append(shlex.split(rest))
        elif word == "CMD":
            cmd = json.loads(rest)
        elif word == "COPY":
            *sources, _ = rest.split()
            assert all((DEPLOYABLE / s).exists() for s in sources if s != "."), line
    assert runs and cmd
    return runs, cmd


def _post(
    port: int, body: bytes, path: str = "/", token: str | None = TOKEN
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.slow
def test_the_deployable_directory_runs_alone_as_the_containerfile_builds_it(
    tmp_path: Path,
) -> None:
    app = _upload(tmp_path / "app")
    runs, cmd = _containerfile()
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    env = _clean_env(PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    for run in runs:  # e.g. pip install --no-cache-dir -r requirements.txt
        args = [a for a in run if a != "--no-cache-dir"]  # the cache keeps reruns quick
        assert args[0] == "pip", f"replay this RUN step: {run}"
        done = subprocess.run(
            [str(bin_dir / "python"), "-m", *args],
            cwd=app,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot install the requirements (offline?): {done.stderr[-800:]}")
    where = subprocess.run(
        [
            str(bin_dir / "python"),
            "-c",
            "import falconet.config as c; print(c.bundled_rules_dir())",
        ],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert Path(where.stdout.strip()) == (app / "rules").resolve()  # the upload's own rules
    port = free_port()
    env.update(PORT=str(port), FALCONET_WEBHOOK_TOKEN=TOKEN)
    with serving(
        [str(bin_dir / cmd[0]), *cmd[1:]], port=port, log=tmp_path / "log", cwd=app, env=env
    ):
        status, answer = _post(port, BATCH.read_bytes(), "/?cluster=gke-prod")
        assert (status, answer["events"], answer["alerts"]) == (200, 6, 4)
        assert _post(port, BATCH.read_bytes(), token="wrong")[0] == 401


def test_functions_framework_serves_audit_http_from_the_repository_root(tmp_path: Path) -> None:
    """As README tells a newcomer to type it in the checkout (the top level has no main.py).
    Served as on IBM Cloud Code Engine for IKS: the IKS audit webhook (`ibmcloud ks cluster master
    audit-webhook set --remote-server <url>`) POSTs the kube-apiserver's EventList and can send no
    header of its own, so its URL carries the cluster name and the token."""
    port = free_port()
    env = {
        **os.environ,
        "FALCONET_WEBHOOK_TOKEN": TOKEN,
        "FALCONET_WEBHOOK_TOKEN_IN_QUERY": "true",
        "PORT": str(port),
    }
    env.pop("FALCONET_RULES", None)
    command = [
        str(Path(sys.executable).parent / "functions-framework"),
        *("--source", "functions/main.py", "--target", "audit_http"),
    ]
    with serving(command, port=port, log=tmp_path / "log", cwd=ROOT, env=env):
        events = json.loads(BATCH.read_text())
        assert (events["kind"], events["apiVersion"]) == ("EventList", "audit.k8s.io/v1")
        body = json.dumps(events).encode()
        status, answer = _post(port, body, f"/?cluster=iks-prod&token={TOKEN}", token=None)
        assert (status, answer["events"], answer["alerts"]) == (200, 6, 4)
        assert _post(port, body, "/?cluster=iks-prod&token=guess", token=None)[0] == 401
        assert _post(port, body, "/?cluster=iks-prod", token=None)[0] == 401
        assert _post(port, body, "/?cluster=iks-prod")[0] == 200  # the header works as ever


def test_the_token_in_the_url_is_refused_unless_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A URL is logged in more places than a header: the query token is opt-in."""
    from functions_framework import create_app

    monkeypatch.delenv("FALCONET_RULES", raising=False)
    monkeypatch.setenv("FALCONET_WEBHOOK_TOKEN", TOKEN)
    monkeypatch.delenv("FALCONET_WEBHOOK_TOKEN_IN_QUERY", raising=False)
    client = create_app("audit_http", str(DEPLOYABLE / "main.py"), "http").test_client()
    answer = client.post(f"/?token={TOKEN}", data=BATCH.read_bytes())
    assert answer.status_code == 401
