"""`pip install falconet` as a user gets it: a wheel built from this checkout, installed without
extras into a fresh venv, run from outside the repository.

Checks that the bundled rules ship inside the package (falconet/bundled_rules/, built from the
functions/rules/), that the core install carries neither boto3 nor functions-framework, Flask or
cloudevents, that `falconet scan` and `falconet validate` work with it alone, and that an s3://
input without the `aws` extra says what to install instead of a traceback.
Needs PyPI (the build backend and the runtime dependencies); skipped with the reason when the
wheel cannot be built.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from tests.conftest import BUNDLED_RULES, ROOT

pytestmark = pytest.mark.slow

SAMPLE = ROOT / "examples" / "audit-batch.json"
# What a wheel is built from: everything else in the checkout stays out (a stale build/ included).
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "functions/falconet", "functions/rules")


def _run(args: list[str], *, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    # No PYTHONPATH: the source tree must not shadow the installed package.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FALCONET_RULES")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=timeout
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    done = _run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-w", str(dist)],
        cwd=source,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot build a wheel here (offline?): {done.stderr.strip()[-500:]}")
    (built,) = dist.glob("falconet-*.whl")
    return built


@pytest.fixture(scope="module")
def core_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel and its core dependencies only (no extras)."""
    home = tmp_path_factory.mktemp("venv")
    venv.create(home, with_pip=True)
    done = _run([str(home / "bin" / "python"), "-m", "pip", "install", str(wheel)], cwd=home)
    if done.returncode != 0:
        pytest.skip(f"cannot install the wheel's dependencies (offline?): {done.stderr[-500:]}")
    return home


def test_the_wheel_ships_the_bundled_rules_and_the_license(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n.rpartition("/")[2] for n in names if n.startswith("falconet/bundled_rules/"))
    assert shipped == sorted(p.name for p in BUNDLED_RULES.glob("*.yaml"))
    assert "falconet/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "License-Expression: Apache-2.0" in text
    assert 'Requires-Dist: boto3>=1.34; extra == "aws"' in text


def test_the_core_install_has_no_cloud_or_function_dependencies(core_venv: Path) -> None:
    script = (
        "import importlib.util, json\n"
        "from falconet.config import bundled_rules_dir\n"
        "print(json.dumps({'rules': str(bundled_rules_dir()), 'missing': [m for m in"
        " ('boto3', 'botocore', 'flask', 'functions_framework', 'cloudevents')"
        " if importlib.util.find_spec(m) is None]}))\n"
    )
    done = _run([str(core_venv / "bin" / "python"), "-c", script], cwd=core_venv)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["missing"] == ["boto3", "botocore", "flask", "functions_framework", "cloudevents"]
    rules = Path(report["rules"])
    assert rules.name == "bundled_rules"
    assert rules.parent.parent.name == "site-packages"  # inside the installed package


def test_scan_with_the_bundled_rules_on_the_core_install(core_venv: Path, tmp_path: Path) -> None:
    sample = shutil.copy(SAMPLE, tmp_path / "audit-batch.json")
    done = _run([str(core_venv / "bin" / "falconet"), "scan", "--json", str(sample)], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    alerts = [json.loads(line) for line in done.stdout.splitlines()]
    assert alerts
    assert {"rule", "priority", "output"} <= alerts[0].keys()
    assert "Traceback" not in done.stderr


def test_validate_the_bundled_rules_on_the_core_install(core_venv: Path) -> None:
    python = str(core_venv / "bin" / "python")
    where = _run(
        [python, "-c", "from falconet.config import bundled_rules_dir; print(bundled_rules_dir())"],
        cwd=core_venv,
    )
    assert where.returncode == 0, where.stderr
    done = _run(
        [str(core_venv / "bin" / "falconet"), "validate", where.stdout.strip()], cwd=core_venv
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 0 error(s)" in done.stdout + done.stderr


def test_an_s3_input_without_the_aws_extra_names_the_extra(core_venv: Path) -> None:
    done = _run(
        [str(core_venv / "bin" / "falconet"), "scan", "s3://audit-bucket/cluster=prod/"],
        cwd=core_venv,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "pip install 'falconet[aws]'" in done.stderr, done.stderr
