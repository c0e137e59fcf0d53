"""The report page without a browser (tests/functional/test_report_browser.py opens it in one):
what is counted, and that event text never reaches the page as markup."""

from __future__ import annotations

import re

import pytest

from falconet.report import CORRELATIONS_KEPT, Report, read_alerts, render

pytest.importorskip("plotly", reason="the report needs plotly: pip install 'falconet[report]'")

HOSTILE = "</script><script>alert(1)</script><img src=x onerror=alert(2)>"


def alert(n: int, **fields: object) -> dict[str, object]:
    return {
        "rule": "R<b>" if n % 2 else "Plain",
        "priority": "Warning" if n % 3 else "Critical",
        "time": "2026-03-11T15:45:00.000000000Z",
        "output_fields": {
            "evt.time": 1_773_243_900_000_000_000 + n * 60_000_000_000,
            "ka.user.name": HOSTILE,
            "falconet.src.ip": "81.2.69.160",
            "falconet.src.country": "GB",
            "falconet.cluster": "prod",
            **fields,
        },
    }


def test_counts_and_a_page_with_no_markup_of_the_events() -> None:
    report = Report()
    report.add_all(alert(n) for n in range(30))
    assert report.alerts == 30
    assert report.by_priority == {"Warning": 20, "Critical": 10}
    assert report.users == {HOSTILE: 30} and report.countries == {"81.2.69.160": "GB"}
    page = render(report, title=HOSTILE)
    body = page.split("</head>", 1)[1]
    assert HOSTILE not in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in body
    # Only the page's own scripts: the plotly bundle, three figures' JSON, the sorting code.
    assert len(re.findall(r"<script\b", page)) == 1 + 3 + 1
    assert "<b>" not in body
    csp = re.search(r'Content-Security-Policy" content="([^"]+)"', page)
    assert csp is not None and "default-src 'none'" in csp.group(1)
    assert "unsafe-inline" not in csp.group(1).split("script-src", 1)[1]


def test_correlations_are_kept_with_their_windows_and_bounded() -> None:
    report = Report()
    for n in range(CORRELATIONS_KEPT + 5):
        report.add(
            alert(
                n,
                **{
                    "falconet.correlation.name": "Burst",
                    "falconet.correlation.type": "event_count",
                    "falconet.correlation.window_start": "2026-03-11T15:00:00Z",
                    "falconet.correlation.window_end": "2026-03-11T16:00:00Z",
                    "falconet.correlation.count": 7,
                    "ka.target.namespace": "prod",
                    "group.key": "alice",
                },
            )
        )
    assert report.correlation_total == CORRELATIONS_KEPT + 5
    assert len(report.correlations) == CORRELATIONS_KEPT
    first = report.correlations[0]
    assert first["window_start"] == "2026-03-11T15:00:00Z" and first["count"] == "7"
    assert first["group"] == "group.key=alice"


def test_json_lines_that_are_not_alerts_are_counted_not_kept() -> None:
    alerts, skipped = read_alerts([b'{"rule": "R", "priority": "Notice"}', b"nope", b"[1]", b""])
    assert alerts == [{"rule": "R", "priority": "Notice"}] and skipped == 2
