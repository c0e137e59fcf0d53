"""Checking conditions, the fifth loading stage: fields, arguments, operators and values.

A resolved condition is checked against the field registry as Falco's compiler checks it: every
field exists (with a did-you-mean hint), takes the argument it is given, supports the operator
(list fields accept only `in`, `intersects` and `exists`; numeric fields take numbers), every
regular expression compiles with RE2 as Falco compiles it, and `regex` and `pmatch` compare with
constants only (libsinsp rejects a field on their right side: a pattern taken from the event would
be compiled per event). The first problem of a condition is reported, located by the caller.
`field_names` says which fields a rule reads (for its alerts and the `falconet rules` listing).
"""

from __future__ import annotations

from falconet import errors as errs
from falconet import fields
from falconet.rules import ast
from falconet.rules.operators import RegexError, compile_regex
from falconet.rules.reference import operand_shape

_LIST_FIELD_OPS = {"in", "intersects", "exists"}
_NUMBER_OPS = {"=", "==", "!=", "<", "<=", ">", ">=", "in", "exists"}
_STRING_REJECTED = {"bcontains", "bstartswith"}
_CONSTANT_ONLY_OPS = {"regex", "pmatch"}  # libsinsp: "doesn't support right-hand side fields"

Problem = tuple[str, ast.Node, type[errs.RuleError], str | None]


def _check_operand(node: ast.Arg) -> tuple[Problem | None, bool, str]:
    """(problem, is_list, type) of an operand, after checking its fields and arguments.

    Transformers follow libsinsp: `len` takes a list or a string and gives a number, the other
    one-argument transformers take strings (element-wise on a list) and give strings, none takes
    a number (`val` takes anything); `join(sep, list)` takes a separator that is not a list and a
    list (a list field or a `(...)` list), `concat(a, b, ...)` two or more values that are not
    lists; both give strings."""
    if isinstance(node, ast.Value):
        return None, False, "string"
    if isinstance(node, ast.ArgList | ast.Call):
        return _check_call(node)
    if isinstance(node, ast.Transformer):
        problem, is_list, type_ = _check_operand(node.child)
        if problem is not None:
            return problem, is_list, type_
        if type_ == "number" and node.name != "val":  # libsinsp: string types only
            field = ast.operand_text(node.child)
            return (
                (
                    f"transformer '{node.name}' is not supported on numeric field '{field}'",
                    node,
                    errs.OperatorError,
                    node.name,
                ),
                False,
                type_,
            )
        is_list, type_ = operand_shape(node)
        return None, is_list, type_
    definition = fields.lookup(node.name)
    if definition is None:
        hint = fields.suggest(node.name)
        extra = f" (did you mean '{hint}'?)" if hint else ""
        return (
            (f"unknown field '{node.name}'{extra}", node, errs.UnknownFieldError, node.name),
            False,
            "string",
        )
    try:
        definition.bind(node.arg)
    except fields.ArgumentError as exc:
        return (str(exc), node, errs.FieldArgumentError, node.name), False, "string"
    return None, definition.is_list, definition.type


def _check_call(node: ast.Call | ast.ArgList) -> tuple[Problem | None, bool, str]:
    """`join(...)`, `concat(...)` and a `(...)` list given to one: arguments and shapes."""
    args = node.items if isinstance(node, ast.ArgList) else node.args
    lists = []
    for arg in args:
        problem, is_list, _type = _check_operand(arg)
        if problem is not None:
            return problem, False, "string"
        lists.append(is_list)
    message = None
    if isinstance(node, ast.ArgList):
        if any(lists):
            message = "a list given to a transformer cannot hold a list"
    elif node.name == "join":
        if len(args) != 2:
            message = "'join' takes 2 arguments: a separator and a list"
        elif lists[0]:
            message = "the separator of 'join' (its first argument) cannot be a list"
        elif not lists[1]:
            message = "the second argument of 'join' must be a list: a list field or (a, b, ...)"
    elif len(args) < 2:
        message = "'concat' takes at least 2 arguments"
    elif any(lists):
        message = "the arguments of 'concat' cannot be lists"
    if message is not None:
        token = node.name if isinstance(node, ast.Call) else None
        return (message, node, errs.OperatorError, token), False, "string"
    return None, isinstance(node, ast.ArgList), "string"


def check_fields(
    tree: ast.Expr, memo: dict[int, tuple[ast.Expr, Problem | None]] | None = None
) -> Problem | None:
    """The first field, argument or operator problem of a resolved condition, or None.

    `memo` (see `loader.Memo`) remembers the answer for each subtree, so shared macro trees are
    checked once per compile; the answer depends on the subtree alone."""
    if memo is None:
        return _check_fields(tree, {})
    return _check_fields(tree, memo)


def _check_fields(
    tree: ast.Expr, memo: dict[int, tuple[ast.Expr, Problem | None]]
) -> Problem | None:
    hit = memo.get(id(tree))
    if hit is not None and hit[0] is tree:
        return hit[1]
    problem = _check_node(tree, memo)
    memo[id(tree)] = (tree, problem)
    return problem


def _check_node(tree: ast.Expr, memo: dict[int, tuple[ast.Expr, Problem | None]]) -> Problem | None:
    if isinstance(tree, ast.And | ast.Or):
        for c in tree.children:
            if (p := _check_fields(c, memo)) is not None:
                return p
        return None
    if isinstance(tree, ast.Not):
        return _check_fields(tree.child, memo)
    if isinstance(tree, ast.UnaryCheck | ast.BinaryCheck):
        problem, is_list, type_ = _check_operand(tree.left)
        if problem is not None:
            return problem
        if not ast.operand_fields(tree.left):  # `concat("a", "b")`: a constant, surely a slip
            message = "a transformer must read at least one field"
            return message, tree.left, errs.OperatorError, None
        name = ast.operand_text(tree.left)
        token = ast.base_field(tree.left).name
        if is_list and tree.op not in _LIST_FIELD_OPS:
            return (
                f"operator '{tree.op}' not supported on list field '{name}' (list fields "
                "accept only 'in', 'intersects' and 'exists')",
                tree,
                errs.OperatorError,
                token,
            )
        if type_ == "string" and tree.op.partition(" ")[0] in _STRING_REJECTED:
            return (
                f"operator '{tree.op}' not supported on string field '{name}'",
                tree,
                errs.OperatorError,
                token,
            )
        if type_ == "number" and tree.op.partition(" ")[0] not in _NUMBER_OPS:
            return (
                f"operator '{tree.op}' not supported on numeric field '{name}'",
                tree,
                errs.OperatorError,
                token,
            )
        if isinstance(tree, ast.BinaryCheck):
            return _check_right(tree, type_, name)
    return None


def _check_right(tree: ast.BinaryCheck, type_: str, name: str) -> Problem | None:
    right = tree.right
    if isinstance(right, ast.Transformer | ast.Call):
        if tree.op.partition(" ")[0] in _CONSTANT_ONLY_OPS:
            return (
                f"operator '{tree.op}' doesn't support right-hand side fields",
                right,
                errs.OperatorError,
                None,
            )
        problem, is_list, right_type = _check_operand(right)
        if problem is not None:
            return problem
        if not ast.operand_fields(right):
            return "a transformer must read at least one field", right, errs.OperatorError, None
        if is_list:
            return (
                "a list field cannot be the right side of a comparison",
                right,
                errs.OperatorError,
                None,
            )
        if right_type != type_:  # libsinsp checks the two fields' types agree
            other = ast.base_field(right).name
            return (
                f"field '{name}' ({type_}) cannot be compared with field '{other}' ({right_type})",
                right,
                errs.OperatorError,
                None,
            )
        return None
    if type_ == "number":
        values = right.values if isinstance(right, ast.ListValue) else (right.text,)
        for v in values:
            try:
                int(v, 0)
            except ValueError:
                return (
                    f"'{v}' is not a number (field '{name}' is numeric)",
                    right,
                    errs.OperatorError,
                    None,
                )
    if tree.op.partition(" ")[0] == "regex":
        for text in right.values if isinstance(right, ast.ListValue) else (right.text,):
            try:
                compile_regex(text)
            except RegexError as exc:
                return (
                    f"invalid regular expression '{text}': {exc}",
                    right,
                    errs.RuleSyntaxError,
                    None,
                )
    return None


def field_names(node: ast.Expr, memo: dict[int, tuple[ast.Expr, frozenset[str]]]) -> frozenset[str]:
    """The names of the fields a resolved condition reads."""
    hit = memo.get(id(node))
    if hit is not None and hit[0] is node:
        return hit[1]
    names: frozenset[str]
    if isinstance(node, ast.And | ast.Or):
        names = frozenset().union(*(field_names(c, memo) for c in node.children))
    elif isinstance(node, ast.Not):
        names = field_names(node.child, memo)
    elif isinstance(node, ast.UnaryCheck | ast.BinaryCheck):
        operands = [node.left]
        if isinstance(node, ast.BinaryCheck) and isinstance(node.right, ast.Transformer | ast.Call):
            operands.append(node.right)
        names = frozenset(f.name for o in operands for f in ast.operand_fields(o))
    else:
        names = frozenset()
    memo[id(node)] = (node, names)
    return names
