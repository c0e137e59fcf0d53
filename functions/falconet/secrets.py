"""Secrets read from AWS Secrets Manager or SSM Parameter Store at cold start, cached, rotatable.

A setting that holds a secret (the webhook token, the notification URL) can name where the secret
lives instead of holding it, so the value is never a plain environment variable of the deployed
function:

    arn:aws:secretsmanager:<region>:<account>:secret:<name>   a Secrets Manager secret (ARN)
    secretsmanager:<name or ARN>                              the same, by name
    ssm:<parameter name>                                      an SSM parameter (SecureString)

A `#key` suffix reads one key of a secret whose value is a JSON object (`secret:falconet#token`).
`CachedSecret.value()` fetches on first use and again once `ttl` seconds have passed, so a rotated
secret is picked up without a redeploy; when a refresh fails, the last value stays in use (and a
warning is logged), and only a first fetch that fails raises `ConfigError` naming the setting.
boto3 is imported on first fetch; the clients reach `AWS_ENDPOINT_URL` like every other client.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

from falconet.errors import ConfigError
from falconet.extras import require_aws

log = logging.getLogger(__name__)
DEFAULT_TTL = 300.0


def parse_reference(setting: str, reference: str) -> tuple[str, str, str | None]:
    """(service, id, key) of a secret reference; ConfigError naming `setting` if it is none."""
    ref, _, key = reference.strip().partition("#")
    if ref.startswith("arn:") and ":secretsmanager:" in ref:
        return "secretsmanager", ref, key or None
    service, sep, name = ref.partition(":")
    if sep and service in ("secretsmanager", "ssm") and name:
        return service, name, key or None
    raise ConfigError(
        f"{setting}: not a secret reference; use arn:aws:secretsmanager:..., "
        "secretsmanager:<name> or ssm:<parameter name> (with an optional #key)"
    )


def fetch(setting: str, reference: str) -> str:
    """The secret `reference` names, now. Raises ConfigError naming `setting` (never the value)."""
    service, name, key = parse_reference(setting, reference)
    require_aws(setting)
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        if service == "ssm":
            answer = boto3.client("ssm").get_parameter(Name=name, WithDecryption=True)
            value = str(answer["Parameter"]["Value"])
        else:
            value = str(
                boto3.client("secretsmanager").get_secret_value(SecretId=name)["SecretString"]
            )
    except (BotoCoreError, ClientError, KeyError) as exc:
        raise ConfigError(
            f"{setting}: cannot read {service} {name}: {type(exc).__name__}"
        ) from None
    if key is None:
        return value
    try:
        document = json.loads(value)
        picked = document[key] if isinstance(document, dict) else None
    except ValueError:
        picked = None
    if not isinstance(picked, str):
        raise ConfigError(f"{setting}: {service} {name} is not a JSON object with a {key!r} string")
    return picked


class CachedSecret:
    """One secret, fetched when first needed and again every `ttl` seconds."""

    def __init__(
        self,
        setting: str,
        reference: str,
        *,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
        fetcher: Callable[[str, str], str] = fetch,
    ) -> None:
        parse_reference(setting, reference)  # a bad reference fails at once
        self.setting = setting
        self.reference = reference
        self.ttl = ttl
        self._clock = clock
        self._fetch = fetcher
        self._lock = threading.Lock()
        self._value: str | None = None
        self._fetched = 0.0

    def value(self) -> str:
        """The secret, fetched if it never was or is older than `ttl`. Raises ConfigError."""
        now = self._clock()
        if self._value is not None and now - self._fetched < self.ttl:
            return self._value
        with self._lock:
            if self._value is not None and now - self._fetched < self.ttl:
                return self._value
            try:
                self._value = self._fetch(self.setting, self.reference)
            except ConfigError as exc:
                if self._value is None:
                    raise
                log.warning("%s: keeping the secret read earlier: %s", self.setting, exc)
            self._fetched = now
            return self._value

    def __repr__(self) -> str:  # never the value
        return f"CachedSecret({self.setting}={self.reference!r})"
