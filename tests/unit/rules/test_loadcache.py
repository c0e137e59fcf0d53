"""The loader's cache (`load_rules(..., cache_dir=)`): a hit returns what a fresh load returns."""

from __future__ import annotations

import shutil
from pathlib import Path

from falconet.rules.loader import RuleSet, load_rules
from falconet.rules.model import Rule
from tests.conftest import ROOT

RULES = ROOT / "rules"

WARNINGS = """
- list: l1
  items: [a, "b c"]
  bogus: 1
- macro: m1
  condition: ka.verb in (l1)
- rule: r1
  desc: d
  condition: m1 and ka.user.name=x and not m1
  output: "%ka.user.name %20ka.uri.param[x] %ka.target.name"
  priority: INFO
  source: k8s_audit
  exceptions:
    - name: e1
      fields: [ka.target.namespace, ka.target.name]
      values: [[kube-system, a]]
- rule: r1
  append: true
  condition: or ka.verb=get
- rule: s1
  desc: d
  condition: evt.type=open
  output: o
  priority: INFO
"""


def _view(rules: list[Rule], ruleset: RuleSet) -> list[str]:
    out = [
        repr(
            (
                r.name,
                r.order,
                r.condition_text,
                r.condition,
                r.output,
                r.desc,
                r.priority,
                r.enabled,
                r.tags,
                r.defined_at,
                sorted(r.fields_used),
                r.output_parts,
            )
        )
        for r in rules
    ]
    out += [f"{type(d.error).__name__} {d} {d.error.args}" for d in ruleset.diagnostics]
    return out


def _is_hit(ruleset: RuleSet) -> bool:
    return not ruleset.rules  # a RuleSet read from the cache holds no items


def test_hit_equals_fresh_load(tmp_path: Path) -> None:
    fresh = load_rules([RULES])
    stored = load_rules([RULES], cache_dir=tmp_path)
    hit = load_rules([RULES], cache_dir=tmp_path)
    assert not _is_hit(stored[1])
    assert _is_hit(hit[1])
    assert _view(*hit) == _view(*fresh) == _view(*stored)
    assert [r.condition for r in hit[0]] == [r.condition for r in fresh[0]]


def test_warnings_and_skipped_sources_come_back(tmp_path: Path) -> None:
    rules_file = tmp_path / "w.yaml"
    rules_file.write_text(WARNINGS)
    fresh = load_rules([rules_file])
    assert fresh[1].warnings and not fresh[1].errors
    load_rules([rules_file], cache_dir=tmp_path / "cache")
    hit = load_rules([rules_file], cache_dir=tmp_path / "cache")
    assert _is_hit(hit[1])
    assert _view(*hit) == _view(*fresh)


def test_moved_files_read_the_cache_with_their_new_names(tmp_path: Path) -> None:
    shutil.copytree(RULES, tmp_path / "build" / "rules")
    shutil.copytree(RULES, tmp_path / "task" / "rules")
    load_rules([tmp_path / "build" / "rules"], cache_dir=tmp_path / "cache")
    hit = load_rules([tmp_path / "task" / "rules"], cache_dir=tmp_path / "cache")
    assert _is_hit(hit[1])
    assert _view(*hit) == _view(*load_rules([tmp_path / "task" / "rules"]))
    assert all(r.defined_at.file.startswith(str(tmp_path / "task")) for r in hit[0])


def test_changed_file_misses(tmp_path: Path) -> None:
    rules_file = tmp_path / "w.yaml"
    rules_file.write_text(WARNINGS)
    load_rules([rules_file], cache_dir=tmp_path / "cache")
    rules_file.write_text(WARNINGS.replace("desc: d", "desc: changed", 1))
    again = load_rules([rules_file], cache_dir=tmp_path / "cache")
    assert not _is_hit(again[1])
    assert again[0][0].desc == "changed"


def test_errors_are_not_cached_and_a_corrupt_cache_is_ignored(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(WARNINGS.replace("ka.user.name=x", "ka.nope=x"))
    cache = tmp_path / "cache"
    assert load_rules([bad], cache_dir=cache)[1].errors
    assert not cache.exists() or not list(cache.iterdir())
    load_rules([RULES], cache_dir=cache)
    for stored in cache.iterdir():
        stored.write_bytes(b"not marshal data")
    again = load_rules([RULES], cache_dir=cache)
    assert not _is_hit(again[1])
    assert _view(*again) == _view(*load_rules([RULES]))


def test_the_key_covers_every_module_a_load_imports(tmp_path: Path) -> None:
    """A module changed, added or moved in the loader's rooms gives a new key, and a full load
    imports nothing of falconet outside the key: a split can neither turn the cache off (no key)
    nor leave a stale cache in use (same key)."""
    import subprocess
    import sys

    from falconet.rules.loadcache import PACKAGE_DIR, cache_key, key_modules

    files = sorted(RULES.glob("*.yaml"))
    script = (
        "import sys; from falconet.rules.loader import load_rules; "
        f"load_rules([{str(RULES)!r}]); "
        "print('\\n'.join(sorted(str(getattr(m, '__file__', None)) "
        "for n, m in sys.modules.items() if n.split('.')[0] == 'falconet')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(PACKAGE_DIR.parent)},
    )
    imported = {Path(line).resolve() for line in done.stdout.split()}
    assert imported and imported <= {m.resolve() for m in key_modules()}

    copy = tmp_path / "falconet"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    key = cache_key(files, copy)
    assert key is not None
    assert key == cache_key(files, PACKAGE_DIR)  # names relative to the package, not absolute

    keys = {key}
    for module in (copy / "fields" / "pods.py", copy / "context.py"):
        module.write_text(module.read_text() + "\n# changed\n")
        keys.add(cache_key(files, copy))
    (copy / "rules" / "new_stage.py").write_text('"""A new loading stage."""\n')
    keys.add(cache_key(files, copy))
    (copy / "rules" / "new_stage.py").rename(copy / "rules" / "renamed_stage.py")
    keys.add(cache_key(files, copy))
    assert None not in keys
    assert len(keys) == 5


LANGUAGE_044 = """
- rule: r044
  desc: Falco 0.44's language in conditions, outputs and exceptions
  condition: >
    len(ka.req.pod.containers.image) > 1
    and join(",", ka.req.pod.containers.image) contains nginx
    and tolower(ka.user.name) startswith anyof (admin, root)
    and concat(ka.verb, "-", ka.target.resource) = create-pods
  output: "n=%len(ka.req.pod.containers.image) images=%ka.req.pod.containers.image"
  priority: NOTICE
  source: k8s_audit
  exceptions:
    - name: upper
      fields: [toupper(ka.user.name)]
      values: [[ADMIN-OK]]
"""
EVENT_044 = (
    b'{"kind":"Event","stageTimestamp":"2026-03-11T15:45:02.1Z","auditID":"a","verb":"create",'
    b'"user":{"username":"Admin-x"},"objectRef":{"resource":"pods","namespace":"d","name":"p"},'
    b'"requestObject":{"spec":{"containers":[{"image":"nginx:1.27"},{"image":"busybox"}]}}}\n'
)


def test_the_044_language_comes_back_from_both_caches(tmp_path: Path) -> None:
    """Transformers, calls and list modifiers survive the load cache and the index cache: the
    same rules, and alerts identical to a build without caches (`%len()` printed as a count)."""
    from falconet import Engine
    from falconet.decode import DecodeStats, decode

    rules_file = tmp_path / "r.yaml"
    rules_file.write_text(LANGUAGE_044)
    fresh = load_rules([rules_file])
    load_rules([rules_file], cache_dir=tmp_path / "c")
    hit = load_rules([rules_file], cache_dir=tmp_path / "c")
    assert _is_hit(hit[1]) and _view(*hit) == _view(*fresh)

    def alerts(cache: Path | None) -> tuple[bool, list[str]]:
        engine = Engine.from_paths([rules_file], code_cache=cache, extra_fields=[])
        events = decode(EVENT_044, stats=DecodeStats(), name="e")
        out = [a.output for ev, ctx in events for a in engine.evaluate(ev, ctx)]
        return bool(engine._index.index_cached), out

    plain = alerts(None)
    assert plain[1] and "n=2 images=(nginx:1.27,busybox)" in plain[1][0]
    assert alerts(tmp_path / "i") == (False, plain[1])
    assert alerts(tmp_path / "i") == (True, plain[1])
