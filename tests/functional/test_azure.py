"""Azure, through Azurite (the Blob Storage emulator, from npm) on loopback: AKS diagnostic settings
archive kube-audit records to hourly append blobs, Event Grid delivers `Microsoft.Storage.
BlobCreated` in the CloudEvents schema, and the functions read the blob with azure-storage-blob.

The blob client is made from AZURE_STORAGE_CONNECTION_STRING, the SDK's own setting, here naming
Azurite's well-known development account. Azurite is found on PATH (`azurite-blob`) or where
`.ci/run` installs it (~/.cache/falconet-tests/azurite); the tests skip, saying so, without it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from functions_framework import create_app
from tests.conftest import ROOT
from tests.functional.servers import free_port, serving
from tests.unit.decode.wrap import AKS_RESOURCE, aks_record

from falconet import cli
from falconet.storage import azure

RULES = ROOT / "tests" / "data" / "functional_rules.yaml"
MAIN = str(ROOT / "functions" / "main.py")
BATCH = json.loads((ROOT / "examples" / "audit-batch.json").read_text())
EXPECTED = ["Test Cluster Admin Binding", "Test Exec", "Test Namespace Deleted"]
TOKEN = "azure-t0ken"
ACCOUNT = "devstoreaccount1"  # Azurite's development account and its published key
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CONTAINER = "insights-logs-kube-audit"
SOURCE = (
    "/subscriptions/97e9b03f-04d6-4b69-b307-35f483f7ed81/resourceGroups/rg-logs/providers/"
    "Microsoft.Storage/storageAccounts/{account}"
)
HOUR = (
    "resourceId="
    + AKS_RESOURCE.format(cluster="AKS-PROD")
    + "/y=2024/m=06/d=01/h={h}/m=00/PT1H.json"
)
AZURITE_CACHE = Path.home() / ".cache" / "falconet-tests" / "azurite" / "node_modules" / ".bin"


def _azurite_blob() -> str | None:
    return shutil.which("azurite-blob") or shutil.which("azurite-blob", path=str(AZURITE_CACHE))


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if importlib.util.find_spec("azure.storage.blob") is None:
        pytest.skip("azure-storage-blob is not installed (pip install 'falconet[azure]')")
    if shutil.which("node") is None:
        pytest.skip("node is not installed: Azurite (npm install azurite) needs it")
    binary = _azurite_blob()
    if binary is None:
        pytest.skip(
            f"Azurite is not installed: npm install --prefix {AZURITE_CACHE.parents[1]} azurite"
        )
    port = free_port()
    data = tmp_path_factory.mktemp("azurite")
    command = [
        binary,
        "--blobHost=127.0.0.1",
        f"--blobPort={port}",
        f"--location={data}",
        "--silent",
        "--skipApiVersionCheck",
        "--loose",
    ]
    connection = (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
    )
    with serving(command, port=port, log=data / "log"), pytest.MonkeyPatch.context() as env:
        env.setenv("AZURE_STORAGE_CONNECTION_STRING", connection)
        azure._client.cache_clear()
        yield connection
        azure._client.cache_clear()


@pytest.fixture
def container(azurite: str) -> Any:
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(azurite)
    client = service.get_container_client(f"{CONTAINER}-{uuid.uuid4().hex[:8]}")
    client.create_container()
    return client


def _pt1h(events: list[dict[str, Any]]) -> bytes:
    """An AKS PT1H.json: one diagnostic record per line, the audit Event a string in
    `properties.log`, with a non-audit category among them."""
    records = [aks_record(orjson.dumps(e).decode() + "\n", cluster="AKS-PROD") for e in events]
    records.insert(1, aks_record("I0601 12:00:01.1 1 x.go:1] hi\n", category="kube-apiserver"))
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def _append_blob(container: Any, name: str, content: bytes) -> None:
    """As Azure Monitor writes it: an append blob created empty, then appended to."""
    blob = container.get_blob_client(name)
    blob.create_append_blob()
    for line in content.splitlines(keepends=True):
        blob.append_block(line)


def _blob_created(
    container: str,
    name: str,
    *,
    blob_type: str = "AppendBlob",
    account: str = ACCOUNT,
    ce_type: str = "Microsoft.Storage.BlobCreated",
) -> dict[str, Any]:
    """An Event Grid blob event in the CloudEvents 1.0 schema."""
    return {
        "specversion": "1.0",
        "type": ce_type,
        "source": SOURCE.format(account=account),
        "id": str(uuid.uuid4()),
        "time": "2024-06-01T12:00:00.1234567Z",
        "subject": f"/blobServices/default/containers/{container}/blobs/{name}",
        "datacontenttype": "application/json",
        "data": {
            "api": "PutBlob" if blob_type == "AppendBlob" else "PutBlockList",
            "requestId": "9f2a6a1e-601e-0056-7b2c-b3a0d5000000",
            "eTag": "0x8DC8211F46E0C5A",
            "contentType": "application/octet-stream",
            "contentLength": 0,
            "blobType": blob_type,
            "url": f"https://evil.example/{container}/{name}",  # never used: anyone can send it
            "sequencer": "00000000000000000000000000000C1A0000000000000adb",
            "storageDiagnostics": {"batchId": "ad2aec27-2006-0074-002c-b3a0d5000000"},
        },
    }


@pytest.fixture
def http(container: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("FALCONET_RULES", str(RULES))
    monkeypatch.setenv("FALCONET_WEBHOOK_TOKEN", TOKEN)
    monkeypatch.setenv(
        "FALCONET_ALLOWED_OBJECTS", f"az://{ACCOUNT}/{container.container_name}/resourceId="
    )
    return create_app("audit_http", MAIN, "http").test_client()


def _deliver(client: Any, event: dict[str, Any]) -> Any:
    return client.post(
        "/",
        data=orjson.dumps(event),
        headers={
            "Content-Type": "application/cloudevents+json; charset=utf-8",
            "Authorization": f"Bearer {TOKEN}",
        },
    )


def test_the_next_hours_blob_created_has_the_completed_hour_read(http: Any, container: Any) -> None:
    """Event Grid raises BlobCreated when an hour's append blob is created (empty), never for the
    appends: that event is the signal that the hour before is complete, and that one is read."""
    _append_blob(container, HOUR.format(h="11"), _pt1h(BATCH["items"]))
    _append_blob(container, HOUR.format(h="12"), b"")
    answer = _deliver(http, _blob_created(container.container_name, HOUR.format(h="12")))
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert (body["events"], body["alerts"]) == (6, 3)
    assert body["skipped_by_reason"] == {"not an audit log category": 1}
    assert body["origins"] == [f"az://{ACCOUNT}/{container.container_name}/{HOUR.format(h='11')}"]


def test_the_cloudevent_target_reads_the_blob_too(
    container: Any, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FALCONET_RULES", str(RULES))
    monkeypatch.setenv("FALCONET_ALLOWED_OBJECTS", f"az://{ACCOUNT}/{container.container_name}")
    client = create_app("audit_cloudevent", MAIN, "cloudevent").test_client()
    name = "exports/cluster=aks-prod/2024-06-01.json"  # a block blob: complete when created
    container.upload_blob(name, _pt1h(BATCH["items"]))
    event = _blob_created(container.container_name, name, blob_type="BlockBlob")
    capfd.readouterr()
    answer = client.post(
        "/", data=orjson.dumps(event), headers={"Content-Type": "application/cloudevents+json"}
    )
    assert answer.status_code == 200
    out, err = capfd.readouterr()
    rules = sorted(json.loads(x)["rule"] for x in out.splitlines() if x.startswith('{"hostname"'))
    assert rules == EXPECTED
    (log,) = [json.loads(x) for x in err.splitlines() if x.startswith('{"falconet"')]
    assert log["origins"] == [f"az://{ACCOUNT}/{container.container_name}/{name}"]


@pytest.mark.parametrize(
    ("case", "ignored"),
    [
        ("first-hour", "az://{account}/{container}/" + HOUR.format(h="11") + " no longer exists"),
        ("other-account", "az://attacker/{container}/" + HOUR.format(h="11") + " is not under "),
        ("deleted", "Microsoft.Storage.BlobDeleted is not a blob creation"),
    ],
)
def test_blob_events_with_nothing_to_read_are_acknowledged(
    http: Any, container: Any, case: str, ignored: str
) -> None:
    name = HOUR.format(h="12")
    event = _blob_created(
        container.container_name,
        name,
        account="attacker" if case == "other-account" else ACCOUNT,
        ce_type="Microsoft.Storage.BlobDeleted"
        if case == "deleted"
        else "Microsoft.Storage.BlobCreated",
    )
    answer = _deliver(http, event)
    assert answer.status_code == 200
    (reason,) = answer.get_json()["ignored"]
    assert reason.startswith(ignored.format(account=ACCOUNT, container=container.container_name))


def test_event_grid_validation_handshake_is_answered(http: Any) -> None:
    """Event Grid sends OPTIONS with WebHook-Request-Origin before delivering CloudEvents."""
    answer = http.options("/", headers={"WebHook-Request-Origin": "eventgrid.azure.net"})
    assert answer.status_code == 200
    assert answer.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    bad = http.options("/", headers={"WebHook-Request-Origin": "evil.example/<script>"})
    assert bad.status_code == 400
    assert http.options("/").status_code == 401  # anything else still needs the token


def test_falconet_scan_reads_an_az_prefix(
    container: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _append_blob(container, HOUR.format(h="11"), _pt1h(BATCH["items"]))
    spec = f"az://{ACCOUNT}/{container.container_name}/resourceId="
    code = cli.main(["scan", "--json", "--rules", str(RULES), spec])
    alerts = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert code == 0
    assert sorted(a["rule"] for a in alerts) == EXPECTED
    assert {a["output_fields"]["falconet.cluster"] for a in alerts} == {"aks-prod"}  # resourceId


def test_a_blob_of_another_account_is_never_read_with_the_connection_strings_key(
    azurite: str,
) -> None:
    from falconet.errors import ConfigError
    from falconet.storage.objects import ObjectRef

    with pytest.raises(ConfigError, match="not the one AZURE_STORAGE_CONNECTION_STRING names"):
        azure.open_object(ObjectRef("az", "someoneelse/logs", "a.json"))


def test_without_the_extra_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    from falconet.errors import ConfigError
    from falconet.storage.objects import ObjectRef

    monkeypatch.setitem(os.environ, "AZURE_STORAGE_CONNECTION_STRING", "AccountName=x;")
    monkeypatch.setitem(__import__("sys").modules, "azure.storage.blob", None)
    if (storage := __import__("sys").modules.get("azure.storage")) is not None:
        monkeypatch.delattr(storage, "blob", raising=False)
    azure._client.cache_clear()
    request.addfinalizer(azure._client.cache_clear)
    with pytest.raises(ConfigError, match=r"pip install 'falconet\[azure\]'"):
        azure.open_object(ObjectRef("az", "x/logs", "a.json"))


def test_a_subject_with_dot_segments_never_reads_outside_the_allowed_prefix(
    http: Any, container: Any, azurite: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The blob client's HTTP layer (requests) resolves `..` in the URL path, so a subject naming
    `<allowed prefix>/../../<other container>/...` would read a blob of another container with a
    credential that does not sign the path: a token (managed identity), or the account SAS here."""
    from datetime import UTC, datetime, timedelta

    from azure.storage.blob import (
        AccountSasPermissions,
        BlobServiceClient,
        ResourceTypes,
        generate_account_sas,
    )

    service = BlobServiceClient.from_connection_string(azurite)
    other = service.get_container_client(f"secret-{uuid.uuid4().hex[:8]}")
    other.create_container()
    other.upload_blob("PT1H.json", _pt1h(BATCH["items"]))
    sas = generate_account_sas(
        ACCOUNT,
        KEY,
        ResourceTypes(service=True, container=True, object=True),
        AccountSasPermissions(read=True, list=True),
        datetime.now(UTC) + timedelta(hours=1),
    )
    endpoint = azurite.split("BlobEndpoint=")[1]
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING",
        f"BlobEndpoint={endpoint}SharedAccessSignature={sas};AccountName={ACCOUNT}",
    )
    azure._client.cache_clear()
    try:
        for name in (
            f"resourceId=/../../{other.container_name}/PT1H.json",
            f"resourceId=/./x/../../../{other.container_name}/PT1H.json",
        ):
            event = _blob_created(container.container_name, name, blob_type="BlockBlob")
            answer = _deliver(http, event)
            assert answer.status_code == 200, answer.get_json()
            body = answer.get_json()
            assert body["events"] == 0
            (reason,) = body["ignored"]
            assert "is not under FALCONET_ALLOWED_OBJECTS" in reason
    finally:
        azure._client.cache_clear()
