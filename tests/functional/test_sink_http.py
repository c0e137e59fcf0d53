"""The HTTP sink against a real local receiver: CloudEvents structured mode (parsed back with the
cloudevents 1.x SDK, an independent reader), plain Falco JSON, retries and permanent failures."""

from __future__ import annotations

import json

import pytest
from cloudevents.http import from_http

from falconet.config import Settings
from falconet.errors import SinkError
from falconet.sinks import sinks_from_settings
from falconet.sinks.http import HttpSink


def sinks_from_env(environ: dict[str, str]) -> list:  # type: ignore[type-arg]
    """The sinks a function with `environ` builds at its cold start."""
    return sinks_from_settings(Settings(environ).sinks)


def test_cloudevent_structured_mode(http_receiver, make_alert) -> None:
    alerts = [make_alert(n) for n in range(3)]
    sink = HttpSink(http_receiver.url, fmt="cloudevent")
    sink.emit(alerts)
    sink.flush()

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
    sink.emit([alert])
    sink.flush()

    (request,) = http_receiver.requests
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert request.headers["authorization"] == "Bearer s3cret"
    assert json.loads(request.body) == alert.to_dict()


def test_a_500_is_retried_until_it_succeeds(http_receiver, make_alert) -> None:
    http_receiver.statuses = [500, 503, 200]
    sink = HttpSink(http_receiver.url, fmt="falco", backoff_base=0.001)
    sink.emit([make_alert(1)])
    sink.flush()
    assert [json.loads(r.body)["uuid"] for r in http_receiver.requests] == [make_alert(1).uuid] * 3


def test_a_permanent_500_raises_after_the_last_attempt(http_receiver, make_alert) -> None:
    http_receiver.statuses = [500]
    sink = HttpSink(http_receiver.url, fmt="cloudevent", max_attempts=3, backoff_base=0.001)
    sink.emit([make_alert(1), make_alert(2), make_alert(3)])
    with pytest.raises(SinkError) as caught:
        sink.flush()
    # The endpoint is down: the first alert used every attempt, the others were not tried.
    assert str(caught.value) == (
        f"HTTP sink: 3 of 3 alert(s) failed: {make_alert(1).uuid}: HTTP POST "
        f"{http_receiver.url}: HTTP 500 after 3 attempt(s); 2 more not attempted (endpoint down)"
    )
    assert len(http_receiver.requests) == 3


def test_a_rejected_alert_does_not_stop_the_others(http_receiver, make_alert) -> None:
    http_receiver.statuses = [422, 200]
    sink = HttpSink(http_receiver.url, fmt="falco", backoff_base=0.001)
    sink.emit([make_alert(1), make_alert(2), make_alert(3)])
    with pytest.raises(
        SinkError, match=r"^HTTP sink: 1 of 3 alert\(s\) failed: .*HTTP 422 after 1"
    ):
        sink.flush()
    assert [json.loads(r.body)["uuid"] for r in http_receiver.requests] == [
        make_alert(n).uuid for n in (1, 2, 3)
    ]


def test_a_400_is_not_retried(http_receiver, make_alert) -> None:
    http_receiver.statuses = [400]
    sink = HttpSink(http_receiver.url, fmt="falco", backoff_base=0.001)
    sink.emit([make_alert(1)])
    with pytest.raises(SinkError, match=r"HTTP 400 after 1 attempt"):
        sink.flush()
    assert len(http_receiver.requests) == 1


def test_connection_refused_raises_sink_error(http_receiver, make_alert) -> None:
    sink = HttpSink("http://127.0.0.1:9/", fmt="falco", max_attempts=2, backoff_base=0.001)
    sink.emit([make_alert(1)])
    with pytest.raises(SinkError, match=r"connection failed .* after 2 attempt"):
        sink.flush()


def test_configured_from_env_with_headers(http_receiver, make_alert) -> None:
    (sink,) = sinks_from_env(
        {
            "FALCONET_HTTP_SINK_URL": http_receiver.url,
            "FALCONET_HTTP_SINK_FORMAT": "falco",
            "FALCONET_HTTP_SINK_HEADERS": '{"Authorization": "Bearer t0ken"}',
        }
    )
    sink.emit([make_alert(3)])
    sink.flush()
    (request,) = http_receiver.requests
    assert request.headers["authorization"] == "Bearer t0ken"
    assert json.loads(request.body)["uuid"] == make_alert(3).uuid


def test_errors_do_not_reveal_the_url_path(http_receiver, make_alert) -> None:
    http_receiver.statuses = [404]
    sink = HttpSink(http_receiver.url + "services/T0/B0/s3cr3t", fmt="falco")
    sink.emit([make_alert(1)])
    with pytest.raises(SinkError) as caught:
        sink.flush()
    assert "s3cr3t" not in str(caught.value)
    assert "HTTP 404" in str(caught.value)


def test_redirects_are_not_followed(http_receiver, make_alert) -> None:
    # Following a redirect would send the alert (and any Authorization header) elsewhere.
    http_receiver.statuses = [302]
    sink = HttpSink(http_receiver.url, fmt="falco", headers={"Authorization": "Bearer t"})
    sink.emit([make_alert(1)])
    with pytest.raises(SinkError, match=r"HTTP 302 after 1 attempt"):
        sink.flush()
    assert len(http_receiver.requests) == 1
