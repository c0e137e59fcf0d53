"""Google Cloud Storage, with the optional extra `falconet[gcs]` (google-cloud-storage).

One client per process, the library imported on first use. The client reads its project,
credentials and endpoint (`STORAGE_EMULATOR_HOST`) itself. An object that no longer exists is
`ObjectGone`; without the extra, a `ConfigError` says what to install.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from falconet.decode.compression import CHUNK
from falconet.errors import ConfigError, ObjectGone
from falconet.storage.objects import ObjectRef, OpenedObject, exact_or_under

INSTALL_HINT = "pip install 'falconet[gcs]'"


@functools.cache
def client() -> Any:
    """The process's GCS client. Raises ConfigError naming the extra when it is missing."""
    try:
        from google.cloud import storage
    except ImportError as exc:
        raise ConfigError(
            f"gs:// objects need the google-cloud-storage package: {INSTALL_HINT}"
        ) from exc
    return storage.Client()


def open_object(ref: ObjectRef) -> OpenedObject:
    """Open an object for streaming, with its custom metadata. Raises ObjectGone."""
    blob = client().bucket(ref.bucket).get_blob(ref.key)
    if blob is None:
        raise ObjectGone(ref.url)
    metadata = {str(k).lower(): str(v) for k, v in (blob.metadata or {}).items()}
    return OpenedObject(blob.open("rb"), metadata, blob.size)


def list_names(bucket: str, name: str, spec: str) -> Iterator[str]:
    """The object `name` itself when it exists, else every object under the prefix `name`.
    Raises ConfigError when there is none."""
    listed = (str(blob.name) for blob in client().list_blobs(bucket, prefix=name))
    return exact_or_under(listed, name, spec)


@dataclass(frozen=True, slots=True)
class Chunks:
    """An object's bytes in chunks, read through the client's streaming reader."""

    bucket: str
    name: str

    def __iter__(self) -> Iterator[bytes]:
        blob = client().bucket(self.bucket).blob(self.name)
        with blob.open("rb", chunk_size=CHUNK * 16) as f:
            while chunk := f.read(CHUNK):
                yield chunk
