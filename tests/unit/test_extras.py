"""falconet.extras: a missing optional dependency is a ConfigError naming the extra."""

from __future__ import annotations

import importlib.util

import pytest

from falconet.errors import ConfigError
from falconet.extras import require_aws
from falconet.state.dynamodb import DynamoDBStore
from falconet.storage import s3


@pytest.fixture
def no_boto3(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "boto3" else real(name, *a)
    )


def test_present_boto3_passes() -> None:
    require_aws("s3:// objects")


def test_missing_boto3_names_the_extra(no_boto3: None) -> None:
    with pytest.raises(ConfigError) as caught:
        require_aws("s3:// objects")
    assert str(caught.value) == (
        "s3:// objects needs boto3, which is not installed: pip install 'falconet[aws]'"
    )


def test_listing_s3_without_boto3_names_the_extra(no_boto3: None) -> None:
    with pytest.raises(ConfigError, match=r"^s3://b/p/ needs boto3.*falconet\[aws\]"):
        list(s3.list_keys("b", "p/", "s3://b/p/"))


def test_a_state_table_without_boto3_names_the_extra(no_boto3: None) -> None:
    with pytest.raises(ConfigError, match=r"^the state table 't' needs boto3.*falconet\[aws\]"):
        DynamoDBStore("t")
    DynamoDBStore("t", client=object())  # a given client needs no boto3
