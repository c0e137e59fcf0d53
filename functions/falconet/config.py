"""Settings: every environment variable falconet reads, read in this module only, once.

    settings = Settings.from_env()          # a snapshot of the environment (the cold start)
    settings.engine                         # EngineSettings: rules, matching, priority, ...
    settings.http                           # HttpSettings: the webhook token, the body limit
    settings.sinks                          # SinkSettings: where alerts go
    settings.notify                         # NotifySettings: the notification function
    settings.key_pattern                    # how object keys name their cluster
    settings.decode                         # DecodeSettings: what one body or object may cost

Each section is checked the first time it is read and then kept: a bad value raises `ConfigError`
naming the variable (and never echoing a secret), so a misconfigured function fails its cold start
instead of running half-configured, while a function that never reads a section (the notifier
never reads the engine's) is not failed by it. An empty value counts as unset: SAM and
CloudFormation pass "" for parameters left blank. `falconet.runtime` builds the process's objects
from these settings; nothing else reads the environment.

Why this module is long: it is the one reader of the environment, so every setting of every
platform (AWS, Google Cloud, the webhook, the decoders) is named and checked here, side by side.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from falconet.errors import ConfigError
from falconet.rules.falcoconfig import FalcoConfig
from falconet.rules.model import PRIORITIES, parse_priority
from falconet.secrets import parse_reference

# -- the variables ---------------------------------------------------------------------------------
RULES = "FALCONET_RULES"
RULE_MATCHING = "FALCONET_RULE_MATCHING"
MIN_PRIORITY = "FALCONET_MIN_PRIORITY"
EXTRA_FIELDS = "FALCONET_EXTRA_FIELDS"  # "none" (or set empty): Falco's output_fields exactly
FALCO_CONFIG = "FALCONET_FALCO_CONFIG"  # a falco.yaml: its rules, append_output, static_fields
FALCO_JSON = "FALCONET_FALCO_JSON"  # true: read event JSON exactly as Falco (decode/source.py)
TIME_FORMAT_ISO8601 = "FALCONET_TIME_FORMAT_ISO8601"
HOSTNAME = "FALCONET_HOSTNAME"
FALCO_HOSTNAME = "FALCO_HOSTNAME"  # Falco's own name for it, also honoured
GEOIP_DB = "FALCONET_GEOIP_DB"
CODE_CACHE = "FALCONET_CODE_CACHE"
CLUSTER_KEY_PATTERN = "FALCONET_CLUSTER_KEY_PATTERN"
WEBHOOK_TOKEN = "FALCONET_WEBHOOK_TOKEN"  # noqa: S105 - the variable's name, not a secret
WEBHOOK_TOKEN_SECRET = "FALCONET_WEBHOOK_TOKEN_SECRET"  # noqa: S105 - where the token lives
MAX_BODY_BYTES = "FALCONET_MAX_BODY_BYTES"
ALLOWED_OBJECTS = "FALCONET_ALLOWED_OBJECTS"  # bucket prefixes a CloudEvent may have read
TOKEN_IN_QUERY = "FALCONET_WEBHOOK_TOKEN_IN_QUERY"  # noqa: S105 - a name; ?token= (IBM IKS)
PUSH_AUDIENCE = "FALCONET_PUSH_AUDIENCE"  # the audience of Pub/Sub push OIDC tokens
PUSH_ACCOUNTS = "FALCONET_PUSH_SERVICE_ACCOUNTS"  # the service accounts they may name
PUSH_CERTS_URL = "FALCONET_PUSH_CERTS_URL"  # Google's signing certificates (tests, mirrors)
PUBSUB_TOPIC = "FALCONET_PUBSUB_TOPIC"  # projects/<project>/topics/<topic>: alerts to Pub/Sub
SQS_QUEUE_URL = "FALCONET_SQS_QUEUE_URL"
SNS_TOPIC_ARN = "FALCONET_SNS_TOPIC_ARN"
NOTIFY_FUNCTION = "FALCONET_NOTIFY_FUNCTION"
HTTP_SINK_URL = "FALCONET_HTTP_SINK_URL"
HTTP_SINK_FORMAT = "FALCONET_HTTP_SINK_FORMAT"
HTTP_SINK_HEADERS = "FALCONET_HTTP_SINK_HEADERS"
MAX_ALERT_BYTES = "FALCONET_MAX_ALERT_BYTES"  # the largest alert any sink is given
FUNCTION_TIMEOUT = "FALCONET_FUNCTION_TIMEOUT_SECONDS"  # where the platform does not say it
NOTIFY_URL = "FALCONET_NOTIFY_URL"
NOTIFY_URL_SECRET = "FALCONET_NOTIFY_URL_SECRET"  # noqa: S105 - where the URL lives
SECRET_TTL = "FALCONET_SECRET_TTL"  # noqa: S105 - seconds a secret read from AWS is kept
NOTIFY_FORMAT = "FALCONET_NOTIFY_FORMAT"
NOTIFY_HEADERS = "FALCONET_NOTIFY_HEADERS"
NOTIFY_SUMMARY = "FALCONET_NOTIFY_SUMMARY"  # add the who/what/when/where line to each alert
NOTIFY_EXPLAIN = "FALCONET_NOTIFY_EXPLAIN"  # the old name of NOTIFY_SUMMARY, still read
# Decode limits (docs/inputs.md), one set for HTTP bodies and one for bucket objects.
BODY_MAX_INFLATED_BYTES = "FALCONET_BODY_MAX_INFLATED_BYTES"
BODY_MAX_INFLATE_RATIO = "FALCONET_BODY_MAX_INFLATE_RATIO"
BODY_MAX_GZIP_LAYERS = "FALCONET_BODY_MAX_GZIP_LAYERS"
BODY_MAX_RECORDS = "FALCONET_BODY_MAX_RECORDS"
BODY_MAX_DOCUMENT_BYTES = "FALCONET_BODY_MAX_DOCUMENT_BYTES"
OBJECT_MAX_INFLATED_BYTES = "FALCONET_OBJECT_MAX_INFLATED_BYTES"
OBJECT_MAX_INFLATE_RATIO = "FALCONET_OBJECT_MAX_INFLATE_RATIO"
OBJECT_MAX_GZIP_LAYERS = "FALCONET_OBJECT_MAX_GZIP_LAYERS"
OBJECT_MAX_RECORDS = "FALCONET_OBJECT_MAX_RECORDS"
OBJECT_MAX_DOCUMENT_BYTES = "FALCONET_OBJECT_MAX_DOCUMENT_BYTES"
STATE_TABLE = "FALCONET_STATE_TABLE"  # the DynamoDB table of correlation state
SUPPRESS = "FALCONET_SUPPRESS"  # on (default) or off: the suppression policies
ATTRIBUTION = "FALCONET_ATTRIBUTION"  # on|off: the falconet.owner.* fields (docs/attribution.md)
BACKTEST_MAX_RECEIVES = "FALCONET_BACKTEST_MAX_RECEIVES"  # its queue's maxReceiveCount
# boto3 reads these itself; falconet reads them only to keep one S3 client per endpoint.
AWS_ENDPOINT_URL = "AWS_ENDPOINT_URL"
AZURE_STORAGE_CONNECTION_STRING = "AZURE_STORAGE_CONNECTION_STRING"  # the Azure SDK's own setting
# Google's client libraries' emulator variable, honoured by the Pub/Sub sink likewise.
PUBSUB_EMULATOR_HOST = "PUBSUB_EMULATOR_HOST"
AWS_DEFAULT_REGION = "AWS_DEFAULT_REGION"

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"  # Google's ID-token signing keys
DEFAULT_MAX_BODY = 16 * 1024 * 1024
DEFAULT_MAX_ALERT_BYTES = 1_048_576  # SQS's and Lambda's message limits; SNS's is lower, 256 KiB
MIN_ALERT_BYTES = 4096  # below this an alert's own fields may not fit
DEFAULT_FUNCTION_TIMEOUT = 60.0  # Cloud Functions' default timeout
# The smallest value each decode limit accepts (a line shorter than 64 KiB is parsed unmeasured).
_LEAST = {"max_gzip_layers": 0, "max_document_bytes": 1 << 16}
DEFAULT_KEY_PATTERN = r"cluster=(?P<cluster>[^/]+)"
RULE_MATCHINGS = ("first", "all")
HttpFormat = Literal["cloudevent", "falco"]
HTTP_FORMATS: tuple[HttpFormat, ...] = ("cloudevent", "falco")
NotifyFormat = Literal["slack", "text", "falco"]
NOTIFY_FORMATS: tuple[NotifyFormat, ...] = ("slack", "text", "falco")

_PACKAGE_DIR = Path(__file__).resolve().parent
_TRUE = ("true", "1", "yes")
_BOOLEANS = ("", "true", "false", "1", "0", "yes", "no")


# -- the sections ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EngineSettings:
    """What `Engine.from_paths` is built with."""

    rules: tuple[str, ...]
    rule_matching: str = "first"
    min_priority: str = "debug"
    extra_fields: tuple[str, ...] | None = None  # None: the engine's defaults
    time_format_iso8601: bool = False
    hostname: str | None = None
    geoip_db: str | None = None
    code_cache: str | None = None
    falco_config: FalcoConfig | None = None  # falco.yaml's rules, append_output, static_fields


@dataclass(frozen=True, slots=True)
class ObjectPrefix:
    """`s3://bucket/prefix`, `gs://bucket/prefix` or `az://account/container/prefix`: objects a
    CloudEvent may have read."""

    provider: str
    bucket: str
    prefix: str = ""

    def holds(self, ref: Any) -> bool:
        """Whether the object `ref` (a storage.ObjectRef) lies under this prefix. A key with a
        `.` or `..` path segment never does: HTTP clients resolve them in the request path (the
        Azure SDK's requests does), so `prefix/../x` would read `x`."""
        return bool(
            ref.provider == self.provider
            and ref.bucket == self.bucket
            and ref.key.startswith(self.prefix)
            and _DOT_SEGMENT.search(ref.key) is None
        )


# A `.` or `..` segment of an object key (`\` a separator too: some servers read it as `/`).
_DOT_SEGMENT = re.compile(r"(?:\A|[/\\])\.\.?(?:[/\\]|\Z)")


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """The HTTP function's contract: the bearer token it requires, its body limit, and the
    bucket prefixes a CloudEvent may name (none: no object is read for a CloudEvent)."""

    token: str | None = None
    max_body: int = DEFAULT_MAX_BODY
    allowed_objects: tuple[ObjectPrefix, ...] = ()
    token_secret: str | None = None  # where the token lives (secrets.py); the runtime reads it
    secret_ttl: float = 300.0
    token_in_query: bool = False  # the token also accepted as the `token` query parameter
    # Pub/Sub push subscriptions' OIDC tokens (falconet.oidc), accepted beside the bearer token
    # when `push_accounts` is set.
    push_audience: str | None = None
    push_accounts: tuple[str, ...] = ()
    push_certs_url: str = GOOGLE_CERTS_URL


@dataclass(frozen=True, slots=True)
class SinkSettings:
    """Where alerts go (every one set is used; none: stdout)."""

    sqs_queue_url: str | None = None
    sns_topic_arn: str | None = None
    notify_function: str | None = None
    http_url: str | None = None
    http_format: HttpFormat = "cloudevent"
    http_headers: Mapping[str, str] = field(default_factory=dict)
    pubsub_topic: str | None = None  # projects/<project>/topics/<topic>
    pubsub_emulator_host: str | None = None  # host:port of a Pub/Sub emulator
    # Alerts are fitted to the smallest of this and the sinks' own limits (`alerts.fit`).
    max_alert_bytes: int = DEFAULT_MAX_ALERT_BYTES
    # An invocation's time limit where the platform does not tell the function (functions-
    # framework); Lambda's handlers use the invocation's remaining time instead.
    function_timeout: float = DEFAULT_FUNCTION_TIMEOUT


@dataclass(frozen=True, slots=True)
class InputLimits:
    """What decoding one input may cost (`falconet.decode.DecodeLimits` has the same fields)."""

    max_inflated_bytes: int
    max_inflate_ratio: int
    max_gzip_layers: int
    max_records: int
    max_document_bytes: int


# The same values as `falconet.decode.BODY_LIMITS` and `OBJECT_LIMITS` (a test keeps them equal;
# this module imports nothing of the decoder).
DEFAULT_BODY_LIMITS = InputLimits(
    max_inflated_bytes=64 << 20,
    max_inflate_ratio=100,
    max_gzip_layers=2,
    max_records=100_000,
    max_document_bytes=16 << 20,
)
DEFAULT_OBJECT_LIMITS = InputLimits(
    max_inflated_bytes=16 << 30,
    max_inflate_ratio=100,
    max_gzip_layers=3,
    max_records=10_000_000,
    max_document_bytes=16 << 20,
)
_LIMIT_VARIABLES = {
    "body": {
        "max_inflated_bytes": BODY_MAX_INFLATED_BYTES,
        "max_inflate_ratio": BODY_MAX_INFLATE_RATIO,
        "max_gzip_layers": BODY_MAX_GZIP_LAYERS,
        "max_records": BODY_MAX_RECORDS,
        "max_document_bytes": BODY_MAX_DOCUMENT_BYTES,
    },
    "object": {
        "max_inflated_bytes": OBJECT_MAX_INFLATED_BYTES,
        "max_inflate_ratio": OBJECT_MAX_INFLATE_RATIO,
        "max_gzip_layers": OBJECT_MAX_GZIP_LAYERS,
        "max_records": OBJECT_MAX_RECORDS,
        "max_document_bytes": OBJECT_MAX_DOCUMENT_BYTES,
    },
}


@dataclass(frozen=True, slots=True)
class DecodeSettings:
    """The decode limits of an HTTP body (webhook, CloudEvent data) and of a bucket object."""

    body: InputLimits = DEFAULT_BODY_LIMITS
    object: InputLimits = DEFAULT_OBJECT_LIMITS
    falco_json: bool = False  # every JSON text read as Falco's k8saudit plugin reads it


@dataclass(frozen=True, slots=True)
class StateSettings:
    """Where correlations, suppression and attribution keep their state: a DynamoDB table shared
    by every instance, or (None) the process's memory; and whether suppression and attribution
    run."""

    table: str | None = None
    suppress: bool = True  # run the suppression policies (FALCONET_SUPPRESS)
    attribution: bool = True  # the falconet.owner.* fields (FALCONET_ATTRIBUTION)
    max_receives: int = 3  # FALCONET_BACKTEST_MAX_RECEIVES (docs/backtest.md)


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """Where and how the notification function delivers alerts to people."""

    url: str  # "" when it lives in `url_secret` (the runtime reads it)
    fmt: NotifyFormat = "slack"
    headers: Mapping[str, str] = field(default_factory=dict)
    summary: bool = False
    url_secret: str | None = None
    secret_ttl: float = 300.0


class Settings:
    """A snapshot of the environment, read section by section (see the module docstring)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._env = dict(environ)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of `environ`, or of the process environment now."""
        return cls(os.environ if environ is None else environ)

    def get(self, name: str) -> str:
        """A variable's value, stripped ("" when unset)."""
        return self._env.get(name, "").strip()

    @cached_property
    def engine(self) -> EngineSettings:
        """Raises ConfigError naming the variable."""
        rules = tuple(rules_paths(self.get(RULES)))
        for path in rules:
            if not Path(path).exists():
                raise ConfigError(f"{RULES}: '{path}' does not exist")
        matching = self.get(RULE_MATCHING).lower() or "first"
        if matching not in RULE_MATCHINGS:
            raise ConfigError(f"{RULE_MATCHING} must be 'first' or 'all', got '{matching}'")
        priority = self.get(MIN_PRIORITY) or "debug"
        if parse_priority(priority) is None:
            raise ConfigError(f"{MIN_PRIORITY} '{priority}' is not one of {', '.join(PRIORITIES)}")
        extra = extra_fields_setting(self._env[EXTRA_FIELDS]) if EXTRA_FIELDS in self._env else None
        iso = self.get(TIME_FORMAT_ISO8601).lower() or "false"
        if iso not in _BOOLEANS:
            raise ConfigError(f"{TIME_FORMAT_ISO8601} must be true or false, got '{iso}'")
        return EngineSettings(
            rules=rules,
            rule_matching=matching,
            min_priority=priority,
            extra_fields=extra,
            time_format_iso8601=iso in _TRUE,
            hostname=self._env.get(HOSTNAME) or self._env.get(FALCO_HOSTNAME) or None,
            geoip_db=self.get(GEOIP_DB) or None,
            code_cache=self.get(CODE_CACHE) or None,
            falco_config=self.falco_config(self.get(FALCO_CONFIG) or None, FALCO_CONFIG),
        )

    def falco_config(self, path: str | None, origin: str) -> FalcoConfig | None:
        """The falco.yaml at `path` (`${VAR}` expanded from these settings' environment), or
        None. Raises ConfigError naming `origin` (the variable or the option)."""
        if path is None:
            return None
        from falconet.rules.falcoconfig import load_falco_config

        if not Path(path).is_file():
            raise ConfigError(f"{origin}: '{path}' is not a file")
        return load_falco_config(path, self._env)

    @cached_property
    def http(self) -> HttpSettings:
        """Raises ConfigError naming the variable."""
        raw = self.get(MAX_BODY_BYTES)
        try:
            max_body = int(raw) if raw else DEFAULT_MAX_BODY
        except ValueError:
            raise ConfigError(f"{MAX_BODY_BYTES} must be a number of bytes, got '{raw}'") from None
        if max_body <= 0:
            raise ConfigError(f"{MAX_BODY_BYTES} must be positive")
        token, token_secret = self._env.get(WEBHOOK_TOKEN) or None, self.get(WEBHOOK_TOKEN_SECRET)
        if token and token_secret:
            raise ConfigError(f"set {WEBHOOK_TOKEN} or {WEBHOOK_TOKEN_SECRET}, not both")
        if token_secret:
            parse_reference(WEBHOOK_TOKEN_SECRET, token_secret)
        audience, accounts = self.get(PUSH_AUDIENCE), tuple(split_list(self.get(PUSH_ACCOUNTS)))
        if bool(audience) != bool(accounts):
            raise ConfigError(f"set both {PUSH_AUDIENCE} and {PUSH_ACCOUNTS}, or neither")
        for account in accounts:
            if not re.fullmatch(r"[^@\s]{1,64}@[A-Za-z0-9.-]{1,253}", account):
                raise ConfigError(f"{PUSH_ACCOUNTS}: {account!r} is not a service account email")
        certs_url = self.get(PUSH_CERTS_URL)
        in_query = self.get(TOKEN_IN_QUERY).lower()
        if in_query not in _BOOLEANS:
            raise ConfigError(f"{TOKEN_IN_QUERY} must be true or false, got '{in_query}'")
        return HttpSettings(
            token=token,
            max_body=max_body,
            allowed_objects=tuple(object_prefix(p) for p in split_list(self.get(ALLOWED_OBJECTS))),
            token_secret=token_secret or None,
            secret_ttl=self.secret_ttl,
            token_in_query=in_query in _TRUE,
            push_audience=audience or None,
            push_accounts=accounts,
            push_certs_url=http_url(PUSH_CERTS_URL, certs_url) if certs_url else GOOGLE_CERTS_URL,
        )

    @cached_property
    def secret_ttl(self) -> float:
        """FALCONET_SECRET_TTL: seconds a secret read from AWS is kept (default 300)."""
        raw = self.get(SECRET_TTL)
        try:
            ttl = float(raw) if raw else 300.0
        except ValueError:
            raise ConfigError(f"{SECRET_TTL} must be a number of seconds, got '{raw}'") from None
        if not ttl > 0:
            raise ConfigError(f"{SECRET_TTL} must be positive")
        return ttl

    @cached_property
    def sinks(self) -> SinkSettings:
        """Raises ConfigError naming the variable whose value is invalid (values holding secrets,
        such as URLs and headers, are not echoed)."""
        queue, topic, function = (
            self.get(SQS_QUEUE_URL),
            self.get(SNS_TOPIC_ARN),
            self.get(NOTIFY_FUNCTION),
        )
        queue_url = sqs_queue_url(queue) if queue else None
        topic_arn = sns_topic_arn(topic) if topic else None
        function = function_name(function) if function else ""
        topic_name = self.get(PUBSUB_TOPIC)
        if topic_name and not re.fullmatch(
            r"projects/[a-z][a-z0-9.:-]{4,62}/topics/[A-Za-z][\w.~+%-]{2,254}", topic_name
        ):
            raise ConfigError(
                f"{PUBSUB_TOPIC}: {topic_name!r} is not a Pub/Sub topic; expected "
                "projects/<project-id>/topics/<topic>"
            )
        url = self.get(HTTP_SINK_URL)
        fmt = http_format(self.get(HTTP_SINK_FORMAT))
        headers = http_headers(HTTP_SINK_HEADERS, self.get(HTTP_SINK_HEADERS))
        if url:
            url = http_url(HTTP_SINK_URL, url)
        else:
            for name in (HTTP_SINK_FORMAT, HTTP_SINK_HEADERS):
                if self.get(name):
                    raise ConfigError(f"{name} is set but {HTTP_SINK_URL} is not")
        return SinkSettings(
            sqs_queue_url=queue_url,
            sns_topic_arn=topic_arn,
            notify_function=function or None,
            http_url=url or None,
            http_format=fmt,
            http_headers=headers,
            pubsub_topic=topic_name or None,
            pubsub_emulator_host=self.get(PUBSUB_EMULATOR_HOST) or None,
            max_alert_bytes=int(
                number(MAX_ALERT_BYTES, self.get(MAX_ALERT_BYTES), DEFAULT_MAX_ALERT_BYTES)
            ),
            function_timeout=number(
                FUNCTION_TIMEOUT, self.get(FUNCTION_TIMEOUT), DEFAULT_FUNCTION_TIMEOUT
            ),
        )

    @cached_property
    def notify(self) -> NotifySettings:
        """`FALCONET_NOTIFY_URL` is required. Raises ConfigError naming the variable."""
        url, url_secret = self.get(NOTIFY_URL), self.get(NOTIFY_URL_SECRET)
        if url and url_secret:
            raise ConfigError(f"set {NOTIFY_URL} or {NOTIFY_URL_SECRET}, not both")
        if not url and not url_secret:
            raise ConfigError(f"{NOTIFY_URL} is not set: the notify function needs a webhook URL")
        if url_secret:
            parse_reference(NOTIFY_URL_SECRET, url_secret)
        fmt = self.get(NOTIFY_FORMAT).lower() or "slack"
        if fmt not in NOTIFY_FORMATS:
            raise ConfigError(f"{NOTIFY_FORMAT}: {fmt!r} is not one of {', '.join(NOTIFY_FORMATS)}")
        headers = http_headers(NOTIFY_HEADERS, self.get(NOTIFY_HEADERS))
        name = NOTIFY_SUMMARY if self.get(NOTIFY_SUMMARY) else NOTIFY_EXPLAIN
        summary = self.get(name).lower()
        if summary not in _BOOLEANS:
            raise ConfigError(f"{name}: {summary!r} is not true or false")
        return NotifySettings(
            url=http_url(NOTIFY_URL, url) if url else "",
            url_secret=url_secret or None,
            secret_ttl=self.secret_ttl,
            fmt=fmt,
            headers=headers,
            summary=summary in _TRUE,
        )

    @cached_property
    def state(self) -> StateSettings:
        """Raises ConfigError naming the variable."""
        table = self.get(STATE_TABLE)
        if table and not re.fullmatch(r"[A-Za-z0-9_.-]{3,255}|arn:aws[\w-]*:dynamodb:.+", table):
            raise ConfigError(f"{STATE_TABLE} must be a DynamoDB table name or ARN, got '{table}'")
        switches = {}
        for name in (SUPPRESS, ATTRIBUTION):
            value = self.get(name).lower() or "on"
            if value not in ("on", "off"):
                raise ConfigError(f"{name} must be on or off, got '{value}'")
            switches[name] = value == "on"
        receives = self.get(BACKTEST_MAX_RECEIVES) or "3"
        if not receives.isdigit() or not 1 <= int(receives) <= 1000:
            raise ConfigError(f"{BACKTEST_MAX_RECEIVES} must be 1-1000, got '{receives}'")
        return StateSettings(
            table or None, switches[SUPPRESS], switches[ATTRIBUTION], int(receives)
        )

    @cached_property
    def decode(self) -> DecodeSettings:
        """Raises ConfigError naming the variable."""
        falco_json = self.get(FALCO_JSON).lower() or "false"
        if falco_json not in _BOOLEANS:
            raise ConfigError(f"{FALCO_JSON} must be true or false, got '{falco_json}'")
        return DecodeSettings(
            body=self._limits("body", DEFAULT_BODY_LIMITS),
            object=self._limits("object", DEFAULT_OBJECT_LIMITS),
            falco_json=falco_json in _TRUE,
        )

    def _limits(self, kind: str, default: InputLimits) -> InputLimits:
        values: dict[str, int] = {}
        for field_name, name in _LIMIT_VARIABLES[kind].items():
            raw = self.get(name)
            if not raw:
                values[field_name] = getattr(default, field_name)
                continue
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(f"{name} must be a whole number, got '{raw}'") from None
            least = _LEAST.get(field_name, 1)
            if value < least:
                raise ConfigError(f"{name} must be at least {least}, got {value}")
            values[field_name] = value
        return InputLimits(**values)

    @cached_property
    def key_pattern(self) -> re.Pattern[str]:
        """FALCONET_CLUSTER_KEY_PATTERN compiled (default: `cluster=<name>` path segments)."""
        pattern = self.get(CLUSTER_KEY_PATTERN) or DEFAULT_KEY_PATTERN
        try:
            return compile_key_pattern(pattern)
        except ConfigError as exc:
            raise ConfigError(f"{CLUSTER_KEY_PATTERN}: {exc}") from None


def azure_connection_string() -> str | None:
    """The Azure SDK's standard AZURE_STORAGE_CONNECTION_STRING, read when a blob client is made
    (storage.azure); None when unset (then DefaultAzureCredential)."""
    return os.environ.get(AZURE_STORAGE_CONNECTION_STRING) or None


def aws_client_settings() -> tuple[str | None, str | None]:
    """The endpoint and region an AWS client is made for now (boto3 reads them itself): the key
    that keeps one client per endpoint in a process."""
    return os.environ.get(AWS_ENDPOINT_URL), os.environ.get(AWS_DEFAULT_REGION)


# -- values ----------------------------------------------------------------------------------------
def bundled_rules_dir() -> Path:
    """The bundled rules: `falconet/bundled_rules/` in an installed package (pyproject.toml maps
    it to functions/rules/), else `rules/` beside `falconet/`: in a source checkout (editable
    install, PYTHONPATH), in the deployable directory functions/ (Cloud Functions, Cloud Run, the
    Containerfile) and in a Lambda zip. Raises ConfigError when none is there."""
    for candidate in ("bundled_rules", "../rules"):
        if (_PACKAGE_DIR / candidate).is_dir():
            return (_PACKAGE_DIR / candidate).resolve()
    raise ConfigError(
        "the bundled rules directory was not found in or beside the falconet package; "
        f"set {RULES} to a rules file or directory"
    )


def rules_paths(setting: str) -> list[str]:
    """A FALCONET_RULES value (comma-separated files or directories), else the bundled rules."""
    return split_list(setting) if setting.strip() else [str(bundled_rules_dir())]


def extra_fields_setting(value: str) -> tuple[str, ...]:
    """FALCONET_EXTRA_FIELDS: the fields added to every alert; `none` (or empty) adds none, so
    alerts carry exactly the output fields Falco gives."""
    if value.strip().lower() == "none":
        return ()
    return tuple(split_list(value))


def split_list(value: str) -> list[str]:
    """A comma-separated setting as a list (blank items dropped)."""
    return [item.strip() for item in value.split(",") if item.strip()]


def object_prefix(text: str) -> ObjectPrefix:
    """An entry of FALCONET_ALLOWED_OBJECTS (`s3://bucket[/prefix]`, `gs://...`, or
    `az://account/container[/prefix]`, whose "bucket" is `account/container`)."""
    scheme, sep, rest = text.partition("://")
    bucket, _, prefix = rest.partition("/")
    if scheme == "az":
        container, _, prefix = prefix.partition("/")
        valid = bool(re.fullmatch(r"[a-z0-9]{3,24}", bucket)) and bool(
            re.fullmatch(r"[a-z0-9$][a-z0-9-]{1,62}", container)
        )
        bucket = f"{bucket}/{container}"
    else:
        valid = scheme in ("s3", "gs") and bool(re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,221}", bucket))
    if not sep or not valid:
        raise ConfigError(
            f"{ALLOWED_OBJECTS}: {text!r} is not s3://<bucket>[/<prefix>], "
            "gs://<bucket>[/<prefix>] or az://<account>/<container>[/<prefix>]"
        )
    return ObjectPrefix(scheme, bucket, prefix)


def compile_key_pattern(pattern: str | re.Pattern[str]) -> re.Pattern[str]:
    """A cluster key pattern compiled; `ConfigError` unless it is a regex with a `cluster` group."""
    try:
        compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
    except re.error as exc:
        raise ConfigError(f"key pattern {pattern!r} is not a regular expression: {exc}") from exc
    if "cluster" not in compiled.groupindex:
        raise ConfigError(
            f"key pattern {compiled.pattern!r} needs a named group 'cluster', "
            "e.g. 'cluster=(?P<cluster>[^/]+)'"
        )
    return compiled


_QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}(\.fifo)?")
_TOPIC_ARN = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?")
_FUNCTION = re.compile(
    r"(arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:|\d{12}:function:)?"
    r"[A-Za-z0-9_-]{1,64}(:(\$LATEST|[A-Za-z0-9_-]{1,128}))?"
)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token


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
    """`value` if it is an SNS topic ARN (`ConfigError` naming the variable otherwise)."""
    if not _TOPIC_ARN.fullmatch(value):
        raise ConfigError(
            f"{SNS_TOPIC_ARN}: {value!r} is not an SNS topic ARN; expected "
            "arn:aws:sns:<region>:<account-id>:<topic-name>"
        )
    return value


def function_name(value: str) -> str:
    """`value` if it names a Lambda function (`ConfigError` naming the variable otherwise)."""
    if not _FUNCTION.fullmatch(value):
        raise ConfigError(
            f"{NOTIFY_FUNCTION}: {value!r} is not a Lambda function name or ARN; expected e.g. "
            "falconet-notify or arn:aws:lambda:<region>:<account-id>:function:<name>"
        )
    return value


def number(name: str, value: str, default: float) -> float:
    """A positive number setting (`default` when empty); `ConfigError` naming `name` otherwise.
    `MAX_ALERT_BYTES` is a whole number of at least `MIN_ALERT_BYTES`."""
    if not value:
        return default
    whole = name == MAX_ALERT_BYTES
    try:
        parsed = int(value) if whole else float(value)
    except ValueError:
        parsed = -1
    if whole and parsed < MIN_ALERT_BYTES:
        raise ConfigError(f"{name} must be a number of bytes of at least {MIN_ALERT_BYTES}")
    if not parsed > 0 or parsed == float("inf"):
        raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    return parsed


def http_format(value: str) -> HttpFormat:
    """An HTTP sink format (`ConfigError` naming the variable otherwise)."""
    fmt = value.lower() or "cloudevent"
    if fmt not in HTTP_FORMATS:
        raise ConfigError(f"{HTTP_SINK_FORMAT}: {value!r} is not one of {', '.join(HTTP_FORMATS)}")
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
