"""Peak RSS of one invocation that sends N alerts to the SQS sink (a moto server on loopback).

    python bench/sink_memory.py [--alerts 200000] [--functions DIR]

A fresh child process builds the pipeline (the functional test rules, the SQS sink), streams N
namespace deletions (one alert each) through `Pipeline.run`, and reports its peak RSS
(`ru_maxrss`) after the imports and at the end, and the seconds it took. The moto server runs in
this parent process, so its memory is not counted, and it counts the messages it accepts instead
of keeping them (moto slows down with every stored message: 200,000 would take hours).
`--functions` points the child at another checkout's `functions/` (e.g. main's, for a before/after
comparison); the child only uses what both have: `Pipeline(engine, sinks).run(chunks)`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import copy, json, resource, sys, time
from falconet.engine import Engine
from falconet.pipeline import Pipeline
from falconet.sinks.sqs import SqsSink

rules, queue, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
items = json.load(open(sys.argv[4]))["items"]
deletion = next(item for item in items if item["verb"] == "delete")
pipeline = Pipeline(Engine.from_paths([rules]), [SqsSink(queue)])

def chunks():
    for start in range(0, count, 1000):
        lines = []
        for n in range(start, min(count, start + 1000)):
            deletion["auditID"] = f"00000000-0000-4000-8000-{n:012d}"
            lines.append(json.dumps(deletion))
        yield ("\n".join(lines) + "\n").encode()

import boto3  # imported before the baseline: both versions load it on their first request
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
result = pipeline.run(chunks(), name="bench")
seconds = time.perf_counter() - started
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before, after, result.alerts, round(seconds, 1))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=200_000)
    parser.add_argument("--functions", type=Path, default=ROOT / "functions")
    args = parser.parse_args()

    import boto3
    from moto.server import ThreadedMotoServer
    from moto.sqs.models import Queue

    accepted = [0]

    def count(queue: Queue, message: object) -> None:
        accepted[0] += 1

    Queue.add_message = count  # type: ignore[method-assign]

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": str(args.functions.resolve()),
    }
    os.environ.update({k: env[k] for k in env if k.startswith("AWS_")})
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="bench-alerts")["QueueUrl"]
    try:
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD,
                str(ROOT / "tests" / "data" / "functional_rules.yaml"),
                queue,
                str(args.alerts),
                str(ROOT / "examples" / "audit-batch.json"),
            ],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
    finally:
        server.stop()
    before, after, alerts, seconds = int(out[0]), int(out[1]), int(out[2]), float(out[3])
    print(
        f"{args.functions}: {alerts} alerts to SQS in {seconds} s, peak RSS "
        f"{before / 1024:.0f} MB after imports, {after / 1024:.0f} MB at the end "
        f"(+{(after - before) / 1024:.0f} MB); moto accepted {accepted[0]} messages"
    )


if __name__ == "__main__":
    main()
