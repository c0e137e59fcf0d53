"""`falconet validate` pinpoints problems: FILE:LINE:COL, the item's name, the message."""

from __future__ import annotations

from pathlib import Path

import pytest

from falconet import Engine, RuleError
from falconet.cli import main
from falconet.errors import (
    FieldArgumentError,
    MacroLoopError,
    OperatorError,
    RuleLimitError,
    UndefinedMacroError,
    UnknownFieldError,
)

HEADER = "- required_engine_version: 15\n"
RULE = """- rule: R
  desc: d
  condition: {condition}
  output: out %ka.user.name
  priority: WARNING
  source: k8s_audit
"""


def validate(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    code = main(["validate", str(path)])
    return code, capsys.readouterr().err


def first_line(err: str) -> str:
    return err.splitlines()[0]


def test_unknown_field_with_suggestion(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = validate(
        tmp_path, HEADER + RULE.format(condition="ka.verb=create and ka.usr.name=x"), capsys
    )
    assert code == 1
    assert first_line(err) == (
        f"{tmp_path}/rules.yaml:4:33: error: rule 'R': unknown field 'ka.usr.name' "
        "(did you mean 'ka.user.name'?)"
    )
    assert "^" in err  # a caret under the condition


def test_bad_operator_for_list_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = validate(
        tmp_path, HEADER + RULE.format(condition='ka.user.groups contains "x"'), capsys
    )
    assert code == 1
    assert first_line(err) == (
        f"{tmp_path}/rules.yaml:4:14: error: rule 'R': operator 'contains' not supported on list "
        "field 'ka.user.groups' (list fields accept only 'in', 'intersects' and 'exists')"
    )


def test_undefined_macro(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = validate(
        tmp_path, HEADER + RULE.format(condition="ka.verb=get and nosuchmacro"), capsys
    )
    assert code == 1
    assert first_line(err) == (
        f"{tmp_path}/rules.yaml:4:30: error: rule 'R': "
        "Undefined macro 'nosuchmacro' used in filter."
    )


def test_macro_loop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = HEADER + (
        "- macro: a\n  condition: ka.verb=get\n"
        "- macro: b\n  condition: a and ka.verb=list\n"
        "- macro: a\n  condition: b or ka.verb=watch\n"
    )
    code, err = validate(tmp_path, text, capsys)
    assert code == 1
    # Diagnostics come in line order: b's use of the broken 'a' (line 5) before the loop (7).
    assert (
        f"{tmp_path}/rules.yaml:7:14: error: macro 'a': reference loop in macro 'a' (a -> b -> a)"
    ) in err.splitlines()


def test_macro_may_not_use_a_later_macro(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = HEADER + "- macro: a\n  condition: b\n- macro: b\n  condition: ka.verb=get\n"
    code, err = validate(tmp_path, text, capsys)
    assert code == 1
    assert first_line(err) == (
        f"{tmp_path}/rules.yaml:3:14: error: macro 'a': Undefined macro 'b' used in filter."
    )


def test_append_to_missing_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = HEADER + "- rule: Nope\n  condition: and ka.verb=get\n  append: true\n"
    code, err = validate(tmp_path, text, capsys)
    assert code == 1
    assert (
        f"{tmp_path}/rules.yaml:2:3: error: rule 'Nope': Rule has 'append' key but no rule by that "
        "name already exists"
    ) in err.splitlines()


def test_invalid_priority(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = HEADER + RULE.format(condition="ka.verb=get").replace("WARNING", "LOUD")
    code, err = validate(tmp_path, text, capsys)
    assert code == 1
    assert first_line(err) == (
        f"{tmp_path}/rules.yaml:6:13: error: rule 'R': Invalid priority 'LOUD' (expected one of "
        "Emergency, Alert, Critical, Error, Warning, Notice, Informational, Debug)"
    )


def test_yaml_syntax_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = HEADER + "- rule: R\n  condition: [unclosed\n  desc: x\n"
    code, err = validate(tmp_path, text, capsys)
    assert code == 1
    line = first_line(err)
    assert line.startswith(f"{tmp_path}/rules.yaml:4:")
    assert "error: YAML syntax error" in line


def test_every_problem_is_reported_in_one_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        HEADER
        + RULE.format(condition="ka.nope=1")
        + RULE.format(condition="undefined_thing").replace("rule: R", "rule: S")
    )
    code, err = validate(tmp_path, text, capsys)
    assert code == 1
    assert "rule 'R': unknown field 'ka.nope'" in err
    assert "rule 'S': Undefined macro 'undefined_thing'" in err


def test_valid_file_reports_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(HEADER + RULE.format(condition="ka.verb=get"))
    assert main(["validate", str(path)]) == 0
    assert "ok: 1 k8s_audit rules, 0 error(s)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("condition", "error"),
    [
        ("ka.usr.name=x", UnknownFieldError),
        ("ka.user.groups = x", OperatorError),
        ("missing_macro", UndefinedMacroError),
    ],
)
def test_engine_raises_rule_error_subclasses(
    tmp_path: Path, condition: str, error: type[RuleError]
) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(HEADER + RULE.format(condition=condition))
    with pytest.raises(error) as info:
        Engine.from_paths([path])
    assert info.value.file == str(path)
    assert info.value.item == "R"
    assert info.value.line == 4


def test_loop_is_a_macro_loop_error(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        HEADER
        + "- macro: a\n  condition: ka.verb=get\n- macro: a\n  condition: a\n"
        + RULE.format(condition="a")
    )
    with pytest.raises(MacroLoopError):
        Engine.from_paths([path])


def test_regex_re2_rejects_is_an_error_at_its_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Falco compiles `regex` operands with RE2 in POSIX mode, which has no `\d`: a load error
    # there, and here (Python's `re` accepted it and matched with backtracking).
    text = HEADER + RULE.format(condition="ka.verb=get and ka.useragent regex kubectl/v\\d+")
    code, err = validate(tmp_path, text, capsys)
    assert code == 1
    assert err.splitlines()[:3] == [
        f"{tmp_path}/rules.yaml:4:49: error: rule 'R': invalid regular expression "
        "'kubectl/v\\d+': invalid escape sequence: \\d",
        "    (ka.verb=get and ka.useragent regex kubectl/v\\d+)",
        "                                        ^",
    ]


@pytest.mark.parametrize("op", ["regex", "pmatch"])
def test_regex_and_pmatch_take_no_field_on_their_right(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], op: str
) -> None:
    # A pattern read from the event would be compiled (and could backtrack) per event; libsinsp
    # rejects it at load time.
    text = HEADER + RULE.format(condition=f"ka.user.name {op} val(ka.target.name)")
    code, err = validate(tmp_path, text, capsys)
    assert code == 1
    column = 14 + len(f"ka.user.name {op} ")  # the val( operand
    assert first_line(err) == (
        f"{tmp_path}/rules.yaml:4:{column}: error: rule 'R': operator '{op}' doesn't support "
        "right-hand side fields"
    )


OUTPUT_RULE = """- rule: R
  desc: d
  condition: ka.verb=get
  output: "{output}"
  priority: WARNING
  source: k8s_audit
"""


def test_output_field_arguments_are_checked_at_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Outputs were never checked: this loaded, then every alert on a pod with ports raised
    # ValueError (int('abc')) while it was being formatted.
    output = "ports=%ka.req.pod.containers.host_port[abc] user=%ka.user.name"
    code, err = validate(tmp_path, HEADER + OUTPUT_RULE.format(output=output), capsys)
    assert code == 1
    assert err.splitlines()[:3] == [
        f"{tmp_path}/rules.yaml:5:18: error: rule 'R': field "
        "'ka.req.pod.containers.host_port' takes a numeric index argument, got 'abc'",
        "    ports=%ka.req.pod.containers.host_port[abc] user=%ka.user.name",
        "          ^",
    ]


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("%ka.verb[x]", "field 'ka.verb' does not take an argument"),
        ("%jevt.value", "field 'jevt.value' requires an argument"),
        ("%ka.uri.param", "field 'ka.uri.param' requires an argument"),
    ],
)
def test_output_arguments_follow_the_condition_rules(
    tmp_path: Path, output: str, message: str
) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(HEADER + OUTPUT_RULE.format(output=output))
    with pytest.raises(FieldArgumentError) as info:
        Engine.from_paths([path])
    assert info.value.message == message
    # at the field in the output line, not at the rule
    assert (info.value.item, info.value.line, info.value.column) == ("R", 5, 12)


def test_output_width_is_capped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Each alert of this rule was 200 MB (the verb padded to 200,000,000 characters).
    code, err = validate(
        tmp_path, HEADER + OUTPUT_RULE.format(output="v=%200000000ka.verb"), capsys
    )
    assert code == 1
    assert first_line(err) == (
        f"{tmp_path}/rules.yaml:5:14: error: rule 'R': output field width 200000000 exceeds the "
        "limit of 1024"
    )
    path = tmp_path / "r.yaml"
    path.write_text(HEADER + OUTPUT_RULE.format(output="%99999999999999999999999ka.verb"))
    with pytest.raises(RuleLimitError, match="width 999999999999... exceeds the limit of 1024"):
        Engine.from_paths([path])


@pytest.mark.parametrize(
    ("item", "message"),
    [
        # An empty or null list name matched everywhere in condition text: the substitution of
        # this list into the rule below never ended.
        ('- list: ""\n  items: [a, b]\n', "1:9: error: Value for key 'list' must be non-empty"),
        ("- list:\n  items: [a, b]\n", "1:3: error: Mapping for key 'list' is empty"),
        (
            "- macro: ''\n  condition: ka.verb=get\n",
            "1:10: error: Value for key 'macro' must be non-empty",
        ),
        ("- macro: ~\n  condition: ka.verb=get\n", "1:3: error: Mapping for key 'macro' is empty"),
    ],
)
def test_names_must_not_be_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], item: str, message: str
) -> None:
    code, err = validate(tmp_path, item + RULE.format(condition="ka.verb in (x, y)"), capsys)
    assert code == 1
    assert err.splitlines() == [f"{tmp_path}/rules.yaml:{message}"]  # the rule still loads


@pytest.mark.parametrize(
    ("version", "shown"),
    [
        ('"²"', "²"),  # str.isdigit() is true, int() refused it: a ValueError traceback
        ("9" * 5000, "9" * 64 + "..."),  # over Python's 4,300 digits for int(): a traceback
        ("1.2.99999999999", "1.2.99999999999"),  # not a uint32
        ("١.٢.٣", "١.٢.٣"),  # Arabic-Indic digits matched \d
    ],
)
def test_required_engine_version_is_ascii_digits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], version: str, shown: str
) -> None:
    text = f"- required_engine_version: {version}\n" + RULE.format(condition="ka.verb=get")
    code, err = validate(tmp_path, text, capsys)
    assert code == 1
    assert first_line(err) == (
        f"{tmp_path}/rules.yaml:1:28: error: required_engine_version '{shown}' is not a valid "
        "version"
    )


def test_plugin_alternatives_are_listed_up_to_ten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 26,000 alternatives took 18 s (a list searched per name) and a 1 MB message.
    alternatives = "".join(f"    - name: p{i}\n      version: 1.0.0\n" for i in range(2000))
    text = (
        "- required_plugin_versions:\n  - name: k8saudit\n    version: 99.0.0\n"
        "    alternatives:\n" + alternatives + RULE.format(condition="ka.verb=get")
    )
    code, err = validate(tmp_path, text, capsys)
    assert code == 1
    assert first_line(err) == (
        f"{tmp_path}/rules.yaml:2:5: error: Plugin requirement not satisfied, must load one of: "
        "k8saudit (99.0.0), p0 (1.0.0), p1 (1.0.0), p2 (1.0.0), p3 (1.0.0), p4 (1.0.0), "
        "p5 (1.0.0), p6 (1.0.0), p7 (1.0.0), p8 (1.0.0) and 1991 more (falconet emulates "
        "k8saudit 0.18.0, k8saudit-eks 0.12.0, k8saudit-gke 0.9.0, k8saudit-aks 0.6.0, json 0.7.4)"
    )


@pytest.mark.parametrize("transformer", ["tolower", "toupper", "b64", "basename"])
def test_string_transformers_refuse_numeric_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], transformer: str
) -> None:
    # Found by fuzzing: this loaded, then the compiled code passed an int to the transformer on
    # every event (AttributeError / TypeError); libsinsp takes string types only.
    condition = f"{transformer}(evt.rawtime.ns) endswith 5"
    code, err = validate(tmp_path, HEADER + RULE.format(condition=condition), capsys)
    assert code == 1
    assert first_line(err) == (
        f"{tmp_path}/rules.yaml:4:14: error: rule 'R': transformer '{transformer}' is not "
        "supported on numeric field 'evt.rawtime.ns'"
    )


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (
            "evt.rawtime.ns < val(ka.verb)",
            "field 'evt.rawtime.ns' (number) cannot be compared with field 'ka.verb' (string)",
        ),
        (
            "ka.user.name < val(evt.rawtime.ns)",
            "field 'ka.user.name' (string) cannot be compared with field 'evt.rawtime.ns' (number)",
        ),
    ],
)
def test_a_field_on_the_right_has_the_type_of_the_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], condition: str, message: str
) -> None:
    # Found by fuzzing: these loaded, then every event raised ValueError (int('get')) or
    # TypeError (str < int) in the comparison; libsinsp checks both sides' types at load.
    code, err = validate(tmp_path, HEADER + RULE.format(condition=condition), capsys)
    assert code == 1
    column = 14 + condition.index("val(")
    assert first_line(err) == f"{tmp_path}/rules.yaml:4:{column}: error: rule 'R': {message}"


# -- issue 14, item 4: every problem of a rule, each at its own line, in line order -----------


def test_rule_without_source_reading_k8s_fields_is_an_error_at_the_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Falco 0.44 fails to load it (conformance case P22_no_source); falconet used to skip it as
    # a syscall rule with a file-wide warning that named neither the rule nor its line.
    text = HEADER + "- rule: Forgot Source\n  desc: d\n  condition: ka.verb=get\n"
    text += "  output: out %ka.user.name\n  priority: WARNING\n"
    code, err = validate(tmp_path, text, capsys)
    assert code == 1
    assert err.splitlines() == [
        f"{tmp_path}/rules.yaml:2:3: error: rule 'Forgot Source': rule has no 'source', so it is "
        "a 'syscall' rule (Falco's default), and a 'syscall' rule cannot read 'ka.user.name': "
        "Falco fails to load it. Add 'source: k8s_audit'"
    ]


def test_syscall_rule_without_source_is_still_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = HEADER + "- rule: Shell\n  desc: d\n  condition: evt.type=execve and proc.name=bash\n"
    text += "  output: '%proc.name'\n  priority: WARNING\n"
    code, err = validate(tmp_path, text, capsys)
    assert code == 0
    assert "skipped 1 rule(s) of source 'syscall'" in err


def test_unknown_output_field_is_reported_at_the_output_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = HEADER + (
        "- rule: R\n  desc: d\n  condition: ka.verb=get\n"
        "  output: >\n    first line %ka.verb\n    second %ka.nosuch\n"
        "  priority: WARNING\n  source: k8s_audit\n"
    )
    code, err = validate(tmp_path, text, capsys)
    assert code == 1
    assert first_line(err) == (
        f"{tmp_path}/rules.yaml:7:12: error: rule 'R': unknown field 'ka.nosuch' in output"
    )


def test_bad_priority_does_not_hide_the_rules_other_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = HEADER + (
        "- rule: R\n  desc: d\n  condition: ka.verb=get and ka.nosuch=1\n"
        "  output: out %ka.nope\n  priority: SEVERE\n  source: k8s_audit\n"
        "- rule: S\n  desc: d\n  condition: ka.verb=list\n"
        "  output: out\n  priority: WARNING\n  source: k8s_audit\n"
    )
    code, err = validate(tmp_path, text, capsys)
    assert code == 1
    located = [line.split(": error: ")[0] for line in err.splitlines() if ": error: " in line]
    # in line order: the condition (line 4), the priority (line 6)
    assert located == [f"{tmp_path}/rules.yaml:4:30", f"{tmp_path}/rules.yaml:6:13"]
    assert "unknown field 'ka.nosuch'" in err
    assert "Invalid priority 'SEVERE'" in err
    assert err.count("error:") == 2


def test_bad_priority_rule_is_not_loaded(tmp_path: Path) -> None:
    from falconet.rules.loader import load_rules

    path = tmp_path / "rules.yaml"
    path.write_text(
        HEADER + "- rule: R\n  desc: d\n  condition: ka.verb=get\n"
        "  output: out\n  priority: SEVERE\n  source: k8s_audit\n"
    )
    rules, ruleset = load_rules([path])
    assert rules == []
    assert [e.line for e in ruleset.errors] == [6]
