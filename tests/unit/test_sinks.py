"""The sinks chosen by the settings (choice and validation, golden error messages), stdout."""

from __future__ import annotations

import io
import json

import pytest

from falconet.alerts import Alert
from falconet.config import Settings
from falconet.errors import ConfigError
from falconet.sinks import sinks_from_settings, smallest_limit
from falconet.sinks.http import HttpSink
from falconet.sinks.lambda_invoke import LambdaSink
from falconet.sinks.sns import SnsSink
from falconet.sinks.sqs import SqsSink, fifo_id, region_of_queue_url, sqs_body
from falconet.sinks.stdout import StdoutSink

QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/falconet-alerts"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:falconet-alerts"


def sinks_from_env(environ: dict[str, str]) -> list:  # type: ignore[type-arg]
    """The sinks a function with `environ` builds at its cold start."""
    return sinks_from_settings(Settings(environ).sinks)


def _alert(n: int, output: str = "Namespace deleted") -> Alert:
    return Alert(
        rule="K8s Namespace Deleted",
        priority="Warning",
        output=f"15:45:00.000000000: Warning {output}",
        time="2026-03-11T15:45:00.000000000Z",
        time_ns=1_773_243_900_000_000_000,
        tags=("k8s",),
        output_fields={"evt.time": 1_773_243_900_000_000_000, "ka.cluster.name": "prod"},
        uuid=f"uuid-{n}",
        message=output,
    )


def test_stdout_is_the_default() -> None:
    assert [s.name for s in sinks_from_env({})] == ["stdout"]
    assert [s.name for s in sinks_from_env({"FALCONET_SQS_QUEUE_URL": "  "})] == ["stdout"]


def test_every_configured_sink_is_built_in_order() -> None:
    sinks = sinks_from_env(
        {
            "FALCONET_SQS_QUEUE_URL": QUEUE + ".fifo",
            "FALCONET_SNS_TOPIC_ARN": TOPIC,
            "FALCONET_NOTIFY_FUNCTION": "arn:aws:lambda:eu-west-1:123456789012:function:n:live",
            "FALCONET_HTTP_SINK_URL": "https://sidekick.example:2801/",
            "FALCONET_HTTP_SINK_FORMAT": "Falco",
        }
    )
    assert [type(s) for s in sinks] == [SqsSink, SnsSink, LambdaSink, HttpSink]
    sqs, sns, _, http = sinks
    assert isinstance(sqs, SqsSink) and sqs.fifo
    assert isinstance(sns, SnsSink) and not sns.fifo
    assert isinstance(http, HttpSink) and http.fmt == "falco"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"FALCONET_SQS_QUEUE_URL": "falconet-alerts"},
            "FALCONET_SQS_QUEUE_URL: 'falconet-alerts' is not an SQS queue URL; expected "
            "https://sqs.<region>.amazonaws.com/<account-id>/<queue-name>",
        ),
        (
            {"FALCONET_SQS_QUEUE_URL": "ftp://sqs.eu-west-1.amazonaws.com/123456789012/q"},
            "FALCONET_SQS_QUEUE_URL: 'ftp://sqs.eu-west-1.amazonaws.com/123456789012/q' is not an "
            "SQS queue URL; expected https://sqs.<region>.amazonaws.com/<account-id>/<queue-name>",
        ),
        (
            {"FALCONET_SNS_TOPIC_ARN": "falconet-alerts"},
            "FALCONET_SNS_TOPIC_ARN: 'falconet-alerts' is not an SNS topic ARN; expected "
            "arn:aws:sns:<region>:<account-id>:<topic-name>",
        ),
        (
            {"FALCONET_NOTIFY_FUNCTION": "https://example.com/notify"},
            "FALCONET_NOTIFY_FUNCTION: 'https://example.com/notify' is not a Lambda function name "
            "or ARN; expected e.g. falconet-notify or "
            "arn:aws:lambda:<region>:<account-id>:function:<name>",
        ),
        (
            {"FALCONET_HTTP_SINK_URL": "sidekick:2801"},
            "FALCONET_HTTP_SINK_URL: not an http:// or https:// URL with a host (value not shown)",
        ),
        (
            {"FALCONET_HTTP_SINK_URL": "http://x/", "FALCONET_HTTP_SINK_FORMAT": "slack"},
            "FALCONET_HTTP_SINK_FORMAT: 'slack' is not one of cloudevent, falco",
        ),
        (
            {"FALCONET_HTTP_SINK_FORMAT": "falco"},
            "FALCONET_HTTP_SINK_FORMAT is set but FALCONET_HTTP_SINK_URL is not",
        ),
        (
            {"FALCONET_HTTP_SINK_URL": "http://x/", "FALCONET_HTTP_SINK_HEADERS": "Bearer abc"},
            'FALCONET_HTTP_SINK_HEADERS: not a JSON object (expected e.g. {"Authorization": '
            '"Bearer ..."})',
        ),
        (
            {"FALCONET_HTTP_SINK_URL": "http://x/", "FALCONET_HTTP_SINK_HEADERS": '["a"]'},
            "FALCONET_HTTP_SINK_HEADERS: expected a JSON object of header names to values",
        ),
        (
            {"FALCONET_HTTP_SINK_URL": "http://x/", "FALCONET_HTTP_SINK_HEADERS": '{"X": "a\\nb"}'},
            "FALCONET_HTTP_SINK_HEADERS: the value of 'X' must be a one-line string",
        ),
        (
            {"FALCONET_HTTP_SINK_URL": "http://x/", "FALCONET_HTTP_SINK_HEADERS": '{"A B": "c"}'},
            "FALCONET_HTTP_SINK_HEADERS: 'A B' is not a valid HTTP header name",
        ),
    ],
    ids=[
        "queue-name-not-url",
        "queue-ftp",
        "topic-not-arn",
        "function-url",
        "http-no-scheme",
        "http-format",
        "format-without-url",
        "headers-not-json",
        "headers-list",
        "headers-newline",
        "header-name",
    ],
)
def test_bad_configuration_names_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        sinks_from_env(environ)
    assert str(caught.value) == message


def test_header_values_are_never_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        sinks_from_env(
            {"FALCONET_HTTP_SINK_URL": "http://x/", "FALCONET_HTTP_SINK_HEADERS": "{Bearer top"}
        )
    assert "top" not in str(caught.value)


def test_stdout_writes_one_json_line_per_alert_at_once() -> None:
    stream = io.BytesIO()
    delivery = StdoutSink(stream).open()
    delivery.emit([_alert(1), _alert(2)])
    delivery.emit([])
    lines = stream.getvalue().splitlines()  # written before any flush: nothing is held
    delivery.flush()
    assert [json.loads(line) for line in lines] == [_alert(1).to_dict(), _alert(2).to_dict()]
    assert delivery.tally.delivered == 2


def test_stdout_default_is_the_current_stdout(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    delivery = StdoutSink().open()
    delivery.emit([_alert(1)])
    delivery.flush()
    assert capsysbinary.readouterr().out == _alert(1).to_json() + b"\n"


def test_sqs_body_escapes_characters_sqs_rejects() -> None:
    body = sqs_body(_alert(1, output="name=a\uffffb"))
    assert "\uffff" not in body
    assert json.loads(body)["output"].endswith("name=a\uffffb")


def test_fifo_ids_keep_to_the_allowed_characters() -> None:
    assert fifo_id("prod eu/é" + "x" * 200) == "prod_eu/_" + "x" * 119


def test_region_of_queue_url() -> None:
    assert region_of_queue_url(QUEUE) == "eu-west-1"
    assert region_of_queue_url("http://127.0.0.1:5000/123456789012/q") is None


def test_every_sink_takes_the_alert_limit_under_its_own() -> None:
    environ = {
        "FALCONET_SQS_QUEUE_URL": QUEUE,
        "FALCONET_SNS_TOPIC_ARN": TOPIC,
        "FALCONET_NOTIFY_FUNCTION": "falconet-notify",
        "FALCONET_HTTP_SINK_URL": "https://sidekick.example/",
    }
    limits = {s.name: s.max_alert_bytes for s in sinks_from_env(environ)}
    # SQS 1 MiB and SNS 256 KiB less headroom, one 256 KiB Lambda payload, HTTP: the setting.
    assert limits == {"sqs": 1_047_552, "sns": 260_096, "lambda": 261_107, "http": 1_047_552}
    smaller = {
        s.name: s.max_alert_bytes
        for s in sinks_from_env({**environ, "FALCONET_MAX_ALERT_BYTES": "100000"})
    }
    assert smaller == {"sqs": 100_000, "sns": 100_000, "lambda": 100_000, "http": 98_976}
    assert smallest_limit(sinks_from_env(environ)) == 260_096
    assert [s.max_alert_bytes for s in sinks_from_env({})] == [1_048_576]


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"FALCONET_MAX_ALERT_BYTES": "10"},
            "FALCONET_MAX_ALERT_BYTES must be a number of bytes of at least 4096",
        ),
        (
            {"FALCONET_MAX_ALERT_BYTES": "1 MiB"},
            "FALCONET_MAX_ALERT_BYTES must be a number of bytes of at least 4096",
        ),
        (
            {"FALCONET_FUNCTION_TIMEOUT_SECONDS": "-3"},
            "FALCONET_FUNCTION_TIMEOUT_SECONDS must be a positive number of seconds, got '-3'",
        ),
        (
            {"FALCONET_FUNCTION_TIMEOUT_SECONDS": "nan"},
            "FALCONET_FUNCTION_TIMEOUT_SECONDS must be a positive number of seconds, got 'nan'",
        ),
    ],
)
def test_bad_delivery_settings_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings(environ).sinks  # noqa: B018
    assert str(caught.value) == message


def test_the_function_timeout_setting() -> None:
    assert Settings({}).sinks.function_timeout == 60.0
    assert Settings({"FALCONET_FUNCTION_TIMEOUT_SECONDS": "29.5"}).sinks.function_timeout == 29.5


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T0/B0/s3cr3t", "https://hooks.slack.com/..."),
        ("http://user:pw@127.0.0.1:8080/?token=s3cr3t", "http://127.0.0.1:8080/..."),
        ("https://sidekick.example/", "https://sidekick.example/"),
    ],
)
def test_urls_are_redacted_in_errors(url: str, shown: str) -> None:
    from falconet.sinks.http import redact

    assert redact(url) == shown


def test_an_invalid_port_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="^FALCONET_HTTP_SINK_URL: not an http"):
        sinks_from_env({"FALCONET_HTTP_SINK_URL": "http://host:port/"})
