"""Detection and false-alarm rates of a ruleset over the labeled corpus (tests/data/labeled/).

    python tools/labeled_score.py                        # the bundled rules (rules/)
    python tools/labeled_score.py --rules /other/rules   # another ruleset, e.g. an older checkout
    python tools/labeled_score.py --rules rules --rules extra.yaml --verbose

The corpus's threat list (tests/data/labeled/threat_intel.yaml, built by `falconet intel` from
threat_feed.txt beside it) is always loaded after the rules, as a user would load theirs.

Every record goes through falconet's decoders (EKS message, GKE LogEntry, AKS diagnostic record)
and the engine with rule_matching=all. An attack is detected when it raises at least one alert of
priority Notice or more severe; a benign case is a false alarm when it raises any such alert.
Rules tagged `correlation_base` never count: a bundled correlation silences them, and their
INFORMATIONAL matches are inputs to counting, not alerts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "data" / "labeled"
THREAT_LIST = "threat_intel.yaml"
NOTICE = 5  # index of Notice in falconet.rules.model.PRIORITIES (Emergency = 0)


def load_cases(corpus: Path = CORPUS) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for path in sorted(corpus.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                cases.append(json.loads(line))
    return cases


def alerts_of(engine: Any, record: dict[str, Any]) -> list[tuple[str, str]]:
    """(rule, priority) of every alert of priority Notice or above the record raises."""
    from falconet.decode import DecodeStats, decode
    from falconet.rules.model import PRIORITIES

    base = {r.name for r in engine.rules if "correlation_base" in (r.tags or ())}
    raised = []
    for event, ctx in decode(json.dumps(record).encode(), stats=DecodeStats()):
        for alert in engine.evaluate(event, ctx):
            if alert.rule in base:
                continue
            if PRIORITIES.index(alert.priority) <= NOTICE:
                raised.append((alert.rule, alert.priority))
    return raised


def score(rules: list[str], corpus: Path = CORPUS) -> dict[str, Any]:
    """Per class: cases, hits (detected attacks or false alarms), and each case's alerts."""
    from falconet import Engine

    paths = [*rules, str(corpus / THREAT_LIST)] if (corpus / THREAT_LIST).exists() else rules
    engine = Engine.from_paths(paths, rule_matching="all", hostname="labeled")
    classes: dict[str, dict[str, Any]] = defaultdict(lambda: {"cases": 0, "hits": 0, "rows": []})
    for case in load_cases(corpus):
        raised = alerts_of(engine, case["record"])
        entry = classes[(case["label"], case["class"])]
        entry["cases"] += 1
        entry["hits"] += bool(raised)
        entry["rows"].append((case["id"], case["note"], raised))
    return classes


def _pct(hits: int, total: int) -> str:
    return f"{hits}/{total} ({100 * hits / total:.0f}%)" if total else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", action="append", help="rules file or directory (repeatable)")
    parser.add_argument("--corpus", default=str(CORPUS), help="directory of *.jsonl cases")
    parser.add_argument("--verbose", action="store_true", help="every case and its alerts")
    args = parser.parse_args(argv)
    classes = score(args.rules or [str(REPO / "rules")], Path(args.corpus))
    totals = {"attack": [0, 0], "benign": [0, 0]}
    print("| label | class | cases | detected / false alarms |")
    print("|---|---|---|---|")
    for (label, cls), entry in sorted(classes.items()):
        totals[label][0] += entry["hits"]
        totals[label][1] += entry["cases"]
        print(f"| {label} | {cls} | {entry['cases']} | {_pct(entry['hits'], entry['cases'])} |")
    print(f"\ndetection rate:   {_pct(*totals['attack'])}")
    print(f"false-alarm rate: {_pct(*totals['benign'])}")
    if args.verbose:
        for (label, cls), entry in sorted(classes.items()):
            for case_id, note, raised in entry["rows"]:
                wrong = bool(raised) != (label == "attack")
                mark = "!!" if wrong else "ok"
                names = ", ".join(f"{r} [{p}]" for r, p in raised) or "-"
                print(f"{mark} {case_id} {cls}: {note}\n     {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
