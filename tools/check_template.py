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
from pathlib import Path

TOOLS_BIN = Path(sys.executable).parent
REGION = os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def _env() -> dict[str, str]:
    env = dict(os.environ, AWS_DEFAULT_REGION=REGION, SAM_CLI_TELEMETRY="0")
    # Offline means no credentials either: nothing here may reach an AWS account.
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        env.pop(name, None)
    return env


def run(title: str, command: list[str]) -> bool:
    result = subprocess.run(command, capture_output=True, text=True, env=_env(), check=False)
    output = (result.stdout + result.stderr).strip()
    status = "ok" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
    print(f"== {title}: {status}")
    if output and result.returncode != 0:
        print(output)
    return result.returncode == 0


def check(template: Path, keep: Path | None = None) -> bool:
    """Run the four checks on `template`; True when all pass."""
    sam = str(TOOLS_BIN / "sam")
    ok = run("sam validate", [sam, "validate", "--region", REGION, "-t", str(template)])
    ok = (
        run(
            "sam validate --lint",
            [sam, "validate", "--lint", "--region", REGION, "-t", str(template)],
        )
        and ok
    )
    with tempfile.TemporaryDirectory() as scratch:
        translated = keep or Path(scratch) / "cfn.json"
        sam2cfn = [sys.executable, str(Path(__file__).with_name("sam2cfn.py"))]
        if run("SAM -> CloudFormation", [*sam2cfn, str(template), str(translated)]):
            ok = run("cfn-lint (translated)", [str(TOOLS_BIN / "cfn-lint"), str(translated)]) and ok
        else:
            ok = False
    return ok


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 4) or (len(argv) == 4 and argv[2] != "--keep"):
        print("usage: check_template.py TEMPLATE [--keep OUT.json]", file=sys.stderr)
        return 2
    keep = Path(argv[3]) if len(argv) == 4 else None
    return 0 if check(Path(argv[1]), keep) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
