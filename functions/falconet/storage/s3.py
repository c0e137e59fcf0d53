"""Amazon S3: list keys under a prefix, open an object, stream it in chunks.

One client per process (per endpoint and region setting), boto3 imported on first use (~200 ms
of cold start that the HTTP function never pays). boto3 reads the endpoint (`AWS_ENDPOINT_URL`),
region and credentials itself. An object or bucket that no longer exists is `ObjectGone`; other
failures are the provider's errors (the trigger retries them) or, while streaming, `DecodeError`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from falconet.config import aws_client_settings
from falconet.decode.compression import CHUNK
from falconet.errors import ConfigError, DecodeError, ObjectGone
from falconet.extras import require_aws
from falconet.storage.objects import ObjectRef, OpenedObject

_GONE_CODES = frozenset(("NoSuchKey", "NoSuchBucket", "404", "NotFound"))


@functools.cache
def _client(endpoint: str | None, region: str | None) -> Any:
    require_aws("s3:// objects")
    import boto3  # ~200 ms of import: only when S3 is used

    return boto3.client("s3")


def client() -> Any:
    """The process's S3 client for the current endpoint and region settings."""
    return _client(*aws_client_settings())


def open_object(ref: ObjectRef) -> OpenedObject:
    """Open an object for streaming, with its user metadata. Raises ObjectGone."""
    require_aws("s3:// objects")
    from botocore.exceptions import ClientError

    try:
        response = client().get_object(Bucket=ref.bucket, Key=ref.key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _GONE_CODES:
            raise ObjectGone(ref.url) from exc
        raise
    return OpenedObject(
        response["Body"],
        {k.lower(): v for k, v in (response.get("Metadata") or {}).items()},
        response.get("ContentLength"),
    )


def list_keys(bucket: str, key: str, spec: str) -> Iterator[str]:
    """The object `key` itself when it exists, else every object under the prefix `key`
    (console "folder" markers skipped). Raises ConfigError when there is none or listing fails."""
    require_aws(spec)
    from botocore.exceptions import BotoCoreError, ClientError

    paginator = client().get_paginator("list_objects_v2")
    found = False
    try:
        for page in paginator.paginate(Bucket=bucket, Prefix=key):
            for item in page.get("Contents", ()):
                name = item["Key"]
                if not found and name == key and key and not key.endswith("/"):
                    yield name  # the object itself, not the prefix it also is
                    return
                if name.endswith("/") and item.get("Size", 0) == 0:
                    continue  # a "folder" marker
                found = True
                yield name
    except (ClientError, BotoCoreError) as exc:
        raise ConfigError(f"{spec}: cannot list objects: {exc}") from exc
    if not found:
        raise ConfigError(f"{spec}: no such object or prefix")


@dataclass(frozen=True, slots=True)
class Chunks:
    """An object's bytes in chunks: fetched when iterated (never read whole), then closed."""

    bucket: str
    key: str

    def __iter__(self) -> Iterator[bytes]:
        require_aws("s3:// objects")
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = client().get_object(Bucket=self.bucket, Key=self.key)["Body"]
        except (ClientError, BotoCoreError) as exc:
            raise DecodeError(f"s3://{self.bucket}/{self.key}: cannot fetch: {exc}") from exc
        try:
            yield from body.iter_chunks(CHUNK)
        except (ClientError, BotoCoreError) as exc:
            raise DecodeError(f"s3://{self.bucket}/{self.key}: read failed: {exc}") from exc
        finally:
            body.close()
