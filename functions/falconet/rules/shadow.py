"""Shadowed rules: a later rule that first-match never lets fire, proved from the conditions.

Under `rule_matching: first` an event raises the alert of the first matching rule in position
order. A later rule L is shadowed by an earlier rule E when every event matching L also matches E:
L then never raises an alert. `shadowed` finds such pairs among resolved rules (macros and lists
expanded, exceptions composed into the condition) and is sound, never complete: it warns only when
every conjunct of E's condition is implied by L's conjuncts, by these steps alone:

- the same subtree, compared structurally (positions ignored): a condition is a function of the
  event, so equal trees have equal values;
- `f = v` / `f in (...)` on a plain scalar field, when one of L's conjuncts restricts the same
  field to a subset of those values with `=` or `in`;
- `f startswith "p"` on a plain string field, when one of L's conjuncts restricts `f` to values
  (or a longer prefix) that start with "p";
- `f exists`, when one of L's conjuncts compares `f` (any comparison is false on a missing field,
  in the reference evaluator and so in the compiled code);
- an `or`, when one of its branches is implied; an always-true constant.

Anything else (regexes, prefixes, negations of different trees, ...) is not reasoned about: a rule
that is shadowed only in practice (for the events that really occur) is not reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from falconet import fields
from falconet.rules import ast
from falconet.rules.diagnostics import Diagnostic, located
from falconet.rules.model import Rule

Key = tuple[object, ...]
_EQUALITY = ("=", "==", "in")


@dataclass(frozen=True, slots=True)
class Shadow:
    """`later` never fires under first-match: every event it matches also matches `earlier`."""

    later: Rule
    earlier: Rule


def shadowed(rules: Sequence[Rule], silent: Iterable[str] = ()) -> list[Shadow]:
    """The enabled rules of `rules` (in position order) that an earlier enabled rule always
    shadows, each with the first such rule. Rules named in `silent` raise no alerts of their own
    (a correlation silences them): they take no part in first-match."""
    quiet = set(silent)
    keys = _Keys()
    candidates = [r for r in rules if r.enabled and r.name not in quiet]
    facts = [_Facts(_conjuncts(r.condition), keys) for r in candidates]
    needs = [[(c, keys.of(c)) for c in _conjuncts(r.condition)] for r in candidates]
    out = []
    for j, later in enumerate(candidates):
        for i in range(j):
            if all(facts[j].implies(c, k) for c, k in needs[i]):
                out.append(Shadow(later, candidates[i]))
                break
    return out


def _conjuncts(node: ast.Expr) -> list[ast.Expr]:
    if isinstance(node, ast.And):
        return [c for child in node.children for c in _conjuncts(child)]
    return [node]


class _Keys:
    """Structural keys of subtrees (positions left out), memoised by id within one analysis."""

    def __init__(self) -> None:
        self._memo: dict[int, tuple[ast.Node, Key]] = {}

    def of(self, node: ast.Node) -> Key:
        hit = self._memo.get(id(node))
        if hit is not None and hit[0] is node:
            return hit[1]
        key = self._make(node)
        self._memo[id(node)] = (node, key)
        return key

    def _make(self, node: ast.Node) -> Key:  # noqa: PLR0911 - one return per node class
        if isinstance(node, ast.And | ast.Or):
            return (type(node).__name__, tuple(self.of(c) for c in node.children))
        if isinstance(node, ast.Not):
            return ("Not", self.of(node.child))
        if isinstance(node, ast.Field):
            return ("Field", node.name, node.arg)
        if isinstance(node, ast.Transformer):
            return ("Transformer", node.name, self.of(node.child))
        if isinstance(node, ast.Call):
            return ("Call", node.name, tuple(self.of(a) for a in node.args))
        if isinstance(node, ast.ArgList):
            return ("ArgList", tuple(self.of(a) for a in node.items))
        if isinstance(node, ast.Value):
            return ("Value", node.text)
        if isinstance(node, ast.ListValue):
            return ("ListValue", node.values)
        if isinstance(node, ast.UnaryCheck):
            return ("Unary", node.op, self.of(node.left))
        if isinstance(node, ast.BinaryCheck):
            return ("Binary", node.op, self.of(node.left), self.of(node.right))
        if isinstance(node, ast.Constant):
            return ("Constant", node.value)
        # An unresolved macro reference never reaches here; make it unequal to everything.
        return ("Opaque", id(node))


def _scalar_values(node: ast.Expr) -> tuple[Key, frozenset[str]] | None:
    """(field key, values) of `f = v` / `f in (...)` on a plain scalar field, else None."""
    if not isinstance(node, ast.BinaryCheck) or node.op not in _EQUALITY:
        return None
    left = node.left
    if not isinstance(left, ast.Field):
        return None
    definition = fields.lookup(left.name)
    if definition is None or definition.is_list:
        return None
    right = node.right
    if isinstance(right, ast.Value):
        if node.op == "in":
            return None
        values = frozenset([right.text])
    elif isinstance(right, ast.ListValue):
        values = frozenset(right.values)
    else:
        return None
    return ("Field", left.name, left.arg), values


class _Facts:
    """What is known of an event that matches a rule: its conjuncts, and what follows."""

    def __init__(self, conjuncts: list[ast.Expr], keys: _Keys) -> None:
        self.keys = keys
        self.exact = {keys.of(c) for c in conjuncts}
        self.compared: set[Key] = set()  # operands some conjunct compares (so they exist)
        self.restricted: dict[Key, list[frozenset[str]]] = {}  # field -> value sets it is in
        self.prefixes: dict[Key, list[str]] = {}  # string field -> prefixes it starts with
        for c in conjuncts:
            if isinstance(c, ast.BinaryCheck | ast.UnaryCheck):
                self.compared.add(keys.of(c.left))
            found = _scalar_values(c)
            if found is not None:
                self.restricted.setdefault(found[0], []).append(found[1])
            prefix = _prefix(c)
            if prefix is not None:
                self.prefixes.setdefault(prefix[0], []).append(prefix[1])

    def implies(self, node: ast.Expr, key: Key | None = None) -> bool:
        if (key if key is not None else self.keys.of(node)) in self.exact:
            return True
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Or):
            return any(self.implies(c) for c in node.children)
        if isinstance(node, ast.And):
            return all(self.implies(c) for c in node.children)
        if isinstance(node, ast.UnaryCheck):  # `exists`
            return self.keys.of(node.left) in self.compared
        found = _scalar_values(node)
        if found is not None:
            field, values = found
            return any(known <= values for known in self.restricted.get(field, ()))
        prefix = _prefix(node)
        if prefix is not None:
            field, text = prefix
            return any(
                all(v.startswith(text) for v in known) for known in self.restricted.get(field, ())
            ) or any(p.startswith(text) for p in self.prefixes.get(field, ()))
        return False


def _prefix(node: ast.Expr) -> tuple[Key, str] | None:
    """(field key, prefix) of `f startswith "p"` on a plain string field, else None."""
    if not isinstance(node, ast.BinaryCheck) or node.op != "startswith":
        return None
    left, right = node.left, node.right
    if not isinstance(left, ast.Field) or not isinstance(right, ast.Value):
        return None
    definition = fields.lookup(left.name)
    if definition is None or definition.is_list or definition.type != "string":
        return None
    return ("Field", left.name, left.arg), right.text


def shadow_warnings(rules: Sequence[Rule], silent: Iterable[str] = ()) -> list[Diagnostic]:
    """`shadowed` as `falconet validate` warnings, at the later rule, with the ways out that
    work in falconet (and in Falco)."""
    out = []
    for s in shadowed(rules, silent):
        where = s.earlier.defined_at
        out.append(
            Diagnostic(
                located(
                    "never raises an alert under rule_matching 'first': every event it matches "
                    f"also matches the earlier rule '{s.earlier.name}' "
                    f"({where.file}:{where.line}), "
                    "which takes it. To have it fire: run with rule_matching 'all' "
                    "(--rule-matching all, FALCONET_RULE_MATCHING=all); or add an exception for "
                    f"these events to '{s.earlier.name}' (override: {{exceptions: append}}); or "
                    "define this rule in a rules file loaded before the one that defines "
                    f"'{s.earlier.name}' (rules run in the order they are first defined)",
                    s.later.defined_at,
                    kind="rule",
                    item=s.later.name,
                ),
                "warning",
            )
        )
    return out
