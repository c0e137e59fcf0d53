"""Reading bucket objects as streams: S3 with boto3, GCS with the optional google-cloud-storage.

Objects are never read whole: S3's `StreamingBody` and GCS's blob reader are handed to the decoder,
which pulls 64 KiB chunks. Clients are created once per process (boto3 costs ~200 ms to import and
~80 ms for the first client, so it is imported here, lazily, and nowhere on the engine's path).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import IO, Any

from falconet.errors import ConfigError

_lock = threading.Lock()
_clients: dict[str, Any] = {}


@dataclass(frozen=True, slots=True)
class ObjectRef:
    provider: str  # "s3" or "gs"
    bucket: str
    key: str
    region: str | None = None
    account: str | None = None

    @property
    def url(self) -> str:
        return f"{self.provider}://{self.bucket}/{self.key}"


@dataclass(slots=True)
class OpenedObject:
    stream: IO[bytes]
    metadata: dict[str, str]  # user metadata (x-amz-meta-*, GCS custom metadata)
    size: int | None


def s3_client() -> Any:
    """The process's S3 client (honours AWS_ENDPOINT_URL, AWS_REGION, ... as boto3 does)."""
    with _lock:
        client = _clients.get("s3")
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "s3", config=Config(retries={"max_attempts": 5, "mode": "standard"})
            )
            _clients["s3"] = client
        return client


def open_object(ref: ObjectRef) -> OpenedObject:
    """Open an object for streaming. Raises the provider's errors for a missing object."""
    if ref.provider == "s3":
        response = s3_client().get_object(Bucket=ref.bucket, Key=ref.key)
        return OpenedObject(
            response["Body"],
            {k.lower(): v for k, v in (response.get("Metadata") or {}).items()},
            response.get("ContentLength"),
        )
    if ref.provider == "gs":
        return _open_gcs(ref)
    raise ConfigError(f"unsupported object store '{ref.provider}'")


def _open_gcs(ref: ObjectRef) -> OpenedObject:
    try:
        from google.cloud import storage
    except ImportError:
        raise ConfigError(
            f"reading {ref.url} needs the Google Cloud Storage client: pip install 'falconet[gcs]'"
        ) from None
    with _lock:
        client = _clients.get("gs")
        if client is None:
            client = _clients["gs"] = storage.Client()
    blob = client.bucket(ref.bucket).get_blob(ref.key)
    if blob is None:
        raise FileNotFoundError(ref.url)
    return OpenedObject(blob.open("rb"), dict(blob.metadata or {}), blob.size)
