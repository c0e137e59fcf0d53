"""Local files, directories and standard input, as lazy chunk streams."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from falconet.decode.compression import CHUNK
from falconet.errors import ConfigError


def local_files(spec: str) -> list[Path]:
    """A file, or every regular file below a directory in path order (dot-files skipped).
    Raises ConfigError when `spec` names neither."""
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
class FileChunks:
    """A file's bytes in chunks: opened when iterated, closed at the end."""

    path: Path

    def __iter__(self) -> Iterator[bytes]:
        with self.path.open("rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk


@dataclass(frozen=True, slots=True)
class StreamChunks:
    """A binary stream we do not own (stdin) in chunks: never closed here."""

    stream: Any

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.stream.read(CHUNK):
            yield chunk
