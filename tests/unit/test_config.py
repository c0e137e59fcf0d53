"""falconet.config: every setting read once, checked, and named in its error."""

from __future__ import annotations

from pathlib import Path

import pytest

from falconet.config import DEFAULT_MAX_BODY, Settings, bundled_rules_dir
from falconet.decode import BODY_LIMITS, OBJECT_LIMITS, DecodeLimits
from falconet.errors import ConfigError
from tests.conftest import ROOT


def test_defaults_run_locally_with_no_cloud() -> None:
    settings = Settings({})
    engine = settings.engine
    assert engine.rules == (str(bundled_rules_dir()),)
    assert bundled_rules_dir() == ROOT / "functions" / "rules"
    assert (engine.rule_matching, engine.min_priority) == ("first", "debug")
    assert engine.extra_fields is None and engine.code_cache is None and engine.geoip_db is None
    assert settings.http.token is None and settings.http.max_body == DEFAULT_MAX_BODY
    assert settings.sinks.sqs_queue_url is None and settings.sinks.http_url is None
    assert settings.key_pattern.pattern == "cluster=(?P<cluster>[^/]+)"


def test_the_environment_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FALCONET_RULE_MATCHING", "all")
    settings = Settings.from_env()
    monkeypatch.setenv("FALCONET_RULE_MATCHING", "first")
    assert settings.engine.rule_matching == "all"  # the snapshot of the cold start


def test_empty_values_count_as_unset() -> None:
    # SAM and CloudFormation pass "" for parameters left blank.
    settings = Settings(
        {"FALCONET_MIN_PRIORITY": "", "FALCONET_SQS_QUEUE_URL": " ", "FALCONET_GEOIP_DB": ""}
    )
    assert settings.engine.min_priority == "debug"
    assert settings.engine.geoip_db is None
    assert settings.sinks.sqs_queue_url is None


def test_an_empty_extra_fields_setting_means_none_and_unset_means_the_defaults() -> None:
    assert Settings({"FALCONET_EXTRA_FIELDS": ""}).engine.extra_fields == ()
    assert Settings({"FALCONET_EXTRA_FIELDS": "ka.uri, ka.verb"}).engine.extra_fields == (
        "ka.uri",
        "ka.verb",
    )


def test_hostname_from_falconet_then_falco() -> None:
    assert Settings({"FALCO_HOSTNAME": "f"}).engine.hostname == "f"
    assert Settings({"FALCO_HOSTNAME": "f", "FALCONET_HOSTNAME": "n"}).engine.hostname == "n"


@pytest.mark.parametrize(
    ("environ", "section", "message"),
    [
        (
            {"FALCONET_RULE_MATCHING": "most"},
            "engine",
            "FALCONET_RULE_MATCHING must be 'first' or 'all', got 'most'",
        ),
        (
            {"FALCONET_MIN_PRIORITY": "loud"},
            "engine",
            "FALCONET_MIN_PRIORITY 'loud' is not one of Emergency, Alert, Critical, Error, "
            "Warning, Notice, Informational, Debug",
        ),
        (
            {"FALCONET_RULES": "/nonexistent/rules.yaml"},
            "engine",
            "FALCONET_RULES: '/nonexistent/rules.yaml' does not exist",
        ),
        (
            {"FALCONET_TIME_FORMAT_ISO8601": "sometimes"},
            "engine",
            "FALCONET_TIME_FORMAT_ISO8601 must be true or false, got 'sometimes'",
        ),
        (
            {"FALCONET_MAX_BODY_BYTES": "16M"},
            "http",
            "FALCONET_MAX_BODY_BYTES must be a number of bytes, got '16M'",
        ),
        ({"FALCONET_MAX_BODY_BYTES": "-1"}, "http", "FALCONET_MAX_BODY_BYTES must be positive"),
        (
            {"FALCONET_CLUSTER_KEY_PATTERN": "cluster=([^/]+)"},
            "key_pattern",
            "FALCONET_CLUSTER_KEY_PATTERN: key pattern 'cluster=([^/]+)' needs a named group "
            "'cluster', e.g. 'cluster=(?P<cluster>[^/]+)'",
        ),
        (
            {"FALCONET_HTTP_SINK_FORMAT": "falco"},
            "sinks",
            "FALCONET_HTTP_SINK_FORMAT is set but FALCONET_HTTP_SINK_URL is not",
        ),
        (
            {"FALCONET_ALLOWED_OBJECTS": "s3://audit/logs/, https://evil/x"},
            "http",
            "FALCONET_ALLOWED_OBJECTS: 'https://evil/x' is not s3://<bucket>[/<prefix>], "
            "gs://<bucket>[/<prefix>] or az://<account>/<container>[/<prefix>]",
        ),
        (
            {"FALCONET_NOTIFY_URL": "https://h/", "FALCONET_NOTIFY_EXPLAIN": "maybe"},
            "notify",
            "FALCONET_NOTIFY_EXPLAIN: 'maybe' is not true or false",
        ),
        (
            {"FALCONET_BODY_MAX_RECORDS": "lots"},
            "decode",
            "FALCONET_BODY_MAX_RECORDS must be a whole number, got 'lots'",
        ),
        (
            {"FALCONET_OBJECT_MAX_INFLATED_BYTES": "16GiB"},
            "decode",
            "FALCONET_OBJECT_MAX_INFLATED_BYTES must be a whole number, got '16GiB'",
        ),
        (
            {"FALCONET_OBJECT_MAX_INFLATE_RATIO": "0"},
            "decode",
            "FALCONET_OBJECT_MAX_INFLATE_RATIO must be at least 1, got 0",
        ),
        (
            {"FALCONET_BODY_MAX_GZIP_LAYERS": "-1"},
            "decode",
            "FALCONET_BODY_MAX_GZIP_LAYERS must be at least 0, got -1",
        ),
        (
            {"FALCONET_BODY_MAX_DOCUMENT_BYTES": "1000"},
            "decode",
            "FALCONET_BODY_MAX_DOCUMENT_BYTES must be at least 65536, got 1000",
        ),
    ],
    ids=[
        "matching",
        "priority",
        "rules",
        "iso8601",
        "body",
        "negative-body",
        "key-pattern",
        "format-without-url",
        "allowed-objects",
        "summary",
        "decode-records",
        "decode-bytes-unit",
        "decode-ratio",
        "decode-layers",
        "decode-document",
    ],
)
def test_a_bad_value_names_its_variable(
    environ: dict[str, str], section: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        getattr(Settings(environ), section)
    assert str(caught.value) == message


def test_a_section_is_checked_only_by_who_reads_it() -> None:
    """The notifier's function must not fail on the engine's settings, nor the reverse."""
    settings = Settings({"FALCONET_RULE_MATCHING": "most", "FALCONET_NOTIFY_URL": "https://h/"})
    assert settings.notify.url == "https://h/"
    with pytest.raises(ConfigError):
        _ = settings.engine
    assert Settings({}).engine.rule_matching == "first"  # while notify is unset there
    with pytest.raises(ConfigError, match="FALCONET_NOTIFY_URL is not set"):
        _ = Settings({}).notify


def test_allowed_objects_are_bucket_prefixes() -> None:
    (logs, everything) = Settings(
        {"FALCONET_ALLOWED_OBJECTS": "s3://audit/logs/, gs://gke-audit"}
    ).http.allowed_objects
    assert (logs.provider, logs.bucket, logs.prefix) == ("s3", "audit", "logs/")
    assert (everything.provider, everything.bucket, everything.prefix) == ("gs", "gke-audit", "")
    assert Settings({}).http.allowed_objects == ()


@pytest.mark.parametrize(
    ("key", "held"),
    [
        ("logs/a.json", True),
        ("logs/..a/b.json", True),
        ("logs/.hidden", True),
        ("logs/../secret/a.json", False),
        ("logs/./../secret/a.json", False),
        ("logs/x/..", False),
        ("logs/x\\..\\..\\secret", False),
    ],
)
def test_a_key_with_dot_segments_is_never_under_a_prefix(key: str, held: bool) -> None:
    """HTTP clients resolve `..` in the path they request: `logs/../secret` reads `secret`."""
    from falconet.storage.objects import ObjectRef

    (logs,) = Settings({"FALCONET_ALLOWED_OBJECTS": "az://acct/audit/logs/"}).http.allowed_objects
    assert logs.holds(ObjectRef("az", "acct/audit", key)) is held


def test_decode_limits_default_to_the_decoders_own() -> None:
    settings = Settings({}).decode
    assert DecodeLimits.like(settings.body) == BODY_LIMITS
    assert DecodeLimits.like(settings.object) == OBJECT_LIMITS
    assert BODY_LIMITS.max_records < OBJECT_LIMITS.max_records  # a body is bounded much tighter


@pytest.mark.parametrize("kind", ["body", "object"])
@pytest.mark.parametrize(
    "field",
    [
        "max_inflated_bytes",
        "max_inflate_ratio",
        "max_gzip_layers",
        "max_records",
        "max_document_bytes",
    ],
)
def test_every_decode_limit_is_read_from_its_variable(kind: str, field: str) -> None:
    name = f"FALCONET_{kind.upper()}_{field.upper()}"
    limits = getattr(Settings({name: " 123456 "}).decode, kind)
    assert getattr(limits, field) == 123456
    other = "object" if kind == "body" else "body"
    assert getattr(Settings({name: "123456"}).decode, other) == getattr(Settings({}).decode, other)


@pytest.mark.parametrize(
    ("field", "least"),
    [
        ("max_inflated_bytes", 1),
        ("max_inflate_ratio", 1),
        ("max_gzip_layers", 0),
        ("max_records", 1),
        ("max_document_bytes", 65536),
    ],
)
def test_the_smallest_decode_limit_the_settings_accept_is_the_decoders(
    field: str, least: int
) -> None:
    name = f"FALCONET_OBJECT_{field.upper()}"
    assert getattr(DecodeLimits.like(Settings({name: str(least)}).decode.object), field) == least
    with pytest.raises(ConfigError, match=name):
        _ = Settings({name: str(least - 1)}).decode
    with pytest.raises(ValueError, match=field):
        DecodeLimits(**{field: least - 1})


def test_a_bad_decode_limit_does_not_fail_other_sections() -> None:
    settings = Settings({"FALCONET_OBJECT_MAX_RECORDS": "0", "FALCONET_NOTIFY_URL": "https://h/"})
    assert settings.notify.url == "https://h/"
    with pytest.raises(ConfigError, match="FALCONET_OBJECT_MAX_RECORDS"):
        _ = settings.decode


def test_the_summary_setting_and_its_old_name() -> None:
    url = {"FALCONET_NOTIFY_URL": "https://h/"}
    assert Settings({**url, "FALCONET_NOTIFY_SUMMARY": "true"}).notify.summary
    assert Settings({**url, "FALCONET_NOTIFY_EXPLAIN": "yes"}).notify.summary
    assert not Settings(url).notify.summary


def test_secrets_are_not_echoed() -> None:
    secret = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
    with pytest.raises(ConfigError) as caught:
        _ = Settings({"FALCONET_HTTP_SINK_URL": secret.replace("https", "hxxps")}).sinks
    assert "SECRET" not in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        _ = Settings(
            {"FALCONET_HTTP_SINK_URL": secret, "FALCONET_HTTP_SINK_HEADERS": '{"X": 7}'}
        ).sinks
    assert str(caught.value) == (
        "FALCONET_HTTP_SINK_HEADERS: the value of 'X' must be a one-line string"
    )


def test_the_state_table_is_a_table_name_or_arn() -> None:
    assert Settings({}).state.table is None
    assert Settings({"FALCONET_STATE_TABLE": "falconet-state"}).state.table == "falconet-state"
    arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/falconet-state"
    assert Settings({"FALCONET_STATE_TABLE": arn}).state.table == arn
    with pytest.raises(ConfigError, match="FALCONET_STATE_TABLE"):
        Settings({"FALCONET_STATE_TABLE": "no spaces allowed"}).state  # noqa: B018


def test_correlations_without_a_table_say_they_are_per_instance(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from falconet.runtime import build_pipeline

    (tmp_path / "r.yaml").write_text(
        "- rule: Denied\n  desc: d\n  condition: ka.response.code=403\n  output: o\n"
        "  priority: INFO\n  source: k8s_audit\n"
    )
    (tmp_path / "c.yaml").write_text(
        "title: Burst\ncorrelation:\n  type: event_count\n  rules: [Denied]\n"
        "  group-by: [ka.user.name]\n  timespan: 10m\n  condition: {gte: 3}\n"
    )
    pipeline = build_pipeline(Settings({"FALCONET_RULES": f"{tmp_path}/r.yaml,{tmp_path}/c.yaml"}))
    assert pipeline.correlator is not None and pipeline.correlator.store.name == "memory"
    assert "keep their state in this instance's memory" in caplog.text
    # Attribution shares the correlations' store.
    assert (
        pipeline.attributor is not None and pipeline.attributor.store is pipeline.correlator.store
    )
    plain = build_pipeline(Settings({"FALCONET_RULES": f"{tmp_path}/r.yaml"}))
    assert plain.correlator is None
    assert plain.attributor is not None  # on by default, in memory without a table
    off = build_pipeline(
        Settings({"FALCONET_RULES": f"{tmp_path}/r.yaml", "FALCONET_ATTRIBUTION": "off"})
    )
    assert off.correlator is None and off.attributor is None


@pytest.mark.parametrize(
    ("value", "on"), [("", True), ("on", True), ("ON", True), ("off", False), (" Off ", False)]
)
def test_attribution_is_on_unless_turned_off(value: str, on: bool) -> None:
    assert Settings({"FALCONET_ATTRIBUTION": value}).state.attribution is on


def test_attribution_is_on_or_off() -> None:
    with pytest.raises(ConfigError, match="^FALCONET_ATTRIBUTION must be on or off, got 'yes'$"):
        Settings({"FALCONET_ATTRIBUTION": "yes"}).state  # noqa: B018
