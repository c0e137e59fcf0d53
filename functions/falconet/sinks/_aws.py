"""Shared plumbing of the AWS sinks: lazy boto3 clients, batching by count and size, retries.

Contract:
- `make_client(service, region)` imports boto3 on first call only (the import costs ~200 ms of cold
  start), and every client comes from one process-wide
  session (a new session per client costs ~50 ms more). Endpoints come only from botocore's own
  configuration (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`), never from a parameter here.
- botocore's `standard` retry mode retries throttling and transient request errors; the sinks retry
  on top of that only what botocore never retries: the per-entry `Failed` list of a batch call.
- `chunk(items, size_of, max_count, max_bytes)` groups items in order; an item bigger than
  `max_bytes` on its own is yielded alone for the caller to reject.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from falconet.errors import SinkError
from falconet.sinks._retry import sleep_before_retry

if TYPE_CHECKING:
    import boto3  # lazy on purpose, see the module docstring

T = TypeVar("T")

# Lambda's handlers have seconds, not minutes: connect quickly, fail over to botocore's retries.
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 10.0
BOTOCORE_MAX_ATTEMPTS = 4

_session: boto3.session.Session | None = None
_session_lock = threading.Lock()


def make_client(service: str, region: str | None = None) -> Any:
    """A boto3 client for `service` from the process-wide session (boto3 imported here, lazily)."""
    global _session  # noqa: PLW0603 - one session per process is the point (cold-start cost)
    import boto3
    from botocore.config import Config

    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        session = _session
    config = Config(
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"mode": "standard", "max_attempts": BOTOCORE_MAX_ATTEMPTS},
    )
    return session.client(service, region_name=region, config=config)  # type: ignore[call-overload]


def chunk(
    items: Sequence[T], size_of: Callable[[T], int], max_count: int, max_bytes: int
) -> Iterator[list[T]]:
    """Consecutive groups of at most `max_count` items whose sizes add up to at most `max_bytes`."""
    group: list[T] = []
    total = 0
    for item in items:
        size = size_of(item)
        if group and (len(group) >= max_count or total + size > max_bytes):
            yield group
            group, total = [], 0
        group.append(item)
        total += size
    if group:
        yield group


def region_of_arn(arn: str) -> str | None:
    """The region field of an ARN (`arn:aws:sns:eu-west-1:...` -> `eu-west-1`), if present."""
    parts = arn.split(":")
    return parts[3] or None if len(parts) > 3 else None


def deliver_batches(
    sink: str,
    entries: Sequence[tuple[str, dict[str, Any]]],
    call: Callable[[list[dict[str, Any]]], Any],
    *,
    size_of: Callable[[dict[str, Any]], int],
    max_count: int,
    max_bytes: int,
    max_attempts: int,
    backoff_base: float,
) -> None:
    """Send `(label, entry)` pairs through a `*Batch` call, retrying only the entries it reports
    as `Failed` (and not `SenderFault`: those would fail again), with backoff, `max_attempts` times.

    `label` (the alert uuid) names an entry in errors. Raises `SinkError` listing every entry that
    was not delivered; a request error (botocore already retried it) raises at once.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    failures: list[str] = []
    oversized = [label for label, entry in entries if size_of(entry) > max_bytes]
    failures += [f"{label}: larger than the {max_bytes}-byte limit" for label in oversized]
    sendable = [(label, entry) for label, entry in entries if size_of(entry) <= max_bytes]
    sent = 0
    for group in chunk(sendable, lambda pair: size_of(pair[1]), max_count, max_bytes):
        # Entry ids only need to be unique within one request: the position in the group.
        pending = {str(i): pair for i, pair in enumerate(group)}
        for attempt in range(max_attempts):
            request = [{"Id": entry_id, **entry} for entry_id, (_, entry) in pending.items()]
            try:
                response = call(request)
            except (BotoCoreError, ClientError) as error:
                unsent = len(sendable) - sent
                raise SinkError(
                    f"{sink}: request failed after botocore's retries, {unsent} alert(s) not "
                    f"delivered: {error}"
                ) from error
            retry: dict[str, tuple[str, dict[str, Any]]] = {}
            for failed in response.get("Failed", []):
                label, entry = pending[failed["Id"]]
                reason = f"{label}: {failed.get('Code', '?')} {failed.get('Message', '')}".rstrip()
                if failed.get("SenderFault") or attempt + 1 == max_attempts:
                    failures.append(reason)
                else:
                    retry[failed["Id"]] = (label, entry)
            sent += len(pending) - len(retry)
            if not retry:
                break
            pending = retry
            sleep_before_retry(attempt, backoff_base)
    if failures:
        shown = "; ".join(failures[:5]) + ("; ..." if len(failures) > 5 else "")
        raise SinkError(f"{sink}: {len(failures)} alert(s) not delivered: {shown}")


class BatchSink:
    """Buffers alerts and delivers them with an AWS `*Batch` call (the SQS and SNS sinks).

    Subclasses say which service and limits, how an alert becomes an entry, how big an entry is,
    and which call sends a batch; buffering, the lazy per-sink client, batching by count and size
    and the retry of `Failed` entries live here once.
    """

    name = "batch"
    service = ""
    max_count = 10
    max_bytes = 262_144

    def __init__(self, target: str, *, max_attempts: int = 5, backoff_base: float = 0.1) -> None:
        self.target = target
        self.fifo = target.endswith(".fifo")
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self._pending: list[Any] = []
        self._client: Any = None
        self._lock = threading.Lock()

    def region(self) -> str | None:
        """The region named by the target, if any (else boto3's configured region)."""
        return None

    def entry(self, alert: Any) -> dict[str, Any]:
        raise NotImplementedError

    def entry_size(self, entry: dict[str, Any]) -> int:
        raise NotImplementedError

    def send(self, client: Any, batch: list[dict[str, Any]]) -> Any:
        raise NotImplementedError

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = make_client(self.service, self.region())
            return self._client

    def emit(self, alerts: Sequence[Any]) -> None:
        self._pending.extend(alerts)

    def flush(self) -> None:
        alerts, self._pending = self._pending, []
        if not alerts:
            return
        entries = [(alert.uuid or alert.rule, self.entry(alert)) for alert in alerts]
        client = self.client()
        deliver_batches(
            f"{self.service.upper()} {self.target}",
            entries,
            lambda batch: self.send(client, batch),
            size_of=self.entry_size,
            max_count=self.max_count,
            max_bytes=self.max_bytes,
            max_attempts=self.max_attempts,
            backoff_base=self.backoff_base,
        )
