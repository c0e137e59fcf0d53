"""Generated Python code: the one home of the contract between the generators and their code.

falconet writes Python for the two hot paths: the rule compiler (`rules.compiler`, one function
per index bucket) and the alert fillers (`alerts.compile_filler`, one per rule that fires). Both
follow the same contract, defined here once:

- **Nothing from a rules file or an event enters the source.** Literals, value sets, keys,
  matchers and getters travel in the namespace under generator-made names (`k12`, `g3`, ...);
  identifiers are generator-made; field reads come from the field registry.
- **The namespace** (`namespace`) holds no builtins but the few the generators use (`BUILTINS`)
  and the markers: `M` (the registry's "absent" marker), `U` (a local not read yet), `S`
  (`stringify_or_none`), `L` (`string_list`).
- **The bucket signature** (`BUCKET_PARAMS`): every condition function takes the event, its
  context and the four fields the engine reads once per event for every rule (`HOT_FIELDS`).
- **Reads in place** (`value_expr`, `path_expr`, `StatementReads`): a field the registry can
  read in place (`FieldDef.inline_read`) is read by generated expressions instead of a getter
  call, with exactly the getter's value.
- **Compilation** (`compile_module`): optionally through a code cache, like `.pyc` for rules.
- **Listings** (`Listing`): the source as compiled, with notes (rule names) beside the lines for
  `falconet explain`. Notes are never compiled.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from importlib.util import MAGIC_NUMBER
from pathlib import Path
from types import CodeType
from typing import Any

from falconet import fields

UNSET = object()  # `U`: a lazily read local that has not been read yet

# The builtins generated code may call; everything else it uses is in the namespace by name.
BUILTINS: Mapping[str, Any] = {
    "type": type,
    "str": str,
    "int": int,
    "dict": dict,
    "list": list,
    "len": len,
}

# The parameters of every generated condition function (rule, run, bucket), in order.
BUCKET_PARAMS = ("ev", "ctx", "verb", "res", "stage", "user")
BUCKET_ARGS = "(" + ", ".join(BUCKET_PARAMS) + ")"

# Fields the engine reads once per event and passes to every bucket function: the index keys
# (verb, resource) and the two fields nearly every rule checks (stage, user name). The fast path
# runs only for events with auditID, so a gated ka.* field and its ungated jevt.* form have the
# same value there. `Engine.evaluate` reads them in this order, by the paths given here.
HOT_FIELDS: Mapping[tuple[str, str | None], str] = {
    ("ka.verb", None): "verb",
    ("ka.target.resource", None): "res",
    ("ka.stage", None): "stage",
    ("jevt.value", "/stage"): "stage",
    ("json.value", "/stage"): "stage",
    ("ka.user.name", None): "user",
    ("jevt.value", "/user/username"): "user",
    ("json.value", "/user/username"): "user",
}
HOT_PATHS: Mapping[str, tuple[str, ...]] = {
    "verb": ("verb",),
    "res": ("objectRef", "resource"),
    "stage": ("stage",),
    "user": ("user", "username"),
}


def namespace(constants: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A fresh namespace for generated code: no builtins but `BUILTINS`, the markers, and the
    generator's `constants` (its literals, sets, matchers and getters)."""
    out: dict[str, Any] = {
        "__builtins__": {},
        **BUILTINS,
        "U": UNSET,
        "M": fields.MISSING,
        "S": fields.stringify_or_none,
        "L": fields.string_list,
    }
    out.update(constants or {})
    return out


def value_expr(read: str) -> str:
    """A field's value from `read`, an expression giving the raw JSON value (or `M` when
    absent): a string as it is, an int `str()`-ed in C (response codes), anything else through
    `S` (`stringify_or_none`): what the registry's getters return."""
    return (
        f"(_v if type(_v := {read}) is str else "
        "(str(_v) if type(_v) is int else (None if _v is M else S(_v))))"
    )


def path_expr(path: Sequence[str], const: Callable[[Any], str]) -> str:
    """A plain scalar read as one expression, so reading a field costs no Python call:
    `(_o.get(k2, M) if type(_o := ev.get(k1)) is dict else M)` wrapped in `value_expr`.
    `const` names a key in the namespace."""
    last = len(path) - 1
    expr = f"ev.get({const(path[0])}{', M' if last == 0 else ''})"
    for i, key in enumerate(path[1:], 1):
        if i == last:
            expr = f"(_o.get({const(key)}, M) if type(_o := {expr}) is dict else M)"
        else:
            expr = f"(_o.get({const(key)}) if type(_o := {expr}) is dict else None)"
    return value_expr(expr)


class StatementReads:
    """In-place reads written as statements of one function, each intermediate object (such as
    `objectRef`) read once into a local and shared by every field under it: what an alert filler
    needs to read ~20 fields of one event."""

    def __init__(self, lines: list[str], const: Callable[[Any], str]) -> None:
        self.lines = lines
        self.const = const
        self._holders: dict[tuple[fields.Step, ...], str] = {(): "ev"}

    def assign(self, local: str, read: fields.InlineRead) -> None:
        """`local = <the field's value>` (with the context attribute tried first, if any)."""
        expr = None
        if read.steps:
            raw = f"({self._step(self._holder(read.steps[:-1]), read.steps[-1])})"
            if read.as_list:
                expr = f"L(_v) if type(_v := {raw}) is list else None"
            else:
                expr = value_expr(raw)
        if read.context:
            self.lines.append(f"    {local} = ctx.{read.context}")
            if expr is not None:
                self.lines.append(f"    if {local} is None:")
                self.lines.append(f"        {local} = {expr}")
        else:
            self.lines.append(f"    {local} = {expr}")

    def _holder(self, steps: tuple[fields.Step, ...]) -> str:
        """A local holding the object at `steps`: a dict, a list or M (never fails)."""
        name = self._holders.get(steps)
        if name is None:
            parent = self._holder(steps[:-1])
            name = self._holders[steps] = f"o{len(self._holders)}"
            self.lines.append(f"    {name} = {self._step(parent, steps[-1])}")
        return name

    def _step(self, obj: str, step: fields.Step) -> str:
        key, index = step
        if obj == "ev":  # the event itself is a mapping
            return f"ev.get({self.const(key)}, M)"
        got = f"{obj}.get({self.const(key)}, M) if type({obj}) is dict else "
        if index is None:
            return got + "M"
        return got + f"({obj}[{index}] if type({obj}) is list and len({obj}) > {index} else M)"


def compile_module(
    source: str,
    constants: Mapping[str, Any],
    *,
    filename: str,
    cache_dir: Path | None = None,
) -> tuple[dict[str, Any], bool]:
    """Run generated `source` in a fresh `namespace(constants)`; return the namespace and whether
    the code object came from `cache_dir`.

    The code cache (like a .pyc for rules) is keyed by a hash of the source and of the
    interpreter's bytecode magic number, so a cached code object is only ever used for the exact
    source it was compiled from. Writes are atomic and best effort (a read-only deployment just
    reads). The directory is trusted like a .pyc directory: part of the deployment, never
    writable by others; `read_trusted` refuses files that others could have written.
    """
    code, hit = compile_cached(source, filename, cache_dir)
    return run_code(code, constants), hit


def run_code(code: CodeType, constants: Mapping[str, Any]) -> dict[str, Any]:
    """Execute generator-made `code` in a fresh `namespace(constants)` and return it."""
    module = namespace(constants)
    exec(code, module)  # noqa: S102 - generator-made source, data in the namespace (see above)
    return module


def compile_cached(source: str, filename: str, cache_dir: Path | None) -> tuple[CodeType, bool]:
    """`compile(source)`, through the code cache in `cache_dir` when one is given."""
    if cache_dir is None:
        return compile(source, filename, "exec"), False
    key = hashlib.sha256(MAGIC_NUMBER + f"\0{marshal.version}\0{source}".encode()).hexdigest()
    path = cache_dir / f"rules-{key[:32]}.marshal"
    data = read_trusted(path)
    if data is not None:
        try:
            code = marshal.loads(data)  # noqa: S302 - a trusted file (read_trusted), like .pyc
            if isinstance(code, CodeType):
                return code, True
        except (EOFError, ValueError, TypeError):
            pass
    code = compile(source, filename, "exec")
    write_atomic(path, marshal.dumps(code))
    return code, False


def read_trusted(path: Path) -> bytes | None:
    """The bytes of a cache file only the deployment can have written, else None.

    The caches hold marshal data and compiled code, trusted like `.pyc`: whoever can write them
    can run code in the function. So a file is read only when it and its directory are owned by
    root or by this process's user and writable by no one else (not world-writable; group-
    writable only for root's or this user's own group), as ssh treats its keys, or when they are
    on a read-only file system. A cache directory someone else created first (say under a shared
    /tmp) is therefore never read. The deployed cache (`/var/task/rules-cache` in the Lambda zip)
    is on a read-only file system.
    """
    try:
        # Non-blocking: opening a named pipe for reading would otherwise wait for a writer.
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # a pipe, a device: not a cache file
            return None
        owned = _trusted(st) and _trusted(path.parent.stat())
        if not (owned or _read_only(path.parent)):
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    except OSError:
        return None
    finally:
        os.close(fd)


def _read_only(directory: Path) -> bool:
    """The directory is on a read-only file system (a Lambda's /var/task, a read-only container
    image layer): no one can write there whoever owns the files."""
    statvfs = getattr(os, "statvfs", None)
    if statvfs is None:
        return False
    try:
        return bool(statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _trusted(st: os.stat_result) -> bool:
    getuid = getattr(os, "getuid", None)
    if getuid is None:  # no POSIX owners (Windows): the directory's ACLs decide
        return True
    if st.st_uid not in (0, getuid()) or st.st_mode & 0o002:
        return False
    return not (st.st_mode & 0o020 and st.st_gid not in (0, os.getgid()))


def write_atomic(path: Path, data: bytes) -> None:
    """Write a cache file atomically, best effort (a read-only deployment only reads). The
    temporary file is made new (`mkstemp`: never an existing file or a link someone put there)
    and readable by all, as a deployed cache file must be."""
    import tempfile

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):  # POSIX (mkstemp made it 0600)
                os.fchmod(f.fileno(), 0o644)
            f.write(data)
        Path(name).replace(path)
    except OSError:
        with contextlib.suppress(OSError):
            Path(name).unlink()


class Listing:
    """Generated lines and the notes shown beside some of them (`falconet explain`)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.notes: dict[int, str] = {}

    def append(self, line: str, note: str | None = None) -> None:
        if note:
            self.notes[len(self.lines)] = note
        self.lines.append(line)

    def extend(self, lines: Sequence[str]) -> None:
        self.lines.extend(lines)

    def source(self) -> str:
        """The source as compiled: no notes."""
        return "\n".join(self.lines)

    def render(self) -> str:
        """The source with each note as a comment at the end of its line. A note with anything
        unprintable (a line break in a rule name) is printed escaped: it cannot break lines."""
        out = []
        for n, line in enumerate(self.lines):
            note = self.notes.get(n)
            if note is None:
                out.append(line)
            else:
                if not note.isprintable():
                    note = note.encode("unicode_escape").decode("ascii")
                out.append(f"{line}  # {note}")
        return "\n".join(out)
