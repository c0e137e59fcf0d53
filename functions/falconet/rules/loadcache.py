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

_CACHE_FORMAT = b"falconet rules load cache 3\0"
# The code that decides what `load_rules` returns is part of the key, so a cache written by other
# code is never read (as the compiler keys its code cache on the source it generates): every module
# of the rooms the loader lives in, found on disk (a module split, moved or added there changes the
# key), and the base modules it imports. tests/unit/rules/test_loadcache.py checks that a full load
# imports nothing of falconet outside `key_modules`, so the key cannot silently fall behind the
# loader. (Hashing the whole package instead cost ~1 ms more per cold start.)
PACKAGE_DIR = Path(__file__).resolve().parents[1]
_KEY_ROOMS = ("rules", "fields")
_KEY_BASE = ("__init__.py", "context.py", "errors.py", "timestamps.py")
# Tree node tags in the cached form: (tag, pos, fields...), children encoded the same way.
_AND, _OR, _NOT, _IDENT, _FIELD, _TRANSFORMER, _VALUE, _LIST, _UNARY, _BINARY, _CONST = range(11)
_CALL, _ARGLIST = 11, 12


def key_modules(package: Path = PACKAGE_DIR) -> list[Path]:
    """The modules whose source is part of the key, in a stable order."""
    rooms = sorted(m for room in _KEY_ROOMS for m in (package / room).rglob("*.py"))
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
    import os

    index = {str(f): i for i, f in enumerate(files)}
    memo: dict[int, Any] = {}
    try:
        data = (
            tuple(
                (
                    r.name,
                    r.order,
                    r.condition_text,
                    _encode_tree(r.condition, memo),
                    r.output,
                    r.desc,
                    r.priority,
                    r.enabled,
                    r.tags,
                    (index[r.defined_at.file], r.defined_at.line, r.defined_at.column),
                    r.fields_used,
                    tuple(
                        p if isinstance(p, str) else (p.name, p.arg, p.width)
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
    path = _path(cache_dir, key)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(blob)
        tmp.replace(path)
    except OSError:
        pass


def read_cache(
    cache_dir: Path, key: str, files: Sequence[Path]
) -> tuple[list[Rule], list[Diagnostic], dict[str, str], list[Doc]] | None:
    """The stored load for `key` (its rules, its diagnostics, the files' texts and the mapping
    documents), with today's file names, or None (absent or unreadable)."""
    import marshal

    try:
        # Our own cache, trusted like the compiler's code cache (and .pyc): part of the
        # deployment, never writable by others. Only tuples of plain values are accepted below.
        data = marshal.loads(_path(cache_dir, key).read_bytes())  # noqa: S302
        names = [str(f) for f in files]
        memo: dict[int, ast.Expr] = {}
        rules = [
            Rule(
                name,
                order,
                condition_text,
                _decode_tree(tree, memo),
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


def _encode_tree(node: ast.Expr | ast.Node, memo: dict[int, Any]) -> Any:
    """A tree as nested tuples; a subtree shared by several rules is encoded once (marshal keeps
    the sharing, so `_decode_tree` rebuilds it shared, as `resolver.resolve` made it)."""
    found = memo.get(id(node))
    if found is not None:
        return found
    out: tuple[Any, ...]
    if isinstance(node, ast.And | ast.Or):
        tag = _AND if isinstance(node, ast.And) else _OR
        out = (tag, node.pos, tuple(_encode_tree(c, memo) for c in node.children))
    elif isinstance(node, ast.Not):
        out = (_NOT, node.pos, _encode_tree(node.child, memo))
    elif isinstance(node, ast.Identifier):
        out = (_IDENT, node.pos, node.name)
    elif isinstance(node, ast.Field):
        out = (_FIELD, node.pos, node.name, node.arg)
    elif isinstance(node, ast.Transformer):
        out = (_TRANSFORMER, node.pos, node.name, _encode_tree(node.child, memo))
    elif isinstance(node, ast.Call):
        out = (_CALL, node.pos, node.name, tuple(_encode_tree(a, memo) for a in node.args))
    elif isinstance(node, ast.ArgList):
        out = (_ARGLIST, node.pos, tuple(_encode_tree(a, memo) for a in node.items))
    elif isinstance(node, ast.Value):
        out = (_VALUE, node.pos, node.text)
    elif isinstance(node, ast.ListValue):
        out = (_LIST, node.pos, node.values)
    elif isinstance(node, ast.UnaryCheck):
        out = (_UNARY, node.pos, _encode_tree(node.left, memo), node.op)
    elif isinstance(node, ast.BinaryCheck):
        left = _encode_tree(node.left, memo)
        out = (_BINARY, node.pos, left, node.op, _encode_tree(node.right, memo))
    elif isinstance(node, ast.Constant):
        out = (_CONST, node.pos, node.value)
    else:
        raise ValueError(f"unknown node {node!r}")
    memo[id(node)] = out
    return out


def _decode_tree(data: Any, memo: dict[int, Any]) -> Any:
    """The inverse of `_encode_tree` (memo by id of the loaded tuples: they stay alive)."""
    found = memo.get(id(data))
    if found is not None:
        return found
    tag = data[0]
    node: ast.Node
    if tag == _AND:
        node = ast.And(data[1], tuple(_decode_tree(c, memo) for c in data[2]))
    elif tag == _OR:
        node = ast.Or(data[1], tuple(_decode_tree(c, memo) for c in data[2]))
    elif tag == _NOT:
        node = ast.Not(data[1], _decode_tree(data[2], memo))
    elif tag == _IDENT:
        node = ast.Identifier(data[1], data[2])
    elif tag == _FIELD:
        node = ast.Field(data[1], data[2], data[3])
    elif tag == _TRANSFORMER:
        node = ast.Transformer(data[1], data[2], _decode_tree(data[3], memo))
    elif tag == _CALL:
        node = ast.Call(data[1], data[2], tuple(_decode_tree(a, memo) for a in data[3]))
    elif tag == _ARGLIST:
        node = ast.ArgList(data[1], tuple(_decode_tree(a, memo) for a in data[2]))
    elif tag == _VALUE:
        node = ast.Value(data[1], data[2])
    elif tag == _LIST:
        node = ast.ListValue(data[1], data[2])
    elif tag == _UNARY:
        node = ast.UnaryCheck(data[1], _decode_tree(data[2], memo), data[3])
    elif tag == _BINARY:
        left = _decode_tree(data[2], memo)
        node = ast.BinaryCheck(data[1], left, data[3], _decode_tree(data[4], memo))
    elif tag == _CONST:
        node = ast.Constant(data[1], data[2])
    else:
        raise ValueError(f"unknown node tag {tag!r}")
    memo[id(data)] = node
    return node
