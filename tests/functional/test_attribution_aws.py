"""Attribution through real boundaries: the S3 handler in separate processes (each a cold start,
as separate Lambda instances are) sharing one DynamoDB state table on a moto server, alerts read
back from an SQS queue.

A `kubectl apply` of a Deployment, the ReplicaSet its controller creates and the privileged pod
the ReplicaSet's controller creates arrive in three objects, each handled by its own instance: the
bundled "Privileged Container Created" alert names the controller as the user and the person who
applied the Deployment as `falconet.owner.user`, and a rule whose condition uses
`falconet.owner.user` fires.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from tests.conftest import BUNDLED_RULES
from tests.functional.conftest import Aws, create_state_table
from tests.functional.test_correlations_aws import Deployment, firehose_key
from tests.workloads import ALICE, REPLICASET_CONTROLLER, T0, deployment_chain

OWNER_RULE = """\
- rule: Privileged Pod Of A Workload Alice Wrote
  desc: test
  condition: >
    ka.target.resource=pods and ka.verb=create and falconet.owner.user=alice@example.com
    and ka.req.pod.containers.privileged intersects (true)
  output: >
    Privileged pod of %falconet.owner.kind %falconet.owner.name (owner=%falconet.owner.user
    user=%ka.user.name)
  priority: WARNING
  source: k8s_audit
"""


@pytest.fixture
def deploy(aws: Aws, tmp_path: Path, sqs_queue: str, audit_bucket: str) -> Callable[[], Deployment]:
    def make() -> Deployment:
        (tmp_path / "owner.yaml").write_text(OWNER_RULE)
        return Deployment(
            aws, tmp_path / "owner.yaml", create_state_table(aws), sqs_queue, audit_bucket
        )

    return make


def test_a_privileged_pod_names_the_person_who_applied_its_deployment(
    deploy: Callable[[], Deployment],
) -> None:
    d = deploy()
    rules = f"{BUNDLED_RULES},{d.rules}"
    answers = []
    for n, event in enumerate(deployment_chain(ALICE)):  # three objects, three instances
        note = d.put(firehose_key(T0 + timedelta(minutes=n)), [event])
        answer = d.invoke(note, FALCONET_RULES=rules, FALCONET_RULE_MATCHING="all").ok().answer
        answers.append(answer)
    assert [a.get("attribution", {}).get("state_writes", 0) for a in answers] == [1, 1, 0]
    assert answers[2]["attribution"]["attributed"] == 1
    assert any(pk.startswith("a/") for pk in d.state())

    alerts = {a["rule"]: a for a in d.alerts()}
    privileged = alerts["Privileged Container Created"]
    assert privileged["output_fields"]["ka.user.name"] == REPLICASET_CONTROLLER
    assert privileged["output_fields"]["falconet.owner.user"] == ALICE
    assert privileged["output_fields"]["falconet.cluster"] == "prod-eu"
    mine = alerts["Privileged Pod Of A Workload Alice Wrote"]
    assert "Privileged pod of Deployment web (owner=alice@example.com" in mine["output"]


def test_attribution_off_names_no_owner(deploy: Callable[[], Deployment]) -> None:
    d = deploy()
    for n, event in enumerate(deployment_chain(ALICE)):
        note = d.put(firehose_key(T0 + timedelta(minutes=n)), [event])
        answer = d.invoke(note, FALCONET_RULES=str(d.rules), FALCONET_ATTRIBUTION="off").ok()
        assert "attribution" not in answer.answer
    assert d.alerts() == []
    assert d.state() == {}
