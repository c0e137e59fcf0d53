"""Conditions, outputs and field arguments, placed into a well-formed rules file.

The input is split on NUL bytes into a condition, an output, a field argument and list items; the
first two bytes choose how they are placed (in the rule, through a macro, with a list, as exception
values) and which registered field takes the argument (in the condition, the output, or both).
Loading must end in rules or located diagnostics; when it loads without errors, the engine builds
and evaluates the sample events without an exception, the generated code and the reference
evaluator agree on every event, and every alert serialises.
"""

from __future__ import annotations

import re

from falconet import Engine, fields
from falconet.rules.loader import RuleSet
from falconet.rules.model import PRIORITIES
from tests.conftest import ROOT
from tests.fuzz.events import EVENTS
from tests.fuzz.fuzz_rules import _items
from tests.fuzz.grammar import Stream, condition_of, output_of, scalar

MAX_SECONDS = 5.0
NAME = "fuzz.yaml"
FIELDS = sorted(f.name for f in fields.iter_fields())
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _bundled_definitions() -> list[tuple[str, str]]:
    """(name, item text) of the bundled lists and macros, in file order."""
    out = []
    for item in _items((ROOT / "rules" / "k8s_audit_rules.yaml").read_text()):
        m = re.match(r"- (?:list|macro): (\S+)\n", item)
        if m and "override:" not in item and "append:" not in item:
            out.append((m.group(1), item))
    return out


_DEFINITIONS = _bundled_definitions()


def _definitions(text: str) -> str:
    """The bundled lists and macros `text` names, with those they name, in file order: a
    bundled condition then means what it means in the bundled rules."""
    wanted = set(_WORD.findall(text))
    for name, item in reversed(_DEFINITIONS):  # a definition only names earlier ones
        if name in wanted:
            wanted.update(_WORD.findall(item.split("\n", 1)[1]))
    return "".join(item for name, item in _DEFINITIONS if name in wanted)


def _quoted_arg(arg: str) -> str:
    """A field argument as a quoted condition string (the parser's escapes)."""
    out = []
    for c in arg:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20:
            out.append(f"\\x{ord(c):02x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def rules_text(data: bytes) -> str:
    """The rules file an input stands for."""
    mode = data[0] if data else 0
    field = FIELDS[(data[1] if len(data) > 1 else 0) % len(FIELDS)]
    raw = (data[2:].split(b"\0") + [b"", b"", b"", b""])[:4]
    condition, output, arg, items = (part.decode("utf-8", errors="replace") for part in raw)
    if mode & 0x40:  # the condition and the output from the grammar, not as text
        condition = condition_of(Stream(raw[0]))
        output = output_of(Stream(raw[1]))
    with_arg = f"{field}[{_quoted_arg(arg)}]" if arg else field
    if mode & 4:
        condition = f"({condition}) and {with_arg} exists" if condition else f"{with_arg} exists"
    if mode & 8:
        output = f"{output} %{field}[{arg.split(']')[0]}]" if arg else f"{output} %{field}"
    head = _definitions(condition)
    head += f"- list: fuzz_list\n  items: [{', '.join(scalar(i) for i in items.split(','))}]\n"
    place = mode & 3
    rule_condition = condition
    if place == 1:  # through a macro
        head += f"- macro: fuzz_macro\n  condition: {scalar(condition)}\n"
        rule_condition = "fuzz_macro or ka.verb in (fuzz_list)"
    exceptions = ""
    if place == 2:  # the items as exception values of the argument's field
        values = ", ".join(scalar(i) for i in items.split(","))
        comp = ["=", "in", "startswith", "glob", "regex", "pmatch", "contains", "icontains"][
            (mode >> 4) % 8
        ]
        exceptions = (
            f"  exceptions:\n  - name: fuzz\n    fields: [{field}]\n    comps: [{scalar(comp)}]\n"
            f"    values: [[{values}]]\n"
        )
    if place == 3:  # appended, as a second file would
        head += "- macro: fuzz_macro\n  condition: ka.verb exists\n"
        exceptions = (
            f"- rule: Fuzz\n  condition: {scalar('and (' + condition + ')')}\n"
            "  override:\n    condition: append\n"
        )
        return head + _rule(rule_condition or "fuzz_macro", output, mode) + exceptions
    return head + _rule(rule_condition, output, mode) + exceptions


def _rule(condition: str, output: str, mode: int) -> str:
    return (
        f"- rule: Fuzz\n  desc: fuzzed\n  condition: {scalar(condition)}\n"
        f"  output: {scalar(output)}\n  priority: {PRIORITIES[mode % len(PRIORITIES)]}\n"
        "  source: k8s_audit\n"
    )


def _seeds() -> list[bytes]:
    ruleset = RuleSet()
    ruleset.load_file(ROOT / "rules" / "k8s_audit_rules.yaml")
    seeds = []
    for i, rule in enumerate(ruleset.rules.values()):
        mode = (i * 7) % 256
        field = (i * 13) % 256
        seeds.append(bytes([mode, field]) + f"{rule.condition}\0{rule.output}\0\0a,b".encode())
    seeds += [
        b"\x0c\x00ka.verb=create\0%ka.user.name\0abc\0",
        b"\x08\x00ka.verb=get\0x=%200ka.verb\x000\0",
        b"\x00\x00ka.user.name regex '([a-z]+[.-]?)+@corp[.]com'\0%ka.user.name\0\0",
        b"\x01\x00ka.uri pmatch (/api, /apis/*)\0%ka.uri\0\0/api",
        b"\x02\x00ka.verb=get\0%ka.verb\0\0a b,c",
        b"\x03\x00ka.verb in (fuzz_list) and not ka.user.name startswith system:\0o\0\0get",
        b"\x00\x00tolower(ka.user.name) = val(ka.impuser.name)\0%jevt.value[/user]\0\0",
        b"\x04\x00ka.req.pod.containers.privileged intersects (true)\0o\0" + b"9" * 30 + b"\0",
        *(bytes([0x40 | m, m * 37 % 256]) + bytes(range(m, 256, 3)) for m in range(0, 64, 5)),
    ]
    return seeds


SEEDS = _seeds()


def fuzz_one(data: bytes) -> None:
    ruleset = RuleSet()
    ruleset.load_text(rules_text(data), NAME)
    rules = ruleset.compile()
    for diagnostic in ruleset.diagnostics:
        error = diagnostic.error
        if error.file != NAME or error.line is None or error.column is None:
            raise AssertionError(f"a diagnostic without its place: {diagnostic!r}")
        str(diagnostic)
    if ruleset.errors or not rules:
        return
    matching = "all" if (data[0] if data else 0) & 0x80 else "first"
    engine = Engine(rules, hostname="fuzz", rule_matching=matching)
    for event in EVENTS:
        alerts = engine.evaluate(event)
        if "auditID" in event:
            names = [a.rule for a in alerts]
            if names != engine.matches_reference(event):
                raise AssertionError(f"compiled {names} != reference on {event.get('verb')!r}")
        for alert in alerts:
            alert.to_json()
