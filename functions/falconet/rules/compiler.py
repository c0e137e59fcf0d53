"""Compiling resolved conditions into fused Python functions, one per index bucket.

For every distinct bucket (the rules an event of a given verb and resource can match, in position
order; `rules.index`) the compiler writes one Python function that evaluates those rules in order
and returns the matching rule slot(s). Rules shared by buckets are functions of their own; runs of
rules every bucket holds are fused into one function; a bucket identical to another is the same
function. The expressions of the checks are `rules.expressions`'. Fused generated code evaluates a
bucket of ~40 rules in ~0.6 parses of the event, against ~19 for a naive tree walk.

The generated code follows `falconet.codegen`'s contract (no rule or event text in the source,
data in the namespace); `Index.listing` is the module with the rule names beside their code
(`falconet explain`). The fast path assumes the event has `auditID` (the k8saudit gate); the
engine sends other events to the reference evaluator.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType
from typing import Any

from falconet import fields
from falconet.codegen import (
    BUCKET_ARGS,
    Listing,
    compile_cached,
    read_trusted,
    run_code,
    write_atomic,
)
from falconet.rules import ast
from falconet.rules.expressions import ExpressionGen, Recipe, build, field_uses
from falconet.rules.index import RESOURCE, VERB, fold, key_of, required, specialize
from falconet.rules.operators import MEMO_SIZE
from falconet.rules.resolver import Measures, measure

OTHER = object()  # the index key for a verb/resource no rule requires
# The cells of the index (each verb and resource a rule requires, plus "any other") times the size
# of the rules' conditions: what filing and specialising them costs, ~20 ns a unit (3,000 rules on
# 500 resources and 20 verbs: 3e8, 6 s). The bundled rules: 9 x 31 cells x 1,613 = 4.5e5. Past it,
# the index stops keying on resources, then on verbs: the conditions still check them and events
# run more rules, but one rule naming 14,000 verbs compiles in a second instead of minutes.
MAX_INDEX_WORK = 100_000_000


Bucket = Callable[[Any, Any, Any, Any, Any, Any], Any]


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """What the compiler needs of a rule."""

    slot: int  # index into the engine's rule table
    condition: ast.Expr
    name: str = ""  # shown beside its code by `falconet explain`, never compiled


@dataclass(slots=True)
class Index:
    """verb -> resource -> bucket function (OTHER keys hold the catch-all rows/columns)."""

    table: dict[Any, dict[Any, Bucket]]
    sizes: list[int]  # rules per distinct bucket
    wildcard: int  # rules that run for every event
    listing: Listing  # the generated module, with the rule names beside their code
    cache_hit: bool = False  # the compiled code came from the code cache
    index_cached: bool = False  # the whole index came from the index cache


_ANY = object()


class _Interner:
    """Canonical instances of condition trees: equal trees become the same object.

    Children are compared by identity once interned, leaves by value, so interning is one shallow
    pass per tree instead of the recursive hashing and comparison of frozen dataclasses; the
    compiler then caches rule functions and buckets by identity.
    """

    def __init__(self) -> None:
        self._table: dict[Any, ast.Expr] = {}

    def intern(self, node: ast.Expr) -> ast.Expr:
        key: Any
        if isinstance(node, ast.And | ast.Or):
            kids = tuple(self.intern(c) for c in node.children)
            key = (type(node), node.pos, tuple(map(id, kids)))
            found = self._table.get(key)
            if found is None:
                same = all(a is b for a, b in zip(kids, node.children, strict=True))
                found = self._table[key] = node if same else type(node)(node.pos, kids)
            return found
        if isinstance(node, ast.Not):
            child = self.intern(node.child)
            key = (ast.Not, node.pos, id(child))
            found = self._table.get(key)
            if found is None:
                found = self._table[key] = node if child is node.child else ast.Not(node.pos, child)
            return found
        return self._table.setdefault(("leaf", node), node)


def _mentions(node: ast.Expr, which: str) -> bool:
    """Whether a condition checks `which` (verb/resource) anywhere."""
    if isinstance(node, ast.And | ast.Or):
        return any(_mentions(c, which) for c in node.children)
    if isinstance(node, ast.Not):
        return _mentions(node.child, which)
    left = getattr(node, "left", None)
    return left is not None and key_of(left) == which


def _fold_constants(node: ast.Expr) -> ast.Expr:
    """Fold checks whose outcome the compiler knows (see `build_index`):
    - `in` / `intersects` / `pmatch` against an empty list is false, present value or not (an
      allow- or deny-list left empty, like the bundled threat-IP list, costs nothing);
    - the json plugin's always/never-true idioms on `jevt.rawtime`."""
    if isinstance(node, ast.And | ast.Or):
        return fold(type(node)(node.pos, tuple(_fold_constants(c) for c in node.children)))
    if isinstance(node, ast.Not):
        return fold(ast.Not(node.pos, _fold_constants(node.child)))
    if (
        isinstance(node, ast.BinaryCheck)
        and node.op in ("in", "intersects", "pmatch")
        and isinstance(node.right, ast.ListValue)
        and not node.right.values
    ):
        return ast.Constant(node.pos, False)
    left = getattr(node, "left", None)
    if isinstance(left, ast.Field) and left.name in ("jevt.rawtime", "json.rawtime"):
        if isinstance(node, ast.UnaryCheck):
            return ast.Constant(node.pos, True)
        if (
            isinstance(node, ast.BinaryCheck)
            and node.op in ("=", "==")
            and isinstance(node.right, ast.Value)
            and node.right.text == "0"
        ):
            return ast.Constant(node.pos, False)
    return node


def can_match(condition: ast.Expr) -> bool:
    """False when the condition folds to false whatever the event (e.g. an opt-in rule whose
    switch macro is left at `falconet_never_true`): such a rule never raises nor counts."""
    folded = _fold_constants(condition)
    return not (isinstance(folded, ast.Constant) and folded.value is False)


def build_index(
    rules: Sequence[CompiledRule],
    *,
    match_all: bool,
    env: fields.BindEnv = fields.EMPTY_ENV,
    cache_dir: Path | None = None,
    rules_key: str | None = None,
) -> Index:
    """Index rules by required verb/resource and generate one function per distinct bucket.

    With `cache_dir` and `rules_key` (the load cache's key of exactly the loaded rules these
    are, `RuleSet.cache_key`) the finished index is cached: its compiled code, its table, and the
    recipes of the objects its code uses (`expressions.Recipe`), so a cached build runs the code
    and makes those objects without filing, specialising or generating anything.

    `jevt.rawtime exists` folds to true and `jevt.rawtime=0` to false: every event the engine
    reports on has a valid stageTimestamp (the decoders drop the others, as the k8saudit plugin
    does, and the engine raises no alert for an event whose time does not parse), and no audit
    event is stamped exactly at the epoch. These are upstream's `k8s_audit_always_true` /
    `k8s_audit_never_true` idioms, which would otherwise cost a timestamp parse per event.
    """
    index_key = None
    if cache_dir is not None and rules_key is not None:
        index_key = _index_key(rules_key, rules, match_all)
        cached = _read_index(cache_dir, index_key, env)
        if cached is not None:
            return cached
    conditions = {r.slot: _fold_constants(r.condition) for r in rules}
    reqs = {
        r.slot: (required(conditions[r.slot], VERB), required(conditions[r.slot], RESOURCE))
        for r in rules
    }
    verbs = sorted({v for vs, _ in reqs.values() if vs for v in vs})
    resources = sorted({x for _, rs in reqs.values() if rs for x in rs})
    measures: Measures = {}
    work = len(rules) + sum(measure(c, measures)[0] for c in conditions.values())
    if (len(verbs) + 1) * (len(resources) + 1) * work > MAX_INDEX_WORK:
        reqs = {slot: (vs, None) for slot, (vs, _) in reqs.items()}  # one column: any resource
        resources = []
    if (len(verbs) + 1) * work > MAX_INDEX_WORK:
        reqs = dict.fromkeys(reqs, (None, None))  # one bucket: every rule
        verbs = []
    excluded = {VERB: frozenset(verbs), RESOURCE: frozenset(resources)}
    mentions = {
        slot: (_mentions(c, VERB), _mentions(c, RESOURCE)) for slot, c in conditions.items()
    }
    spec_cache: dict[tuple[int, Any, Any], ast.Expr] = {}
    interner = _Interner()
    wild_slots = frozenset(s for s, (vs, rs) in reqs.items() if vs is None and rs is None)
    gen = ModuleGen(
        match_all=match_all,
        wildcard=wild_slots,
        env=env,
        names={r.slot: r.name for r in rules},
    )
    cache: dict[tuple[tuple[int, int], ...], str] = {}
    table: dict[Any, dict[Any, str]] = {}
    wildcard = sum(1 for vs, rs in reqs.values() if vs is None and rs is None)
    for verb in [*verbs, OTHER]:
        row: dict[Any, str] = {}
        for resource in [*resources, OTHER]:
            slots = tuple(
                r.slot
                for r in rules
                if (reqs[r.slot][0] is None or verb in reqs[r.slot][0])  # type: ignore[operator]
                and (reqs[r.slot][1] is None or resource in reqs[r.slot][1])  # type: ignore[operator]
            )
            known: dict[str, str | None] = {
                VERB: verb if isinstance(verb, str) else None,
                RESOURCE: resource if isinstance(resource, str) else None,
            }
            specialised = []
            for slot in slots:
                # A rule's specialisation depends only on the keys it mentions beyond its index
                # requirement; cache it so each distinct one is computed once.
                key = (
                    slot,
                    known[VERB] if mentions[slot][0] else _ANY,
                    known[RESOURCE] if mentions[slot][1] else _ANY,
                )
                cond = spec_cache.get(key)
                if cond is None:
                    cond = spec_cache[key] = interner.intern(
                        specialize(conditions[slot], known, excluded)
                    )
                if not (isinstance(cond, ast.Constant) and not cond.value):
                    specialised.append((slot, cond))
            # Buckets whose specialised conditions are identical share one function.
            signature = tuple((slot, id(cond)) for slot, cond in specialised)
            name = cache.get(signature)
            if name is None:
                name = gen.bucket(specialised)
                cache[signature] = name
            row[resource] = name
        table[verb] = row
    gen.note_buckets(table)
    code, hit = compile_cached(gen.listing.source(), "<falconet-rules>", cache_dir)
    namespace = run_code(code, gen.namespace)
    fn_table = {v: {r: namespace[n] for r, n in row.items()} for v, row in table.items()}
    sizes = [len(gen.bucket_slots[name]) for name in gen.bucket_names]
    if index_key is not None and cache_dir is not None:
        _write_index(cache_dir, index_key, code, gen, table, sizes, wildcard)
    return Index(fn_table, sizes, wildcard, gen.listing, hit)


# --------------------------------------------------------------------------------------------
# The index cache: a finished index as plain data and one code object

_INDEX_FORMAT = "falconet index cache 1"


def _index_key(rules_key: str, rules: Sequence[CompiledRule], match_all: bool) -> str:
    """The rules as loaded (their load key covers the rules files, the loader, the fields and
    this compiler's code, and falconet's version), which of them are indexed in which slot, the
    matching mode and the interpreter's bytecode and marshal versions."""
    import hashlib
    import marshal
    from importlib.util import MAGIC_NUMBER

    what = (_INDEX_FORMAT, rules_key, match_all, tuple((r.slot, r.name) for r in rules))
    return hashlib.sha256(MAGIC_NUMBER + marshal.dumps((marshal.version, what))).hexdigest()[:32]


def _index_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"index-{key}.marshal"


def _write_index(
    cache_dir: Path,
    key: str,
    code: CodeType,
    gen: ModuleGen,
    table: dict[Any, dict[Any, str]],
    sizes: list[int],
    wildcard: int,
) -> None:
    import marshal

    rows = tuple(
        (
            None if verb is OTHER else verb,
            tuple((None if r is OTHER else r, n) for r, n in row.items()),
        )
        for verb, row in table.items()
    )
    data = (
        _INDEX_FORMAT,
        code,
        tuple(gen.stored.items()),
        rows,
        tuple(sizes),
        wildcard,
        tuple(gen.listing.lines),
        tuple(gen.listing.notes.items()),
    )
    try:
        blob = marshal.dumps(data)
    except ValueError:  # a value marshal cannot store: no cache, the build stands
        return
    write_atomic(_index_path(cache_dir, key), blob)


def _read_index(cache_dir: Path, key: str, env: fields.BindEnv) -> Index | None:
    """The cached index for `key`, its objects made from their recipes, or None (absent,
    unreadable, not trusted or not of this format)."""
    import marshal

    blob = read_trusted(_index_path(cache_dir, key))
    if blob is None:
        return None
    try:
        data = marshal.loads(blob)  # noqa: S302 - a trusted file (codegen.read_trusted), like .pyc
        fmt, code, stored, rows, sizes, wildcard, lines, notes = data
        if fmt != _INDEX_FORMAT or not isinstance(code, CodeType):
            return None
        constants = {
            name: recipe[1] if recipe[0] == "value" else build(recipe, env, cached=True)
            for name, recipe in stored
        }
        namespace = run_code(code, constants)
        fn_table = {
            OTHER if verb is None else verb: {
                OTHER if r is None else r: namespace[n] for r, n in row
            }
            for verb, row in rows
        }
        listing = Listing()
        listing.lines = list(lines)
        listing.notes = dict(notes)
    except (EOFError, ValueError, TypeError, KeyError, IndexError, re.error):
        return None
    return Index(fn_table, list(sizes), wildcard, listing, True, True)


# The namespace prefix of each kind of built object (matchers are `m`).
_PREFIXES = {
    "getter": "g",
    "helper": "h",
    "transform": "t",
    "transformer": "t",
    "reference": "r",
    "operand": "r",
}


@dataclass(slots=True)
class ModuleGen:
    """The generated module: its functions (`listing`) and the constants they use (`namespace`)."""

    match_all: bool
    env: fields.BindEnv = fields.EMPTY_ENV
    wildcard: frozenset[int] = frozenset()  # slots of rules present in every bucket
    names: dict[int, str] = field(default_factory=dict)  # slot -> rule name, for the listing
    _runs: dict[tuple[tuple[int, int], ...], str] = field(default_factory=dict)
    namespace: dict[str, Any] = field(default_factory=dict)
    listing: Listing = field(default_factory=Listing)
    bucket_names: list[str] = field(default_factory=list)
    bucket_slots: dict[str, tuple[int, ...]] = field(default_factory=dict)
    bucket_lines: dict[str, int] = field(default_factory=dict)  # name -> line in the listing
    _consts: dict[tuple[str, Any], str] = field(default_factory=dict)
    _rules: dict[int, str] = field(default_factory=dict)  # id(condition) -> function name
    _predicates: dict[int, str] = field(default_factory=dict)  # id(subtree) -> predicate name
    _keep: list[ast.Expr] = field(default_factory=list)
    getters: dict[tuple[str, str | None], str] = field(default_factory=dict)
    stored: dict[str, Recipe] = field(default_factory=dict)  # namespace name -> its recipe

    def const(self, value: Any, kind: str = "k") -> str:
        key = (kind, value)
        name = self._consts.get(key)
        if name is None:
            name = f"{kind}{len(self.namespace)}"
            self.namespace[name] = value
            self._consts[key] = name
            self.stored[name] = ("value", value)
        return name

    def built(self, recipe: Recipe) -> str:
        """The name of the object `recipe` makes, recorded so that the index cache can make it
        again. Each use gets its own (a memoized matcher keeps its own memo), but a helper,
        which is a plain function, is named once."""
        shared = recipe[0] == "helper"
        name = self._consts.get(recipe) if shared else None
        if name is None:
            name = f"{_PREFIXES.get(recipe[0], 'm')}{len(self.namespace)}"
            self.namespace[name] = build(recipe, self.env)
            self.stored[name] = recipe
            if shared:
                self._consts[recipe] = name
        return name

    def rule(self, cond: ast.Expr, slot: int) -> str:
        """The function evaluating one (specialised) rule condition, generated once per distinct
        condition: a rule shared by many buckets with the same specialisation is compiled once.
        The listing names the rule of `slot` beside it (the first, when conditions are shared)."""
        name = self._rules.get(id(cond))
        if name is None:
            name = f"rule{len(self._rules)}"
            self._rules[id(cond)] = name
            self._keep.append(cond)  # ids stay unique while the tree is alive
            body = ExpressionGen(self, field_uses(cond))
            code = body.expr(cond)
            self.listing.append(f"def {name}{BUCKET_ARGS}:", self._note(slot))
            if body.locals:
                self.listing.append("    " + " = ".join(body.locals) + " = U")
            self.listing.append(f"    return {code}")
            self.listing.append("")
        return name

    def predicate(self, node: ast.Expr, key: tuple[str, str | None]) -> str:
        """`p<n>(v)`: the subtree `node` with the field `key` as `v`, storing its result in the
        bounded dict `c<n>` (read by the caller before calling). Generated once per distinct
        (interned) subtree."""
        name = self._predicates.get(id(node))
        if name is not None:
            return name
        n = len(self._predicates)
        name = self._predicates[id(node)] = f"p{n}"
        self._keep.append(node)
        self.namespace[f"c{n}"] = {}
        self.stored[f"c{n}"] = ("memo",)
        body = ExpressionGen(self, {}, value_of=key)
        code = body.expr(node)
        lines = [f"def {name}(v):"]
        if body.locals:
            lines.append("    " + " = ".join(body.locals) + " = U")
        lines.append(f"    r = {code}")
        lines.append(f"    if len(c{n}) >= {MEMO_SIZE}:")
        lines.append(f"        c{n}.clear()")
        lines.append(f"    c{n}[v] = r")
        lines.append("    return r")
        lines.append("")
        self.listing.extend(lines)
        return name

    def run(self, rules: list[tuple[int, ast.Expr]]) -> str:
        """One function for a run of consecutive rules that every bucket holds (the rules that
        constrain neither verb nor resource): fused, so they share field reads and cost one call
        per event instead of one per rule. Generated once per distinct run."""
        key = tuple((slot, id(cond)) for slot, cond in rules)
        name = self._runs.get(key)
        if name is not None:
            return name
        name = self._runs[key] = f"run{len(self._runs)}"
        uses: dict[tuple[str, str | None], int] = {}
        for _, cond in rules:
            for field_key, count in field_uses(cond).items():
                uses[field_key] = uses.get(field_key, 0) + count
        body = ExpressionGen(self, uses)
        checks = [(slot, body.expr(cond)) for slot, cond in rules]
        self.listing.append(f"def {name}{BUCKET_ARGS}:")
        if body.locals:
            self.listing.append("    " + " = ".join(body.locals) + " = U")
        self._emit_checks(checks)
        return name

    def _emit_checks(self, checks: Sequence[tuple[int | str, str]]) -> None:
        """The body of a bucket or run: int slots are rules, str slots are runs to call."""
        if self.match_all:
            self.listing.append("    m = []")
            for slot, code in checks:
                if isinstance(slot, str):
                    self.listing.append(f"    m.extend({code})")
                else:
                    self.listing.append(f"    if {code}:")
                    self.listing.append(f"        m.append({slot})", self._note(slot))
            self.listing.append("    return m")
        else:
            for slot, code in checks:
                if isinstance(slot, str):
                    self.listing.append(f"    if (h := {code}) >= 0:")
                    self.listing.append("        return h")
                else:
                    self.listing.append(f"    if {code}:")
                    self.listing.append(f"        return {slot}", self._note(slot))
            self.listing.append("    return -1")
        self.listing.append("")

    def bucket(self, rules: list[tuple[int, ast.Expr]]) -> str:
        """The function running a bucket's rules in position order (first match or all)."""
        name = f"bucket{len(self.bucket_names)}"
        self.bucket_names.append(name)
        self.bucket_slots[name] = tuple(s for s, _ in rules)
        args = BUCKET_ARGS
        checks: list[tuple[int | str, str]] = []
        i = 0
        while i < len(rules):
            j = i
            while j < len(rules) and rules[j][0] in self.wildcard:
                j += 1
            if j - i >= 2:
                checks.append(("run", f"{self.run(rules[i:j])}{args}"))
                i = j
                continue
            slot, cond = rules[i]
            code = "True" if isinstance(cond, ast.Constant) else f"{self.rule(cond, slot)}{args}"
            checks.append((slot, code))
            i += 1
        self.bucket_lines[name] = len(self.listing.lines)
        if len(checks) == 1 and checks[0][0] == "run":
            # Only the always-run rules (most reads): the bucket is the run, one call less.
            self.listing.append(f"{name} = {checks[0][1].removesuffix(args)}")
            self.listing.append("")
            return name
        self.listing.append(f"def {name}{args}:")
        self._emit_checks(checks)
        return name

    def _note(self, slot: int) -> str | None:
        name = self.names.get(slot)
        return None if name is None else f"rule {name!r}"

    def note_buckets(self, table: dict[Any, dict[Any, str]]) -> None:
        """Note beside each bucket which (verb, resource) events it serves."""
        served: dict[str, list[str]] = {}
        for verb, row in table.items():
            for resource, name in row.items():
                v = "<other>" if verb is OTHER else verb
                r = "<other>" if resource is OTHER else resource
                served.setdefault(name, []).append(f"{v}/{r}")
        for name, keys in served.items():
            shown = ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")
            self.listing.notes[self.bucket_lines[name]] = f"events: {shown}"
