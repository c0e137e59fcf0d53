"""The HTTP function in a real functions-framework server (gunicorn) refuses what it must at once.

An unauthenticated or oversize request is answered from its headers alone: the server neither
waits for nor reads the rest of the body, and closes the connection instead of draining it (which
would hold a worker thread for as long as the client keeps sending). Each test sends the headers
and a little of a huge declared body over a raw socket, then reads until the server closes: a
server that buffered or drained the body would do neither, because the rest never comes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from tests.conftest import ROOT

RULES = ROOT / "tests" / "data" / "functional_rules.yaml"
TOKEN = "s3cr3t-token"
LIMIT = 64 * 1024
HUGE = 300 * 1024 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = _free_port()
    env = {
        **os.environ,
        "FALCONET_RULES": str(RULES),
        "FALCONET_WEBHOOK_TOKEN": TOKEN,
        "FALCONET_MAX_BODY_BYTES": str(LIMIT),
    }
    log = (tmp_path_factory.mktemp("server") / "out").open("wb")
    proc = subprocess.Popen(
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
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        log.close()


def _send_headers_only(
    port: int, headers: dict[str, str], first: bytes = b"x" * 1024, *, until_closed: bool = True
) -> bytes:
    """POST with `headers` and only `first` of the body; return what the server sends, up to its
    closing the connection (`until_closed`) or the end of the answer's headers."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        head = "POST /?cluster=prod HTTP/1.1\r\nHost: falconet\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode() + first)
        answer = b""
        while until_closed or b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)  # the 30 s socket timeout guards a server that never answers
            if not chunk:
                break
            answer += chunk
        return answer


def test_an_unauthenticated_huge_post_is_refused_from_its_headers(server: int) -> None:
    answer = _send_headers_only(
        server, {"Content-Type": "application/json", "Content-Length": str(HUGE)}
    )
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


def test_a_declared_oversize_body_is_refused_from_its_headers(server: int) -> None:
    answer = _send_headers_only(
        server,
        {
            "Content-Type": "application/json",
            "Content-Length": str(HUGE),
            "Authorization": f"Bearer {TOKEN}",
        },
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_chunked_body_over_the_limit_is_refused_without_reading_the_rest(server: int) -> None:
    chunk = b"y" * 4096
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(LIMIT // len(chunk) + 2))
    answer = _send_headers_only(
        server,
        {
            "Content-Type": "application/json",
            "Transfer-Encoding": "chunked",
            "Authorization": f"Bearer {TOKEN}",
        },
        first=chunks,  # past the limit, and the final chunk never comes
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_normal_request_keeps_its_connection(server: int) -> None:
    body = (ROOT / "examples" / "audit-batch.json").read_bytes()
    answer = _send_headers_only(
        server,
        {
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            "Authorization": f"Bearer {TOKEN}",
        },
        first=body,
        until_closed=False,  # the apiserver reuses its connection: it stays open
    )
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert b"connection: keep-alive" in answer.lower()
