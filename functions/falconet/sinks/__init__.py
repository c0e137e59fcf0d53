"""Where alerts go: one small class per destination behind one interface.

    class Sink(Protocol):
        name: str
        def emit(self, alerts: Sequence[Alert]) -> None: ...   # may buffer
        def flush(self) -> None: ...                          # deliver all; SinkError after retries

Sinks are chosen from configuration (`sinks_from_env`), built once per cold start and reused.

`sinks_from_env(environ)` reads these variables (an empty value counts as unset, because SAM and
CloudFormation pass "" for parameters left blank); every configured sink is used:

    FALCONET_SQS_QUEUE_URL      SqsSink     (a `.fifo` URL selects FIFO mode)
    FALCONET_SNS_TOPIC_ARN      SnsSink     (a `.fifo` topic selects FIFO mode)
    FALCONET_NOTIFY_FUNCTION    LambdaSink  (function name, partial ARN or ARN, optional `:alias`)
    FALCONET_HTTP_SINK_URL      HttpSink
      FALCONET_HTTP_SINK_FORMAT   cloudevent (default) | falco
      FALCONET_HTTP_SINK_HEADERS  JSON object of extra request headers, e.g. an Authorization header
    (none of the above)         StdoutSink

A bad value raises `ConfigError` naming the variable, so the cold start fails loudly instead of
alerts being dropped later. Building a sink does no I/O: AWS clients are created on first flush.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from falconet.alerts import Alert
from falconet.errors import ConfigError

if TYPE_CHECKING:
    from falconet.sinks.http import HttpFormat


class Sink(Protocol):
    name: str

    def emit(self, alerts: Sequence[Alert]) -> None:
        """Accept alerts for delivery (a sink may buffer them until `flush`)."""

    def flush(self) -> None:
        """Deliver everything accepted so far; raise `SinkError` if some could not be delivered."""


SQS_QUEUE_URL = "FALCONET_SQS_QUEUE_URL"
SNS_TOPIC_ARN = "FALCONET_SNS_TOPIC_ARN"
NOTIFY_FUNCTION = "FALCONET_NOTIFY_FUNCTION"
HTTP_SINK_URL = "FALCONET_HTTP_SINK_URL"
HTTP_SINK_FORMAT = "FALCONET_HTTP_SINK_FORMAT"
HTTP_SINK_HEADERS = "FALCONET_HTTP_SINK_HEADERS"

_QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}(\.fifo)?")
_TOPIC_ARN = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?")
_FUNCTION = re.compile(
    r"(arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:|\d{12}:function:)?"
    r"[A-Za-z0-9_-]{1,64}(:(\$LATEST|[A-Za-z0-9_-]{1,128}))?"
)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token


def _get(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name, "").strip()


def http_url(name: str, value: str) -> str:
    """`value` if it is an absolute http(s) URL with a host; `ConfigError` naming `name` if not.

    The value is not echoed: webhook URLs often embed their secret (e.g. Slack's).
    """
    parts = urlsplit(value)
    try:
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is not a number
        valid = False
    if not valid:
        raise ConfigError(f"{name}: not an http:// or https:// URL with a host (value not shown)")
    return value


def sqs_queue_url(value: str) -> str:
    """`value` if it looks like an SQS queue URL (`ConfigError` naming the variable otherwise)."""
    parts = urlsplit(value)
    segments = [s for s in parts.path.split("/") if s]
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or len(segments) != 2
        or not _QUEUE_NAME.fullmatch(segments[1])
    ):
        raise ConfigError(
            f"{SQS_QUEUE_URL}: {value!r} is not an SQS queue URL; expected "
            "https://sqs.<region>.amazonaws.com/<account-id>/<queue-name>"
        )
    return value


def sns_topic_arn(value: str) -> str:
    if not _TOPIC_ARN.fullmatch(value):
        raise ConfigError(
            f"{SNS_TOPIC_ARN}: {value!r} is not an SNS topic ARN; expected "
            "arn:aws:sns:<region>:<account-id>:<topic-name>"
        )
    return value


def function_name(value: str) -> str:
    if not _FUNCTION.fullmatch(value):
        raise ConfigError(
            f"{NOTIFY_FUNCTION}: {value!r} is not a Lambda function name or ARN; expected e.g. "
            "falconet-notify or arn:aws:lambda:<region>:<account-id>:function:<name>"
        )
    return value


def http_format(value: str) -> HttpFormat:
    from falconet.sinks.http import FORMATS  # noqa: PLC0415 - keep this module import-light

    fmt = value.lower() or "cloudevent"
    if fmt not in FORMATS:
        raise ConfigError(f"{HTTP_SINK_FORMAT}: {value!r} is not one of {', '.join(FORMATS)}")
    return fmt


def http_headers(name: str, value: str) -> dict[str, str]:
    """Parse a JSON object of header names to string values (`ConfigError` naming `name`).

    The values are never echoed in errors: they usually hold a token.
    """
    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        raise ConfigError(
            f'{name}: not a JSON object (expected e.g. {{"Authorization": "Bearer ..."}})'
        ) from None
    if not isinstance(parsed, dict):
        raise ConfigError(f"{name}: expected a JSON object of header names to values")
    headers: dict[str, str] = {}
    for key, item in parsed.items():
        if not _HEADER_NAME.fullmatch(key):
            raise ConfigError(f"{name}: {key!r} is not a valid HTTP header name")
        if not isinstance(item, str) or "\r" in item or "\n" in item:
            raise ConfigError(f"{name}: the value of {key!r} must be a one-line string")
        headers[key] = item
    return headers


def sinks_from_env(environ: Mapping[str, str]) -> list[Sink]:
    """The sinks `environ` configures, in a fixed order (SQS, SNS, Lambda, HTTP), or `[stdout]`.

    Raises `ConfigError` naming the variable whose value is invalid.
    """
    # Imported here: entry points that never emit (e.g. `falconet validate`) skip these modules.
    from falconet.sinks.http import HttpSink  # noqa: PLC0415
    from falconet.sinks.lambda_invoke import LambdaSink  # noqa: PLC0415
    from falconet.sinks.sns import SnsSink  # noqa: PLC0415
    from falconet.sinks.sqs import SqsSink  # noqa: PLC0415
    from falconet.sinks.stdout import StdoutSink  # noqa: PLC0415

    sinks: list[Sink] = []
    if queue := _get(environ, SQS_QUEUE_URL):
        sinks.append(SqsSink(sqs_queue_url(queue)))
    if topic := _get(environ, SNS_TOPIC_ARN):
        sinks.append(SnsSink(sns_topic_arn(topic)))
    if function := _get(environ, NOTIFY_FUNCTION):
        sinks.append(LambdaSink(function_name(function)))
    url = _get(environ, HTTP_SINK_URL)
    fmt = http_format(_get(environ, HTTP_SINK_FORMAT))
    headers = http_headers(HTTP_SINK_HEADERS, _get(environ, HTTP_SINK_HEADERS))
    if url:
        sinks.append(HttpSink(http_url(HTTP_SINK_URL, url), fmt=fmt, headers=headers))
    else:
        for name in (HTTP_SINK_FORMAT, HTTP_SINK_HEADERS):
            if _get(environ, name):
                raise ConfigError(f"{name} is set but {HTTP_SINK_URL} is not")
    return sinks or [StdoutSink()]


__all__ = ["Sink", "sinks_from_env"]
