"""A backtest fanned out on the deployment's own path, on a moto server (S3, SQS, DynamoDB):
`falconet scan --fan-out` sends one S3 event per object to the backtest queue; the queue is
drained as Lambda's SQS event source does it (receive, build the SQS event, call `handle_s3`,
delete what it did not report failed, leave the rest for the visibility timeout), and the run's
progress is read back as `falconet scan --follow` reads it.

Everything is the production code: the command's listing and SendMessageBatch, the handler, the
S3 reader, the SQS sink, the DynamoDB state table. Only the Lambda service itself is played by
`drain` below.
"""

from __future__ import annotations

import gzip
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ROOT
from tests.functional.conftest import Aws

import lambda_handlers
from falconet import cli
from falconet.runtime import reset_runtime
from falconet.state.dynamodb import DynamoDBStore
from falconet.state.runs import RunProgress

RULES = ROOT / "tests" / "data" / "functional_rules.yaml"
ITEMS = json.loads((ROOT / "examples" / "audit-batch.json").read_text())["items"]
PER_OBJECT = 3  # alerts the functional rules raise on ITEMS
OBJECTS = 50
PREFIX = "cluster=prod-eu/2026/03/11/"
VISIBILITY = 1  # seconds: a failed message comes back quickly


def body(n: int) -> bytes:
    """ITEMS with audit ids of their own: object n's alerts have uuids no other object's have."""
    items = [{**item, "auditID": f"{item['auditID']}-{n}"} for item in ITEMS]
    return gzip.compress(("\n".join(json.dumps(i) for i in items) + "\n").encode())


@pytest.fixture
def backtest(
    aws: Aws, audit_bucket: str, sqs_queue: str, state_table: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    s3 = aws.client("s3")
    for n in range(OBJECTS):
        s3.put_object(Bucket=audit_bucket, Key=f"{PREFIX}{n:02d}.json.gz", Body=body(n))
    sqs = aws.client("sqs")
    dead = sqs.create_queue(QueueName=f"backtest-dlq-{state_table[-8:]}")["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])
    queue = sqs.create_queue(  # as template.yaml's BacktestQueue, with MaxReceives 2
        QueueName=f"backtest-{state_table[-8:]}",
        Attributes={
            "VisibilityTimeout": str(VISIBILITY),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dead_arn["Attributes"]["QueueArn"], "maxReceiveCount": 2}
            ),
        },
    )["QueueUrl"]
    monkeypatch.setenv("FALCONET_RULES", str(RULES))
    monkeypatch.setenv("FALCONET_SQS_QUEUE_URL", sqs_queue)
    monkeypatch.setenv("FALCONET_STATE_TABLE", state_table)
    monkeypatch.setenv("FALCONET_BACKTEST_MAX_RECEIVES", "2")
    reset_runtime()
    yield {"bucket": audit_bucket, "queue": queue, "alerts": sqs_queue, "table": state_table}
    reset_runtime()


def sqs_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The Lambda event the SQS event source builds from received messages."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {
                    name: {"stringValue": v.get("StringValue"), "dataType": v["DataType"]}
                    for name, v in (m.get("MessageAttributes") or {}).items()
                },
                "eventSource": "aws:sqs",
            }
            for m in messages
        ]
    }


def drain(aws: Aws, queue: str, *, limit_s: float = 60) -> int:
    """Deliver the queue to `handle_s3` until it is empty (in flight included); the number of
    invocations. Failed messages are left to come back after the visibility timeout."""
    sqs = aws.client("sqs")
    invocations = 0
    ends = time.monotonic() + limit_s
    while time.monotonic() < ends:
        messages = sqs.receive_message(
            QueueUrl=queue,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            counts = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
            if (
                counts["ApproximateNumberOfMessages"]
                == counts["ApproximateNumberOfMessagesNotVisible"]
                == "0"
            ):
                return invocations
            time.sleep(0.2)
            continue
        invocations += 1
        answer = lambda_handlers.handle_s3(sqs_event(messages))
        failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            sqs.delete_message_batch(
                QueueUrl=queue,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
                ],
            )
    raise AssertionError(f"{queue} not drained in {limit_s}s")


def alerts_in(aws: Aws, queue: str, receive_all: Callable[..., list[dict[str, Any]]]) -> list[Any]:
    return [json.loads(m["Body"]) for m in receive_all(aws.client("sqs"), queue)]


def fan_out(run: dict[str, str], run_id: str, prefix: str = PREFIX, *more: str) -> int:
    return cli.main(
        [
            "scan",
            "--fan-out",
            run["queue"],
            "--run-id",
            run_id,
            "--state-table",
            run["table"],
            *more,
            f"s3://{run['bucket']}/{prefix}",
        ]
    )


def test_a_fanned_out_run_alerts_once_per_object_and_a_rerun_skips_it(
    aws: Aws,
    tmp_path: Path,
    backtest: dict[str, str],
    receive_all: Callable[..., list[dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert fan_out(backtest, "run-1") == 0
    assert "50 objects listed, 0 outside --since/--until, 0 already done, 50 queued" in (
        capsys.readouterr().err
    )
    drain(aws, backtest["queue"])

    alerts = alerts_in(aws, backtest["alerts"], receive_all)
    assert len(alerts) == OBJECTS * PER_OBJECT
    assert len({a["uuid"] for a in alerts}) == len(alerts)  # each alert exactly once
    assert {a["output_fields"]["falconet.run_id"] for a in alerts} == {"run-1"}
    per_object = Counter(a["output_fields"]["falconet.origin"] for a in alerts)
    assert set(per_object.values()) == {PER_OBJECT} and len(per_object) == OBJECTS

    status = RunProgress(DynamoDBStore(backtest["table"])).status("run-1")
    assert (status.total, status.done, status.failed) == (OBJECTS, OBJECTS, 0)
    assert status.events == OBJECTS * len(ITEMS) and status.alerts == len(alerts)
    assert status.by_priority == {"Warning": 50, "Notice": 50, "Critical": 50}

    # The run's report: the alerts read back from the alert queue, its figures from the table.
    if find_spec("plotly") is not None:
        saved, page = tmp_path / "alerts.jsonl", tmp_path / "run.html"
        saved.write_text("".join(json.dumps(a) + "\n" for a in alerts))
        argv = ["report", "-o", str(page), "--run-id", "run-1", "--state-table", backtest["table"]]
        assert cli.main([*argv, str(saved)]) == 0
        text = page.read_text()
        for figure, value in (("objects_done", 50), ("objects_failed", 0), ("alerts", 150)):
            assert f'<td>{figure}</td><td class="n" data-v="{value}">' in text

    assert cli.main(["scan", "--follow", "run-1", "--state-table", backtest["table"]]) == 0
    assert "50/50 objects (100%), 50 done, 0 failed, 300 events, 150 alerts" in (
        capsys.readouterr().err
    )

    # The same id again: the command sends nothing, and a message delivered anyway (SQS is
    # at-least-once) is skipped by the handler.
    assert fan_out(backtest, "run-1") == 0
    assert "50 already done, 0 queued" in capsys.readouterr().err
    note = json.dumps(
        {
            "Records": [
                {
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "s3": {
                        "bucket": {"name": backtest["bucket"]},
                        "object": {"key": f"{PREFIX}07.json.gz"},
                    },
                }
            ]
        }
    )
    aws.client("sqs").send_message(
        QueueUrl=backtest["queue"],
        MessageBody=note,
        MessageAttributes={"falconet.run": {"DataType": "String", "StringValue": "run-1"}},
    )
    drain(aws, backtest["queue"])
    assert alerts_in(aws, backtest["alerts"], receive_all) == []
    assert RunProgress(DynamoDBStore(backtest["table"])).status("run-1").done == OBJECTS


def test_a_failing_object_is_retried_then_named_and_a_gone_one_at_once(
    aws: Aws,
    backtest: dict[str, str],
    receive_all: Callable[..., list[dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    s3 = aws.client("s3")
    broken = body(99)
    s3.put_object(
        Bucket=backtest["bucket"],
        Key="cluster=prod-eu/bad/corrupt.json.gz",
        Body=broken[:40] + b"not deflate at all" + broken[40:],
    )
    s3.put_object(Bucket=backtest["bucket"], Key="cluster=prod-eu/bad/fine.json.gz", Body=body(98))
    s3.put_object(Bucket=backtest["bucket"], Key="cluster=prod-eu/bad/gone.json.gz", Body=body(97))
    assert fan_out(backtest, "run-2", "cluster=prod-eu/bad/") == 0
    s3.delete_object(Bucket=backtest["bucket"], Key="cluster=prod-eu/bad/gone.json.gz")
    capsys.readouterr()

    invocations = drain(aws, backtest["queue"])
    assert invocations >= 2  # the corrupt object's message came back once (max receives: 2)

    status = RunProgress(DynamoDBStore(backtest["table"])).status("run-2")
    assert (status.total, status.done, status.failed) == (3, 1, 2)
    bucket = backtest["bucket"]
    assert set(status.failures) == {
        f"s3://{bucket}/cluster=prod-eu/bad/corrupt.json.gz",
        f"s3://{bucket}/cluster=prod-eu/bad/gone.json.gz",
    }
    assert (
        "corrupt or truncated"
        in status.failures[f"s3://{bucket}/cluster=prod-eu/bad/corrupt.json.gz"]
    )

    assert cli.main(["scan", "--follow", "run-2", "--state-table", backtest["table"]]) == 1
    err = capsys.readouterr().err
    assert f"failed: s3://{bucket}/cluster=prod-eu/bad/corrupt.json.gz" in err
    assert f"failed: s3://{bucket}/cluster=prod-eu/bad/gone.json.gz: object gone" in err
    assert "2 object(s) failed" in err

    fine = [
        a
        for a in alerts_in(aws, backtest["alerts"], receive_all)
        if a["output_fields"]["falconet.origin"].endswith("fine.json.gz")
    ]
    assert len(fine) == PER_OBJECT


def test_the_window_selects_objects_by_key_date(
    aws: Aws, backtest: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = aws.client("s3")
    s3.put_object(
        Bucket=backtest["bucket"], Key="cluster=prod-eu/2026/03/12/a.json.gz", Body=body(1)
    )
    assert fan_out(backtest, "run-3", "cluster=prod-eu/", "--since", "2026-03-12") == 0
    assert "51 objects listed, 50 outside --since/--until, 0 already done, 1 queued" in (
        capsys.readouterr().err
    )


def test_an_inventory_manifest_names_the_objects(
    aws: Aws,
    backtest: dict[str, str],
    receive_all: Callable[..., list[dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An S3 Inventory report (CSV) instead of a listing: its manifest.json names gzip CSV files
    of Bucket,Key,Size,LastModifiedDate rows (keys URL-encoded, as S3 writes them)."""
    s3 = aws.client("s3")
    bucket = backtest["bucket"]
    rows = "".join(
        f'"{bucket}","{PREFIX.replace("=", "%3D")}{n:02d}.json.gz","1","2026-03-11T10:00:00.000Z"\n'
        for n in (3, 4, 5)
    )
    s3.put_object(Bucket=bucket, Key="inventory/data/a.csv.gz", Body=gzip.compress(rows.encode()))
    manifest = {
        "sourceBucket": bucket,
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate",
        "files": [{"key": "inventory/data/a.csv.gz", "size": 1, "MD5checksum": "x"}],
    }
    s3.put_object(Bucket=bucket, Key="inventory/manifest.json", Body=json.dumps(manifest))
    assert fan_out(backtest, "run-4", "inventory/manifest.json") == 0
    assert "3 objects listed, 0 outside --since/--until, 0 already done, 3 queued" in (
        capsys.readouterr().err
    )
    drain(aws, backtest["queue"])
    status = RunProgress(DynamoDBStore(backtest["table"])).status("run-4")
    assert (status.total, status.done, status.failed) == (3, 3, 0)
    assert len(alerts_in(aws, backtest["alerts"], receive_all)) == 3 * PER_OBJECT
