"""Secrets from AWS Secrets Manager and SSM Parameter Store (a moto server on loopback), cached and
re-read: the webhook token and the notification URL are never plain environment values."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.conftest import ROOT
from tests.functional.conftest import Aws

import lambda_handlers
from falconet.errors import ConfigError
from falconet.runtime import reset_runtime
from falconet.secrets import CachedSecret

RULES = ROOT / "tests" / "data" / "functional_rules.yaml"
BATCH = (ROOT / "examples" / "audit-batch.json").read_bytes()


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    def apply(**env: str) -> None:
        monkeypatch.setenv("FALCONET_RULES", str(RULES))
        monkeypatch.delenv("FALCONET_WEBHOOK_TOKEN", raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        reset_runtime()  # a new cold start

    yield apply
    reset_runtime()


def request(token: str) -> dict[str, Any]:
    return {
        "headers": {"content-type": "application/json", "authorization": f"Bearer {token}"},
        "requestContext": {"http": {"method": "POST"}},
        "body": BATCH.decode(),
    }


def test_the_token_from_a_secrets_manager_secret(aws: Aws, configure: Any) -> None:
    arn = aws.client("secretsmanager").create_secret(Name="falconet-token", SecretString="s3cr3t")[
        "ARN"
    ]
    configure(FALCONET_WEBHOOK_TOKEN_SECRET=arn)
    assert lambda_handlers.handle_http(request("s3cr3t"))["statusCode"] == 200
    assert lambda_handlers.handle_http(request("guess"))["statusCode"] == 401


def test_a_key_of_a_json_secret_and_an_ssm_parameter(aws: Aws, configure: Any) -> None:
    aws.client("secretsmanager").create_secret(
        Name="falconet", SecretString=json.dumps({"token": "from-json", "other": "x"})
    )
    configure(FALCONET_WEBHOOK_TOKEN_SECRET="secretsmanager:falconet#token")
    assert lambda_handlers.handle_http(request("from-json"))["statusCode"] == 200
    aws.client("ssm").put_parameter(Name="/falconet/token", Value="from-ssm", Type="SecureString")
    configure(FALCONET_WEBHOOK_TOKEN_SECRET="ssm:/falconet/token")
    assert lambda_handlers.handle_http(request("from-ssm"))["statusCode"] == 200
    assert lambda_handlers.handle_http(request("from-json"))["statusCode"] == 401


def test_a_rotated_token_is_picked_up(aws: Aws, configure: Any) -> None:
    client = aws.client("secretsmanager")
    client.create_secret(Name="rotating", SecretString="first")
    configure(FALCONET_WEBHOOK_TOKEN_SECRET="secretsmanager:rotating", FALCONET_SECRET_TTL="1e-9")
    assert lambda_handlers.handle_http(request("first"))["statusCode"] == 200
    client.put_secret_value(SecretId="rotating", SecretString="second")
    assert lambda_handlers.handle_http(request("second"))["statusCode"] == 200
    assert lambda_handlers.handle_http(request("first"))["statusCode"] == 401


def test_a_missing_secret_fails_naming_the_setting(aws: Aws, configure: Any) -> None:
    configure(FALCONET_WEBHOOK_TOKEN_SECRET="secretsmanager:does-not-exist")
    with pytest.raises(ConfigError) as caught:
        lambda_handlers.handle_http(request("x"))
    assert str(caught.value) == (
        "FALCONET_WEBHOOK_TOKEN_SECRET: cannot read secretsmanager does-not-exist: "
        "ResourceNotFoundException"
    )


def test_the_notify_url_from_a_secret(
    aws: Aws, configure: Any, http_receiver: Any, make_alert: Any
) -> None:
    aws.client("ssm").put_parameter(
        Name="/falconet/slack", Value=http_receiver.url, Type="SecureString"
    )
    configure(FALCONET_NOTIFY_URL_SECRET="ssm:/falconet/slack", FALCONET_NOTIFY_FORMAT="text")
    event = {"Records": [{"messageId": "m1", "body": make_alert(1).to_json().decode()}]}
    assert lambda_handlers.handle_notify(event, None) == {"batchItemFailures": []}
    assert len(http_receiver.requests) == 1


def test_a_failed_refresh_keeps_the_last_value() -> None:
    now = [0.0]
    answers: list[str | Exception] = ["one", ConfigError("down"), "two"]

    def fetch(setting: str, reference: str) -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    secret = CachedSecret("S", "ssm:/x", ttl=10, clock=lambda: now[0], fetcher=fetch)
    assert secret.value() == "one"
    now[0] = 5
    assert secret.value() == "one"  # cached
    now[0] = 11
    assert secret.value() == "one"  # the refresh failed: the last value stays in use
    now[0] = 22
    assert secret.value() == "two"
    assert "one" not in repr(secret) and "two" not in repr(secret)
