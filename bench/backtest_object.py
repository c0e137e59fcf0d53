"""Per-object throughput of the backtest path: one fan-out message through `handle_s3`.

    .venv/bin/python bench/backtest_object.py [--events 40000] [--rounds 3]

What one backtest invocation does, in one process, against a moto server started here as a
separate process on 127.0.0.1 (so its CPU is not this process's, as S3 and DynamoDB are not
Lambda's): read a gzip object of the bench corpus's realistic events (a five-minute batch of a
busy cluster) from S3, decode, evaluate the bundled rules with their correlations, send the
alerts to SQS, and write the run's marker and counters to the state table. Each round is a new
run id (a run skips what it did). Also timed: the same bytes through `Pipeline.run` in memory,
so the cost of the S3 read and the run's state writes shows.

Prints seconds per object, events/s, MB of gzip per second, and what those mean for 1 TB of gzip
(docs/backtest.md keeps the estimate made from it). Ends the moto server by its process id.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "functions"), str(ROOT / "bench"), str(ROOT)]

import orjson  # noqa: E402

import corpus  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    binary = Path(sys.executable).parent / "moto_server"
    process = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).read()
            return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("moto_server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    process, url = start_moto()
    try:
        os.environ.update(
            AWS_ENDPOINT_URL=url,
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        )
        run(args.events, args.rounds)
    finally:
        process.terminate()
        process.wait(timeout=10)


def run(count: int, rounds: int) -> None:
    import boto3

    objects = []
    for seed in range(rounds + 1):  # new events each round: state from one does not serve the next
        stream = corpus.events(seed=100 + seed)
        objects.append(b"".join(orjson.dumps(next(stream)) + b"\n" for _ in range(count)))
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="archive")
    keys = [f"cluster=prod/2026/03/11/10/{n:02d}.json.gz" for n in range(len(objects))]
    for key, raw in zip(keys, objects, strict=True):
        s3.put_object(Bucket="archive", Key=key, Body=gzip.compress(raw, 6))
    queue = boto3.client("sqs").create_queue(QueueName="alerts")["QueueUrl"]
    table = "falconet-state"
    boto3.client("dynamodb").create_table(  # template.yaml's StateTable, as far as runs use it
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    os.environ.update(
        FALCONET_SQS_QUEUE_URL=queue,
        FALCONET_STATE_TABLE=table,
        FALCONET_RULES=str(ROOT / "rules"),
    )

    import falconet
    import lambda_handlers

    def invoke(key: str, run_id: str) -> dict[str, object]:
        note = {
            "Records": [
                {
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "awsRegion": "us-east-1",
                    "s3": {"bucket": {"name": "archive"}, "object": {"key": key}},
                }
            ]
        }
        record = {
            "messageId": run_id,
            "eventSource": "aws:sqs",
            "body": json.dumps(note),
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {"falconet.run": {"stringValue": run_id, "dataType": "String"}},
        }
        return lambda_handlers.handle_s3({"Records": [record]})

    real_err = sys.stderr
    log = io.StringIO()
    sys.stderr = log
    try:
        invoke(keys[0], "warm")
        handler = []
        for n in range(1, rounds + 1):
            log.seek(0)
            log.truncate()
            started = time.perf_counter()
            answer = invoke(keys[n], f"bench-{n}")
            handler.append(time.perf_counter() - started)
            assert answer == {"batchItemFailures": []}, answer
        store = falconet.get_runtime().pipeline.correlator.store  # type: ignore[union-attr]
        requests = dict(store.requests)  # DynamoDB, all invocations so far (warm-up included)
        line = next(x for x in log.getvalue().splitlines() if x.startswith('{"falconet"'))
        counters = json.loads(line)
        # The same objects with the state in memory and alerts to stdout (/dev/null here): the
        # CPU the scan itself costs, without a network request.
        os.environ["FALCONET_STATE_TABLE"] = ""
        os.environ["FALCONET_SQS_QUEUE_URL"] = ""
        falconet.reset_runtime()
        real_out = sys.stdout
        sys.stdout = Path(os.devnull).open("w")  # noqa: SIM115
        pipeline = falconet.get_runtime().pipeline
        pipeline.run(gzip.compress(objects[0], 6), limits=pipeline.object_limits)
        memory = []
        for n in range(1, rounds + 1):
            data = gzip.compress(objects[n], 6)
            started = time.perf_counter()
            pipeline.run(data, limits=pipeline.object_limits)
            memory.append(time.perf_counter() - started)
        sys.stdout.close()
        sys.stdout = real_out
    finally:
        sys.stderr = real_err
    best, best_memory = min(handler), min(memory)
    raw = objects[1]
    mb_raw = len(raw) / 1e6
    mb_gz = len(gzip.compress(raw, 6)) / 1e6
    print(
        f"object: {count} events, {mb_raw:.1f} MB raw, {mb_gz:.2f} MB gzip ({mb_raw / mb_gz:.1f}x)"
    )
    print(
        f"last handler invocation: {counters['events']} events, {counters['alerts']} alerts, "
        f"correlation {counters.get('correlation')}, attribution {counters.get('attribution')}, "
        f"suppressed {counters.get('suppressed')}, delivered {counters.get('delivered')}"
    )
    print(f"state table requests, {rounds + 1} objects (keys read, writes): {requests}")
    for name, seconds in (
        ("handle_s3: S3, SQS sink, state table on a moto server", best),
        ("Pipeline.run: in memory, alerts to /dev/null", best_memory),
    ):
        print(
            f"{name}: {seconds:.2f} s/object, {count / seconds:,.0f} events/s, "
            f"{mb_gz / seconds:.2f} MB gzip/s, {mb_raw / seconds:.1f} MB raw/s"
        )


if __name__ == "__main__":
    main()
