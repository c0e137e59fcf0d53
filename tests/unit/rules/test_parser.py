"""The condition grammar: every operator, escapes, precedence, `not` chains, and rejections."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from falconet.rules import ast
from falconet.rules.parser import ParseError, parse_condition


def check(text: str) -> ast.BinaryCheck:
    node = parse_condition(text)
    assert isinstance(node, ast.BinaryCheck)
    return node


@pytest.mark.parametrize(
    "op",
    [
        "=",
        "==",
        "!=",
        "glob",
        "iglob",
        "contains",
        "icontains",
        "bcontains",
        "startswith",
        "bstartswith",
        "endswith",
        "regex",
    ],
)
def test_every_binary_string_operator(op: str) -> None:
    node = check(f"ka.user.name {op} abc")
    assert node.op == op
    assert node.right == ast.Value(node.right.pos, "abc")


@pytest.mark.parametrize("op", ["<", "<=", ">", ">="])
def test_numeric_operators_take_numbers(op: str) -> None:
    node = check(f"ka.response.code {op} 400")
    assert node.op == op
    assert node.right == ast.Value(node.right.pos, "400")
    assert check(f"evt.rawtime {op} 0x10").right == ast.Value(node.right.pos - 5, "0x10")


@pytest.mark.parametrize("op", ["in", "intersects", "pmatch"])
def test_list_operators(op: str) -> None:
    node = check(f"ka.verb {op} (create, \"two words\", 'q')")
    assert node.op == op
    assert isinstance(node.right, ast.ListValue)
    assert node.right.values == ("create", "two words", "q")


def test_symbol_operators_need_no_blank() -> None:
    assert check("a.b=c").op == "="
    assert check("a.b !=c").op == "!="
    assert check("a.b in(x)").op == "in"


def test_word_operator_needs_a_blank() -> None:
    with pytest.raises(ParseError, match="expected a valid check operator"):
        parse_condition("ka.verb containsx")


def test_exists_and_empty_list() -> None:
    node = parse_condition("ka.target.subresource exists")
    assert isinstance(node, ast.UnaryCheck) and node.op == "exists"
    assert check("ka.verb in ()").right == ast.ListValue(11, ())


def test_field_arguments_bare_and_quoted() -> None:
    left = check("ka.uri.param[command] = bash").left
    assert left == ast.Field(0, "ka.uri.param", "command")
    left = check('jevt.value["/a b"] = x').left
    assert isinstance(left, ast.Field) and left.arg == "/a b"


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        (r'"a\"b"', 'a"b'),
        (r"'a\'b'", "a'b"),
        (r'"tab\there"', "tab\there"),
        (r'"nl\n"', "nl\n"),
        (r'"\x41\x42"', "AB"),
        (r'"back\\slash"', "back\\slash"),
        (r'"sl\/ash"', "sl/ash"),
        (r'"\ x"', "\\x"),
        ('""', ""),
    ],
)
def test_quoted_string_escapes(literal: str, value: str) -> None:
    right = check(f"ka.user.name = {literal}").right
    assert isinstance(right, ast.Value) and right.text == value


@pytest.mark.parametrize("literal", [r'"\q"', r'"\x4"', r"'a\"b'"])
def test_invalid_escapes_are_rejected(literal: str) -> None:
    with pytest.raises(ParseError, match="escape"):
        parse_condition(f"ka.user.name = {literal}")


def test_precedence_not_binds_tighter_than_and_than_or() -> None:
    node = parse_condition("a or b and not c")
    assert isinstance(node, ast.Or)
    left, right = node.children
    assert left == ast.Identifier(0, "a")
    assert isinstance(right, ast.And)
    assert isinstance(right.children[1], ast.Not)


def test_and_or_are_n_ary_and_parentheses_group() -> None:
    node = parse_condition("a and b and c")
    assert isinstance(node, ast.And) and len(node.children) == 3
    node = parse_condition("(a or b) and c")
    assert isinstance(node, ast.And) and isinstance(node.children[0], ast.Or)
    assert isinstance(parse_condition("a and(b)"), ast.And)


def test_not_chains_toggle() -> None:
    assert parse_condition("not not a") == ast.Identifier(8, "a")
    node = parse_condition("not not not a")
    assert isinstance(node, ast.Not)
    assert isinstance(parse_condition("not(a)"), ast.Not)


def test_transformers() -> None:
    node = check("tolower(ka.user.name) = admin")
    assert isinstance(node.left, ast.Transformer) and node.left.name == "tolower"
    node = check("ka.user.name = val(ka.impuser.name)")
    assert isinstance(node.right, ast.Transformer) and node.right.name == "val"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "filter input string is empty"),
        ("a andb", "expected blank or '(' after 'and'"),
        ("a orb", "expected blank or '(' after 'or'"),
        ("a not b", "unexpected token after 'a', expecting 'or', 'and'"),
        ("and a", "unexpected token after 'and'"),
        ("ka.verb in (a,)", "expected a string value"),
        ("ka.verb in (a", "expected a ')' token"),
        ("(a", "expected a ')' token"),
        ("x.y ExIsTs", "expected a valid check operator"),
        ("ka.verb > abc", "expected a number value"),
        ("ka.verb =", "expected a string value"),
        ("ka.uri.param[ = x", "expected a valid field argument"),
        ("ka.uri.param[a = x", "expected a ']' token"),
        ("a and", "expected blank or '(' after 'and'"),
        ("a and ", "expected a '(' token, a field check, or an identifier"),
    ],
)
def test_rejects_with_message(text: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_condition(text)
    assert message in info.value.message


def test_error_offset_points_at_the_problem() -> None:
    with pytest.raises(ParseError) as info:
        parse_condition("ka.verb=create andb")
    assert info.value.offset == len("ka.verb=create and")


def test_depth_is_capped() -> None:
    with pytest.raises(ParseError, match="max depth"):
        parse_condition("(" * 2000 + "a" + ")" * 2000)


@given(st.text(max_size=200))
def test_any_text_parses_or_raises_parse_error(text: str) -> None:
    with contextlib.suppress(ParseError):
        parse_condition(text)
