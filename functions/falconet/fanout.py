"""Backtests at archive scale: one S3 event message per object, scanned by Lambda.

    falconet scan --fan-out QUEUE_URL --state-table T [--run-id ID] [--since T --until T] s3://...
    falconet scan --follow ID --state-table T

`fan_out` lists the objects under the prefixes (or the keys of an S3 Inventory manifest), keeps
those that may hold events inside the window, and sends one message per object to the backtest
queue, shaped exactly as an S3 ObjectCreated notification (so the S3 detector's handler reads it
as it reads any), with the run's id as the message attribute `falconet.run`. Messages go 10 to a
SendMessageBatch, fewer when 10 would pass SQS's 256 KiB request limit; entries SQS refuses are
sent again, then reported. With a state table, objects the run already did (a re-run of the same
id) are not sent again, and the run's item records how many were.

The handler (`lambda_handlers.handle_s3`) reads the attribute with `triggers.run_of`, skips
objects the run already did, sets `falconet.run_id` on every alert, and records each object's
outcome (`falconet.state.runs`). `follow` reads those counters until every object is done or failed.

The window selects objects, not events: an object is skipped when its key names a day (or hour)
wholly outside --since/--until (`.../2026/03/11/...`, `2026-03-11`, `dt=2026-03-11/hour=05`), or
when it was last modified before --since (it holds only older events) or more than LATE_SECONDS
after --until; an object kept is scanned whole.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

import orjson

from falconet.alerts import text_line
from falconet.errors import ConfigError, FalconetError
from falconet.state.runs import RunProgress, RunStatus
from falconet.triggers import RUN_ATTRIBUTE, valid_run_id

BATCH_ENTRIES = 10  # SendMessageBatch's limit
BATCH_BYTES = 256 * 1024  # SendMessageBatch's limit on the whole request's payload
SEND_ATTEMPTS = 4
LATE_SECONDS = 3600  # how long after its last event an object may still be written
_DAY = re.compile(r"(?<!\d)(20\d\d)[/-](0[1-9]|1[0-2])[/-](0[1-9]|[12]\d|3[01])(?!\d)")
_DAY_PARTS = re.compile(r"year=(20\d\d)/month=(\d\d)/day=(\d\d)")
_HOUR = re.compile(r"^(?:[/T]|/hour=|/h=)?([01]\d|2[0-3])(?!\d)")


class FanOutError(FalconetError):
    """The fan-out could not list its inputs or send its messages."""


@dataclass(frozen=True, slots=True)
class Listed:
    bucket: str
    key: str
    modified: float | None  # epoch seconds (None: not known, e.g. from an inventory without it)
    size: int | None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


def check_run_id(run_id: str) -> str:
    if not valid_run_id(run_id):
        raise ConfigError(f"run id {run_id[:80]!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return run_id


# -- which objects ------------------------------------------------------------------------------


def key_span(key: str) -> tuple[float, float] | None:
    """The time span (epoch seconds, end exclusive) a key names by its date, and hour when one
    follows the date; None when it names no date."""
    match = _DAY.search(key) or _DAY_PARTS.search(key)
    if match is None:
        return None
    try:
        day = datetime(int(match[1]), int(match[2]), int(match[3]), tzinfo=UTC)
    except ValueError:
        return None
    start = day.timestamp()
    hour = _HOUR.match(key[match.end() :])
    if hour is not None:
        start += int(hour[1]) * 3600
        return start, start + 3600
    return start, start + 86_400


def in_window(item: Listed, since: float | None, until: float | None) -> bool:
    """Whether `item` may hold events in [since, until) (see the module docstring)."""
    span = key_span(item.key)
    if span is not None:
        if since is not None and span[1] <= since:
            return False
        if until is not None and span[0] >= until:
            return False
    if item.modified is not None:
        if since is not None and item.modified < since:
            return False
        if until is not None and item.modified >= until + LATE_SECONDS:
            return False
    return True


def _split(spec: str) -> tuple[str, str]:
    if not spec.startswith("s3://"):
        raise ConfigError(f"{spec}: --fan-out reads s3://BUCKET/PREFIX inputs only")
    bucket, _, prefix = spec[5:].partition("/")
    if not bucket:
        raise ConfigError(f"{spec}: no bucket")
    return bucket, prefix


def list_objects(client: Any, spec: str) -> Iterator[Listed]:
    """Every object under an s3:// prefix, with its time and size; or, when the spec names an S3
    Inventory `manifest.json`, every key of the inventory's CSV files."""
    bucket, prefix = _split(spec)
    if prefix.endswith("manifest.json"):
        yield from inventory_objects(client, bucket, prefix)
        return
    from botocore.exceptions import BotoCoreError, ClientError

    found = False
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for entry in page.get("Contents", ()):
                key = entry["Key"]
                if key.endswith("/") and entry.get("Size", 0) == 0:
                    continue  # a console "folder"
                found = True
                modified = entry.get("LastModified")
                yield Listed(
                    bucket,
                    key,
                    modified.timestamp() if modified is not None else None,
                    entry.get("Size"),
                )
    except (ClientError, BotoCoreError) as exc:
        raise ConfigError(f"{spec}: cannot list objects: {exc}") from exc
    if not found:
        raise ConfigError(f"{spec}: no such object or prefix")


def inventory_objects(client: Any, bucket: str, manifest_key: str) -> Iterator[Listed]:
    """The objects an S3 Inventory report lists: its manifest.json names the CSV (gzip) files and
    their schema (`fileSchema`: Bucket, Key, Size, LastModifiedDate...). Only CSV inventories
    are read (ORC and Parquet ones raise ConfigError)."""
    from botocore.exceptions import BotoCoreError, ClientError

    spec = f"s3://{bucket}/{manifest_key}"
    try:
        manifest = orjson.loads(client.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
    except (ClientError, BotoCoreError) as exc:
        raise ConfigError(f"{spec}: cannot read the inventory manifest: {exc}") from exc
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{spec}: the inventory manifest is not JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("fileFormat", "CSV") != "CSV":
        raise ConfigError(f"{spec}: only CSV inventories are read (fileFormat CSV)")
    schema = [c.strip() for c in str(manifest.get("fileSchema", "")).split(",")]
    if "Key" not in schema or "Bucket" not in schema:
        raise ConfigError(f"{spec}: the manifest's fileSchema has no Bucket and Key columns")
    at = {name: schema.index(name) for name in schema}
    for entry in manifest.get("files") or []:
        key = entry.get("key") if isinstance(entry, dict) else None
        if not isinstance(key, str):
            raise ConfigError(f"{spec}: a files entry without a key")
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise ConfigError(
                f"s3://{bucket}/{key}: cannot read the inventory file: {exc}"
            ) from exc
        text = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
        for row in csv.reader(io.StringIO(text.decode())):
            if len(row) < len(schema):
                continue
            name = _inventory_key(row[at["Key"]])
            if name.endswith("/"):
                continue
            size = row[at["Size"]] if "Size" in at else ""
            stamp = row[at["LastModifiedDate"]] if "LastModifiedDate" in at else ""
            yield Listed(
                row[at["Bucket"]],
                name,
                _inventory_time(stamp),
                int(size) if size.isdigit() else None,
            )


def _inventory_key(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text)  # inventory CSVs URL-encode keys


def _inventory_time(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None
    except ValueError:
        return None


# -- the messages -------------------------------------------------------------------------------


def notification(item: Listed, region: str | None) -> bytes:
    """The S3 ObjectCreated notification of `item` (key form-encoded, as S3 sends it)."""
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region or "",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "bucket": {"name": item.bucket, "arn": f"arn:aws:s3:::{item.bucket}"},
            "object": {"key": quote_plus(item.key, safe="/"), "size": item.size or 0},
        },
    }
    return orjson.dumps({"Records": [record]})


def batches(bodies: Iterable[bytes], run_id: str) -> Iterator[list[dict[str, Any]]]:
    """SendMessageBatch entries: at most 10, and at most 256 KiB of bodies and attributes."""
    overhead = len(RUN_ATTRIBUTE) + len("String") + len(run_id)
    batch: list[dict[str, Any]] = []
    size = 0
    for body in bodies:
        length = len(body) + overhead
        if length > BATCH_BYTES:
            raise FanOutError(f"a message of {length} bytes is over SQS's {BATCH_BYTES}")
        if batch and (len(batch) == BATCH_ENTRIES or size + length > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(
            {
                "Id": str(len(batch)),
                "MessageBody": body.decode(),
                "MessageAttributes": {RUN_ATTRIBUTE: {"DataType": "String", "StringValue": run_id}},
            }
        )
        size += length
    if batch:
        yield batch


def send(
    client: Any, queue_url: str, entries: list[dict[str, Any]], *, sleep: Any = time.sleep
) -> None:
    """One SendMessageBatch, its refused entries sent again (SEND_ATTEMPTS in all)."""
    pending = entries
    for attempt in range(SEND_ATTEMPTS):
        response = client.send_message_batch(QueueUrl=queue_url, Entries=pending)
        failed = {f["Id"] for f in response.get("Failed", ())}
        pending = [e for e in pending if e["Id"] in failed]
        if not pending:
            return
        sleep(0.2 * 2**attempt)
    raise FanOutError(f"{queue_url}: SQS refused {len(pending)} message(s) {SEND_ATTEMPTS} times")


@dataclass(slots=True)
class FanOut:
    run_id: str
    listed: int = 0
    outside: int = 0  # skipped by the window
    already: int = 0  # skipped: done by this run before
    sent: int = 0


def fan_out(
    queue_url: str,
    inputs: Sequence[str],
    *,
    run_id: str,
    progress: RunProgress | None,
    since: float | None = None,
    until: float | None = None,
    s3: Any = None,
    sqs: Any = None,
) -> FanOut:
    """List, filter and enqueue (see the module docstring). Raises ConfigError, FanOutError."""
    from falconet.storage.s3 import client as s3_client

    s3 = s3 or s3_client()
    if sqs is None:
        from falconet.extras import require_aws

        require_aws("--fan-out")
        import boto3

        sqs = boto3.client("sqs")
    region = sqs.meta.region_name
    tally = FanOut(run_id)
    chosen: list[Listed] = []
    for spec in inputs:
        for item in list_objects(s3, spec):
            tally.listed += 1
            if in_window(item, since, until):
                chosen.append(item)
            else:
                tally.outside += 1
    chosen = list({item.url: item for item in chosen}.values())  # a key listed twice goes once
    if progress is not None:
        done: set[str] = set()
        for start in range(0, len(chosen), 1000):
            done |= progress.done_objects(run_id, [i.url for i in chosen[start : start + 1000]])
        tally.already = len(done)
        todo = [item for item in chosen if item.url not in done]
        progress.start(run_id, len(chosen), inputs)
    else:
        todo = chosen
    for entries in batches((notification(item, region) for item in todo), run_id):
        send(sqs, queue_url, entries)
        tally.sent += len(entries)
    return tally


# -- following ----------------------------------------------------------------------------------


def status_line(status: RunStatus, rate: float | None) -> str:
    total = status.total if status.total is not None else "?"
    finished = status.done + status.failed
    percent = f" ({100 * finished / status.total:.0f}%)" if status.total else ""
    text = (
        f"falconet: run {status.run_id}: {finished}/{total} objects{percent}, "
        f"{status.done} done, {status.failed} failed, {status.events} events, "
        f"{status.alerts} alerts"
    )
    if rate:
        text += f", {rate:.1f} objects/s"
        if status.total is not None and status.total > finished:
            left = (status.total - finished) / rate
            text += f", ETA {int(left // 60)}m{int(left % 60):02d}s"
    return text


def follow(
    progress: RunProgress,
    run_id: str,
    *,
    interval: float = 5.0,
    timeout: float | None = None,
    out: Any = None,
    sleep: Any = time.sleep,
) -> RunStatus:
    """Print the run's figures every `interval` seconds until every object is done or failed
    (or `timeout` passed); the last figures."""
    out = out or sys.stderr
    started = time.monotonic()
    first: tuple[float, int] | None = None
    while True:
        status = progress.status(run_id)
        now = time.monotonic()
        finished = status.done + status.failed
        if first is None:
            first = (now, finished)
        elapsed = now - first[0]
        rate = (finished - first[1]) / elapsed if elapsed > 0 else None
        print(status_line(status, rate), file=out, flush=True)
        if status.total is None:
            raise ConfigError(f"run {run_id}: no such run in the state table")
        if status.finished or (timeout is not None and now - started >= timeout):
            return status
        sleep(interval)


def tell_end(status: RunStatus, *, as_json: bool) -> bool:
    """The end of `--follow`: the failed objects named on stderr (and the figures as JSON on
    stdout with `--json`); whether any object failed."""
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(status.to_dict()) + b"\n")
    for url, error in sorted(status.failures.items()):
        # Keys and error texts come from the bucket and the objects: one safe line each.
        print(f"falconet: failed: {text_line(url)}: {text_line(error)}", file=sys.stderr)
    if status.failed:
        shown = len(status.failures)
        more = f" ({status.failed - shown} more not named)" if status.failed > shown else ""
        print(f"falconet: {status.failed} object(s) failed{more}", file=sys.stderr)
    return status.failed > 0


def tell_queued(tally: FanOut, table: str, *, as_json: bool) -> None:
    """What `--fan-out` did, on stderr (and as JSON on stdout with `--json`)."""
    print(
        f"falconet: run {tally.run_id}: {tally.listed} objects listed, {tally.outside} outside "
        f"--since/--until, {tally.already} already done, {tally.sent} queued",
        file=sys.stderr,
    )
    print(
        f"falconet: follow it with: falconet scan --follow {tally.run_id} --state-table {table}",
        file=sys.stderr,
    )
    if as_json:
        counts = {"run_id": tally.run_id, "listed": tally.listed, "outside": tally.outside}
        counts.update(already=tally.already, queued=tally.sent)
        sys.stdout.buffer.write(orjson.dumps(counts) + b"\n")
