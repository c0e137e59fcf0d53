"""The `falconet` command: the same engine and decoders from a shell.

    falconet --version
    falconet scan [--rules PATH]... [--rule-matching first|all] [--min-priority P] [--json]
                  [--falco-json] [--summary] [--since T] [--until T] [--fail-on P]
                  [--[no-]progress] [INPUT]...
    falconet validate PATH...
    falconet fields [--json]
    falconet rules [--rules PATH]... [--markdown]
    falconet explain [--rules PATH]... [--rule NAME --event FILE...]
    falconet intel [--output FILE] [--list NAME] [--max-addresses N] FEED...
    falconet scan --fan-out QUEUE_URL [--run-id ID] --state-table T s3://BUCKET/PREFIX...
    falconet scan --follow ID --state-table T
    falconet report -o FILE [--run-id ID --state-table T] [ALERTS.jsonl]...

`scan` prints one alert per line on stdout (Falco's text line, or Falco JSON with `--json`) and a
summary on stderr (events read, records rejected with their reason and position, alerts by rule).
Exit status: 0 done, 1 error, 2 usage, 3 an alert at or above `--fail-on` (see `SCAN_EPILOG`).

Why this module is long: `scan --help` carries its own manual (input forms, time forms, examples,
exit status: `SCAN_EPILOG`), and the scan loop is kept in one function so the per-event path has
no calls it does not need. The progress line and the time window live in `falconet.progress` and
`falconet.window`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from falconet import __version__, fields
from falconet.alerts import text_line
from falconet.config import FALCO_CONFIG, GEOIP_DB, RULES, Settings, rules_paths, split_list
from falconet.context import EventContext
from falconet.errors import ConfigError, FalconetError, RuleError

if TYPE_CHECKING:
    from falconet.progress import Progress

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_ALERTS = 3  # scan --fail-on P: an alert at or above P was raised

SCAN_EPILOG = """\
inputs (any number, in order; the format is detected from the content, gzip or not):
  FILE                 JSON lines, an EventList, JSON arrays, CloudWatch exports, webhook bodies
  DIR                  every regular file below it, in path order (dot-files skipped)
  -                    standard input; the default when no INPUT is given, unless stdin is a
                       terminal (then falconet prints this hint and exits 2 instead of waiting)
  s3://BUCKET/PREFIX   that object, or every object under the prefix (AWS credentials as boto3
                       finds them)
  gs://BUCKET/PREFIX   likewise in Google Cloud Storage (pip install 'falconet[gcs]')

time window (--since, --until): on each event's stageTimestamp; events outside are skipped and
counted in the summary. T is RFC 3339 (2024-05-01T12:00:00Z, 2024-05-01T14:00:00+02:00), a date
(2024-05-01, midnight UTC), or an age before now: 90s, 30m, 24h, 7d, 2w. --since is inclusive,
--until exclusive.

examples:
  falconet scan /var/log/kubernetes/audit.log
  falconet scan --json logs/ > alerts.jsonl
  zcat audit.log.gz | falconet scan
  falconet scan --since 24h --fail-on warning s3://audit-archive/cluster=prod/
  falconet scan --since 2024-05-01 --until 2024-05-02 gs://audit-archive/prod/ audit-extra.json

exit status:
  0  the scan finished (alerts or not, unless --fail-on says otherwise)
  1  error: rules, settings, an input that cannot be listed or read
  2  usage: a bad option, or no INPUT while stdin is a terminal
  3  --fail-on P was given and an alert at or above priority P was printed
"""


def _rules_paths(values: Sequence[str] | None, settings: Settings) -> list[str]:
    if values:
        return [p for v in values for p in split_list(v)]
    return rules_paths(settings.get(RULES))


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rules",
        action="append",
        metavar="PATH",
        help="rules file or directory (repeatable; default: FALCONET_RULES or the bundled rules/)",
    )
    p.add_argument(
        "--rule-matching",
        choices=("first", "all"),
        default="first",
        help="Falco's rule_matching: at most one alert per event (first) or all",
    )
    p.add_argument(
        "--min-priority",
        default="debug",
        metavar="P",
        help="rules less severe than P are not loaded (default: debug)",
    )
    p.add_argument(
        "--falco-config",
        metavar="FILE",
        help="a falco.yaml: its rules (enable/disable), append_output and static_fields apply "
        "(default: FALCONET_FALCO_CONFIG)",
    )


def _event_time(text: str) -> int:
    """`--since`/`--until`: nanoseconds since the epoch (see `falconet.window`)."""
    from falconet.window import parse_time

    try:
        return parse_time(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _priority(text: str) -> int:
    """`--fail-on`: Falco's priority number (0 = Emergency ... 7 = Debug)."""
    from falconet.rules.model import PRIORITIES, parse_priority

    number = parse_priority(text)
    if number is None:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a priority ({', '.join(p.lower() for p in PRIORITIES)})"
        )
    return number


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="falconet",
        description="Falco-compatible detection of threats in Kubernetes audit logs.",
    )
    parser.add_argument("--version", action="version", version=f"falconet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    scan = sub.add_parser(
        "scan",
        help="evaluate audit logs and print alerts",
        description="Evaluate audit logs and print alerts on stdout, a summary on stderr.",
        epilog=SCAN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_engine_options(scan)
    scan.add_argument("--json", action="store_true", help="print Falco JSON alerts")
    scan.add_argument(
        "--falco-json",
        action="store_true",
        help="read event JSON exactly as Falco does: the first of duplicate keys, numbers as "
        "written, strings up to a NUL, nesting up to 300 levels (~20x slower to decode)",
    )
    scan.add_argument(
        "--extra-field",
        action="append",
        metavar="FIELD",
        help="add FIELD to every alert's output_fields (repeatable)",
    )
    scan.add_argument(
        "--no-extra-fields",
        action="store_true",
        help="add none of falconet's default extra fields: output_fields as Falco gives them "
        "(FALCONET_EXTRA_FIELDS=none for the functions)",
    )
    scan.add_argument("--cluster", help="cluster name for events that carry none")
    scan.add_argument(
        "--geoip-db",
        metavar="PATH",
        help="MaxMind-format database for falconet.src.* location fields",
    )
    scan.add_argument(
        "--summary",
        "--explain",  # the old name
        dest="summary",
        action="store_true",
        help="after each alert, its who/what/when/where summary line",
    )
    scan.add_argument(
        "--state-table",
        metavar="TABLE",
        help="keep correlation state in this DynamoDB table (default: in memory, for this scan)",
    )
    scan.add_argument(
        "--no-suppress",
        action="store_true",
        help="print every alert: no suppression policy (dedup, rate caps, digests) applies",
    )
    scan.add_argument(
        "--learn",
        action="store_true",
        help="record what first_seen correlations see, raise none of their alerts (seeds "
        "history from archives; use with --state-table)",
    )
    scan.add_argument(
        "--since",
        type=_event_time,
        metavar="T",
        help="skip events before T (RFC 3339, a date, or an age like 24h; see below)",
    )
    scan.add_argument(
        "--until", type=_event_time, metavar="T", help="skip events at or after T (likewise)"
    )
    scan.add_argument(
        "--fail-on",
        type=_priority,
        metavar="P",
        help="exit 3 when an alert of priority P or more severe is printed (e.g. warning)",
    )
    scan.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="objects, bytes and events done, rate and ETA on stderr (default: when stderr "
        "is a terminal)",
    )
    backtest = scan.add_argument_group("archive-scale backtests on Lambda (docs/backtest.md)")
    backtest.add_argument(
        "--fan-out",
        metavar="QUEUE_URL",
        help="do not scan here: send one S3 event per object under the s3:// INPUTs (or an S3 "
        "Inventory manifest.json) to the deployment's backtest queue",
    )
    backtest.add_argument(
        "--run-id",
        metavar="ID",
        help="the fan-out run's id (default: generated); re-using one skips objects it did",
    )
    backtest.add_argument(
        "--follow",
        metavar="ID",
        help="show a fan-out run's progress (with --state-table) until every object is done "
        "or failed; exit 1 naming the failed objects",
    )
    scan.add_argument(
        "--report",
        metavar="FILE",
        help="also write a self-contained HTML report of the scan (pip install 'falconet[report]')",
    )
    scan.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="files, directories, '-' (stdin), s3://BUCKET/PREFIX, gs://BUCKET/PREFIX; "
        "none = stdin (see below)",
    )
    scan.set_defaults(usage=scan.format_usage())

    validate = sub.add_parser("validate", help="check rules files and report every problem")
    validate.add_argument("paths", nargs="+", metavar="PATH")

    fields_cmd = sub.add_parser("fields", help="list the fields conditions and outputs may use")
    fields_cmd.add_argument("--json", action="store_true")

    rules_cmd = sub.add_parser("rules", help="list the loaded rules")
    _add_engine_options(rules_cmd)
    rules_cmd.add_argument("--markdown", action="store_true", help="a Markdown table")

    explain = sub.add_parser(
        "explain",
        help="print the generated evaluation code, or (--rule, --event) why a rule did or "
        "did not fire on events",
    )
    _add_engine_options(explain)
    explain.add_argument(
        "--rule", metavar="NAME", help="the rule to explain (with --event): its condition traced"
    )
    explain.add_argument(
        "--event",
        action="append",
        metavar="FILE",
        help="audit events to explain --rule on (any format scan reads; repeatable)",
    )

    report = sub.add_parser(
        "report",
        help="write the HTML report of saved alerts (scan --json output) and of a fan-out run",
    )
    report.add_argument("-o", "--output", required=True, metavar="FILE", help="the page to write")
    report.add_argument(
        "--run-id", metavar="ID", help="a fan-out run's figures (with --state-table)"
    )
    report.add_argument("--state-table", metavar="TABLE", help="the state table of the run")
    report.add_argument(
        "alerts", nargs="*", metavar="ALERTS", help="JSON-lines files of Falco alerts ('-': stdin)"
    )

    coverage = sub.add_parser(
        "coverage",
        help="which rules can fire on a sample of a cluster's logs, and what the logs lack",
    )
    coverage.add_argument(
        "--rules",
        action="append",
        metavar="PATH",
        help="rules file or directory (repeatable; default: FALCONET_RULES or the bundled rules)",
    )
    coverage.add_argument("--json", action="store_true", help="the report as JSON")
    coverage.add_argument("--cluster", help="cluster name for events that carry none")
    coverage.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="a sample of the logs (any form scan reads)"
    )
    intel = sub.add_parser(
        "intel",
        help="build the threat-intelligence address list (a rules file) from downloaded feeds",
        description="Read feed files (one IP address or CIDR network a line; '#' and ';' "
        "comments) and write a rules file that replaces a list of the bundled rules "
        "(falconet_threat_source_ips: 'Request From Threat Source IP'). See docs/rules.md.",
    )
    intel.add_argument("feeds", nargs="+", metavar="FEED", help="feed file ('-': stdin)")
    intel.add_argument("--output", "-o", default="-", help="rules file to write (default: stdout)")
    intel.add_argument("--list", help="list to replace (default: falconet_threat_source_ips)")
    intel.add_argument(
        "--max-addresses", type=int, default=None, help="refuse entries beyond this many addresses"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="falconet: %(levelname)s: %(message)s")
    handlers = {
        "scan": _scan,
        "validate": _validate,
        "fields": _fields,
        "rules": _rules,
        "explain": _explain,
        "coverage": _coverage,
        "intel": _intel,
        "report": _report,
    }
    args.settings = Settings.from_env()
    try:
        return handlers[args.command](args)
    except RuleError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_ERROR
    except FalconetError as exc:
        print(f"falconet: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        return EXIT_OK


def _engine(
    args: argparse.Namespace, extra_fields: Sequence[str] | None = None, geoip: Any = None
) -> Any:
    from falconet.engine import Engine

    if args.falco_config:
        falco_config = args.settings.falco_config(args.falco_config, "--falco-config")
    else:
        falco_config = args.settings.falco_config(
            args.settings.get(FALCO_CONFIG) or None, FALCO_CONFIG
        )
    return Engine.from_paths(
        _rules_paths(args.rules, args.settings),
        rule_matching=args.rule_matching,
        min_priority=args.min_priority,
        extra_fields=extra_fields,
        geoip=geoip,
        falco_config=falco_config,
    )


def _geoip(args: argparse.Namespace) -> Any:
    """The GeoIP database of --geoip-db or FALCONET_GEOIP_DB, or None when neither is set (no
    notice here: `_geoip_notice` says it only when the scan would show a location)."""
    from falconet.geoip import GeoIP

    if args.geoip_db:
        return GeoIP.open(args.geoip_db, origin="--geoip-db")
    setting = args.settings.get(GEOIP_DB)
    return GeoIP.open(setting) if setting and setting.strip() else None


def _geoip_notice(args: argparse.Namespace, engine: Any, geoip: Any) -> None:
    """Say (once per process) that geolocation is off only when this scan would show a location:
    a rule that can match or a correlation reads a location field, --extra-field names one, or
    --summary prints its "where". The default outputs lose nothing asked for: quiet then."""
    if geoip is not None:
        return
    wanted = engine.fields_read() | set(args.extra_field or ())
    if args.summary or {"falconet.src.country", "falconet.src.city", "falconet.src.asn"} & wanted:
        from falconet.geoip import warn_off

        warn_off()


def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except ValueError:  # closed
        return False


def _would_wait_on_terminal(args: argparse.Namespace) -> bool:
    """No INPUT and stdin is a terminal: reading it would wait, silently, for audit events typed
    by hand. Says so with the usage line (an explicit '-' still reads the terminal)."""
    if args.inputs or not _stdin_is_terminal():
        return False
    print(args.usage, end="", file=sys.stderr)
    print(
        "falconet scan: error: no INPUT given and stdin is a terminal: name files, "
        "directories, s3:// or gs:// prefixes, or pipe audit logs in ('-' reads the "
        "terminal); see falconet scan --help",
        file=sys.stderr,
    )
    return True


def _scan(args: argparse.Namespace) -> int:
    if args.fan_out or args.follow:
        return _backtest(args)
    return _scan_here(args)


def _scan_here(args: argparse.Namespace) -> int:
    if _would_wait_on_terminal(args):
        return EXIT_USAGE
    from falconet.correlate.correlator import FLUSH_MATCHES
    from falconet.decode import DecodeLimits, DecodeStats, decode

    extra = args.extra_field
    geoip = _geoip(args)
    engine = _engine(
        args,
        extra_fields=(list(extra or ()) if args.no_extra_fields else [*_default_extras(), *extra])
        if extra or args.no_extra_fields
        else None,
        geoip=geoip,
    )
    _geoip_notice(args, engine, geoip)
    stats = DecodeStats()
    out = sys.stdout.buffer
    started = time.perf_counter()
    from falconet.storage import open_inputs

    base_context = EventContext(cluster=args.cluster)
    # Listed before the first byte is read: a mistyped path or bucket fails now, not after
    # an hour of scanning, and the progress line knows how many objects (and bytes) there are.
    inputs = list(
        open_inputs(
            args.inputs or ["-"], context=base_context, key_pattern=args.settings.key_pattern
        )
    )
    attribution = args.settings.state.attribution
    store = _store(args)
    progress = _progress(args, inputs, stats)
    printer = _Printer(args, engine, store, progress)
    write = printer.write
    correlator = _correlator(args, engine, store)
    batch = correlator.batch() if correlator is not None else None
    owners = _attributor(engine, store) if attribution else None
    limits = DecodeLimits.like(args.settings.decode.object)  # files and objects
    window = None
    if args.since is not None or args.until is not None:
        from falconet.window import Window

        window = Window(args.since, args.until)
    for item in inputs:
        events = decode(
            progress.track(item.chunks),
            stats=stats,
            context=item.context,
            name=item.name,
            limits=limits,
            falco_json=args.falco_json,
        )
        if window is not None:
            events = window.within(events)
        for event, ctx in events:
            if owners is not None:  # falconet.owner.*, before the rules see the event
                ctx = owners.look(event, ctx)  # noqa: PLW2901 - the event's own context
            if batch is None:
                write(engine.evaluate(event, ctx), event)
                continue
            alerts, matched = engine.judge(event, ctx)
            write(alerts, event)
            if matched:
                batch.add(event, ctx, matched)
                if batch.size >= FLUSH_MATCHES:
                    write(batch.flush())
        progress.object_done()
    if owners is not None:
        owners.flush()  # with --state-table, what the scan learned is kept
    if batch is not None and correlator is not None:
        write(batch.flush())
        write(correlator.finish())  # the windows still open are decided at the end
    printer.finish()  # the alerts held for the policies, and every digest due at the end
    out.flush()
    progress.clear()
    outside = window.outside if window is not None else None
    seconds = time.perf_counter() - started
    _summary(stats, printer.by_rule, seconds, outside)
    _write_report(args, printer.report, stats, seconds, outside, len(inputs))
    if args.fail_on is not None and printer.worst <= args.fail_on:
        return EXIT_ALERTS
    return EXIT_OK


def _write_report(
    args: argparse.Namespace,
    report: Any,
    stats: Any,
    seconds: float,
    outside: int | None,
    inputs: int,
) -> None:
    """`scan --report FILE`: the page of this scan's alerts and figures (falconet/report.py)."""
    if report is None:
        return
    from falconet.report import render, scan_figures, write_page

    scan_figures(report, stats, seconds=seconds, outside=outside, inputs=inputs)
    title = "falconet scan: " + " ".join(args.inputs or ["-"])[:200]
    write_page(args.report, render(report, title=title))


def _report(args: argparse.Namespace) -> int:
    """`falconet report`: see falconet/report.py."""
    from falconet.report import add_run, from_files, render, write_page

    if args.run_id and not args.state_table:
        print("falconet report: error: --run-id needs --state-table", file=sys.stderr)
        return EXIT_USAGE
    report = from_files(args.alerts or [])
    title = "falconet report"
    if args.run_id:
        from falconet.state.dynamodb import DynamoDBStore
        from falconet.state.runs import RunProgress

        add_run(report, RunProgress(DynamoDBStore(args.state_table)).status(args.run_id))
        title = f"falconet backtest run {args.run_id}"
    write_page(args.output, render(report, title=title))
    return EXIT_OK


def _backtest(args: argparse.Namespace) -> int:
    """`scan --fan-out` and `scan --follow`: see falconet/fanout.py."""
    from falconet import fanout
    from falconet.state.dynamodb import DynamoDBStore
    from falconet.state.runs import RunProgress

    if not args.state_table or (args.fan_out and not args.inputs):
        print(
            "falconet scan: error: --fan-out (with s3:// INPUTs) and --follow need "
            "--state-table (the deployment's StateTableName: runs are kept there)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    runs = RunProgress(DynamoDBStore(args.state_table))
    if args.follow:
        try:
            status = fanout.follow(runs, fanout.check_run_id(args.follow))
        except KeyboardInterrupt:  # stops following, not the run
            return 130
        return EXIT_ERROR if fanout.tell_end(status, as_json=args.json) else EXIT_OK
    run_id = fanout.check_run_id(args.run_id or fanout.new_run_id())
    window = [None if t is None else t / 1e9 for t in (args.since, args.until)]
    tally = fanout.fan_out(
        args.fan_out, args.inputs, run_id=run_id, progress=runs, since=window[0], until=window[1]
    )
    fanout.tell_queued(tally, args.state_table, as_json=args.json)
    return EXIT_OK


def _progress(args: argparse.Namespace, inputs: Sequence[Any], stats: Any) -> Progress:
    """The progress line: on with --progress, or without --no-progress when stderr is a
    terminal; the total size known when every input is a local file."""
    from falconet.progress import Progress
    from falconet.storage.local import FileChunks

    on = args.progress
    if on is None:
        try:
            on = sys.stderr.isatty()
        except (AttributeError, ValueError):  # replaced or closed
            on = False
    total = None
    if on and inputs and all(type(i.chunks) is FileChunks for i in inputs):
        try:
            total = sum(i.chunks.path.stat().st_size for i in inputs)
        except OSError:
            total = None
    return Progress(len(inputs), total, stats, on=bool(on))


class _Printer:
    """Alerts to stdout (Falco's line or JSON, with `--summary` lines), through the suppression
    policies when there are any: alerts are held 500 at a time for them, digests come at the
    end."""

    HOLD = 500

    def __init__(
        self, args: argparse.Namespace, engine: Any, store: Any, progress: Progress
    ) -> None:
        from falconet.rules.model import PRIORITIES, parse_priority
        from falconet.summary import alert_summary

        self.args = args
        self.progress = progress
        # The most severe priority printed (0 = Emergency), for --fail-on; 8: none yet.
        self.worst = len(PRIORITIES)
        self.priorities: dict[str, int] = {}
        self.parse_priority = parse_priority
        self.summarize = alert_summary
        self.out = sys.stdout.buffer
        self.by_rule: Counter[str] = Counter()
        self.held: list[tuple[Any, Any]] = []  # (alert, event)
        self.suppressor: Any = None
        self.suppress: Any = None
        self.report: Any = None
        if args.report:
            from falconet.report import Report

            self.report = Report()
        if engine.policies and not args.no_suppress and args.settings.state.suppress:
            from falconet.suppress.suppressor import Suppressor

            self.suppressor = Suppressor.for_engine(engine, store)
            self.suppress = self.suppressor.batch()

    def write(self, alerts: Sequence[Any], event: Any = None) -> None:
        if self.suppress is None:
            self.send([(alert, event) for alert in alerts])
            return
        self.held.extend((alert, event) for alert in alerts)
        if len(self.held) >= self.HOLD:
            self.release()

    def release(self) -> None:
        events = {alert.uuid: event for alert, event in self.held}
        pairs = [(a, e.get("auditID") if isinstance(e, dict) else None) for a, e in self.held]
        self.held.clear()
        passed = self.suppress.filter(pairs)
        self.send([(alert, events.get(alert.uuid)) for alert, _ in passed])

    def finish(self) -> None:
        if self.suppress is not None:
            self.release()
            self.send([(digest, None) for digest in self.suppressor.finish()])

    def send(self, pairs: Sequence[tuple[Any, Any]]) -> None:
        json = self.args.json
        if pairs:
            self.progress.clear()
        report = self.report
        for alert, event in pairs:
            self.by_rule[alert.rule] += 1
            if report is not None:
                report.add(alert.to_dict())
            number = self.priorities.get(alert.priority)
            if number is None:
                parsed = self.parse_priority(alert.priority)
                number = self.worst if parsed is None else parsed
                self.priorities[alert.priority] = number
            self.worst = min(self.worst, number)
            self.out.write((alert.to_json() if json else text_line(alert.output).encode()) + b"\n")
            if self.args.summary and event is not None:
                self.out.write(b"  " + self.summarize(alert, event).encode() + b"\n")


def _store(args: argparse.Namespace) -> Any:
    """The scan's state store (correlations, suppression, attribution): memory, or the DynamoDB
    table of --state-table."""
    from falconet.state import MemoryStore

    if args.state_table:
        from falconet.state.dynamodb import DynamoDBStore

        return DynamoDBStore(args.state_table)
    if args.learn:
        print(
            "falconet: warning: --learn without --state-table: what is learned is lost "
            "when the scan ends",
            file=sys.stderr,
        )
    return MemoryStore()


def _correlator(args: argparse.Namespace, engine: Any, store: Any) -> Any:
    """The scan's correlator, its state in `store` (None without correlations)."""
    if not engine.correlations:
        return None
    from falconet.correlate.correlator import Correlator

    return Correlator.for_engine(engine, store, learn=args.learn)


def _attributor(engine: Any, store: Any) -> Any:
    """The scan's attribution batch, its records in `store` (None: FALCONET_ATTRIBUTION=off)."""
    if store is None:
        return None
    from falconet.attribution import Attributor

    return Attributor(store, cluster=engine.field_getter("falconet.cluster")).batch()


def _default_extras() -> tuple[str, ...]:
    from falconet.engine import DEFAULT_EXTRA_FIELDS

    return tuple(f for f in DEFAULT_EXTRA_FIELDS if fields.lookup(f) is not None)


def _summary(stats: Any, by_rule: Counter[str], seconds: float, outside: int | None) -> None:
    """The scan's summary on stderr; `outside`: events skipped by --since/--until (None: no
    window was given)."""
    err = sys.stderr
    for problem in stats.problems:
        print(
            f"{problem.position}: {problem.reason}"
            + (f" ({problem.detail})" if problem.detail else ""),
            file=err,
        )
    rejected = stats.rejected_total
    print(
        f"falconet: {stats.events - (outside or 0)} events evaluated, {rejected} records "
        f"rejected, {sum(by_rule.values())} alerts in {seconds:.2f}s",
        file=err,
    )
    for reason, count in sorted(stats.rejected.items()):
        print(f"  rejected: {reason}: {count}", file=err)
    for reason, count in sorted(stats.skipped.items()):
        print(f"  skipped: {reason}: {count}", file=err)
    if outside is not None:
        print(f"  skipped: outside --since/--until: {outside}", file=err)
    for rule, count in sorted(by_rule.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {count:6d}  {rule}", file=err)


def _validate(args: argparse.Namespace) -> int:
    from falconet.engine import load_documents
    from falconet.rules.diagnostics import in_line_order
    from falconet.rules.loader import load_rules
    from falconet.rules.shadow import shadow_warnings

    missing = [p for p in args.paths if not Path(p).exists()]
    for p in missing:
        print(f"{p}: error: no such file or directory", file=sys.stderr)
    rules, ruleset = load_rules([p for p in args.paths if p not in missing])
    correlations, policies = load_documents(ruleset, rules)
    ruleset.diagnostics.extend(shadow_warnings(rules, correlations.silenced))
    for diagnostic in in_line_order(ruleset.diagnostics, list(ruleset.texts)):
        print(str(diagnostic), file=sys.stderr)
    errors = len(ruleset.errors) + len(missing)
    status = "error" if errors else "ok"
    counted = (
        f", {len(correlations)} correlations, {len(policies)} suppression policies"
        if ruleset.documents
        else ""
    )
    print(
        f"{status}: {len(rules)} k8s_audit rules{counted}, {errors} error(s), "
        f"{len(ruleset.warnings)} warning(s)"
    )
    return EXIT_ERROR if errors else EXIT_OK


def _fields(args: argparse.Namespace) -> int:
    items = list(fields.iter_fields())
    if args.json:
        data = [
            {
                "name": f.name,
                "type": f.type,
                "is_list": f.is_list,
                "arg": f.arg,
                "desc": f.desc,
                "extension": f.extension,
            }
            for f in items
        ]
        sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
        return EXIT_OK
    width = max(len(f.name) for f in items)
    for f in items:
        kind = f.type + ("[]" if f.is_list else "")
        arg = {"none": "", "index": "[n]", "key": "[key]"}[f.arg]
        ext = " (falconet extension)" if f.extension else ""
        print(f"{f.name + arg:<{width + 5}} {kind:<9} {f.desc}{ext}")
    return EXIT_OK


def _rules(args: argparse.Namespace) -> int:
    engine = _engine(args)
    if args.markdown:
        print("| rule | priority | tags | description |")
        print("|---|---|---|---|")
        for r in engine.rules:
            desc = " ".join(r.desc.split()).replace("|", "\\|")
            print(f"| {r.name} | {r.priority} | {', '.join(r.tags)} | {desc} |")
        return EXIT_OK
    for r in engine.rules:
        state = "" if r.enabled else " (disabled)"
        print(f"{r.priority:<13} {r.name}{state}  [{', '.join(r.tags)}]")
    return EXIT_OK


def _coverage(args: argparse.Namespace) -> int:
    """`falconet coverage`: every rule evaluated on the sample; see falconet/coverage.py."""
    from falconet.coverage import measure
    from falconet.decode import DecodeLimits, DecodeStats, decode
    from falconet.engine import Engine
    from falconet.storage import open_inputs

    engine = Engine.from_paths(_rules_paths(args.rules, args.settings), rule_matching="all")
    stats = DecodeStats()
    limits = DecodeLimits.like(args.settings.decode.object)

    def events() -> Any:
        for item in open_inputs(
            args.inputs, context=EventContext(cluster=args.cluster), key_pattern=None
        ):
            yield from decode(
                item.chunks, stats=stats, context=item.context, name=item.name, limits=limits
            )

    report = measure(engine, events())
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    else:
        print(report.render())
    return EXIT_OK


def _explain(args: argparse.Namespace) -> int:
    if (args.rule is None) != (args.event is None):
        print("falconet: error: --rule and --event go together", file=sys.stderr)
        return EXIT_USAGE
    engine = _engine(args)
    if args.rule is None:
        print(engine.explain())
        return EXIT_OK
    from falconet.decode import DecodeStats, decode
    from falconet.storage import open_inputs

    stats = DecodeStats()
    count = 0
    for item in open_inputs(args.event, key_pattern=args.settings.key_pattern):
        for event, ctx in decode(item.chunks, stats=stats, context=item.context, name=item.name):
            count += 1
            why = engine.why(args.rule, event, ctx)
            where = why.defined_at
            ref = event.get("objectRef")
            target = (
                "/".join(str(ref.get(k)) for k in ("resource", "namespace", "name") if ref.get(k))
                if isinstance(ref, dict)
                else ""
            )
            print(
                f"event {count} ({item.name}): auditID={event.get('auditID')} "
                f"stage={event.get('stage')} verb={event.get('verb')} {target}".rstrip()
            )
            print(f"rule '{why.rule}' ({where.file}:{where.line}), {why.state}")
            print("condition, macros expanded (value, part, [field: value on this event]):")
            for line in why.trace:
                print(f"  {line}")
            print(why.verdict())
            shown = ", ".join(f"'{r}'" for r in why.alerts) or "none"
            print(f"alerts raised for this event (rule_matching {args.rule_matching}): {shown}")
            print()
    for problem in stats.problems:
        print(f"{problem.position}: {problem.reason}", file=sys.stderr)
    if not count:
        print("falconet: error: no audit event in --event", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())


def _intel(args: argparse.Namespace) -> int:
    from falconet import intel

    name = intel.check_list_name(args.list or intel.DEFAULT_LIST)
    limit = intel.DEFAULT_MAX_ADDRESSES if args.max_addresses is None else args.max_addresses
    if limit < 1:
        raise ConfigError("--max-addresses must be at least 1")
    result = intel.build(args.feeds, limit)
    text = intel.render(result, name, args.feeds)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        intel.write_atomically(args.output, text)
    print(intel.summary(result, args.feeds), file=sys.stderr)
    return EXIT_OK
