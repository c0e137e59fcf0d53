"""The rule language of Falco 0.44 (libs 0.25) that falconet follows: `len()` and `join()`,
string transformers on list fields, the `oneof` / `anyof` / `allof` operator modifiers, and
transformers and modifiers in exceptions. Each behaviour is checked through the engine (rules
loaded from a file, events evaluated) on both the compiled engine and the reference evaluator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from falconet import Engine, RuleError
from falconet.rules import ast
from falconet.rules.parser import ParseError, parse_condition, parse_operand

EVENT: dict[str, Any] = {
    "kind": "Event",
    "auditID": "a1",
    "stage": "ResponseComplete",
    "verb": "create",
    "requestURI": "/api/v1/namespaces/default/pods",
    "user": {"username": "admin-x", "groups": ["system:authenticated", "Devs"]},
    "objectRef": {"resource": "pods", "namespace": "default", "name": "p"},
    "requestObject": {
        "kind": "Pod",
        "spec": {"containers": [{"name": "a", "image": "nginx:1.27"}, {"image": "busybox"}]},
    },
    "stageTimestamp": "2026-03-11T15:45:02.100000Z",
}


def _engine(tmp_path: Path, condition: str, extra: str = "") -> Engine:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "- rule: R\n"
        "  desc: d\n"
        f"  condition: {condition}\n"
        "  output: out %ka.user.name\n"
        "  priority: NOTICE\n"
        "  source: k8s_audit\n" + extra
    )
    return Engine.from_paths([path], extra_fields=[], hostname="h")


def _fires(tmp_path: Path, condition: str, event: dict[str, Any] = EVENT, extra: str = "") -> bool:
    engine = _engine(tmp_path, condition, extra)
    fast = [a.rule for a in engine.evaluate(event)]
    assert fast == engine.matches_reference(event), condition  # compiled == reference
    return fast == ["R"]


@pytest.mark.parametrize(
    ("condition", "fires"),
    [
        ("len(ka.user.groups) = 2", True),
        ("len(ka.user.groups) > 2", False),
        ("len(ka.req.pod.containers.image) >= 2", True),
        ("len(ka.user.name) = 7", True),  # a string's length
        ("len(ka.user.name) in (6, 7)", True),
        ("len(tolower(ka.user.groups)) = 2", True),
        ("len(ka.impuser.name) >= 0", False),  # absent stays absent
        ('join(",", ka.user.groups) = "system:authenticated,Devs"', True),
        ('join(",", ka.user.groups) = "system:authenticated"', False),  # Falco case P13
        ('join(" + ", ka.user.groups) contains "+ Devs"', True),
        ('join("-", (ka.verb, ka.target.resource)) = create-pods', True),  # a (...) list
        ('join(ka.verb, ("a", toupper(ka.user.name), 3)) = acreateADMIN-Xcreate3', True),
        ('join("-", (ka.verb, ka.impuser.name)) exists', False),  # an absent item: absent
        ('concat(ka.target.namespace, "/", ka.target.name) = default/p', True),
        ('len(concat(ka.verb, "xx")) = 8', True),
        ('toupper(join("-", (ka.verb, ka.target.resource))) = CREATE-PODS', True),
        ('ka.user.name = concat(ka.user.name, "")', True),
        ("tolower(ka.user.groups) intersects (devs)", True),
        ("tolower(ka.user.groups) intersects (system:masters)", False),  # Falco case P20
        ("ka.user.groups intersects (devs)", False),  # case matters without the transformer
        ("toupper(ka.user.groups) in (SYSTEM:AUTHENTICATED, DEVS)", True),
        ("basename(ka.uri) = pods", True),
        ("ka.user.name startswith oneof (admin, root)", True),  # Falco case X01
        ("ka.user.name startswith oneof (admin, adm)", False),  # two match: not exactly one
        ("ka.user.name startswith anyof (admin, adm)", True),
        ("ka.user.name startswith allof (admin, adm)", True),
        ("ka.user.name startswith allof (admin, root)", False),
        ("ka.user.name = anyof (root, admin-x)", True),
        ("ka.user.name != allof (root, admin)", True),
        ("ka.user.name != allof (root, admin-x)", False),
        ("ka.user.name contains allof (adm, -x)", True),
        ("ka.user.name glob anyof ('a*', 'b*')", True),
        ("ka.user.name iglob oneof (ADMIN*, ROOT*)", True),
        ('ka.user.name regex anyof ("adm.*", "x")', True),
        ("ka.user.name endswith anyof ()", False),  # an empty list never matches
        ("ka.user.name != allof ()", False),
        ("toupper(ka.user.name) = oneof (ADMIN-X, ROOT)", True),
        ("ka.verb = anyof (create, update) and ka.target.resource = pods", True),
        ("ka.verb = anyof (get, list)", False),  # a modifier on an index key (verb)
        ("ka.impuser.name = anyof (a, b)", False),  # absent: false
        ("not ka.impuser.name = anyof (a, b)", True),
    ],
)
def test_falco_044_language(tmp_path: Path, condition: str, fires: bool) -> None:
    assert _fires(tmp_path, condition) is fires


def test_modifier_checks_and_transformers_share_memoized_subtrees(tmp_path: Path) -> None:
    """Three checks of one field (the compiler memoizes such a subtree per value) with a
    modifier among them: the modifier is checked against the event, not skipped."""
    condition = (
        "(ka.user.name startswith x or ka.user.name endswith y or "
        "ka.user.name startswith anyof (root, admin))"
    )
    assert _fires(tmp_path, condition)
    assert not _fires(tmp_path, condition, {**EVENT, "user": {"username": "bob"}})


def test_parse_shapes() -> None:
    tree = parse_condition('join(",", ka.user.groups) = a')
    assert isinstance(tree, ast.BinaryCheck)
    assert tree.left == ast.Call(
        0, "join", (ast.Value(5, ","), ast.Field(10, "ka.user.groups", None))
    )
    tree = parse_condition('concat(ka.verb, ("x", 1), tolower(ka.uri)) exists')
    assert isinstance(tree, ast.UnaryCheck) and isinstance(tree.left, ast.Call)
    assert ast.operand_text(tree.left) == 'concat(ka.verb, ("x", "1"), tolower(ka.uri))'
    assert [f.name for f in ast.operand_fields(tree.left)] == ["ka.verb", "ka.uri"]
    tree = parse_condition("ka.user.name startswith  anyof(a, 'b c')")
    assert isinstance(tree, ast.BinaryCheck)
    assert tree.op == "startswith anyof"
    assert tree.right == ast.ListValue(30, ("a", "b c"))
    # Without a list after it, `oneof` is a plain value.
    tree = parse_condition("ka.user.name = oneof")
    assert isinstance(tree, ast.BinaryCheck) and tree.right == ast.Value(15, "oneof")
    operand, end = parse_operand("toupper(ka.user.name) rest")
    assert ast.operand_text(operand) == "toupper(ka.user.name)" and end == 21


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("ka.verb oneof in (get, list)", "expected a valid check operator"),  # Falco case P10
        ("ka.uri contains anyof (watch=true, x=1)", "expected a ')' token"),  # Falco case X03
        ("ka.verb in oneof (get)", "unexpected token"),  # no modifier on list operators
        ('join(",", ) = a', "expected a transformer argument"),
        ('join(",", ((a.b))) = a', "expected a transformer argument"),  # no list in a list
        ('concat(ka.verb, "a"', "expected a ')' token closing the transformer"),
    ],
)
def test_what_falco_refuses_to_parse(condition: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_condition(condition)
    assert message in info.value.message


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("len(evt.rawtime) > 1", "transformer 'len' is not supported on numeric field"),
        ("ka.user.groups startswith anyof (a, b)", "not supported on list field"),
        ("tolower(ka.user.groups) = a", "not supported on list field 'tolower(ka.user.groups)'"),
        ("len(ka.user.groups) contains 1", "not supported on numeric field"),
        ("len(ka.user.groups) > x", "expected a number value"),
        ("ka.user.name regex anyof (ok, 'a(')", "invalid regular expression 'a('"),
        ("join(ka.user.groups) = a", "'join' takes 2 arguments"),
        ('join(",") = a', "'join' takes 2 arguments"),
        ('join("-", ka.verb) = a', "the second argument of 'join' must be a list"),
        ('join(ka.user.groups, ("a", "b")) = a', "the separator of 'join'"),
        ('join("-", ("a", ka.user.groups)) = a', "cannot hold a list"),
        ('concat(ka.user.groups, "a") = a', "the arguments of 'concat' cannot be lists"),
        ("concat(ka.verb) = a", "'concat' takes at least 2 arguments"),
        ('concat("a", "b") = ab', "a transformer must read at least one field"),
        ('join("-", (ka.nosuch, "b")) = a', "unknown field 'ka.nosuch'"),
    ],
)
def test_what_falco_refuses_to_load(tmp_path: Path, condition: str, message: str) -> None:
    with pytest.raises(RuleError) as info:
        _engine(tmp_path, condition)
    assert message in str(info.value)
    assert info.value.line == 3  # the condition's line


EXCEPTIONS = """  exceptions:
  - name: upper_users
    fields: [toupper(ka.user.name), ka.verb]
    comps: [=, =]
    values: [[{user}, create]]
  - name: prefixes
    fields: ka.user.name
    comps: startswith anyof
    values: [{prefix}, zz]
"""


@pytest.mark.parametrize(
    ("user", "prefix", "fires"),
    [
        ("ADMIN-Y", "root", True),  # Falco case X05: no exception applies
        ("ADMIN-X", "root", False),  # the transformed field matches
        ("admin-x", "root", True),  # compared after toupper: the lower-case value differs
        ("ADMIN-Y", "adm", False),  # the modifier comps exception applies
    ],
)
def test_exception_transformers_and_modifiers(
    tmp_path: Path, user: str, prefix: str, fires: bool
) -> None:
    extra = EXCEPTIONS.format(user=user, prefix=prefix)
    assert _fires(tmp_path, "ka.verb = create", extra=extra) is fires


@pytest.mark.parametrize(
    ("fields", "comps", "message"),
    [
        ("[toupper(ka.nosuch)]", "[=]", "'toupper(ka.nosuch)' is not a supported filter field"),
        ("[toupper(ka.user.name]", "[=]", "is not a supported filter field"),
        ("ka.user.name", "startswith someof", "comps must be one of"),
        ("[ka.user.name]", "[in anyof]", "'in anyof' is not a supported comparison operator"),
    ],
)
def test_bad_exceptions(tmp_path: Path, fields: str, comps: str, message: str) -> None:
    extra = (
        f"  exceptions:\n  - name: e\n    fields: {fields}\n    comps: {comps}\n    values: [[a]]\n"
    )
    with pytest.raises(RuleError) as info:
        _engine(tmp_path, "ka.verb = create", extra)
    assert message in str(info.value)


def _alert_engine(tmp_path: Path, output: str, condition: str = "ka.verb exists") -> Engine:
    path = tmp_path / "rules.yaml"
    path.write_text(
        f"- rule: R\n  desc: d\n  condition: {condition}\n  output: '{output}'\n"
        "  priority: NOTICE\n  source: k8s_audit\n"
    )
    return Engine.from_paths([path], extra_fields=[], hostname="h")


def test_transformers_in_outputs_print_but_are_not_output_fields(tmp_path: Path) -> None:
    """Falco case X02: `%len(...)` is printed; `output_fields` has only the plain fields."""
    engine = _alert_engine(
        tmp_path,
        'n=%len(ka.req.pod.containers.image) j=%join("|", tolower(ka.user.groups)) '
        "i=%ka.req.pod.containers.image u=%toupper(ka.user.name) m=%len(ka.impuser.name)",
    )
    (alert,) = engine.evaluate(EVENT)
    assert alert.message == (
        "n=2 j=system:authenticated|devs i=(nginx:1.27,busybox) u=ADMIN-X m=<NA>"
    )
    assert dict(alert.output_fields) == {
        "evt.time": 1773243902100000000,
        "ka.req.pod.containers.image": ["nginx:1.27", "busybox"],
    }


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("%len(ka.nosuch)", "unknown field 'ka.nosuch'"),
        ("%len(evt.rawtime)", "transformer 'len' is not supported on numeric field"),
        ("%join(ka.user.groups)", "'join' takes 2 arguments"),
        ("%tolower(ka.user.name", "expected a ')' token closing the transformer"),
    ],
)
def test_bad_transformers_in_outputs(tmp_path: Path, output: str, message: str) -> None:
    with pytest.raises(RuleError) as info:
        _alert_engine(tmp_path, output)
    assert message in str(info.value)
    assert info.value.line == 4  # the output's line


def test_time_texts_are_nanoseconds_in_output_fields(tmp_path: Path) -> None:
    """Falco cases P21, P27, r10: the line shows each time text; `output_fields` gives the
    event time in nanoseconds (evt.time once: it is the alert's own time field)."""
    import os
    import time

    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        engine = _alert_engine(
            tmp_path,
            "t=%evt.time s=%evt.time.s d=%evt.datetime ds=%evt.datetime.s "
            "iso=%evt.time.iso8601 raw=%evt.rawtime.s",
        )
        (alert,) = engine.evaluate(EVENT)
    finally:
        del os.environ["TZ"]
        time.tzset()
    assert alert.message == (
        "t=15:45:02.100000000 s=15:45:02 d=2026-03-11 15:45:02.100000000 "
        "ds=2026-03-11 15:45:02 iso=2026-03-11T15:45:02.100000000+0000 raw=1773243902"
    )
    ns = 1773243902100000000
    assert list(alert.output_fields.items()) == [  # in Falco's (sorted) key order
        ("evt.datetime", ns),
        ("evt.datetime.s", ns),
        ("evt.rawtime.s", 1773243902),
        ("evt.time", ns),
        ("evt.time.iso8601", ns),
        ("evt.time.s", ns),
    ]


def test_evt_num_numbers_the_events_an_engine_evaluates(tmp_path: Path) -> None:
    """Falco cases P08 and P21: the first event is 1; every event evaluated counts, those
    that raise nothing too."""
    engine = _alert_engine(tmp_path, "num=%evt.num", "evt.num > 1 and ka.verb = create")
    quiet = {**EVENT, "verb": "get"}
    assert engine.evaluate(EVENT) == []  # event 1: evt.num > 1 is false
    assert engine.evaluate(quiet) == []  # event 2: not a create
    (alert,) = engine.evaluate(EVENT)  # event 3
    assert alert.message == "num=3" and alert.output_fields["evt.num"] == 3


def test_evt_hostname_and_asynctype(tmp_path: Path) -> None:
    engine = _alert_engine(tmp_path, "host=%evt.hostname async=%evt.asynctype")
    (alert,) = engine.evaluate(EVENT)
    assert alert.message == "host=h async=<NA>"  # the engine's host name, as the alerts carry
    assert not _fires(tmp_path, "evt.asynctype exists")
    assert _fires(tmp_path, "evt.hostname = h")


def test_an_unknown_rule_key_is_a_warning_as_in_falco_044(tmp_path: Path) -> None:
    """Falco 0.44 warns of keys it does not know in a rule (`warn_unknown_keys`) and loads it."""
    from falconet.rules.loader import load_rules

    path = tmp_path / "rules.yaml"
    path.write_text(
        "- rule: R\n  desc: d\n  condition: ka.verb = create\n  output: o\n"
        "  priority: NOTICE\n  source: k8s_audit\n  severity: high\n"
    )
    rules, ruleset = load_rules([path])
    assert [r.name for r in rules] == ["R"] and not ruleset.errors
    (warning,) = [str(d) for d in ruleset.diagnostics]
    assert f"{path}:7:13: warning:" in warning and "unknown key 'severity' ignored" in warning
