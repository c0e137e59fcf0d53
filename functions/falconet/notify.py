"""Notifications for people: alerts read back from the alert queue, one line each, to a webhook.

Contract:
- `format_alert(alert)` is one line: `[<priority>] <rule>: <message> (cluster=<c>, <time>)`, with
  the time cut to milliseconds and `cluster=` left out when the cluster is unknown.
- `alerts_from_message(text)` reads one queue message: a Falco JSON alert (the SQS and SNS sinks), a
  `{"alerts": [...]}` batch (the Lambda sink), or either of those inside an SNS notification
  envelope (an SQS subscription without raw delivery). Raises `ValueError` saying what is wrong.
- `deliver(config, messages)` sends each message's alerts to `config.url` and returns the ids of the
  messages whose delivery failed after retries (or that were not tried once the endpoint was
  down), so the caller can report exactly those (`batchItemFailures`) and nothing is lost.
  Formats: `slack` (default; `{"text": "<lines>"}` with `&<>` escaped, which Slack-compatible
  incoming webhooks accept), `text` (the lines as `text/plain`), both one POST per message or per
  `MAX_TEXT_CHARS` of lines; `falco` (each alert's Falco JSON, one POST per alert, as
  Falcosidekick's `POST /` expects).
- Reads no environment: `NotifyConfig.from_settings` takes the `FALCONET_NOTIFY_*` settings
  `falconet.config` read and checked.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from falconet.alerts import Alert, text_line
from falconet.config import NotifyFormat, NotifySettings
from falconet.deadline import Deadline
from falconet.sinks.http import DEFAULT_TIMEOUT_S, USER_AGENT, send
from falconet.summary import alert_summary

log = logging.getLogger(__name__)

# Slack shows at most 40,000 characters of `text` and recommends keeping messages under 4,000
# (chat.postMessage docs); a batch of alerts is split into posts of at most this many characters.
MAX_TEXT_CHARS = 3500

_FRACTION = re.compile(r"(\.\d{3})\d*(?=Z|[+-]\d\d:\d\d$)")


def short_time(text: str) -> str:
    """`2026-03-11T15:45:00.123456789Z` -> `2026-03-11T15:45:00.123Z` (people read milliseconds)."""
    return _FRACTION.sub(r"\1", text, count=1)


def format_alert(alert: Alert, *, summary: bool = False) -> str:
    """One line for people: `[Warning] K8s Namespace Deleted: <message> (cluster=prod, <time>)`,
    followed by the who/what/when/where line when `summary` is set."""
    message = alert.message or alert.output
    where = [f"cluster={alert.cluster}"] if alert.cluster else []
    if alert.time:
        where.append(short_time(alert.time))
    suffix = f" ({', '.join(where)})" if where else ""
    # Audit data can hold newlines; one alert must stay one line.
    # Other control characters (a tab, a terminal escape) are escaped.
    line = text_line(" ".join(f"[{alert.priority}] {alert.rule}: {message}{suffix}".splitlines()))
    if summary:
        line += "\n    " + " ".join(alert_summary(alert).splitlines())
    return line


def _alert(item: Any) -> Alert:
    if not isinstance(item, dict):
        raise ValueError(f"expected a Falco alert object, got {type(item).__name__}")
    try:
        return Alert.from_dict(item)
    except (KeyError, TypeError) as error:
        raise ValueError(f"not a Falco alert ({error!s} missing or malformed)") from None


def alerts_from_message(text: str | bytes) -> list[Alert]:
    """The alerts in one queue message body (see the module docstring for the accepted forms)."""
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise ValueError(f"body is not JSON ({error})") from None
    if isinstance(document, dict) and document.get("Type") == "Notification":
        message = document.get("Message")
        if not isinstance(message, str):
            raise ValueError("SNS envelope without a string Message")
        try:
            document = orjson.loads(message)
        except orjson.JSONDecodeError as error:
            raise ValueError(f"SNS Message is not JSON ({error})") from None
    if isinstance(document, dict) and "alerts" in document and "rule" not in document:
        items = document["alerts"]
        if not isinstance(items, list):
            raise ValueError('"alerts" is not a list')
        return [_alert(item) for item in items]
    return [_alert(document)]


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    url: str
    fmt: NotifyFormat = "slack"
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT_S
    max_attempts: int = 4
    backoff_base: float = 0.2
    summary: bool = False

    @classmethod
    def from_settings(cls, settings: NotifySettings) -> NotifyConfig:
        """The delivery configuration of the `FALCONET_NOTIFY_*` settings."""
        return cls(
            url=settings.url, fmt=settings.fmt, headers=settings.headers, summary=settings.summary
        )


def slack_escape(text: str) -> str:
    """Escape Slack's three control characters: audit data must not become `<!channel>` pings
    or links (Slack API docs, "Formatting text": escape &, < and >)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _texts(lines: Sequence[str]) -> list[str]:
    """`lines` joined into texts of at most MAX_TEXT_CHARS, longer single lines cut with "…"."""
    texts: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        if len(line) > MAX_TEXT_CHARS:
            line = line[: MAX_TEXT_CHARS - 1] + "…"  # noqa: PLW2901 - the cut line replaces it
        if current and size + 1 + len(line) > MAX_TEXT_CHARS:
            texts.append("\n".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line) + (1 if size else 0)
    if current:
        texts.append("\n".join(current))
    return texts


def requests_for(
    alerts: Sequence[Alert], fmt: NotifyFormat, *, summary: bool = False
) -> list[tuple[bytes, str]]:
    """The POST bodies (and Content-Types) that deliver `alerts` in format `fmt`."""
    if fmt == "falco":
        return [(alert.to_json(), "application/json; charset=utf-8") for alert in alerts]
    if fmt == "text":
        texts = _texts([format_alert(alert, summary=summary) for alert in alerts])
        return [(text.encode(), "text/plain; charset=utf-8") for text in texts]
    texts = _texts([slack_escape(format_alert(alert, summary=summary)) for alert in alerts])
    return [(orjson.dumps({"text": text}), "application/json; charset=utf-8") for text in texts]


def deliver(
    config: NotifyConfig,
    messages: Sequence[tuple[str, Sequence[Alert]]],
    *,
    deadline: Deadline | None = None,
) -> list[str]:
    """POST each `(message_id, alerts)` to `config.url`; return the ids whose delivery failed.

    Once the endpoint is down (still failing after every retry), the remaining messages are
    reported as failed without being tried: they go back to the queue either way, and retrying
    each of them would spend the function's time limit for nothing. Retries end by `deadline`
    (Lambda: `Deadline.for_lambda(context)`), and no POST starts after it: the messages left are
    reported as failed, so the function returns before its timeout.
    """
    failed: list[str] = []
    down = False
    for message_id, alerts in messages:
        if down:
            failed.append(message_id)
            continue
        for body, content_type in requests_for(alerts, config.fmt, summary=config.summary):
            headers = {"User-Agent": USER_AGENT, **config.headers, "Content-Type": content_type}
            outcome = send(
                config.url,
                body,
                headers,
                timeout=config.timeout,
                max_attempts=config.max_attempts,
                backoff_base=config.backoff_base,
                deadline=deadline,
            )
            if not outcome.ok:
                log.warning("notify: message %s not delivered: %s", message_id, outcome.describe())
                failed.append(message_id)
                down = outcome.endpoint_down
                break  # the whole message is retried, so its other alerts can wait too
    if down:
        log.warning("notify: endpoint down, %d message(s) returned to the queue", len(failed))
    return failed
