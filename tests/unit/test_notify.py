"""Formatting alerts for people and reading queue messages back into alerts."""

from __future__ import annotations

import json

import pytest

from falconet.alerts import Alert
from falconet.config import Settings
from falconet.errors import ConfigError
from falconet.notify import (
    MAX_TEXT_CHARS,
    alerts_from_message,
    format_alert,
    requests_for,
    short_time,
)

ALERT = Alert(
    rule="K8s Namespace Deleted",
    priority="Warning",
    output="15:45:00.123456789: Warning Namespace deleted (user=alice ns=payments)",
    time="2026-03-11T15:45:00.123456789Z",
    time_ns=1_773_243_900_123_456_789,
    tags=("k8s",),
    output_fields={"evt.time": 1_773_243_900_123_456_789, "falconet.cluster": "prod-eu"},
    uuid="8d6f4c1e-0000-4000-8000-000000000001",
    message="Namespace deleted (user=alice ns=payments)",
)


def test_format_alert_one_line() -> None:
    assert format_alert(ALERT) == (
        "[Warning] K8s Namespace Deleted: Namespace deleted (user=alice ns=payments) "
        "(cluster=prod-eu, 2026-03-11T15:45:00.123Z)"
    )


def test_format_alert_without_cluster_and_with_newlines() -> None:
    alert = Alert.from_dict({**ALERT.to_dict(), "output_fields": {"evt.time": 1}})
    alert = Alert.from_dict({**alert.to_dict(), "output": "15:45:00.1: Warning line one\nline two"})
    assert format_alert(alert) == (
        "[Warning] K8s Namespace Deleted: line one line two (2026-03-11T15:45:00.123Z)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-11T15:45:00.123456789Z", "2026-03-11T15:45:00.123Z"),
        ("2026-03-11T15:45:00.12Z", "2026-03-11T15:45:00.12Z"),
        ("2026-03-11T15:45:00Z", "2026-03-11T15:45:00Z"),
        ("2026-03-11T16:45:00.5555+01:00", "2026-03-11T16:45:00.555+01:00"),
    ],
)
def test_short_time(text: str, expected: str) -> None:
    assert short_time(text) == expected


def test_every_message_form_is_read() -> None:
    raw = ALERT.to_json().decode()
    batch = json.dumps({"alerts": [ALERT.to_dict(), ALERT.to_dict()]})
    envelope = json.dumps({"Type": "Notification", "MessageId": "m", "Message": raw})
    assert alerts_from_message(raw) == [ALERT]
    assert alerts_from_message(batch) == [ALERT, ALERT]
    assert alerts_from_message(envelope) == [ALERT]
    assert alerts_from_message('{"alerts": []}') == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "body is not JSON"),
        ('{"rule": "x"}', "not a Falco alert ('output' missing or malformed)"),
        ("[1, 2]", "expected a Falco alert object, got list"),
        ('{"alerts": {"rule": 1}}', '"alerts" is not a list'),
        ('{"Type": "Notification", "Message": 3}', "SNS envelope without a string Message"),
    ],
)
def test_bad_messages_say_why(body: str, reason: str) -> None:
    with pytest.raises(ValueError, match="^" + reason.replace("(", r"\(").replace(")", r"\)")):
        alerts_from_message(body)


def test_request_bodies_per_format() -> None:
    ((slack, slack_type),) = requests_for([ALERT, ALERT], "slack")
    assert slack_type.startswith("application/json")
    assert json.loads(slack) == {"text": format_alert(ALERT) + "\n" + format_alert(ALERT)}
    ((text, text_type),) = requests_for([ALERT], "text")
    assert (text, text_type) == (format_alert(ALERT).encode(), "text/plain; charset=utf-8")
    falco = requests_for([ALERT, ALERT], "falco")
    assert [json.loads(body) for body, _ in falco] == [ALERT.to_dict(), ALERT.to_dict()]
    assert requests_for([], "slack") == []


def test_slack_text_is_escaped_so_audit_data_cannot_ping() -> None:
    alert = Alert.from_dict({**ALERT.to_dict(), "output": "1: Warning user=<!channel> a&b <NA>"})
    ((body, _),) = requests_for([alert], "slack")
    text = json.loads(body)["text"]
    assert "user=&lt;!channel&gt; a&amp;b &lt;NA&gt; (" in text
    ((plain, _),) = requests_for([alert], "text")
    assert "user=<!channel> a&b <NA> (" in plain.decode()


def test_large_batches_are_split_into_readable_posts() -> None:
    alerts = [ALERT] * 60  # ~110 characters each
    bodies = [json.loads(body)["text"] for body, _ in requests_for(alerts, "slack")]
    assert len(bodies) > 1
    assert all(len(text) <= MAX_TEXT_CHARS for text in bodies)
    assert "\n".join(bodies).split("\n") == [format_alert(ALERT)] * 60
    huge = Alert.from_dict({**ALERT.to_dict(), "output": "1: Warning " + "x" * 10_000})
    ((body, _),) = requests_for([huge], "slack")
    assert len(json.loads(body)["text"]) == MAX_TEXT_CHARS
    assert json.loads(body)["text"].endswith("x…")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "FALCONET_NOTIFY_URL is not set: the notify function needs a webhook URL"),
        (
            {"FALCONET_NOTIFY_URL": "hooks.slack.com/x"},
            "FALCONET_NOTIFY_URL: not an http:// or https:// URL with a host (value not shown)",
        ),
        (
            {"FALCONET_NOTIFY_URL": "https://h/", "FALCONET_NOTIFY_FORMAT": "teams"},
            "FALCONET_NOTIFY_FORMAT: 'teams' is not one of slack, text, falco",
        ),
        (
            {"FALCONET_NOTIFY_URL": "https://h/", "FALCONET_NOTIFY_HEADERS": "x"},
            'FALCONET_NOTIFY_HEADERS: not a JSON object (expected e.g. {"Authorization": '
            '"Bearer ..."})',
        ),
    ],
    ids=["unset", "no-scheme", "format", "headers"],
)
def test_notify_config_errors_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _ = Settings(environ).notify
    assert str(caught.value) == message
