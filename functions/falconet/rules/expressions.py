"""Condition trees as Python expressions: what each check of a rule compiles to.

`ExpressionGen` writes the expression of one condition for the functions `rules.compiler`
generates, following the contract in `falconet.codegen`: a field read more than once goes to a
local, read lazily on first use; a field read once is read in place; the four hot fields are
parameters. Checks are specialised at compile time: frozensets for `in`, pre-lowered needles,
precompiled and memoized glob/regex/pmatch matchers, same-field `or` terms merged into one search,
and subtrees that test one field only memoized per value. Anything without a fast form (a field
compared with another field) calls the reference evaluator, so the semantics stay one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from falconet import fields
from falconet.codegen import HOT_FIELDS, path_expr
from falconet.rules import ast
from falconet.rules.index import key_of
from falconet.rules.operators import (
    TRANSFORMS,
    ascii_lower,
    glob_matcher,
    icontains,
    memoized,
    pmatch_matcher,
    regex_matcher,
)
from falconet.rules.reference import ReferenceEvaluator, operand_shape, transform
from falconet.rules.trees import decode_tree, encode_tree


class Module(Protocol):
    """What an expression needs of the module being generated (`compiler.ModuleGen`)."""

    env: fields.BindEnv
    getters: dict[tuple[str, str | None], str]

    def const(self, value: Any, kind: str = "k") -> str:
        """The namespace name of `value` (one name per distinct value and kind)."""

    def built(self, recipe: Recipe) -> str:
        """The namespace name of the object `build(recipe, ...)` makes (see `Recipe`)."""

    def predicate(self, node: ast.Expr, key: tuple[str, str | None]) -> str:
        """The name of the memoized predicate of `node` over the field `key`."""


def field_uses(node: ast.Expr) -> dict[tuple[str, str | None], int]:
    """How many times each (field, argument) is read by a condition."""
    uses: dict[tuple[str, str | None], int] = {}

    def operand(n: ast.Operand) -> None:
        for f in ast.operand_fields(n):
            uses[(f.name, f.arg)] = uses.get((f.name, f.arg), 0) + 1

    def walk(n: ast.Expr) -> None:
        if isinstance(n, ast.And | ast.Or):
            for c in n.children:
                walk(c)
        elif isinstance(n, ast.Not):
            walk(n.child)
        elif isinstance(n, ast.UnaryCheck | ast.BinaryCheck):
            operand(n.left)
            if isinstance(n, ast.BinaryCheck) and isinstance(n.right, ast.Transformer | ast.Call):
                operand(n.right)

    walk(node)
    return uses


class ExpressionGen:
    """Generates the expression of one rule function. A field read more than once goes to a
    local, computed lazily on first use; a field read once is read in place."""

    def __init__(
        self,
        module: Module,
        uses: dict[tuple[str, str | None], int],
        *,
        value_of: tuple[str, str | None] | None = None,
    ) -> None:
        self.module = module
        self.uses = uses
        self.locals: list[str] = []
        self._field_locals: dict[tuple[str, str | None], str] = {}
        self._lowered: dict[tuple[str, str, str | None], str] = {}
        # Generating a memoized predicate: this field is its parameter `v`, and nothing inside
        # is memoized again.
        self.value_of = value_of

    # -- fields --------------------------------------------------------------------------------

    def field(self, node: ast.Field) -> str:
        if self.value_of is not None and (node.name, node.arg) == self.value_of:
            return "v"
        # The index keys and the fields nearly every rule reads: parameters (codegen.HOT_FIELDS).
        hot = HOT_FIELDS.get((node.name, node.arg))
        if hot is not None:
            return hot
        key = (node.name, node.arg)
        compute = self._compute(node)
        if self.uses.get(key, 0) <= 1:
            return compute
        local = self._field_locals.get(key)
        if local is None:
            local = f"f{len(self._field_locals)}"
            self._field_locals[key] = local
            self.locals.append(local)
        return f"({local} if {local} is not U else ({local} := {compute}))"

    def _compute(self, node: ast.Field) -> str:
        key = (node.name, node.arg)
        path = _plain_path(node)
        if path is not None:
            return path_expr(path, self.module.const)
        name = self.module.getters.get(key)
        if name is None:
            name = self.module.getters[key] = self.module.built(("getter", node.name, node.arg))
        return f"{name}(ev, ctx)"

    def lowered(self, node: ast.Field) -> str:
        """The field's value ASCII-lower-cased, computed once per rule ("" when absent, so the
        `in` test is false, as icontains on an absent field is)."""
        key = ("\0lower", node.name, node.arg)
        local = self._lowered.get(key)
        if local is None:
            local = f"lo{len(self._lowered)}"
            self._lowered[key] = local
            self.locals.append(local)
        lower = self.module.built(("helper", "lower_or_empty"))
        return f"({local} if {local} is not U else ({local} := {lower}({self.field(node)})))"

    def operand(self, node: ast.Operand) -> str:
        if isinstance(node, ast.Field):
            return self.field(node)
        if isinstance(node, ast.Call):  # join, concat: rare; the reference's reading, one call
            return f"{self.module.built(('operand', encode_tree(node, {})))}(ev, ctx)"
        inner = self.operand(node.child)
        if node.name == "val":
            return inner
        if node.name in TRANSFORMS and not operand_shape(node.child)[0]:
            # a string transformer on a string: the common case
            return f"{self.module.built(('transform', node.name))}({inner})"
        # len, a transformer on a list: the reference's meaning, one call
        return f"{self.module.built(('transformer', encode_tree(node, {})))}({inner})"

    # -- conditions ----------------------------------------------------------------------------

    def expr(self, node: ast.Expr) -> str:
        if self.value_of is None and isinstance(node, ast.And | ast.Or | ast.Not):
            field_node = _single_field(node)
            if field_node is not None and _checks(node) >= _MEMO_MIN_CHECKS:
                return self._memoized(node, field_node)
        if isinstance(node, ast.And):
            return "(" + " and ".join(self.expr(c) for c in node.children) + ")"
        if isinstance(node, ast.Or):
            return "(" + " or ".join(self._or_terms(node.children)) + ")"
        if isinstance(node, ast.Not):
            return f"(not {self.expr(node.child)})"
        if isinstance(node, ast.Constant):
            return "True" if node.value else "False"
        if isinstance(node, ast.UnaryCheck):
            return f"({self.operand(node.left)} is not None)"
        if isinstance(node, ast.BinaryCheck):
            return self.check(node)
        raise TypeError(f"unresolved node {node!r}")

    def _memoized(self, node: ast.Expr, field_node: ast.Field) -> str:
        """A subtree that checks one scalar field only (a macro such as "a platform identity":
        15 prefix and list tests on the user name) as a predicate of that field's value,
        remembered per distinct value: one dict hit instead of the checks, for values that
        repeat from event to event. Pure, so caching cannot change a result."""
        name = self.module.predicate(node, (field_node.name, field_node.arg))
        cache = f"c{name[1:]}"
        value = self.field(field_node)
        return f"(_r if (_r := {cache}.get(_k := {value})) is not None else {name}(_k))"

    def _or_terms(self, children: tuple[ast.Expr, ...]) -> list[str]:
        """The terms of an `or`, with same-field substring/prefix/suffix checks grouped.

        `ua icontains nmap or ua icontains sqlmap or ...` becomes one precompiled regex search
        of the lower-cased value, and `x startswith a or x startswith b` one startswith with a
        tuple: one C call instead of one Python check per needle. Checks have no side effects, so
        the order of the terms of an `or` does not matter.
        """
        groups: dict[tuple[str, str, str | None], list[str]] = {}
        first: dict[tuple[str, str, str | None], int] = {}
        terms: list[str | None] = []
        for child in children:
            key = _groupable(child)
            if key is None:
                terms.append(self.expr(child))
                continue
            assert isinstance(child, ast.BinaryCheck) and isinstance(child.right, ast.Value)
            if key not in groups:
                groups[key] = []
                first[key] = len(terms)
                terms.append(None)
            groups[key].append(child.right.text)
        for key, needles in groups.items():
            terms[first[key]] = self._grouped(key, needles)
        return [t for t in terms if t is not None]

    def _grouped(self, key: tuple[str, str, str | None], needles: list[str]) -> str:
        op, name, arg = key
        field_node = ast.Field(0, name, arg)
        a = self.operand(field_node)
        const = self.module.const
        if op in ("startswith", "endswith"):
            return f"((_t := {a}) is not None and _t.{op}({const(tuple(needles))}))"
        if op == "icontains":
            if "" in needles:  # an empty needle matches any present value: no lowering needed
                return f"({a} is not None)"
            # Lower the value (ASCII, like strcasestr) and search all needles in one pass
            # (measured faster than a re.IGNORECASE pattern), remembered per distinct value.
            check = self._matcher(("isearch", tuple(needles)), a)
            return f"((_t := {a}) is not None and {check}(_t))"
        check = self._matcher(("search", tuple(needles)), a)
        return f"((_t := {a}) is not None and {check}(_t))"

    def _matcher(self, recipe: Recipe, operand: str) -> str:
        """The name of a matcher of `operand`: memoized per value, except inside a predicate
        over that very value (`v`), whose own memo already remembers the whole subtree: there a
        second memo per matcher only costs (with many distinct values, such as client
        addresses, every memo misses together)."""
        if self.value_of is not None and operand == "v":
            return self.module.built(("unmemoized", recipe))
        return self.module.built(recipe)

    def _reference_check(self, node: ast.BinaryCheck) -> str:
        fn = self.module.built(("reference", encode_tree(node, {})))
        return f"{fn}(ev, ctx)"

    def check(self, node: ast.BinaryCheck) -> str:  # noqa: PLR0911
        right = node.right
        if isinstance(right, ast.Transformer | ast.Call) or " " in node.op:
            # field-to-field comparisons and list modifiers (`startswith anyof`) are rare
            return self._reference_check(node)
        values = right.values if isinstance(right, ast.ListValue) else (right.text,)
        is_list, type_ = operand_shape(node.left)
        number = type_ == "number"
        if number:
            values = tuple(int(v, 0) for v in values)  # type: ignore[misc]
        a = self.operand(node.left)
        op = node.op
        const = self.module.const
        if is_list:
            members = const(frozenset(values))
            if op == "in":
                return f"((_t := {a}) is not None and {members}.issuperset(_t))"
            return f"((_t := {a}) is not None and not {members}.isdisjoint(_t))"
        if op in ("in", "intersects"):
            return f"({a} in {const(frozenset(values))})"
        if op == "pmatch":
            check = self._matcher(("pmatch", tuple(values)), a)
            return f"((_t := {a}) is not None and {check}(_t))"
        value = values[0] if values else ""
        c = const(value)
        if op in ("=", "=="):
            return f"({a} == {c})"
        if op in ("!=", "<", "<=", ">", ">="):
            return f"((_t := {a}) is not None and _t {op} {c})"
        if op == "contains":
            return f"((_t := {a}) is not None and {c} in _t)"
        if op == "icontains":
            needle = const(ascii_lower(str(value)))
            if isinstance(node.left, ast.Field) and value != "":
                # Several icontains on one field (user-agent lists) lower it once per rule.
                return f"({needle} in {self.lowered(node.left)})"
            helper = self.module.built(("helper", "icontains"))
            return f"((_t := {a}) is not None and {helper}(_t, {needle}))"
        if op in ("startswith", "endswith"):
            return f"((_t := {a}) is not None and _t.{op}({c}))"
        if op in ("glob", "iglob"):
            check = self._matcher(("glob", str(value), op == "iglob"), a)
            return f"((_t := {a}) is not None and {check}(_t))"
        if op == "regex":
            check = self._matcher(("regex", str(value)), a)
            return f"((_t := {a}) is not None and {check}(_t))"
        return self._reference_check(node)


_GROUPABLE = ("contains", "icontains", "startswith", "endswith")


def _groupable(node: ast.Expr) -> tuple[str, str, str | None] | None:
    """(op, field, arg) when `node` is a substring/prefix/suffix check of a scalar string field
    against a literal, which `_or_terms` may merge with its siblings."""
    if not (
        isinstance(node, ast.BinaryCheck)
        and node.op in _GROUPABLE
        and isinstance(node.left, ast.Field)
        and isinstance(node.right, ast.Value)
    ):
        return None
    definition = fields.lookup(node.left.name)
    if definition is None or definition.is_list or definition.type != "string":
        return None
    if key_of(node.left) is not None or (node.left.name, node.left.arg) in HOT_FIELDS:
        return None  # verb/resource/stage/user are locals already; keep their checks plain
    return (node.op, node.left.name, node.left.arg)


_MEMO_MIN_CHECKS = 3  # fewer checks cost less than the memo's dict hit


def _single_field(node: ast.Expr) -> ast.Field | None:
    """The one scalar field every check of `node` tests directly (no transformer, no
    field-to-field comparison), or None."""
    found: ast.Field | None = None
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.And | ast.Or):
            stack.extend(n.children)
        elif isinstance(n, ast.Not):
            stack.append(n.child)
        elif isinstance(n, ast.Constant):
            continue
        elif isinstance(n, ast.UnaryCheck | ast.BinaryCheck):
            left = n.left
            if not isinstance(left, ast.Field):
                return None
            if isinstance(n, ast.BinaryCheck) and (  # checked by the reference
                isinstance(n.right, ast.Transformer | ast.Call) or " " in n.op
            ):
                return None
            if found is None:
                definition = fields.lookup(left.name)
                if definition is None or definition.is_list:
                    return None
                found = left
            elif (left.name, left.arg) != (found.name, found.arg):
                return None
        else:
            return None
    return found


def _checks(node: ast.Expr) -> int:
    if isinstance(node, ast.And | ast.Or):
        return sum(_checks(c) for c in node.children)
    if isinstance(node, ast.Not):
        return _checks(node.child)
    return 0 if isinstance(node, ast.Constant) else 1


def _plain_path(node: ast.Field) -> tuple[str, ...] | None:
    """The path of a field the registry says is a plain scalar read through object keys."""
    definition = fields.lookup(node.name)
    read = definition.inline_read(node.arg) if definition is not None else None
    return read.plain if read is not None else None


def _lowered_search(search: Callable[[str], object]) -> Callable[[str], object]:
    return lambda value: search(ascii_lower(value))


def _lower_or_empty(value: str | None) -> str:
    return "" if value is None else ascii_lower(value)


# --------------------------------------------------------------------------------------------
# Recipes: the objects generated code uses, as data

# A recipe is a tuple of plain values (strings, booleans, tuples) naming an object the generated
# code calls: a field getter, a helper, a transformer, a memoized matcher, a reference check, a
# memo dict. `build` makes the object from its recipe, the same way when the code is generated and
# when a finished index is read back from the code cache (`compiler.build_index`): the cache holds
# recipes, never objects, so reading it constructs only what this table allows.
Recipe = tuple[Any, ...]
_HELPERS: dict[str, Callable[..., Any]] = {
    "lower_or_empty": _lower_or_empty,
    "icontains": icontains,
}


def _transform(name: str) -> Callable[[str | None], str | None]:
    fn = TRANSFORMS[name]
    return lambda v: None if v is None else fn(v)


def _matcher(kind: str, args: Sequence[Any]) -> Callable[[str], object]:
    """The predicate of a matcher recipe, before memoizing."""
    if kind in ("search", "isearch"):
        needles = tuple(args[0])
        if kind == "isearch":
            pattern = re.compile("|".join(re.escape(ascii_lower(n)) for n in needles))
            return _lowered_search(pattern.search)
        return re.compile("|".join(re.escape(n) for n in needles)).search
    if kind == "pmatch":
        return pmatch_matcher(tuple(args[0]))
    if kind == "glob":
        return glob_matcher(str(args[0]), ignore_case=bool(args[1]))
    return regex_matcher(str(args[0]))


_MATCHERS = frozenset({"search", "isearch", "pmatch", "glob", "regex"})


def _reference(env: fields.BindEnv, kind: str, tree: Any) -> Callable[..., Any]:
    """What the reference evaluator makes of a tree: a check's truth (`reference`), the value of
    a join()/concat() operand (`operand`), or a transformer applied to a value (`transformer`:
    len(), or a transformer on a list)."""
    node = decode_tree(tree, {})
    if kind == "transformer":
        return lambda value: transform(node, value)
    ref = ReferenceEvaluator(env)
    if kind == "operand":
        return lambda ev, ctx: ref.operand(node, ev, ctx)
    return lambda ev, ctx: ref.check(node, ev, ctx)


def _truth(predicate: Callable[[str], object]) -> Callable[[str], bool]:
    return lambda value: bool(predicate(value))  # what `memoized` returns, without the memo


def _on_first_use(make: Callable[[], Callable[[str], object]]) -> Callable[[str], object]:
    """A matcher made by `make()` when first called (its patterns compiled then, not at start)."""
    made: list[Callable[[str], object]] = []

    def check(value: str) -> object:
        if not made:
            made.append(make())
        return made[0](value)

    return check


def build(recipe: Recipe, env: fields.BindEnv, *, cached: bool = False) -> Any:
    """The object `recipe` names (see `Recipe`). Raises ValueError for a recipe it does not know
    (a cache written by other code), KeyError for an unknown helper, field or transformer.

    `cached`: the recipe comes from the index cache, so its patterns compiled once already: a
    matcher compiles them at its first use (behind its memo), not at a cold start."""
    kind, *args = recipe
    if kind in _MATCHERS:
        if cached:
            return memoized(_on_first_use(lambda: _matcher(kind, args)))
        return memoized(_matcher(kind, args))
    if kind == "unmemoized" and args[0][0] in _MATCHERS:  # the same check, as a bool, no memo
        inner_kind, *inner = args[0]
        if cached:
            return _truth(_on_first_use(lambda: _matcher(inner_kind, inner)))
        return _truth(_matcher(inner_kind, inner))
    if kind == "getter":  # ungated: the fast path only runs for events with auditID
        definition = fields.lookup(args[0])
        if definition is None:
            raise KeyError(args[0])
        return definition.raw_getter(args[1], env)
    if kind == "helper":
        return _HELPERS[args[0]]
    if kind == "transform":
        return _transform(args[0])
    if kind in ("reference", "operand", "transformer"):
        return _reference(env, kind, args[0])
    if kind == "memo":
        return {}
    if kind == "value":
        return args[0]
    raise ValueError(f"unknown recipe {kind!r}")
