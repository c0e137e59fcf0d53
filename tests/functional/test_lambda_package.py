"""What `sam build` ships: the Makefile's `build-<Function>` target, run as SAM runs it (with
ARTIFACTS_DIR), for this machine's architecture so the result can be imported and run here.

Checks the package contract of template.yaml: a build target for every function, the artifact
built once by `make build` and copied for each function, the bundled rules beside the package,
runtime dependencies only (no functions-framework, Flask, boto3 or test tools; cloudevents yes),
hash-based .pyc for every module, and a working `handle_notify` that imports no boto3 or Flask.
Needs PyPI (pip downloads the platform wheels), like `make test` itself.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("artifacts")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run(
        [
            "make",
            "--no-print-directory",
            "build-NotifyFunction",
            f"ARTIFACTS_DIR={target}",
            f"LAMBDA_PY={sys.executable}",
            f"LAMBDA_PYTHON_VERSION={version}",
            f"LAMBDA_PLATFORM=manylinux2014_{platform.machine()}",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return target


def test_bundled_rules_sit_beside_the_package(artifacts: Path) -> None:
    assert (artifacts / "lambda_handlers.py").is_file()
    assert (artifacts / "falconet" / "alerts.py").is_file()
    shipped = sorted(p.name for p in (artifacts / "rules").iterdir())
    assert shipped == sorted(p.name for p in (ROOT / "rules").glob("*.yaml"))
    assert shipped


def test_only_runtime_dependencies_are_shipped(artifacts: Path) -> None:
    top = {p.name.split("-")[0].lower() for p in artifacts.iterdir()}
    for unwanted in (
        "flask",
        "functions_framework",
        "boto3",
        "botocore",
        "moto",
        "pytest",
        "awscrt",
        "werkzeug",
        "google",  # the deployable directory's requirements.txt, not requirements-lambda.txt
        "azure",
    ):
        assert unwanted not in top
    assert {"yaml", "orjson", "falconet", "rules"} <= top
    assert "cloudevents" in top  # the HTTP handler validates CloudEvents with the SDK


def test_every_module_has_an_unchecked_hash_pyc(artifacts: Path) -> None:
    tag = sys.implementation.cache_tag
    sources = list(artifacts.rglob("*.py"))
    assert sources
    for source in sources:
        cached = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        assert cached.is_file(), f"no .pyc for {source.relative_to(artifacts)}"
        flags = int.from_bytes(cached.read_bytes()[4:8], "little")
        assert flags == 0b01, f"{cached.name}: flags {flags:#b}, expected unchecked-hash (0b01)"


def test_the_packaged_notify_handler_runs(artifacts: Path, http_receiver, make_alert) -> None:
    alert = make_alert(1)
    script = (
        "import json, sys, lambda_handlers, falconet, yaml\n"
        f"event = {{'Records': [{{'messageId': 'm1', 'body': {alert.to_json().decode()!r}}}]}}\n"
        "result = lambda_handlers.handle_notify(event, None)\n"
        "print(json.dumps({'result': result, 'falconet': falconet.__file__, 'yaml': yaml.__file__,"
        " 'heavy': sorted(m for m in ('boto3', 'flask', 'functions_framework', 'cloudevents')"
        " if m in sys.modules)}))\n"
    )
    base_python = getattr(sys, "_base_executable", sys.executable)  # outside the test venv
    env = {
        "PATH": os.environ.get("PATH", ""),
        "FALCONET_NOTIFY_URL": http_receiver.url,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    done = subprocess.run(
        [base_python, "-s", "-c", script],
        cwd=artifacts,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["result"] == {"batchItemFailures": []}
    assert report["falconet"].startswith(str(artifacts))
    assert report["yaml"].startswith(str(artifacts))
    assert report["heavy"] == []
    (request,) = http_receiver.requests
    assert json.loads(request.body)["text"].startswith("[Warning] K8s Namespace Deleted: ")


def test_the_packaged_detector_loads_its_compiled_rules_from_the_cache(artifacts: Path) -> None:
    cache = artifacts / "rules-cache"
    files = sorted(cache.glob("rules-*.marshal"))
    assert len(files) == 1  # built by `make build-*` for the bundled rules
    assert len(list(cache.glob("loaded-*.marshal"))) == 1  # and the loaded rules
    before = sorted(cache.iterdir())
    cache.chmod(0o555)  # as /var/task: read-only; a miss would try (and fail) to write
    try:
        script = (
            "import json, sys\n"
            "from falconet import get_runtime\n"
            "engine = get_runtime().pipeline.engine\n"
            "print(json.dumps({'hit': engine.index_stats()['code_cache_hit'],"
            " 'rules': len(engine.rules), 'yaml': 'yaml' in sys.modules}))\n"
        )
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONDONTWRITEBYTECODE": "1",
            "FALCONET_RULES": str(artifacts / "rules"),
            "FALCONET_CODE_CACHE": str(cache),
        }
        base_python = getattr(sys, "_base_executable", sys.executable)
        done = subprocess.run(
            [base_python, "-s", "-c", script],
            cwd=artifacts,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["hit"] == 1  # the generated code came from the cache, not compile()
        assert report["yaml"] is False  # and the rules from the load cache: no YAML parsed
        assert report["rules"] > 50
        assert sorted(cache.iterdir()) == before  # nothing written
    finally:
        cache.chmod(0o755)


def _functions() -> dict[str, dict]:
    """template.yaml's functions by logical id (intrinsic functions read as None)."""
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    def _any(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> object:
        return None

    _Loader.add_multi_constructor("!", _any)
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=_Loader)
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource.get("Type") == "AWS::Serverless::Function"
    }


def test_every_template_function_has_its_build_target(tmp_path: Path) -> None:
    functions = _functions()
    assert functions
    for name, resource in functions.items():
        assert resource["Metadata"]["BuildMethod"] == "makefile", name
        done = subprocess.run(
            ["make", "-n", f"build-{name}", f"ARTIFACTS_DIR={tmp_path}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, f"sam build would fail for {name}: {done.stderr}"


def test_make_build_builds_the_artifact_once(tmp_path: Path) -> None:
    """`make build` passes LAMBDA_PREBUILT to sam build: each function's target then only copies
    the artifact built once (LAMBDA_PY points nowhere, so any build step would fail)."""
    prebuilt = tmp_path / "prebuilt"
    (prebuilt / "falconet").mkdir(parents=True)
    (prebuilt / "falconet" / "marker.py").write_text("BUILT_ONCE = True\n")
    recipe = subprocess.run(
        ["make", "-n", "build"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "lambda-artifact" in recipe and "LAMBDA_PREBUILT=" in recipe
    for name in _functions():
        target = tmp_path / name
        target.mkdir()
        done = subprocess.run(
            [
                "make",
                "--no-print-directory",
                f"build-{name}",
                f"ARTIFACTS_DIR={target}",
                f"LAMBDA_PREBUILT={prebuilt}",
                "LAMBDA_PY=/nonexistent/python",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert (target / "falconet" / "marker.py").read_text() == "BUILT_ONCE = True\n"


def test_every_template_handler_exists() -> None:
    import lambda_handlers

    handlers = [r["Properties"]["Handler"] for r in _functions().values()]
    assert handlers
    for handler in handlers:
        module, _, name = handler.partition(".")
        assert module == "lambda_handlers"
        assert callable(getattr(lambda_handlers, name)), handler
