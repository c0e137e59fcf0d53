"""The scheduled sweep against moto's DynamoDB (server mode, on loopback): a suppression period
that ended sends its digest even when no later alert of its group comes, once."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.functional.conftest import Aws, create_state_table
from tests.functional.test_correlations_aws import (
    BASE_RULES,
    Deployment,
    audit_event,
)

POLICY = """\
suppress: Repeated denials
name: repeats
group-by: [rule, ka.user.name]
period: 1h
"""

SWEEP = """\
import json, lambda_handlers
print(json.dumps(lambda_handlers.handle_sweep({}, None)))
"""


@pytest.fixture
def deployment(
    aws: Aws, tmp_path: Path, sqs_queue: str, audit_bucket: str
) -> Callable[..., Deployment]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "denied.yaml").write_text(BASE_RULES)
    (rules / "policies.yaml").write_text(POLICY)
    return lambda: Deployment(aws, rules, create_state_table(aws), sqs_queue, audit_bucket)


def sweep(d: Deployment) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", SWEEP],
        env=d.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_a_period_that_ended_sends_its_digest_once_without_a_later_alert(
    deployment: Callable[..., Deployment],
) -> None:
    d = deployment()
    two_hours_ago = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    flood = [audit_event(two_hours_ago + timedelta(seconds=s), "mallory") for s in range(25)]
    d.invoke(d.put("cluster=prod-eu/flood.gz", flood)).ok()
    (first,) = d.alerts()  # one alert; 24 counted
    assert first["output_fields"]["falconet.suppress.policy"] == "repeats"

    assert sweep(d) == {"status": "ok", "digests": 1}
    (digest,) = d.alerts()
    fields = digest["output_fields"]
    assert fields["falconet.suppress.digest"] is True
    assert fields["falconet.suppress.count"] == 24
    assert fields["ka.user.name"] == "mallory"
    assert len(fields["falconet.suppress.audit_ids"]) == 10
    assert sweep(d) == {"status": "ok", "digests": 0}  # sent once: no longer due
    assert d.alerts() == []


def test_a_period_still_running_is_not_swept(deployment: Callable[..., Deployment]) -> None:
    d = deployment()
    now = datetime.now(UTC).replace(microsecond=0)
    flood = [audit_event(now - timedelta(seconds=s), "mallory") for s in range(5)]
    d.invoke(d.put("cluster=prod-eu/now.gz", flood)).ok()
    assert len(d.alerts()) == 1
    assert sweep(d) == {"status": "ok", "digests": 0}  # its hour has not ended


def test_the_state_table_of_the_correlation_tests_has_no_due_index(aws: Aws) -> None:
    # The sweep needs the index: without it, a clear StateError (not a traceback) says so.
    from falconet.errors import StateError
    from falconet.state.dynamodb import DynamoDBStore

    store = DynamoDBStore(create_state_table(aws, due_index=False), max_attempts=1)
    with pytest.raises(StateError, match="state table") as error:
        store.due_keys(0)
    assert "Query" in str(error.value)
