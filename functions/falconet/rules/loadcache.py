"""The load cache: what `load_rules` returned for the same rules files and the same code.

Like `.pyc` for rules. `make build` fills it (`FALCONET_CODE_CACHE`), so a deployed function's cold
start reads its loaded rules instead of importing YAML, parsing, resolving and checking (~25 ms
less for the bundled rules). The key covers the rules files' bytes and the source of every module
of the package; only error-free loads are stored; writes are atomic and best effort.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from falconet import errors as errs
from falconet.rules import ast
from falconet.rules.diagnostics import Diagnostic
from falconet.rules.documents import Doc
from falconet.rules.limits import MAX_FILE_BYTES
from falconet.rules.model import Position, Rule
from falconet.rules.output import FieldToken
from falconet.rules.trees import decode_tree, encode_tree

_CACHE_FORMAT = b"falconet rules load cache 4\0"
# The code that decides what `load_rules` returns is part of the key, so a cache written by other
# code is never read (as the compiler keys its code cache on the source it generates): every module
# of the rooms the loader lives in, found on disk (a module split, moved or added there changes the
# key), and the base modules it imports. tests/unit/rules/test_loadcache.py checks that a full load
# imports nothing of falconet outside `key_modules`, so the key cannot silently fall behind the
# loader. (Hashing the whole package instead cost ~1 ms more per cold start.)
PACKAGE_DIR = Path(__file__).resolve().parents[1]
_KEY_ROOMS = ("rules", "fields")
_KEY_BASE = ("__init__.py", "codegen.py", "context.py", "errors.py", "timestamps.py")


def key_modules(package: Path = PACKAGE_DIR) -> list[Path]:
    """The modules whose source is part of the key, in a stable order (`os.walk`: pathlib's
    rglob cost ~3 ms of a cold start)."""
    import os

    rooms = sorted(
        Path(top, name)
        for room in _KEY_ROOMS
        for top, _, names in os.walk(package / room)
        for name in names
        if name.endswith(".py")
    )
    return [package / name for name in _KEY_BASE] + rooms


def cache_key(files: Sequence[Path], package: Path = PACKAGE_DIR) -> str | None:
    """A hash of the rules files' bytes in order and of the source of `key_modules` (~0.4 ms);
    None when one of them cannot be read (the normal load then reports what it must). File
    names are not in the key: the cache stores positions in `files` instead, so a cache filled
    under the build directory is read under /var/task, with the run-time names in every
    Position."""
    import hashlib  # only with a cache (the engine imports it anyway)
    import marshal

    digest = hashlib.sha256(_CACHE_FORMAT + str(marshal.version).encode())
    try:
        if any(f.stat().st_size > MAX_FILE_BYTES for f in files):
            return None  # the load reports it, without reading the file whole
        modules = key_modules(package)
        for data in [
            *(m.relative_to(package).as_posix().encode() + b"\0" + m.read_bytes() for m in modules),
            b"\0",
            *(f.read_bytes() for f in files),
        ]:
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)
    except OSError:
        return None
    return digest.hexdigest()[:32]


def _path(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"loaded-{key}.marshal"


def write_cache(
    cache_dir: Path,
    key: str,
    files: Sequence[Path],
    rules: Sequence[Rule],
    diagnostics: Sequence[Diagnostic],
    documents: Sequence[Doc] = (),
) -> None:
    """Store the load (best effort and atomic, like the compiler's code cache)."""
    import marshal

    from falconet.codegen import write_atomic

    index = {str(f): i for i, f in enumerate(files)}
    memo: dict[int, Any] = {}
    try:
        data = (
            tuple(
                (
                    r.name,
                    r.order,
                    r.condition_text,
                    encode_tree(r.condition, memo),
                    r.output,
                    r.desc,
                    r.priority,
                    r.enabled,
                    r.tags,
                    (index[r.defined_at.file], r.defined_at.line, r.defined_at.column),
                    r.fields_used,
                    tuple(
                        p if isinstance(p, str) else (p.name, p.arg, p.width, p.expr)
                        for p in r.output_parts
                    ),
                )
                for r in rules
            ),
            tuple(
                (
                    d.severity,
                    type(d.error).__name__,
                    d.error.message,
                    -1 if d.error.file is None else index[d.error.file],
                    d.error.line,
                    d.error.column,
                    d.error.item,
                    d.error.kind,
                    d.error.excerpt,
                )
                for d in diagnostics
            ),
            tuple(doc.encode(index) for doc in documents),
        )
        blob = marshal.dumps(data)
    except (KeyError, ValueError):  # a name outside `files`: nothing to remap it to, no cache
        return
    write_atomic(_path(cache_dir, key), blob)


def read_cache(
    cache_dir: Path, key: str, files: Sequence[Path]
) -> tuple[list[Rule], list[Diagnostic], dict[str, str], list[Doc]] | None:
    """The stored load for `key` (its rules, its diagnostics, the files' texts and the mapping
    documents), with today's file names, or None (absent or unreadable)."""
    import marshal

    from falconet.codegen import read_trusted

    blob = read_trusted(_path(cache_dir, key))
    if blob is None:
        return None
    try:
        # Our own cache, trusted like the compiler's code cache (and .pyc): part of the
        # deployment, never writable by others (`read_trusted`). Only tuples of plain values are
        # accepted below.
        data = marshal.loads(blob)  # noqa: S302
        names = [str(f) for f in files]
        memo: dict[int, ast.Expr] = {}
        rules = [
            Rule(
                name,
                order,
                condition_text,
                decode_tree(tree, memo),
                output,
                desc,
                priority,
                enabled,
                tags,
                Position(names[where[0]], where[1], where[2]),
                fields_used,
                tuple(p if isinstance(p, str) else FieldToken(*p) for p in parts),
            )
            for (
                name,
                order,
                condition_text,
                tree,
                output,
                desc,
                priority,
                enabled,
                tags,
                where,
                fields_used,
                parts,
            ) in data[0]
        ]
        diagnostics = []
        for severity, cls_name, message, file, line, column, item, kind, excerpt in data[1]:
            cls = getattr(errs, cls_name)
            if not (isinstance(cls, type) and issubclass(cls, errs.RuleError)):
                return None
            error = cls(
                message,
                file=None if file < 0 else names[file],
                line=line,
                column=column,
                item=item,
                kind=kind,
                excerpt=excerpt,
            )
            diagnostics.append(Diagnostic(error, severity))
        documents = [Doc.decode(d, names) for d in data[2]]
        texts = {str(f): f.read_text(encoding="utf-8") for f in files}
    except (OSError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError):
        return None
    return rules, diagnostics, texts, documents
