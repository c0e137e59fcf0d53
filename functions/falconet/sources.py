"""Where `falconet scan` and the object-store handlers read audit logs from.

`open_inputs(specs)` turns what a user typed into `Input`s, one per file or object, in a stable
order, each with a name for positions in problems, a lazy chunk stream for `falconet.decode`
and an `EventContext` (origin, and a cluster taken from the path or object key when it matches the
key pattern). Supported specs:

* `-`: standard input.
* a local file, or a directory (every regular file below it, in path order, dot-files skipped).
* `s3://bucket/key`: that object; when no object has exactly that key, every object under the
  prefix. `s3://bucket/prefix/` and `s3://bucket`: every object under the prefix.
* `gs://bucket/name` and `gs://bucket/prefix/` likewise, with the optional extra
  `falconet[gcs]` (google-cloud-storage).

Nothing is read when `open_inputs` yields: a file is opened, an object fetched, when its chunks
are iterated, and streamed in 64 KiB chunks (`get_object()["Body"]` is never read whole), then
closed. `boto3` and `google.cloud.storage` are imported on first use only, and one client of each
is kept per process (per endpoint). Errors: `ConfigError` for a spec that names nothing or that
cannot be listed, `DecodeError` when an object cannot be fetched.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from falconet.context import EMPTY_CONTEXT, EventContext
from falconet.decode.compression import CHUNK
from falconet.errors import ConfigError, DecodeError

DEFAULT_KEY_PATTERN = r"cluster=(?P<cluster>[^/]+)"
GCS_HINT = "pip install 'falconet[gcs]'"


@dataclass(frozen=True, slots=True)
class Input:
    """One file or object to decode: `decode(input.chunks, name=input.name, context=...)`."""

    name: str  # e.g. "audit.log.gz", "s3://bucket/key": prefixes every problem's position
    chunks: Iterable[bytes]  # lazy: opens, streams and closes on iteration
    context: EventContext


def compile_key_pattern(pattern: str | re.Pattern[str]) -> re.Pattern[str]:
    """The key pattern compiled; `ConfigError` unless it is a regex with a `cluster` group."""
    try:
        compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
    except re.error as exc:
        raise ConfigError(f"key pattern {pattern!r} is not a regular expression: {exc}") from exc
    if "cluster" not in compiled.groupindex:
        raise ConfigError(
            f"key pattern {compiled.pattern!r} needs a named group 'cluster', "
            "e.g. 'cluster=(?P<cluster>[^/]+)'"
        )
    return compiled


def cluster_from_key(
    key: str, pattern: str | re.Pattern[str] | None = DEFAULT_KEY_PATTERN
) -> str | None:
    """The cluster named in an object key or path by `pattern`'s `cluster` group, else None.

    >>> cluster_from_key("audit/cluster=prod-eu/2024/06/01/x.gz")
    'prod-eu'
    """
    if pattern is None:
        return None
    match = compile_key_pattern(pattern).search(key)
    return (match.group("cluster") or None) if match else None


def open_inputs(
    specs: Sequence[str],
    *,
    context: EventContext = EMPTY_CONTEXT,
    key_pattern: str | re.Pattern[str] | None = DEFAULT_KEY_PATTERN,
) -> Iterator[Input]:
    """`Input`s for every spec, in order; see the module docstring. Raises `ConfigError`."""
    pattern = compile_key_pattern(key_pattern) if key_pattern is not None else None

    def make(name: str, chunks: Iterable[bytes], key: str) -> Input:
        ctx = context.updated(origin=name)
        if not ctx.cluster and pattern is not None:
            ctx = ctx.updated(cluster=cluster_from_key(key, pattern))
        return Input(name, chunks, ctx)

    for spec in specs:
        if spec == "-":
            yield make("<stdin>", _StreamChunks(sys.stdin.buffer), "")
        elif spec.startswith("s3://"):
            bucket, key = _split_url(spec, "s3://")
            for found in _s3_keys(bucket, key, spec):
                yield make(f"s3://{bucket}/{found}", _S3Chunks(bucket, found), found)
        elif spec.startswith("gs://"):
            bucket, key = _split_url(spec, "gs://")
            for found in _gcs_names(bucket, key, spec):
                yield make(f"gs://{bucket}/{found}", _GCSChunks(bucket, found), found)
        elif "://" in spec:
            raise ConfigError(f"{spec}: unsupported input (use a path, '-', s3:// or gs://)")
        else:
            for path in _local_files(spec):
                yield make(str(path), _FileChunks(path), path.as_posix())


# --- local -------------------------------------------------------------------------------------
def _local_files(spec: str) -> list[Path]:
    path = Path(spec)
    if path.is_dir():
        files = [
            p
            for p in path.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        ]
        return sorted(files, key=lambda p: p.relative_to(path).parts)
    if path.is_file():
        return [path]
    raise ConfigError(f"{spec}: no such file or directory")


@dataclass(frozen=True, slots=True)
class _FileChunks:
    path: Path

    def __iter__(self) -> Iterator[bytes]:
        with self.path.open("rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk


@dataclass(frozen=True, slots=True)
class _StreamChunks:
    stream: Any  # a binary file object we do not own (stdin): never closed here

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.stream.read(CHUNK):
            yield chunk


def _split_url(spec: str, scheme: str) -> tuple[str, str]:
    bucket, _, key = spec[len(scheme) :].partition("/")
    if not bucket:
        raise ConfigError(f"{spec}: no bucket name")
    return bucket, key


# --- Amazon S3 ---------------------------------------------------------------------------------
@functools.cache
def _s3_client(endpoint: str | None, region: str | None) -> Any:
    # Keyed on the endpoint and region settings so a changed environment gets its own client;
    # in a function process they never change, so this is one client per process.
    import boto3  # noqa: PLC0415 - ~200 ms of import: only when S3 is used

    return boto3.client("s3")


def s3_client() -> Any:
    """The process's S3 client (boto3 reads `AWS_ENDPOINT_URL`, region and credentials)."""
    return _s3_client(os.environ.get("AWS_ENDPOINT_URL"), os.environ.get("AWS_DEFAULT_REGION"))


def _s3_keys(bucket: str, key: str, spec: str) -> Iterator[str]:
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    paginator = s3_client().get_paginator("list_objects_v2")
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
class _S3Chunks:
    bucket: str
    key: str

    def __iter__(self) -> Iterator[bytes]:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            body = s3_client().get_object(Bucket=self.bucket, Key=self.key)["Body"]
        except (ClientError, BotoCoreError) as exc:
            raise DecodeError(f"s3://{self.bucket}/{self.key}: cannot fetch: {exc}") from exc
        try:
            yield from body.iter_chunks(CHUNK)
        except (ClientError, BotoCoreError) as exc:
            raise DecodeError(f"s3://{self.bucket}/{self.key}: read failed: {exc}") from exc
        finally:
            body.close()


# --- Google Cloud Storage ----------------------------------------------------------------------
@functools.cache
def _gcs_client() -> Any:
    try:
        from google.cloud import storage  # noqa: PLC0415 - optional extra
    except ImportError as exc:
        raise ConfigError(
            f"gs:// inputs need the google-cloud-storage package: {GCS_HINT}"
        ) from exc
    return storage.Client()


def _gcs_names(bucket: str, name: str, spec: str) -> Iterator[str]:
    client = _gcs_client()
    found = False
    for blob in client.list_blobs(bucket, prefix=name):
        blob_name: str = blob.name
        if not found and blob_name == name and name and not name.endswith("/"):
            yield blob_name
            return
        if blob_name.endswith("/"):
            continue
        found = True
        yield blob_name
    if not found:
        raise ConfigError(f"{spec}: no such object or prefix")


@dataclass(frozen=True, slots=True)
class _GCSChunks:
    bucket: str
    name: str

    def __iter__(self) -> Iterator[bytes]:
        blob = _gcs_client().bucket(self.bucket).blob(self.name)
        with blob.open("rb", chunk_size=CHUNK * 16) as f:
            while chunk := f.read(CHUNK):
                yield chunk
