"""Local processes for the cross-boundary tests: started on a free loopback port, waited for until
they accept connections, stopped by their process id (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    """Return once 127.0.0.1:`port` accepts a connection; fail with the process's output if it
    exits first or the time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError as exc:
            if proc.poll() is not None or time.monotonic() > deadline:
                output = log.read_text(errors="replace")[-4000:]
                message = f"{proc.args!r} did not start on port {port}:\n{output}"
                raise RuntimeError(message) from exc
            time.sleep(0.2)


@contextlib.contextmanager
def serving(
    args: Sequence[str],
    *,
    port: int,
    log: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 90,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `args` (a server listening on `port`) for the block's duration, its output in `log`."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(args),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: gunicorn workers stop with it
        )
        try:
            wait_for_port(port, proc, log, timeout)
            yield proc
        finally:
            stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process (and its group, by its own id), then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)
