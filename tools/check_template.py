"""Offline checks of a SAM template, the ones CI runs (`make validate`):

    1. sam validate               SAM's translator accepts the template
    2. sam validate --lint        SAM's schema and cfn-lint's SAM-aware rules
    3. tools/sam2cfn.py           SAM's translator, offline: the template becomes CloudFormation
    4. cfn-lint <translated>      cfn-lint on that CloudFormation: circular dependencies, bad
                                  `!GetAtt`, bad runtimes (which 1 and 2 miss)

    .venv-tools/bin/python tools/check_template.py template.yaml [--keep build/cfn.json]

Run with the tools venv's Python: `sam` and `cfn-lint` are taken from the same bin directory. No AWS
credentials or network are used (a region is set because `sam validate` insists on one). Prints
every check's output and exits 1 if any failed, 0 otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TOOLS_BIN = Path(sys.executable).parent
REGION = os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def _env() -> dict[str, str]:
    env = dict(os.environ, AWS_DEFAULT_REGION=REGION, SAM_CLI_TELEMETRY="0")
    # Offline means no credentials either: nothing here may reach an AWS account.
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        env.pop(name, None)
    return env


def run(title: str, command: list[str]) -> tuple[bool, str]:
    """Run one check; its success and its report (output shown only when it failed)."""
    result = subprocess.run(command, capture_output=True, text=True, env=_env(), check=False)
    output = (result.stdout + result.stderr).strip()
    status = "ok" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
    report = f"== {title}: {status}"
    if output and result.returncode != 0:
        report += "\n" + output
    return result.returncode == 0, report


def run_chain(steps: list[tuple[str, list[str]]]) -> list[tuple[bool, str]]:
    """Run `steps` in order, stopping at the first failure (a later step needs its output)."""
    results = []
    for title, command in steps:
        results.append(run(title, command))
        if not results[-1][0]:
            break
    return results


def check(template: Path, keep: Path | None = None) -> bool:
    """Run the four checks on `template`, print their reports in order; True when all pass.

    The three independent chains run in parallel: each step is a process of a few seconds.
    """
    sam = [str(TOOLS_BIN / "sam"), "validate", "--region", REGION, "-t", str(template)]
    sam2cfn = [sys.executable, str(Path(__file__).with_name("sam2cfn.py"))]
    with tempfile.TemporaryDirectory() as scratch:
        translated = str(keep or Path(scratch) / "cfn.json")
        chains = [
            [("sam validate", sam)],
            [("sam validate --lint", [*sam, "--lint"])],
            [
                ("SAM -> CloudFormation", [*sam2cfn, str(template), translated]),
                ("cfn-lint (translated)", [str(TOOLS_BIN / "cfn-lint"), translated]),
            ],
        ]
        with ThreadPoolExecutor(max_workers=len(chains)) as pool:
            results = [step for chain in pool.map(run_chain, chains) for step in chain]
    for _, report in results:
        print(report)
    return all(passed for passed, _ in results)


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 4) or (len(argv) == 4 and argv[2] != "--keep"):
        print("usage: check_template.py TEMPLATE [--keep OUT.json]", file=sys.stderr)
        return 2
    keep = Path(argv[3]) if len(argv) == 4 else None
    return 0 if check(Path(argv[1]), keep) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
