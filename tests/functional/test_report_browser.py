"""`falconet scan --report` and `falconet report`, looked at in a real headless browser: Debian's
chromium, driven by playwright's Python package (never `playwright install`: the browser is the
system's). The page renders offline, its plots exist, its numbers are the `--json` output's,
sorting a table works, and a hostile user name or cluster name is shown as text: no markup of
theirs becomes an element and no script of theirs runs.

Skips, saying why, when /usr/bin/chromium (`apt-get install chromium`; .ci/run installs it),
playwright or plotly (the `report` extra) is missing.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ROOT

from falconet import cli

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
HOSTILE_USER = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
HOSTILE_CLUSTER = "<b>prod</b><svg onload=window.__pwned=3>"

pytest.importorskip("plotly", reason="the report needs plotly: pip install 'falconet[report]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (test extra)")
if not CHROMIUM.exists():
    pytest.skip(
        "no /usr/bin/chromium: apt-get install -y chromium (.ci/run does)", allow_module_level=True
    )


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), args=FLAGS, headless=True
        )
        yield context
        context.close()  # playwright ends the browser process it started
    shutil.rmtree(profile, ignore_errors=True)


def hostile_events(path: Path) -> None:
    items = json.loads((ROOT / "examples" / "audit-batch.json").read_text())["items"]
    for item in items:  # one of the users who raise alerts
        if (item.get("user") or {}).get("username") == "toto.tata@example.com":
            item["user"]["username"] = HOSTILE_USER
    path.write_text("\n".join(json.dumps(i) for i in items) + "\n")


def scan_with_report(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> tuple[Path, list[dict[str, Any]]]:
    events = tmp_path / "audit.jsonl"
    hostile_events(events)
    page = tmp_path / "report.html"
    code = cli.main(
        ["scan", "--json", "--cluster", HOSTILE_CLUSTER, "--report", str(page), str(events)]
    )
    assert code == 0
    out = capsysbinary.readouterr().out
    alerts = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert alerts and any(a["output_fields"].get("ka.user.name") == HOSTILE_USER for a in alerts)
    return page, alerts


def open_page(browser: Any, path: Path) -> tuple[Any, list[str]]:
    page = browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None
    )
    page.goto(path.as_uri())
    page.wait_for_selector(".plot .main-svg")
    return page, problems


def table(page: Any, name: str) -> list[list[str]]:
    return page.eval_on_selector_all(
        f"#{name} tbody tr", "rows => rows.map(r => Array.from(r.cells, c => c.textContent))"
    )


def test_the_report_renders_and_its_numbers_are_the_json_outputs(
    browser: Any, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    path, alerts = scan_with_report(tmp_path, capsysbinary)
    page, problems = open_page(browser, path)
    assert problems == []  # no script error, no Content-Security-Policy refusal
    assert page.locator(".plot .main-svg").count() >= 3  # over time, top rules, per cluster
    assert page.locator(".plot .bars path").count() > 0  # plotly drew bars

    figures = dict(table(page, "figures"))
    assert figures["alerts"] == str(len(alerts))
    by_rule = Counter(a["rule"] for a in alerts)
    assert {rule: int(n) for rule, _, n in table(page, "rules")} == dict(by_rule)
    by_user = Counter(a["output_fields"]["ka.user.name"] for a in alerts)
    assert {user: int(n) for user, n in table(page, "users")} == dict(by_user)
    (cluster_row,) = table(page, "clusters")
    assert cluster_row[0] == HOSTILE_CLUSTER and cluster_row[-1] == str(len(alerts))
    page.close()


def test_hostile_names_are_text_and_no_script_of_theirs_runs(
    browser: Any, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    path, _ = scan_with_report(tmp_path, capsysbinary)
    page, problems = open_page(browser, path)
    assert page.evaluate("window.__pwned") is None
    assert problems == []
    assert HOSTILE_USER in page.inner_text("#users")  # shown, as the text it is
    assert page.locator("#users img, #users script, #clusters b, svg[onload]").count() == 0
    assert page.locator("body img, body > script:not([type])").count() == 1  # the page's own
    # In the plot, the hostile cluster is a label's text, not markup.
    labels = page.eval_on_selector_all(
        "#per-cluster .xtick text", "ts => ts.map(t => t.textContent)"
    )
    assert labels == [HOSTILE_CLUSTER[:120]]
    page.close()


def test_sorting_a_table_by_clicking_its_heading(
    browser: Any, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    path, _ = scan_with_report(tmp_path, capsysbinary)
    page, _ = open_page(browser, path)
    names = [row[0] for row in table(page, "users")]
    page.click("#users th:nth-child(1)")
    assert [row[0] for row in table(page, "users")] == sorted(names, reverse=True)
    page.click("#users th:nth-child(1)")
    assert [row[0] for row in table(page, "users")] == sorted(names)
    page.click("#users th:nth-child(2)")
    counts = [int(row[1]) for row in table(page, "users")]
    assert counts == sorted(counts, reverse=True)
    assert page.get_attribute("#users th:nth-child(2)", "aria-sort") == "descending"
    page.close()


def test_a_report_from_saved_json_lines_has_the_same_numbers(
    browser: Any, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    _, alerts = scan_with_report(tmp_path, capsysbinary)
    saved = tmp_path / "alerts.jsonl"
    saved.write_text("".join(json.dumps(a) + "\n" for a in alerts) + "not an alert\n")
    path = tmp_path / "again.html"
    assert cli.main(["report", "-o", str(path), str(saved)]) == 0
    page, problems = open_page(browser, path)
    assert problems == []
    figures = dict(table(page, "figures"))
    assert figures["alerts"] == str(len(alerts))
    assert figures["lines that were not alerts"] == "1"
    assert {rule: int(n) for rule, _, n in table(page, "rules")} == dict(
        Counter(a["rule"] for a in alerts)
    )
    page.close()
