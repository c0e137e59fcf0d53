"""Shared plumbing of the AWS sinks: lazy boto3 clients, retries bounded by the invocation's
deadline, and the batch delivery of the SQS and SNS sinks.

Contract:
- `make_client(service, region)` imports boto3 on first call only (the import costs ~200 ms of cold
  start), and every client comes from one process-wide session (a new session per client costs
  ~50 ms more). Endpoints come only from botocore's own configuration (`AWS_ENDPOINT_URL`,
  `AWS_ENDPOINT_URL_<SERVICE>`), never from a parameter here.
- botocore retries nothing itself (`total_max_attempts=1`): `call_with_retries` retries connection
  errors, timeouts, throttling and 5xx with backoff while the attempts *and the deadline* allow.
  botocore's own 4 attempts of up to connect + read timeout each could outlast a 30 s function, and
  then the 503 and the log line the caller was promised never come.
- A request refused for what it carries (`InvalidParameterValue`, `BatchRequestTooLong`, ...)
  raises `Refused`: the batch delivery then sends its entries one by one, so one bad entry is
  dropped (counted, logged) and the others are delivered. Any other refusal (a missing queue, a
  denied request) raises `SinkError` at once: retrying cannot help, and dropping would lose every
  alert, while failing the invocation sends it to the trigger's retries and dead-letter queue.
- `BatchDelivery` sends a request as soon as it holds `max_count` entries or `max_bytes` (memory
  stays flat), retries only the entries a response lists as `Failed` and not `SenderFault` (those
  are dropped: they would fail again).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from falconet.alerts import Alert
from falconet.deadline import Deadline
from falconet.errors import SinkError
from falconet.extras import require_aws
from falconet.sinks import Tally
from falconet.sinks._retry import backoff_delay

if TYPE_CHECKING:
    import boto3  # lazy on purpose, see the module docstring

T = TypeVar("T")

# Lambda's handlers have seconds, not minutes: connect quickly, give up on a silent endpoint soon.
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 5.0
WORST_CALL_S = CONNECT_TIMEOUT_S + READ_TIMEOUT_S  # what one attempt may take at most

# botocore's standard retry mode's lists (botocore.retries.standard), which we now apply ourselves.
_THROTTLING = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
# A request refused for its content: sent again entry by entry, the culprit is dropped alone.
_CONTENT = frozenset(
    {
        "InvalidParameterValue",
        "InvalidParameter",
        "InvalidMessageContents",
        "BatchRequestTooLong",
        "RequestEntityTooLargeException",
        "RequestTooLargeException",
        "InvalidRequestContentException",
    }
)

_session: boto3.session.Session | None = None
_session_lock = threading.Lock()


class Refused(Exception):
    """A request refused for what it carries (see the module docstring)."""


def make_client(service: str, region: str | None = None) -> Any:
    """A boto3 client for `service` from the process-wide session (boto3 imported here, lazily)."""
    global _session  # noqa: PLW0603 - one session per process is the point (cold-start cost)
    require_aws(f"the {service} sink")
    import boto3
    from botocore.config import Config

    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        session = _session
    config = Config(
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"mode": "standard", "total_max_attempts": 1},
    )
    return session.client(service, region_name=region, config=config)  # type: ignore[call-overload]


def region_of_arn(arn: str) -> str | None:
    """The region field of an ARN (`arn:aws:sns:eu-west-1:...` -> `eu-west-1`), if present."""
    parts = arn.split(":")
    return parts[3] or None if len(parts) > 3 else None


def error_code(error: Any) -> str:
    """A ClientError's code, without the `AWS.SimpleQueueService.` style prefix."""
    code = str(error.response.get("Error", {}).get("Code", ""))
    return code.rsplit(".", 1)[-1]


def _transient(error: Exception) -> bool:
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(error, BotoConnectionError | HTTPClientError):
        return True
    if isinstance(error, ClientError):
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return status >= 500 or status == 429 or error_code(error) in _THROTTLING
    return False


def call_with_retries(
    describe: str,
    call: Callable[[], T],
    deadline: Deadline,
    *,
    max_attempts: int,
    backoff_base: float,
) -> T:
    """`call()`, retried on transient errors with backoff while `max_attempts` and `deadline`
    allow. Raises `Refused` (content refused), `SinkError` (anything else, or out of retries)."""
    from botocore.exceptions import BotoCoreError, ClientError

    if deadline.passed():
        raise SinkError(f"{describe}: the invocation's delivery deadline has passed")
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except (BotoCoreError, ClientError) as error:
            if isinstance(error, ClientError) and error_code(error) in _CONTENT:
                raise Refused(f"{error_code(error)}: {error}") from error
            if not _transient(error):
                raise SinkError(f"{describe}: {error}") from error
            delay = backoff_delay(attempt - 1, backoff_base)
            if attempt >= max_attempts:
                raise SinkError(f"{describe}: {error} ({attempt} attempt(s))") from error
            if not deadline.allows(delay, WORST_CALL_S):
                raise SinkError(
                    f"{describe}: {error} ({attempt} attempt(s); no time left to retry before "
                    "the invocation's deadline)"
                ) from error
            deadline.sleep(delay)


class BatchDelivery:
    """One invocation's alerts to one SQS queue or SNS topic, sent as batches fill up."""

    def __init__(self, sink: BatchSink, deadline: Deadline) -> None:
        self.sink = sink
        self.deadline = deadline
        self.tally = Tally(sink.name)
        self._group: list[tuple[Alert, dict[str, Any]]] = []
        self._bytes = 0

    def emit(self, alerts: Sequence[Alert]) -> None:
        sink = self.sink
        for alert in alerts:
            entry = sink.entry(alert)
            size = sink.entry_size(entry)
            if size > sink.max_bytes:
                self.tally.drop(alert, f"{size} bytes, over the {sink.max_bytes}-byte limit")
                continue
            if self._group and (
                len(self._group) >= sink.max_count or self._bytes + size > sink.max_bytes
            ):
                self.flush()
            self._group.append((alert, entry))
            self._bytes += size

    def flush(self) -> None:
        group, self._group, self._bytes = self._group, [], 0
        if group:
            self._deliver(group)

    def _deliver(self, group: list[tuple[Alert, dict[str, Any]]]) -> None:
        sink = self.sink
        client = sink.client()
        describe = f"{sink.service.upper()} {sink.target}"
        # Entry ids only need to be unique within one request: the position in the group.
        pending = {str(i): pair for i, pair in enumerate(group)}
        attempt = 0
        while True:
            attempt += 1
            request = [{"Id": entry_id, **entry} for entry_id, (_, entry) in pending.items()]
            try:
                response = call_with_retries(
                    describe,
                    partial(sink.send, client, request),
                    self.deadline,
                    max_attempts=sink.max_attempts,
                    backoff_base=sink.backoff_base,
                )
            except Refused as refusal:
                if len(pending) == 1:
                    ((alert, _),) = pending.values()
                    self.tally.drop(alert, str(refusal))
                else:  # one entry spoils the request: isolate it, deliver the others
                    for pair in pending.values():
                        self._deliver([pair])
                return
            retry: dict[str, tuple[Alert, dict[str, Any]]] = {}
            reasons: list[str] = []
            for failed in response.get("Failed", []):
                alert, entry = pending.pop(failed["Id"])
                reason = f"{failed.get('Code', '?')} {failed.get('Message', '')}".rstrip()
                if failed.get("SenderFault"):
                    self.tally.drop(alert, reason)
                else:
                    retry[failed["Id"]] = (alert, entry)
                    reasons.append(f"{alert.uuid or alert.rule}: {reason}")
            self.tally.delivered += len(pending)
            if not retry:
                return
            delay = backoff_delay(attempt - 1, sink.backoff_base)
            if attempt >= sink.max_attempts or not self.deadline.allows(delay, WORST_CALL_S):
                shown = "; ".join(reasons[:5]) + ("; ..." if len(reasons) > 5 else "")
                why = "" if attempt >= sink.max_attempts else ", no time left before the deadline"
                raise SinkError(
                    f"{describe}: {len(retry)} alert(s) not delivered after {attempt} "
                    f"attempt(s){why}: {shown}"
                )
            self.deadline.sleep(delay)
            pending = retry


class BatchSink:
    """An SQS queue or SNS topic fed with an AWS `*Batch` call.

    Subclasses say which service and limits, how an alert becomes an entry, how big an entry is,
    and which call sends a batch; deliveries, the lazy per-sink client, batching by count and size
    and the retry of `Failed` entries live here once.
    """

    name = "batch"
    service = ""
    max_count = 10
    max_bytes = 262_144
    entry_overhead = 0  # bytes an entry may count beyond the alert's JSON (message attributes)

    def __init__(
        self,
        target: str,
        *,
        max_attempts: int = 5,
        backoff_base: float = 0.1,
        max_alert_bytes: int | None = None,
    ) -> None:
        self.target = target
        self.fifo = target.endswith(".fifo")
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        own = self.max_bytes - self.entry_overhead
        self.max_alert_bytes = own if max_alert_bytes is None else min(own, max_alert_bytes)
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

    def open(self, deadline: Deadline | None = None) -> BatchDelivery:
        return BatchDelivery(self, deadline or Deadline.never())
