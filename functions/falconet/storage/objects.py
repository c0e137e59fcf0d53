"""What the storage room hands out: a reference to an object, an opened object, an input."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO

from falconet.context import EventContext
from falconet.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """An object in a bucket, as a trigger names it."""

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
    """An object opened for streaming: read it in chunks, then close `stream`."""

    stream: IO[bytes]
    metadata: dict[str, str]  # user metadata (x-amz-meta-*, GCS custom metadata), keys lower-case
    size: int | None


@dataclass(frozen=True, slots=True)
class Input:
    """One file or object to decode: `decode(input.chunks, name=input.name, context=...)`."""

    name: str  # e.g. "audit.log.gz", "s3://bucket/key": prefixes every problem's position
    chunks: Iterable[bytes]  # lazy: opens, streams and closes on iteration
    context: EventContext


def exact_or_under(listed: Iterable[str], name: str, spec: str) -> Iterator[str]:
    """From the names a store lists under the prefix `name` (in order): `name` itself when it is
    an object, else every object under it ("folder" markers ending in / skipped). Raises
    ConfigError when there is none."""
    found = False
    for item in listed:
        if not found and item == name and name and not name.endswith("/"):
            yield item
            return
        if item.endswith("/"):
            continue
        found = True
        yield item
    if not found:
        raise ConfigError(f"{spec}: no such object or prefix")
