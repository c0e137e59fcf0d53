"""The HTML report of a scan or a backtest run: one self-contained page, made to be looked at.

    report = Report()                       # fed alert by alert (a scan's, or JSON lines read back)
    report.add(alert.to_dict())
    report.figures.update(events=..., rejected={...}, seconds=...)
    Path("report.html").write_text(render(report, title="falconet scan"))

What the page shows: the run's figures (events, alerts, records rejected by reason, objects done
and failed for a fan-out run); alerts over time per priority; top rules; alerts per cluster and
priority; top identities and source addresses (with country when GeoIP was on); the correlation
alerts with their windows. Plots are drawn by plotly (its JavaScript inlined, so the page works
offline: `pip install 'falconet[report]'`); tables are sortable by clicking a column heading.

Hostile content: user names, addresses, object keys, even rule and cluster names come from event
content or from other people's files. Every such text reaches the page only (a) HTML-escaped in
a table cell, or (b) inside a plotly figure's JSON, in a `<script type="application/json">`
block with every `<` written `\\u003c`, and the labels themselves HTML-escaped (plotly reads a few
tags in labels; an escaped label is shown as the text it is). The page's Content-Security-Policy
allows only its own two scripts (by their SHA-256), no other source, no network: markup that got
through anyway could not run or fetch anything.

Memory is bounded whatever the number of alerts: counters per minute, per rule, per identity and
address, and at most CORRELATIONS_KEPT correlation alerts.
"""

from __future__ import annotations

import base64
import hashlib
import html
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from falconet.engine import DEFAULT_EXTRA_FIELDS
from falconet.errors import ConfigError
from falconet.rules.model import PRIORITIES as PRIORITY_ORDER

if TYPE_CHECKING:
    from falconet.state.runs import RunStatus

TOP = 25  # rows of the top-N tables
CORRELATIONS_KEPT = 500
MAX_BINS = 200  # bars of the alerts-over-time plot
COLORS = {
    "Emergency": "#67000d",
    "Alert": "#a50f15",
    "Critical": "#d62728",
    "Error": "#ff7f0e",
    "Warning": "#ffbb33",
    "Notice": "#1f77b4",
    "Informational": "#7fb3d5",
    "Debug": "#aaaaaa",
}
_USER = ("ka.user.name",)
_SOURCE = ("falconet.src.ip",)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    return str(value)


@dataclass(slots=True)
class Report:
    """Counters of alerts, plus the run's figures (`figures`, free-form: shown as a table)."""

    minutes: Counter[tuple[int, str]] = field(default_factory=Counter)  # (epoch minute, prio)
    rules: Counter[tuple[str, str]] = field(default_factory=Counter)  # (rule, priority)
    clusters: Counter[tuple[str, str]] = field(default_factory=Counter)  # (cluster, priority)
    users: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)
    countries: dict[str, str] = field(default_factory=dict)  # source address -> country
    correlations: list[dict[str, str]] = field(default_factory=list)
    correlation_total: int = 0
    alerts: int = 0
    figures: dict[str, Any] = field(default_factory=dict)
    rejected: Counter[str] = field(default_factory=Counter)

    def add(self, alert: Mapping[str, Any]) -> None:
        """One alert, as Falco JSON (`Alert.to_dict()`, or a line of `scan --json`)."""
        fields = alert.get("output_fields")
        fields = fields if isinstance(fields, Mapping) else {}
        priority = _text(alert.get("priority")) or "Unknown"
        rule = _text(alert.get("rule"))
        self.alerts += 1
        stamp = fields.get("evt.time")
        minute = stamp // 60_000_000_000 if isinstance(stamp, int) else _minute(alert.get("time"))
        if minute is not None:
            self.minutes[(minute, priority)] += 1
        self.rules[(rule, priority)] += 1
        cluster = _text(fields.get("falconet.cluster") or fields.get("ka.cluster.name"))
        self.clusters[(cluster or "(unknown)", priority)] += 1
        for name in _USER:
            if fields.get(name):
                self.users[_text(fields[name])] += 1
        for name in _SOURCE:
            if fields.get(name):
                address = _text(fields[name])
                self.sources[address] += 1
                country = fields.get("falconet.src.country")
                if country and address not in self.countries and len(self.countries) < 100_000:
                    self.countries[address] = _text(country)
        if "falconet.correlation.name" in fields:
            self.correlation_total += 1
            if len(self.correlations) < CORRELATIONS_KEPT:
                group = ", ".join(
                    f"{k}={_text(v)}"
                    for k, v in fields.items()
                    if not k.startswith(("falconet.", "evt.")) and k not in _DEFAULT_FIELDS
                )
                self.correlations.append(
                    {
                        "correlation": _text(fields.get("falconet.correlation.name")),
                        "type": _text(fields.get("falconet.correlation.type")),
                        "priority": priority,
                        "group": group,
                        "count": _text(fields.get("falconet.correlation.count")),
                        "window_start": _text(fields.get("falconet.correlation.window_start")),
                        "window_end": _text(fields.get("falconet.correlation.window_end")),
                        "rules": _text(fields.get("falconet.correlation.rules")),
                    }
                )

    def add_all(self, alerts: Iterable[Mapping[str, Any]]) -> None:
        for alert in alerts:
            self.add(alert)

    @property
    def by_priority(self) -> Counter[str]:
        totals: Counter[str] = Counter()
        for (_rule, priority), n in self.rules.items():
            totals[priority] += n
        return totals


# Shown on every alert: not what groups a correlation's window.
_DEFAULT_FIELDS = frozenset(f for f in DEFAULT_EXTRA_FIELDS if f.startswith("ka."))


def _minute(text: Any) -> int | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return int(datetime.fromisoformat(text[:19]).replace(tzinfo=UTC).timestamp()) // 60
    except ValueError:
        return None


def scan_figures(
    report: Report, stats: Any, *, seconds: float, outside: int | None, inputs: int
) -> None:
    """A local scan's figures (its `DecodeStats`; `outside`: events skipped by the window)."""
    report.figures.update(
        inputs=inputs,
        events=stats.events - (outside or 0),
        records_rejected=stats.rejected_total,
        seconds=round(seconds, 2),
    )
    if outside is not None:
        report.figures["events outside --since/--until"] = outside
    report.rejected.update(stats.rejected)


def add_run(report: Report, status: RunStatus) -> None:
    """A fan-out run's figures, as its functions counted them (`falconet.state.runs`)."""
    if status.total is None:
        raise ConfigError(f"run {status.run_id}: no such run in the state table")
    report.figures.update(
        run=status.run_id,
        inputs=", ".join(status.inputs),
        objects=status.total,
        objects_done=status.done,
        objects_failed=status.failed,
        events=status.events,
        alerts_counted_by_the_functions=status.alerts,
    )
    for url, error in sorted(status.failures.items()):
        report.figures[f"failed: {url}"] = error
    report.rejected.update(status.rejected)


def from_files(names: Sequence[str]) -> Report:
    """A report of the alerts in JSON-lines files (`-`: stdin); lines that are not alerts are
    counted among its figures. Raises ConfigError for a file that cannot be read."""
    report = Report()
    skipped = 0
    for name in names:
        try:
            with sys.stdin.buffer if name == "-" else Path(name).open("rb") as lines:
                alerts, bad = read_alerts(lines)
        except OSError as exc:
            raise ConfigError(f"{name}: cannot read: {exc.strerror}") from exc
        report.add_all(alerts)
        skipped += bad
    if skipped:
        report.figures["lines that were not alerts"] = skipped
    return report


def write_page(path: str, page: str) -> None:
    """Write the page; ConfigError when it cannot be."""
    try:
        Path(path).write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the report: {exc.strerror}") from exc
    print(f"falconet: report written to {path}", file=sys.stderr)


def read_alerts(lines: Iterable[bytes]) -> tuple[list[dict[str, Any]], int]:
    """Falco JSON alerts from JSON lines (what `scan --json` prints); and how many lines were
    not alerts (skipped)."""
    alerts, skipped = [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            skipped += 1
            continue
        if isinstance(value, dict) and "rule" in value and "priority" in value:
            alerts.append(value)
        else:
            skipped += 1
    return alerts, skipped


# -- the page -------------------------------------------------------------------------------


def _plotly() -> tuple[Any, str]:
    try:
        import plotly.graph_objects as go
        from plotly.offline import get_plotlyjs
    except ImportError as exc:
        raise ConfigError("--report needs plotly: pip install 'falconet[report]'") from exc
    return go, get_plotlyjs()


def _label(text: str) -> str:
    """A plot label: escaped, so plotly shows markup in it as text."""
    return html.escape(text[:120], quote=True)


def _priorities(present: Iterable[str]) -> list[str]:
    seen = set(present)
    return [p for p in PRIORITY_ORDER if p in seen] + sorted(seen - set(PRIORITY_ORDER))


def _over_time(go: Any, report: Report) -> Any:
    minutes = sorted({m for m, _ in report.minutes})
    if not minutes:
        return None
    first, last = minutes[0], minutes[-1]
    step = 1
    for candidate in (1, 5, 15, 60, 180, 360, 1440, 10080):
        step = candidate
        if (last - first) // candidate + 1 <= MAX_BINS:
            break
    fig = go.Figure()
    for priority in _priorities(p for _, p in report.minutes):
        bins: Counter[int] = Counter()
        for (minute, p), n in report.minutes.items():
            if p == priority:
                bins[(minute - first) // step * step + first] += n
        xs = sorted(bins)
        fig.add_trace(
            go.Bar(
                x=[datetime.fromtimestamp(m * 60, UTC).strftime("%Y-%m-%d %H:%M") for m in xs],
                y=[bins[m] for m in xs],
                name=_label(priority),
                marker_color=COLORS.get(priority, "#555555"),
            )
        )
    fig.update_layout(
        barmode="stack",
        title=f"Alerts over time per priority ({step}-minute bins, UTC)",
        xaxis_title="time (UTC)",
        yaxis_title="alerts",
    )
    return fig


def _top_rules(go: Any, report: Report) -> Any:
    totals: Counter[str] = Counter()
    for (rule, _), n in report.rules.items():
        totals[rule] += n
    top = [rule for rule, _ in totals.most_common(TOP)][::-1]
    if not top:
        return None
    fig = go.Figure()
    for priority in _priorities(p for _, p in report.rules):
        fig.add_trace(
            go.Bar(
                y=[_label(r) for r in top],
                x=[report.rules.get((r, priority), 0) for r in top],
                orientation="h",
                name=_label(priority),
                marker_color=COLORS.get(priority, "#555555"),
            )
        )
    fig.update_layout(
        barmode="stack",
        title=f"Top {len(top)} rules",
        height=max(300, 28 * len(top) + 120),
        xaxis_title="alerts",
        margin={"l": 320},
    )
    return fig


def _per_cluster(go: Any, report: Report) -> Any:
    names = sorted({c for c, _ in report.clusters})
    if not names:
        return None
    fig = go.Figure()
    for priority in _priorities(p for _, p in report.clusters):
        fig.add_trace(
            go.Bar(
                x=[_label(c) for c in names],
                y=[report.clusters.get((c, priority), 0) for c in names],
                name=_label(priority),
                marker_color=COLORS.get(priority, "#555555"),
            )
        )
    fig.update_layout(barmode="stack", title="Alerts per cluster", yaxis_title="alerts")
    return fig


def _table(name: str, headings: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headings)
    body = []
    for row in rows:
        cells = []
        for value in row:
            if isinstance(value, int | float) and not isinstance(value, bool):
                cells.append(f'<td class="n" data-v="{value}">{value:,}</td>')
            else:
                cells.append(f"<td>{html.escape(_text(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not body:
        return f'<p class="empty" id="{name}">none</p>'
    return (
        f'<table class="sortable" id="{name}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


_SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var down = th.getAttribute("aria-sort") !== "descending";
      rows.sort(function (a, b) {
        var x = a.cells[column], y = b.cells[column];
        var p = x.dataset.v, q = y.dataset.v;
        var c = (p !== undefined && q !== undefined) ? Number(p) - Number(q)
          : x.textContent.localeCompare(y.textContent);
        return down ? -c : c;
      });
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", down ? "descending" : "ascending");
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
document.querySelectorAll("script.figure").forEach(function (data) {
  var div = document.createElement("div");
  div.className = "plot";
  div.id = data.id.replace("-data", "");
  data.parentNode.insertBefore(div, data);
  var figure = JSON.parse(data.textContent);
  Plotly.newPlot(div, figure.data, figure.layout, {displaylogo: false, responsive: true});
});
"""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.8em; text-align: left; }
th { cursor: pointer; background: #f4f4f4; user-select: none; }
th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
td { max-width: 40em; overflow-wrap: anywhere; }
.plot { min-height: 380px; }
.empty { color: #777; }
"""


def _figure_block(fig: Any, name: str) -> str:
    data = fig.to_json()  # plotly's encoder writes `<` as \\u003c; made sure of below
    data = data.replace("<", "\\u003c").replace(">", "\\u003e")
    return f'<script type="application/json" class="figure" id="{name}-data">{data}</script>'


def _csp_hash(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


def render(report: Report, *, title: str) -> str:
    """The page (see the module docstring). Raises ConfigError without plotly."""
    go, plotly_js = _plotly()
    figures = [
        (name, make(go, report))
        for name, make in (
            ("over-time", _over_time),
            ("top-rules", _top_rules),
            ("per-cluster", _per_cluster),
        )
    ]
    figure_blocks = {
        name: _figure_block(fig, name) if fig is not None else "" for name, fig in figures
    }
    priorities = report.by_priority
    figures_rows = [
        (k, v if isinstance(v, int | float) else _text(v)) for k, v in report.figures.items()
    ]
    figures_rows.append(("alerts", report.alerts))
    for priority in _priorities(priorities):
        figures_rows.append((f"alerts: {priority}", priorities[priority]))
    rule_totals: Counter[str] = Counter()
    for (rule, _), n in report.rules.items():
        rule_totals[rule] += n
    rule_priority = dict(list(report.rules))  # (rule, priority) keys
    cluster_rows = []
    for cluster in sorted({c for c, _ in report.clusters}):
        row: list[Any] = [cluster]
        row += [report.clusters.get((cluster, p), 0) for p in _priorities(priorities)]
        row.append(sum(report.clusters.get((cluster, p), 0) for p in priorities))
        cluster_rows.append(row)
    sections = [
        "<h2>The run</h2>",
        _table("figures", ["figure", "value"], figures_rows),
        "<h2>Records rejected, by reason</h2>",
        _table(
            "rejected",
            ["reason", "records"],
            sorted(report.rejected.items(), key=lambda kv: -kv[1]),
        ),
        "<h2>Alerts over time</h2>",
        figure_blocks["over-time"] or '<p class="empty">no alerts</p>',
        "<h2>Top rules</h2>",
        figure_blocks["top-rules"],
        _table(
            "rules",
            ["rule", "priority", "alerts"],
            [(r, rule_priority.get(r, ""), n) for r, n in rule_totals.most_common()],
        ),
        "<h2>Per cluster</h2>",
        figure_blocks["per-cluster"],
        _table("clusters", ["cluster", *_priorities(priorities), "alerts"], cluster_rows),
        "<h2>Top identities</h2>",
        _table("users", ["user", "alerts"], report.users.most_common(TOP)),
        "<h2>Top source addresses</h2>",
        _table(
            "sources",
            ["address", "country", "alerts"],
            [(a, report.countries.get(a, ""), n) for a, n in report.sources.most_common(TOP)],
        ),
        f"<h2>Correlations ({report.correlation_total})</h2>",
        _table(
            "correlations",
            [
                "correlation",
                "type",
                "priority",
                "group",
                "count",
                "window start",
                "window end",
                "rules",
            ],
            [list(c.values()) for c in report.correlations],
        ),
    ]
    if report.correlation_total > len(report.correlations):
        sections.append(f"<p>the first {len(report.correlations)} shown</p>")
    csp = (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        f"script-src {_csp_hash(plotly_js)} {_csp_hash(_SORT_JS)}"
    )
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>"
        f"<script>{plotly_js}</script></head><body>"
        f"<h1>{html.escape(title)}</h1><p>made {made} by falconet</p>"
        + "\n".join(sections)
        + f"<script>{_SORT_JS}</script></body></html>\n"
    )
