"""Storage: audit logs wherever they live (S3, GCS, local files, stdin), as byte streams.

    opened = open_object(ObjectRef("s3", "bucket", "key"))   # ObjectGone if it no longer exists
    for item in open_inputs(["s3://bucket/prefix/", "logs/", "-"], key_pattern=pattern):
        decode(item.chunks, name=item.name, context=item.context)

`open_object` opens exactly the object a trigger names (`falconet.triggers`) and returns its user
metadata; `Pipeline.scan` uses it. `open_inputs` turns what a user typed (`falconet scan`) into
`Input`s, one per file or object, in a stable order, each with a name for positions in problems, a
lazy chunk stream and an `EventContext` (origin, and a cluster from the path or key by the key
pattern). Supported specs:

* `-`: standard input.
* a local file, or a directory (every regular file below it, in path order, dot-files skipped).
* `s3://bucket/key`: that object; when no object has exactly that key, every object under the
  prefix. `s3://bucket/prefix/` and `s3://bucket`: every object under the prefix.
* `gs://bucket/name` and `gs://bucket/prefix/` likewise, with the optional extra `falconet[gcs]`.
* `az://account/container/name` and `az://account/container/prefix/` likewise (Azure Blob Storage),
  with the optional extra `falconet[azure]`.

Nothing is read when `open_inputs` yields: a file is opened, an object fetched, when its chunks
are iterated, and streamed in 64 KiB chunks, then closed. Provider libraries are imported on first
use. Errors: `ObjectGone` for an object that no longer exists, `ConfigError` for a spec that names
nothing or that cannot be listed, `DecodeError` when an object cannot be fetched while streaming.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator, Sequence

from falconet.config import DEFAULT_KEY_PATTERN, compile_key_pattern
from falconet.context import EMPTY_CONTEXT, EventContext
from falconet.errors import ConfigError
from falconet.storage.keys import cluster_from_key
from falconet.storage.local import FileChunks, StreamChunks, local_files
from falconet.storage.objects import Input, ObjectRef, OpenedObject

__all__ = [
    "DEFAULT_KEY_PATTERN",
    "Input",
    "ObjectRef",
    "OpenedObject",
    "cluster_from_key",
    "compile_key_pattern",
    "open_inputs",
    "open_object",
]


def open_object(ref: ObjectRef) -> OpenedObject:
    """Open the object `ref` names for streaming. Raises ObjectGone when it no longer exists,
    ConfigError for a provider falconet does not read (or whose extra is not installed)."""
    if ref.provider == "s3":
        from falconet.storage import s3

        return s3.open_object(ref)
    if ref.provider == "gs":
        from falconet.storage import gcs

        return gcs.open_object(ref)
    if ref.provider == "az":
        from falconet.storage import azure

        return azure.open_object(ref)
    raise ConfigError(f"unsupported object store '{ref.provider}'")


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
            yield make("<stdin>", StreamChunks(sys.stdin.buffer), "")
        elif spec.startswith("s3://"):
            from falconet.storage import s3

            bucket, key = _split_url(spec, "s3://")
            for found in s3.list_keys(bucket, key, spec):
                yield make(f"s3://{bucket}/{found}", s3.Chunks(bucket, found), found)
        elif spec.startswith("gs://"):
            from falconet.storage import gcs

            bucket, key = _split_url(spec, "gs://")
            for found in gcs.list_names(bucket, key, spec):
                yield make(f"gs://{bucket}/{found}", gcs.Chunks(bucket, found), found)
        elif spec.startswith("az://"):
            from falconet.storage import azure

            account, rest = _split_url(spec, "az://")
            container, _, name = rest.partition("/")
            if not container:
                raise ConfigError(f"{spec}: no container name (az://<account>/<container>/...)")
            for found in azure.list_names(account, container, name, spec):
                url = f"az://{account}/{container}/{found}"
                yield make(url, azure.Chunks(account, container, found), found)
        elif "://" in spec:
            raise ConfigError(f"{spec}: unsupported input (use a path, '-', s3://, gs:// or az://)")
        else:
            for path in local_files(spec):
                yield make(str(path), FileChunks(path), path.as_posix())


def _split_url(spec: str, scheme: str) -> tuple[str, str]:
    bucket, _, key = spec[len(scheme) :].partition("/")
    if not bucket:
        raise ConfigError(f"{spec}: no bucket name")
    return bucket, key
