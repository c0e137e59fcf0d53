"""The HTTP sink: one POST per alert, as a CloudEvent or as Falco's own JSON.

Contract:
- `format="cloudevent"`: CloudEvents 1.0 structured mode (`Content-Type:
  application/cloudevents+json`), `type` `falco.rule.output.v1` (Falcosidekick's), `source`
  `falconet`, `id` = the alert uuid (consumers may treat equal source + id as duplicates, so a
  retried invocation deduplicates), `time` = the alert time, `data` = the Falco JSON alert, and the
  extensions Falcosidekick sets: `priority`, `rule`, `eventsource`, `hostname`, plus `cluster`.
- `format="falco"`: the Falco JSON alert as the body (`application/json`), exactly what Falco's
  `http_output` POSTs to Falcosidekick (`POST /`).
- Delivery is stdlib `urllib.request` (no `requests` in the Lambda package), with a timeout, no
  redirects (an `Authorization` header must not follow a redirect elsewhere), and retries with
  backoff on connection errors, timeouts, 429 and 5xx, while the attempts and the invocation's
  deadline allow (each attempt's timeout is cut to the time left).
- A delivery (`open(deadline)`, one per invocation) POSTs each alert as it is emitted: nothing is
  held. An alert the endpoint refuses for itself (400, 413, 422) is dropped: counted, logged, and
  the next one is sent. An endpoint still failing after the retries, or answering as a
  misconfigured endpoint would (3xx, 401, 403, 404, other 4xx), stops the delivery with
  `SinkError` at once: the invocation fails and is retried as a whole, so there is no point
  spending its time limit on the rest. Response bodies, request headers and URL paths never
  appear in errors or logs (they carry tokens: see `redact`).
"""

from __future__ import annotations

import hashlib
import logging
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from falconet.alerts import Alert
from falconet.config import HttpFormat
from falconet.deadline import Deadline
from falconet.errors import SinkError
from falconet.sinks import Tally
from falconet.sinks._retry import backoff_delay

log = logging.getLogger(__name__)

CLOUDEVENT_TYPE = "falco.rule.output.v1"
CLOUDEVENT_SOURCE = "falconet"
USER_AGENT = "falconet"
DEFAULT_TIMEOUT_S = 5.0
MIN_TIMEOUT_S = 0.5  # the shortest timeout an attempt is given near the deadline
CLOUDEVENT_ALLOWANCE = 1024  # the CloudEvent envelope's attributes around the alert
# Statuses that refuse one alert for what it is; any other 4xx or 3xx says the endpoint is wrong.
REFUSED_ALERT = frozenset({400, 413, 422})


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx then surfaces as HTTPError, handled as a failure


_opener = urllib.request.build_opener(_NoRedirect)


def redact(url: str) -> str:
    """`url` without path, query or credentials, for logs and errors: webhook URLs (Slack's
    `/services/T../B../<secret>`) and query tokens are secrets."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    rest = "/..." if parts.path.strip("/") or parts.query else "/"
    return f"{parts.scheme}://{host}{port}{rest}"


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


@dataclass(frozen=True, slots=True)
class PostOutcome:
    """How a POST ended: `problem` is empty on success."""

    url: str
    attempts: int
    status: int | None = None  # the last HTTP status; None when no response came back
    problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem

    @property
    def endpoint_down(self) -> bool:
        """Failed after every retry on a retryable problem: the next request would fail too, so
        callers stop there instead of spending the function's time limit on retries."""
        return not self.ok and (self.status is None or _retryable(self.status))

    def describe(self) -> str:
        return f"HTTP POST {redact(self.url)}: {self.problem} after {self.attempts} attempt(s)"


def send(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_attempts: int = 4,
    backoff_base: float = 0.2,
    deadline: Deadline | None = None,
) -> PostOutcome:
    """POST `body` to `url`, retrying connection errors, timeouts, 429 and 5xx with backoff, as
    long as `max_attempts` and `deadline` allow (no attempt starts once it has passed)."""
    if not url.startswith(("http://", "https://")):
        return PostOutcome(url, 0, None, "refusing a URL that is not http:// or https://")
    deadline = deadline or Deadline.never()
    if deadline.passed():
        return PostOutcome(url, 0, None, "the invocation's delivery deadline has passed")
    problem, status, attempt = "", None, 0
    for attempt in range(1, max_attempts + 1):
        if attempt > 1:
            delay = backoff_delay(attempt - 2, backoff_base)
            if not deadline.allows(delay, timeout):
                problem += " (no time left to retry before the invocation's deadline)"
                attempt -= 1  # noqa: PLW2901 - this attempt was not made
                break
            deadline.sleep(delay)
        # The scheme was checked above; the URL comes from configuration, never from events.
        request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")  # noqa: S310
        wait = max(MIN_TIMEOUT_S, min(timeout, deadline.remaining()))
        try:
            with _opener.open(request, timeout=wait) as response:
                response.read()
                return PostOutcome(url, attempt, int(response.status))
        except urllib.error.HTTPError as error:
            error.close()
            problem, status = f"HTTP {error.code}", error.code
            if not _retryable(error.code):
                break
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            problem, status = f"connection failed ({reason})", None
        log.debug("POST %s attempt %d: %s", redact(url), attempt, problem)
    return PostOutcome(url, attempt, status, problem)


def cloudevent(alert: Alert) -> dict[str, Any]:
    """The structured-mode CloudEvent for `alert`.

    Built by hand rather than with the `cloudevents` 1.x SDK: the envelope is a handful of fixed
    attributes, and the SDK would add ~30 ms of import to every cold start and a package to the
    Lambda zip. Tests parse what we send with the SDK's `from_http`, which checks the result.
    """
    event: dict[str, Any] = {
        "specversion": "1.0",
        # source + id must be unique; an alert without uuid (never from the engine) gets a hash.
        "id": alert.uuid or hashlib.sha256(alert.to_json()).hexdigest(),
        "source": CLOUDEVENT_SOURCE,
        "type": CLOUDEVENT_TYPE,
        "datacontenttype": "application/json",
    }
    optional = {  # `time` plus Falcosidekick's extension attributes; empty values are left out
        "time": alert.time,
        "priority": alert.priority,
        "rule": alert.rule,
        "eventsource": alert.source,
        "hostname": alert.hostname,
        "cluster": alert.cluster or "",
    }
    event.update({key: value for key, value in optional.items() if value})
    event["data"] = alert.to_dict()
    return event


def request_body(alert: Alert, fmt: HttpFormat) -> tuple[bytes, str]:
    """The body and Content-Type of the POST for `alert` in format `fmt`."""
    if fmt == "cloudevent":
        return orjson.dumps(cloudevent(alert)), "application/cloudevents+json; charset=utf-8"
    return alert.to_json(), "application/json; charset=utf-8"


class HttpDelivery:
    """One invocation's alerts POSTed one by one, as they come."""

    def __init__(self, sink: HttpSink, deadline: Deadline) -> None:
        self.sink = sink
        self.deadline = deadline
        self.tally = Tally(sink.name)

    def emit(self, alerts: Sequence[Alert]) -> None:
        sink = self.sink
        for alert in alerts:
            body, content_type = request_body(alert, sink.fmt)
            headers = {"User-Agent": USER_AGENT, **sink.headers, "Content-Type": content_type}
            outcome = send(
                sink.url,
                body,
                headers,
                timeout=sink.timeout,
                max_attempts=sink.max_attempts,
                backoff_base=sink.backoff_base,
                deadline=self.deadline,
            )
            if outcome.ok:
                self.tally.delivered += 1
            elif outcome.status in REFUSED_ALERT:
                self.tally.drop(alert, outcome.describe())
            else:
                raise SinkError(
                    f"HTTP sink: {alert.uuid or alert.rule}: {outcome.describe()}; this and the "
                    "invocation's later alerts were not delivered"
                )

    def flush(self) -> None:
        """Nothing is held."""


class HttpSink:
    """Alerts POSTed one by one to an HTTP endpoint (a CloudEvents consumer or Falcosidekick)."""

    name = "http"

    def __init__(
        self,
        url: str,
        *,
        fmt: HttpFormat = "cloudevent",
        headers: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_attempts: int = 4,
        backoff_base: float = 0.2,
        max_alert_bytes: int | None = None,
    ) -> None:
        self.url = url
        self.fmt = fmt
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        envelope = CLOUDEVENT_ALLOWANCE if fmt == "cloudevent" else 0
        self.max_alert_bytes = None if max_alert_bytes is None else max_alert_bytes - envelope

    def open(self, deadline: Deadline | None = None) -> HttpDelivery:
        return HttpDelivery(self, deadline or Deadline.never())
