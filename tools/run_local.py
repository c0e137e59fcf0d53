"""`make run`: start the HTTP function locally, post a sample audit batch, print the alerts, stop.

Starts `functions-framework --target audit_http` on 127.0.0.1 (a free port) with the bundled rules
and a random bearer token, POSTs examples/audit-batch.json as the kube-apiserver webhook would, and
prints the alerts the function wrote to its stdout sink plus its answer and log line.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "audit-batch.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(
    url: str, body: bytes, token: str, deadline: float, server: subprocess.Popen[bytes]
) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    while True:
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")
        except urllib.error.URLError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def main() -> int:
    port = free_port()
    token = secrets.token_urlsafe(16)
    env = {**os.environ, "FALCONET_WEBHOOK_TOKEN": token, "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "functions_framework",
                "--source",
                str(ROOT / "functions" / "main.py"),
                "--target",
                "audit_http",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
        try:
            url = f"http://127.0.0.1:{port}/?cluster=demo-cluster"
            print(f"falconet: audit_http listening on {url} (bundled rules)")
            print(f"falconet: POST {SAMPLE.relative_to(ROOT)} as the apiserver audit webhook\n")
            status, answer = post(url, SAMPLE.read_bytes(), token, time.monotonic() + 60, server)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=20)
        log.seek(0)
        output = log.read().decode(errors="replace").splitlines()
    alerts = [json.loads(line) for line in output if line.startswith('{"hostname"')]
    for alert in alerts:
        print(alert["output"])
    print(f"\nHTTP {status}: {json.dumps(answer)}")
    for line in output:
        if line.startswith('{"falconet"'):
            print(f"log: {line}")
    if status != 200 or not alerts:
        print("\n".join(output[-30:]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
