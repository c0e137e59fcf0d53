"""The `falconet` command's contract for scripts: version, exit status, time window, progress line,
no silent wait on a terminal, and the GeoIP notice only where a location would be shown.

Each test runs the real command: `main(argv)` in this process, or `python -m falconet` in a fresh
one where the terminal (a pseudo-terminal) or the once-per-process notice is what is tested.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from falconet import __version__, cli
from tests.conftest import ROOT

SAMPLE = ROOT / "examples" / "audit-batch.json"  # 6 events, 4 alerts (Warning and above)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FALCONET_")}
    return {**env, "PYTHONPATH": str(ROOT / "functions"), "TZ": "UTC"}


def run(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "falconet", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        timeout=120,
        check=False,
        **kwargs,
    )


def events(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text())
    return list(data["items"] if isinstance(data, dict) else data)


def test_version() -> None:
    done = run("--version")
    assert done.returncode == 0
    assert done.stdout == f"falconet {__version__}\n"


def test_help_lists_every_input_form_and_the_exit_status() -> None:
    done = run("scan", "--help")
    assert done.returncode == 0
    for text in (
        "FILE",
        "DIR",
        "standard input",
        "s3://BUCKET/PREFIX",
        "gs://BUCKET/PREFIX",
        "examples:",
        "falconet scan --since 24h --fail-on warning s3://",
        "exit status:",
        "3  --fail-on P",
        "--progress",
    ):
        assert text in done.stdout, text


@pytest.mark.parametrize(
    ("options", "status"),
    [
        ((), cli.EXIT_OK),
        (("--fail-on", "warning"), cli.EXIT_ALERTS),
        (("--fail-on", "Notice"), cli.EXIT_ALERTS),
        (("--fail-on", "emergency"), cli.EXIT_OK),
    ],
    ids=["alerts-without-fail-on", "warning", "notice", "emergency-none-that-severe"],
)
def test_exit_status_with_fail_on(
    options: tuple[str, ...], status: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["scan", *options, str(SAMPLE)]) == status
    out = capsys.readouterr().out
    assert out.count("\n") == 4  # the alerts are printed either way


def test_fail_on_counts_what_is_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Outside the window: no alert printed, so --fail-on does not fire.
    args = ["scan", "--fail-on", "debug", "--until", "2000-01-01", str(SAMPLE)]
    assert cli.main(args) == cli.EXIT_OK
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "args",
    [
        ("scan", "--fail-on", "severe", str(SAMPLE)),
        ("scan", "--since", "yesterday", str(SAMPLE)),
        ("scan", "--until", "2024-13-01", str(SAMPLE)),
        ("scan", "--no-such-option"),
    ],
    ids=["bad-priority", "bad-since", "bad-until", "unknown-option"],
)
def test_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    done = run(*args)
    assert done.returncode == cli.EXIT_USAGE
    assert "usage: falconet" in done.stderr


def test_errors_exit_1() -> None:
    done = run("scan", "no/such/file.json")
    assert done.returncode == cli.EXIT_ERROR
    assert "falconet: error: no/such/file.json: no such file or directory" in done.stderr


def test_since_until_skip_and_count_events(capsys: pytest.CaptureFixture[str]) -> None:
    times = sorted(e["stageTimestamp"] for e in events(SAMPLE))
    assert len(times) == 6 and times[1] < times[4]
    # since is inclusive, until exclusive: [times[1], times[4])
    assert cli.main(["scan", "--since", times[1], "--until", times[4], str(SAMPLE)]) == 0
    err = capsys.readouterr().err
    inside = sum(times[1] <= t < times[4] for t in times)
    assert f"falconet: {inside} events evaluated, 0 records rejected" in err
    assert f"  skipped: outside --since/--until: {6 - inside}\n" in err


def test_since_accepts_ages_and_dates(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["scan", "--since", "1h", str(SAMPLE)]) == 0  # the sample is older
    assert "skipped: outside --since/--until: 6" in capsys.readouterr().err
    assert cli.main(["scan", "--since", "2000-01-01", str(SAMPLE)]) == 0
    err = capsys.readouterr().err
    assert "falconet: 6 events evaluated" in err
    assert "skipped: outside --since/--until: 0" in err


def test_without_a_window_the_summary_is_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["scan", str(SAMPLE)]) == 0
    assert "outside --since/--until" not in capsys.readouterr().err


def test_no_input_on_a_terminal_exits_2_without_waiting() -> None:
    import pty

    main_fd, terminal = pty.openpty()
    try:
        done = run("scan", stdin=terminal)
    finally:
        os.close(terminal)
        os.close(main_fd)
    assert done.returncode == cli.EXIT_USAGE
    assert done.stderr.startswith("usage: falconet scan")
    assert "no INPUT given and stdin is a terminal" in done.stderr


def test_no_input_reads_a_pipe() -> None:
    done = run("scan", "--fail-on", "warning", input=SAMPLE.read_text())
    assert done.returncode == cli.EXIT_ALERTS
    assert "falconet: 6 events evaluated" in done.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_and_erased_before_the_summary(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    assert cli.main(["scan", str(SAMPLE), str(SAMPLE)]) == 0
    text = err.getvalue()
    assert "\rfalconet: 0/2 objects" in text
    size = SAMPLE.stat().st_size * 2
    assert f"/{size / 1024:.1f} KiB" in text  # the total of local files is known
    assert ", ETA " in text and " events/s" in text
    summary = text.index("falconet: 12 events evaluated")
    assert text[:summary].endswith("\r\x1b[K")  # the line is erased before the summary
    assert capsys.readouterr().out.count("\n") == 8


def test_progress_quiet_when_stderr_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["scan", str(SAMPLE)]) == 0
    assert "\r" not in capsys.readouterr().err


def test_progress_forced_either_way(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["scan", "--progress", str(SAMPLE)]) == 0
    assert "\rfalconet: 0/1 objects" in capsys.readouterr().err
    err = _Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    assert cli.main(["scan", "--no-progress", str(SAMPLE)]) == 0
    assert "\r" not in err.getvalue()


GEOIP_NOTICE = "geolocation is off"


@pytest.mark.parametrize(
    ("options", "notices"),
    [
        ((), 0),
        (("--json",), 0),
        (("--extra-field", "falconet.src.country"), 1),
        (("--summary",), 1),
    ],
    ids=["default", "json", "asks-for-a-location-field", "summary-shows-where"],
)
def test_geoip_notice_only_where_a_location_would_show(
    options: tuple[str, ...], notices: int
) -> None:
    # Two inputs, one process: the notice, when due, is said once.
    done = run("scan", *options, str(SAMPLE), str(SAMPLE))
    assert done.returncode == 0, done.stderr
    assert done.stderr.count(GEOIP_NOTICE) == notices


def test_geoip_notice_for_rules_that_read_a_location(tmp_path: Path) -> None:
    rules = tmp_path / "geo.yaml"
    rules.write_text(
        "- rule: From France\n"
        "  desc: d\n"
        "  condition: ka.verb=create and falconet.src.country=FR\n"
        "  output: create from %falconet.src.country\n"
        "  priority: WARNING\n"
        "  source: k8s_audit\n"
    )
    done = run("scan", "--rules", str(rules), str(SAMPLE))
    assert done.returncode == 0, done.stderr
    assert done.stderr.count(GEOIP_NOTICE) == 1
