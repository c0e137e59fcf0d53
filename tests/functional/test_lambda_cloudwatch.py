"""`handle_cloudwatch`: an EKS audit log through a CloudWatch Logs subscription (`awslogs`), the
event the Lambda service hands the function, decoded and evaluated; nothing acknowledged unread."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.conftest import ROOT
from tests.unit.decode.wrap import awslogs_event

import lambda_handlers
from falconet.errors import DecodeError
from falconet.runtime import reset_runtime

RULES = ROOT / "tests" / "data" / "functional_rules.yaml"
ITEMS = json.loads((ROOT / "examples" / "audit-batch.json").read_text())["items"]


class Context:
    aws_request_id = "c0ffee00-1111-2222-3333-444455556666"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def handler(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Any], dict[str, Any]]]:
    monkeypatch.setenv("FALCONET_RULES", str(RULES))
    reset_runtime()
    yield lambda event: lambda_handlers.handle_cloudwatch(event, Context())
    reset_runtime()


def test_a_subscription_batch_is_evaluated_with_its_cluster(
    handler: Callable[[Any], dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    answer = handler(json.loads(awslogs_event(ITEMS, cluster="prod-eks")))
    assert answer["status"] == "ok" and answer["events"] == len(ITEMS)
    out, err = capsys.readouterr()
    alerts = [json.loads(line) for line in out.splitlines()]
    assert sorted(a["rule"] for a in alerts) == [
        "Test Cluster Admin Binding",
        "Test Exec",
        "Test Namespace Deleted",
    ]
    assert {a["output_fields"]["falconet.cluster"] for a in alerts} == {"prod-eks"}
    (log,) = [json.loads(x) for x in err.splitlines() if x.startswith('{"falconet"')]
    assert (log["falconet"], log["request"]) == ("handle_cloudwatch", Context.aws_request_id)


@pytest.mark.parametrize(
    "event",
    [{"Records": []}, {"awslogs": {"data": "not base64 gzip"}}, {"awslogs": "x"}],
    ids=["an S3 event", "bad data", "no data"],
)
def test_anything_else_fails_loudly(
    handler: Callable[[Any], dict[str, Any]], event: dict[str, Any]
) -> None:
    with pytest.raises(DecodeError):  # retried, then kept by the on-failure destination
        handler(event)


def test_each_cluster_gets_embedded_metrics(
    handler: Callable[[Any], dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    handler(json.loads(awslogs_event(ITEMS, cluster="prod-eks")))
    _, err = capsys.readouterr()
    metrics = [json.loads(line) for line in err.splitlines() if line.startswith('{"_aws"')]
    (line,) = metrics  # one cluster, nothing rejected
    definition = line["_aws"]["CloudWatchMetrics"][0]
    assert definition["Namespace"] == "falconet" and definition["Dimensions"] == [["Cluster"]]
    names = {m["Name"] for m in definition["Metrics"]}
    assert {"Events", "Alerts", "LagSeconds"} <= names
    assert (line["Cluster"], line["Events"], line["Alerts"]) == ("prod-eks", len(ITEMS), 3)
    assert all(line[n] is not None for n in names)  # every metric named has its value
    assert line["LagSeconds"] > 0  # the sample's events are from the past
