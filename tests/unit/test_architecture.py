"""The architecture as tests: imports point downstream, no circles, one reader of the environment.

The rooms and what each may import are written down here once (README's layout section describes
the same rooms). Every import statement counts: at module level, inside functions (the lazy
imports that keep cold starts short) and under `TYPE_CHECKING` (a type-only circle is still a
circle a reader has to untangle). Importing a package's `__init__` on the way to one of its
modules is not a dependency on that package's contents.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "functions" / "falconet"

BASE = {"base"}
# room -> (module prefixes, the rooms it may import besides itself)
ROOMS: dict[str, tuple[tuple[str, ...], set[str]]] = {
    "base": (
        (
            "falconet.errors",
            "falconet.context",
            "falconet.timestamps",
            "falconet.ipscope",
            "falconet.text",
            "falconet.deadline",
            "falconet.extras",
        ),
        set(),
    ),
    "fields": (("falconet.fields",), BASE),
    "codegen": (("falconet.codegen",), BASE | {"fields"}),
    "rules": (("falconet.rules",), BASE | {"fields", "codegen"}),
    "alerts": (("falconet.alerts",), BASE | {"fields", "codegen"}),
    # The correlation language (Sigma documents read and checked): beside the rule language.
    "correlation rules": (
        ("falconet.correlate.model", "falconet.correlate.loader"),
        BASE | {"fields", "rules"},
    ),
    # Suppression policies (a falconet extension), read beside correlations.
    "suppression rules": (
        ("falconet.suppress.policy",),
        BASE | {"fields", "rules", "correlation rules"},
    ),
    # What an alert prints and gives: rule outputs, extra fields, falco.yaml's append_output.
    "outputs": (("falconet.outputs",), BASE | {"fields", "rules", "alerts"}),
    "engine": (
        ("falconet.engine",),
        BASE
        | {"fields", "codegen", "rules", "alerts", "outputs", "correlation rules"}
        | {"suppression rules"},
    ),
    "secrets": (("falconet.secrets",), BASE),
    "oidc": (("falconet.oidc",), BASE),  # Pub/Sub push tokens checked
    "state": (("falconet.state",), BASE),
    # Correlations at run time: matches in, state in the store, correlation alerts out.
    "correlate": (
        ("falconet.correlate",),
        BASE | {"alerts", "state", "correlation rules", "engine"},
    ),
    "suppress": (
        ("falconet.suppress",),
        BASE | {"alerts", "state", "suppression rules", "engine"},
    ),
    # Attribution: workload writes recorded in the store, the owner of a pod named in its context.
    "attribution": (("falconet.attribution",), BASE | {"state"}),
    "config": (("falconet.config",), BASE | {"rules", "secrets"}),
    "geoip": (("falconet.geoip",), BASE | {"config"}),
    "decode": (("falconet.decode",), BASE),
    "storage": (("falconet.storage",), BASE | {"decode", "config"}),
    "triggers": (("falconet.triggers",), BASE | {"storage"}),
    "summary": (("falconet.summary",), BASE | {"alerts"}),
    "intel": (("falconet.intel",), BASE),  # threat-intelligence lists: feed files to a rules file
    "sinks": (("falconet.sinks",), BASE | {"alerts", "config"}),
    "notify": (("falconet.notify",), BASE | {"alerts", "sinks", "summary", "config"}),
    "pipeline": (
        ("falconet.pipeline",),
        BASE
        | {
            "engine",
            "alerts",
            "decode",
            "sinks",
            "storage",
            "config",
            "correlate",
            "suppress",
            "attribution",
        },
    ),
    "webhook": (
        ("falconet.webhook",),
        BASE | {"pipeline", "triggers", "storage", "decode", "config", "oidc"},
    ),
}
_BELOW_ENTRY = set(ROOMS)
ROOMS["runtime"] = (("falconet.runtime",), _BELOW_ENTRY)
ROOMS["cli"] = (
    (
        "falconet.cli",
        "falconet.progress",
        "falconet.window",
        "falconet.coverage",
        "falconet.fanout",  # scan --fan-out / --follow, and what a backtest handler counts
        "falconet.report",  # scan --report, falconet report
        "falconet.__main__",
    ),
    _BELOW_ENTRY,
)
ROOMS["api"] = (("falconet",), _BELOW_ENTRY | {"runtime"})  # the package's own __init__


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, known: set[str]) -> Iterator[str]:
    """The falconet modules `path` imports (any import statement, anywhere in the file)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.split(".")[0] == "falconet")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "falconet":
                continue
            submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            yield from submodules or [base]


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    edges: dict[str, set[str]] = {}
    for name, path in found.items():
        targets = set()
        for target in imports(path, known):
            if target == name or name.startswith(target + "."):
                continue  # itself, or a parent package executed on the way in
            assert target in known, f"{name} imports {target}, which does not exist"
            targets.add(target)
        edges[name] = targets
    return edges


def room_of(module: str) -> str:
    best: tuple[int, str] | None = None
    for room, (prefixes, _) in ROOMS.items():
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), room)
    if best is None:
        pytest.fail(f"module {module} belongs to no room: add it to ROOMS in {__file__}")
    return best[1]


def test_every_import_points_downstream() -> None:
    violations = set()
    for module, targets in graph().items():
        room = room_of(module)
        allowed = ROOMS[room][1] | {room}
        for target in targets:
            if room_of(target) not in allowed:
                violations.add((module, target))
    assert not violations, "upward imports (room -> room not allowed in ROOMS):\n" + "\n".join(
        f"  {a} ({room_of(a)}) imports {b} ({room_of(b)})" for a, b in sorted(violations)
    )


def test_no_import_circles() -> None:
    edges = graph()
    cycles = [c for c in strongly_connected(edges) if len(c) > 1]
    assert not cycles, "import circles:\n" + "\n".join("  " + " <-> ".join(c) for c in cycles)


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                out.append(sorted(component))
    return out


def test_the_checker_sees_a_circle_and_an_upward_import(tmp_path: Path) -> None:
    # The two checks above must be able to fail: a made-up graph with a circle is found.
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert [c for c in strongly_connected(edges) if len(c) > 1] == [["a", "b", "c"]]
    assert room_of("falconet.rules.loader") == "rules"
    assert "engine" not in ROOMS["rules"][1]


def _environment_reads(path: Path) -> list[int]:
    """Lines of `path` that read the process environment (os.environ, os.getenv, os.putenv)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ("environ", "getenv", "environb")
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            lines += [node.lineno for a in node.names if a.name in ("environ", "getenv")]
    return lines


def test_the_environment_is_read_in_one_module() -> None:
    entry_points = [ROOT / "functions" / "main.py", ROOT / "functions" / "lambda_handlers.py"]
    readers = {
        str(path.relative_to(ROOT)): lines
        for path in [*modules().values(), *entry_points]
        if (lines := _environment_reads(path))
    }
    assert set(readers) == {"functions/falconet/config.py"}, readers


def test_entry_points_use_only_the_public_api() -> None:
    import falconet

    public = set(falconet.__all__)
    for path in (ROOT / "functions" / "main.py", ROOT / "functions" / "lambda_handlers.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("falconet"):
                assert node.module == "falconet", f"{path.name}:{node.lineno}: {node.module}"
                assert {a.name for a in node.names} <= public, f"{path.name}:{node.lineno}"
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("falconet")]
                assert names in ([], ["falconet"]), f"{path.name}:{node.lineno}: {names}"
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "falconet"
            ):
                assert node.attr in public, f"{path.name}:{node.lineno}: falconet.{node.attr}"
    for name in public:
        assert getattr(falconet, name) is not None  # every exported name resolves


LONG_MODULE = 600  # lines; a longer module says why at its top


def test_modules_stay_small_or_say_why() -> None:
    long = []
    for name, path in modules().items():
        lines = path.read_text(encoding="utf-8").count("\n")
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if lines > LONG_MODULE and "Why this module is long:" not in docstring:
            long.append(f"{name} ({lines} lines)")
    assert not long, "split these, or say why they are long in their docstring: " + ", ".join(long)
