"""Azure Blob Storage, with the optional extra `falconet[azure]` (azure-storage-blob).

An object is `ObjectRef("az", "<account>/<container>", "<blob name>")`, `az://account/container/name`.
The client is made from the SDK's standard settings: `AZURE_STORAGE_CONNECTION_STRING` when set (it
names its account and endpoint; Azurite's too), else `https://<account>.blob.core.windows.net` with
`DefaultAzureCredential` (managed identity, workload identity, environment; needs azure-identity).
A blob of another account than the connection string's is never read with its key: that is a
`ConfigError`. One client per account, the library imported on first use. A blob that no longer
exists is `ObjectGone`; without the extra, a `ConfigError` says what to install.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from falconet.config import azure_connection_string
from falconet.errors import ConfigError, ObjectGone
from falconet.storage.objects import ObjectRef, OpenedObject, exact_or_under

INSTALL_HINT = "pip install 'falconet[azure]'"
_ACCOUNT_NAME = re.compile(r"(?:^|;)AccountName=([^;]+)", re.IGNORECASE)


def _import() -> Any:
    try:
        from azure.storage import blob
    except ImportError as exc:
        raise ConfigError(
            f"az:// blobs need the azure-storage-blob package: {INSTALL_HINT}"
        ) from exc
    return blob


@functools.cache
def _client(account: str, connection_string: str | None) -> Any:
    blob = _import()
    if connection_string:
        found = _ACCOUNT_NAME.search(connection_string)
        if found is None or found.group(1) != account:
            raise ConfigError(
                f"the blob is in storage account '{account}', not the one "
                "AZURE_STORAGE_CONNECTION_STRING names"
            )
        return blob.BlobServiceClient.from_connection_string(connection_string)
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError as exc:
        raise ConfigError(
            "set AZURE_STORAGE_CONNECTION_STRING, or pip install azure-identity for "
            "DefaultAzureCredential (managed identity)"
        ) from exc
    url = f"https://{account}.blob.core.windows.net"
    return blob.BlobServiceClient(url, credential=DefaultAzureCredential())


def client(account: str) -> Any:
    """The process's client for `account`. Raises ConfigError."""
    return _client(account, azure_connection_string())


def open_object(ref: ObjectRef) -> OpenedObject:
    """Open a blob for streaming, with its metadata. Raises ObjectGone, ConfigError."""
    account, _, container = ref.bucket.partition("/")
    blob = client(account).get_blob_client(container, ref.key)
    from azure.core.exceptions import ResourceNotFoundError

    try:
        downloader = blob.download_blob(max_concurrency=1)
    except ResourceNotFoundError as exc:
        raise ObjectGone(ref.url) from exc
    metadata = {str(k).lower(): str(v) for k, v in (downloader.properties.metadata or {}).items()}
    # The downloader streams: its read(size) fetches the blob range by range as the decoder reads.
    return OpenedObject(downloader, metadata, downloader.size)


def list_names(account: str, container: str, name: str, spec: str) -> Iterator[str]:
    """The blob `name` itself when it exists, else every blob under the prefix `name` (lazily).
    Raises ConfigError when there is none."""
    container_client = client(account).get_container_client(container)
    listed = (str(item.name) for item in container_client.list_blobs(name_starts_with=name))
    return exact_or_under(listed, name, spec)


@dataclass(frozen=True, slots=True)
class Chunks:
    """A blob's bytes in chunks, streamed by the SDK's downloader."""

    account: str
    container: str
    name: str

    def __iter__(self) -> Iterator[bytes]:
        blob = client(self.account).get_blob_client(self.container, self.name)
        yield from blob.download_blob(max_concurrency=1).chunks()
