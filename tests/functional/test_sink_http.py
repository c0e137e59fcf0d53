"""The HTTP sink against a real local receiver: CloudEvents structured mode (parsed back with the
cloudevents 1.x SDK, an independent reader), plain Falco JSON, retries and permanent failures."""

from __future__ import annotations

import json

import pytest
from cloudevents.http import from_http
from tests.functional.conftest import deliver

from falconet.config import Settings
from falconet.deadline import Deadline
from falconet.errors import SinkError
from falconet.sinks import sinks_from_settings
from falconet.sinks.http import HttpSink


def sinks_from_env(environ: dict[str, str]) -> list:  # type: ignore[type-arg]
    """The sinks a function with `environ` builds at its cold start."""
    return sinks_from_settings(Settings(environ).sinks)


def test_cloudevent_structured_mode(http_receiver, make_alert) -> None:
    alerts = [make_alert(n) for n in range(3)]
    sink = HttpSink(http_receiver.url, fmt="cloudevent")
    deliver(sink, alerts)

    assert len(http_receiver.requests) == 3
    for request, alert in zip(http_receiver.requests, alerts, strict=True):
        assert request.headers["content-type"].startswith("application/cloudevents+json")
        event = from_http(request.headers, request.body)
        assert event["specversion"] == "1.0"
        assert event["type"] == "falco.rule.output.v1"
        assert event["source"] == "falconet"
        assert event["id"] == alert.uuid
        assert event["time"] == alert.time
        assert event["priority"] == alert.priority
        assert event["rule"] == alert.rule
        assert event["cluster"] == "prod-eu"
        assert event.data == alert.to_dict()


def test_falco_json_as_falco_http_output_sends_it(http_receiver, make_alert) -> None:
    alert = make_alert(7)
    sink = HttpSink(http_receiver.url, fmt="falco", headers={"Authorization": "Bearer s3cret"})
    deliver(sink, [alert])

    (request,) = http_receiver.requests
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert request.headers["authorization"] == "Bearer s3cret"
    assert json.loads(request.body) == alert.to_dict()


def test_a_500_is_retried_until_it_succeeds(http_receiver, make_alert) -> None:
    http_receiver.statuses = [500, 503, 200]
    sink = HttpSink(http_receiver.url, fmt="falco", backoff_base=0.001)
    deliver(sink, [make_alert(1)])
    assert [json.loads(r.body)["uuid"] for r in http_receiver.requests] == [make_alert(1).uuid] * 3


def test_a_permanent_500_raises_after_the_last_attempt(http_receiver, make_alert) -> None:
    http_receiver.statuses = [500]
    sink = HttpSink(http_receiver.url, fmt="cloudevent", max_attempts=3, backoff_base=0.001)
    with pytest.raises(SinkError) as caught:
        deliver(sink, [make_alert(1), make_alert(2), make_alert(3)])
    # The endpoint is down: the first alert used every attempt, the others were not tried.
    assert str(caught.value) == (
        f"HTTP sink: {make_alert(1).uuid}: HTTP POST {http_receiver.url}: HTTP 500 after 3 "
        "attempt(s); this and the invocation's later alerts were not delivered"
    )
    assert len(http_receiver.requests) == 3


@pytest.mark.parametrize("status", [400, 413, 422])
def test_an_alert_refused_for_itself_is_dropped_alone(
    http_receiver, make_alert, status, caplog
) -> None:
    http_receiver.statuses = [status, 200]
    sink = HttpSink(http_receiver.url, fmt="falco", backoff_base=0.001)
    tally = deliver(sink, [make_alert(1), make_alert(2), make_alert(3)])
    assert (tally.delivered, tally.dropped) == (2, 1)
    post = f"HTTP POST {http_receiver.url}: HTTP {status} after 1 attempt(s)"
    assert tally.reasons == [f"http {make_alert(1).uuid}: {post}"]
    assert f"http dropped alert {make_alert(1).uuid}" in caplog.text
    assert [json.loads(r.body)["uuid"] for r in http_receiver.requests] == [
        make_alert(n).uuid for n in (1, 2, 3)
    ]


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_misconfigured_endpoint_fails_the_delivery(http_receiver, make_alert, status) -> None:
    # Dropping would lose every alert to a wrong token or URL: fail, so the trigger retries.
    http_receiver.statuses = [status]
    sink = HttpSink(http_receiver.url, fmt="falco", backoff_base=0.001)
    with pytest.raises(SinkError, match=rf"HTTP {status} after 1 attempt"):
        deliver(sink, [make_alert(1), make_alert(2)])
    assert len(http_receiver.requests) == 1


def test_no_retry_is_started_that_would_end_after_the_deadline(http_receiver, make_alert) -> None:
    http_receiver.statuses = [503]
    now = [0.0]
    # 8 s left, a 5 s timeout per attempt: a retry fits only while backoff + 5 s <= time left.
    deadline = Deadline.after(
        8.0, clock=lambda: now[0], sleeper=lambda s: now.__setitem__(0, now[0] + s)
    )
    sink = HttpSink(http_receiver.url, fmt="falco", max_attempts=50, backoff_base=1.0)
    with pytest.raises(SinkError, match="no time left to retry before the invocation's deadline"):
        deliver(sink, [make_alert(1)], deadline)
    assert 1 <= len(http_receiver.requests) < 50
    assert now[0] <= 3.0


def test_connection_refused_raises_sink_error(http_receiver, make_alert) -> None:
    sink = HttpSink("http://127.0.0.1:9/", fmt="falco", max_attempts=2, backoff_base=0.001)
    with pytest.raises(SinkError, match=r"connection failed .* after 2 attempt"):
        deliver(sink, [make_alert(1)])


def test_configured_from_env_with_headers(http_receiver, make_alert) -> None:
    (sink,) = sinks_from_env(
        {
            "FALCONET_HTTP_SINK_URL": http_receiver.url,
            "FALCONET_HTTP_SINK_FORMAT": "falco",
            "FALCONET_HTTP_SINK_HEADERS": '{"Authorization": "Bearer t0ken"}',
        }
    )
    deliver(sink, [make_alert(3)])
    (request,) = http_receiver.requests
    assert request.headers["authorization"] == "Bearer t0ken"
    assert json.loads(request.body)["uuid"] == make_alert(3).uuid


def test_errors_do_not_reveal_the_url_path(http_receiver, make_alert) -> None:
    http_receiver.statuses = [404]
    sink = HttpSink(http_receiver.url + "services/T0/B0/s3cr3t", fmt="falco")
    with pytest.raises(SinkError) as caught:
        deliver(sink, [make_alert(1)])
    assert "s3cr3t" not in str(caught.value)
    assert "HTTP 404" in str(caught.value)


def test_redirects_are_not_followed(http_receiver, make_alert) -> None:
    # Following a redirect would send the alert (and any Authorization header) elsewhere.
    http_receiver.statuses = [302]
    sink = HttpSink(http_receiver.url, fmt="falco", headers={"Authorization": "Bearer t"})
    with pytest.raises(SinkError, match=r"HTTP 302 after 1 attempt"):
        deliver(sink, [make_alert(1)])
    assert len(http_receiver.requests) == 1
