"""The rules loader (`RuleSet.load_text`, `compile`): any bytes as a rules file someone else wrote.

Every input must end in rules or diagnostics: no exception escapes, every diagnostic names the file,
a line and a column, and every limit holds (a hang or a memory blow-up is a finding: the runner
stops an input after MAX_SECONDS and at 2 GB). When the rules load without errors the engine builds
and evaluates a few events, so what the loader accepts the compiler takes.

An input starting with a NUL byte is not text: its bytes choose the items of a rules file by the
grammar (`grammar.rules_file`), which reaches the checks behind a parse far more often.

Seeds: the bundled rules cut into runs of items, the rules files of ../shared/conformance (when
present), small forms of the hostile files of the hardening issue (aliases, doubling and deep
macros, empty names, versions, widths, arguments), and a few grammar inputs.
"""

from __future__ import annotations

from falconet import Engine
from falconet.rules.loader import RuleSet
from tests.conftest import ROOT
from tests.fuzz.events import EVENTS
from tests.fuzz.grammar import rules_file

MAX_SECONDS = 5.0
NAME = "fuzz.yaml"


def _items(text: str) -> list[str]:
    """The top-level items of a rules file, as text."""
    items: list[str] = []
    for line in text.splitlines(keepends=True):
        if line.startswith("- ") or not items:
            items.append(line)
        else:
            items[-1] += line
    return items


def _seeds() -> list[bytes]:
    bundled = _items((ROOT / "rules" / "k8s_audit_rules.yaml").read_text())
    seeds = ["".join(bundled[i : i + 12]) for i in range(0, len(bundled), 12)]
    shared = ROOT.parent / "shared" / "conformance"
    if shared.is_dir():
        seeds += [
            p.read_text(errors="replace")
            for p in sorted(shared.glob("**/*.yaml"))
            if "rules" in p.name or p.parent.name == "falco-0.44"
            if p.stat().st_size < 65536
        ]
    rule = "- rule: R\n  desc: d\n  condition: {}\n  output: {}\n  priority: WARNING\n"
    rule += "  source: k8s_audit\n"
    seeds += [
        "- list: a\n  items: &x [b, c]\n- list: d\n  items: [*x, *x]\n" + rule.format("x", "o"),
        '- list: ""\n  items: [a]\n' + rule.format("ka.verb in (a)", "o"),
        "- macro: m0\n  condition: ka.verb=get\n- macro: m1\n  condition: (m0 or m0)\n"
        + rule.format("m1 and not m0", "o %ka.user.name"),
        "- macro: m\n  condition: not (ka.verb=get and (ka.user.name=x or ka.uri=y))\n"
        + rule.format("m", "o"),
        '- required_engine_version: "0.26.0"\n- required_plugin_versions:\n'
        "  - name: k8saudit\n    version: 0.1.0\n",
        rule.format("ka.verb=get", '"%20ka.verb %ka.req.pod.containers.host_port[0]"'),
        rule.format("ka.user.name regex 'a(b|c)+'", '"%jevt.value[/user/username]"'),
        rule.format("ka.verb=get", "o").rstrip("\n")
        + "\n  exceptions:\n  - name: e\n    fields: [ka.user.name, ka.verb]\n"
        "    comps: [startswith, in]\n    values: [[a, [get, list]]]\n",
        rule.format("ka.verb=get", "o")
        + "- rule: R\n  condition: or ka.verb=list\n  override:\n    condition: append\n",
    ]
    grammar = [b"\0" + bytes(range(start, 256, step)) for start, step in ((0, 1), (7, 3), (1, 5))]
    return [s.encode() for s in seeds] + grammar


SEEDS = _seeds()


def fuzz_one(data: bytes) -> None:
    if data.startswith(b"\0"):  # the rest chooses the productions of a rules file (grammar)
        text = rules_file(data[1:])
    else:
        text = data.decode("utf-8", errors="replace")
    ruleset = RuleSet()
    ruleset.load_text(text, NAME)
    rules = ruleset.compile()
    ruleset.finish_warnings()
    for diagnostic in ruleset.diagnostics:
        error = diagnostic.error
        if error.file != NAME or error.line is None or error.column is None:
            raise AssertionError(f"a diagnostic without its place: {diagnostic!r}")
        str(diagnostic)  # renders
    if ruleset.errors or not rules:
        return
    engine = Engine(rules, hostname="fuzz", rule_matching="all")
    for event in EVENTS:
        for alert in engine.evaluate(event):
            alert.to_json()
