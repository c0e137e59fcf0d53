"""The offline checks of template.yaml (`make validate`): the real template passes, and broken
copies of it fail for the right reason, including the mistakes `sam validate --lint` alone misses.
Also: the translated template's IAM stays least-privilege, and the state table is what
falconet.state.dynamodb expects, reachable by the two detectors only.

Needs the tools venv (.venv-tools: aws-sam-cli, cfn-lint; `make test` creates it). Without it the
tests skip, except under CI (`CI` set), where a missing tool is a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
TOOLS_BIN = ROOT / ".venv-tools" / "bin"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tools_python() -> Path:
    missing = [
        p.name
        for p in (TOOLS_BIN / "python", TOOLS_BIN / "sam", TOOLS_BIN / "cfn-lint")
        if not p.exists()
    ]
    if missing:
        reason = f"the tools venv lacks {', '.join(missing)}: run `make tools` (or `make test`)"
        if os.environ.get("CI"):
            pytest.fail(reason + " - the template checks must run in CI")
        pytest.skip(reason)
    return TOOLS_BIN / "python"


def check(tools_python: Path, template: Path, keep: Path | None = None) -> tuple[int, str]:
    command = [str(tools_python), str(ROOT / "tools" / "check_template.py"), str(template)]
    if keep is not None:
        command += ["--keep", str(keep)]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    return result.returncode, result.stdout + result.stderr


def test_the_template_passes_every_check(tools_python: Path, tmp_path: Path) -> None:
    returncode, output = check(tools_python, TEMPLATE)
    assert returncode == 0, output
    assert output.splitlines() == [
        "== sam validate: ok",
        "== sam validate --lint: ok",
        "== SAM -> CloudFormation: ok",
        "== cfn-lint (translated): ok",
    ]


def _replace(old: str, new: str) -> Callable[[str], str]:
    def mutate(text: str) -> str:
        # A mutation that no longer applies would make its test pass for nothing.
        assert old in text, f"template.yaml no longer contains {old!r}: update this mutation"
        return text.replace(old, new)

    return mutate


def _default(parameter: str, old: str, new: str) -> Callable[[str], str]:
    """Change a parameter's default: the offline checks translate with the defaults."""
    return _replace(
        f'  {parameter}:\n    Type: String\n    AllowedValues: ["true", "false"]\n'
        f"    Default: {old}\n",
        f'  {parameter}:\n    Type: String\n    AllowedValues: ["true", "false"]\n'
        f"    Default: {new}\n",
    )


@pytest.mark.parametrize(
    "mutate",
    [
        _default("FifoAlertsQueue", '"false"', '"true"'),
        _default("CreateAuditBucket", '"true"', '"false"'),
        _replace(
            '  WebhookTokenSecret:\n    Type: String\n    Default: ""\n',
            '  WebhookTokenSecret:\n    Type: String\n    Default: "arn:aws:secretsmanager:'
            'us-east-1:123456789012:secret:falconet-AbCdEf"\n',
        ),
        _replace(
            '  NotifyUrl:\n    Type: String\n    NoEcho: true\n    Default: ""\n',
            "  NotifyUrl:\n    Type: String\n    NoEcho: true\n"
            '    Default: "https://hooks.example.com/x"\n',
        ),
    ],
    ids=["fifo-alerts-queue", "existing-bucket", "existing-token-secret", "notify-function"],
)
def test_the_template_variants_pass(
    tools_python: Path, tmp_path: Path, mutate: Callable[[str], str]
) -> None:
    variant = tmp_path / "template.yaml"
    variant.write_text(mutate(TEMPLATE.read_text()))
    returncode, output = check(tools_python, variant)
    assert returncode == 0, output


def _circular(text: str) -> str:
    # The classic S3 trigger: the bucket notifies the function, the function's role reads the
    # bucket by reference -> bucket -> function -> role -> bucket.
    text = _replace(
        "        EventBridgeConfiguration:\n          EventBridgeEnabled: true",
        "        LambdaConfigurations:\n          - Event: s3:ObjectCreated:*\n"
        "            Function: !GetAtt S3DetectorFunction.Arn",
    )(text)
    return _replace(
        '!Sub "arn:${AWS::Partition}:s3:::${AuditBucketName}/${AuditKeyPrefix}*"',
        '!Sub "${AuditBucket.Arn}/${AuditKeyPrefix}*"',
    )(text)


MUTATIONS: list[tuple[str, Callable[[str], str], str]] = [
    ("circular-dependency", _circular, "E3004 Circular Dependencies"),
    (
        "wrong-getatt",
        _replace("Queue: !GetAtt AlertsQueue.Arn", "Queue: !GetAtt AlertsQueue.QueueArn"),
        "E1010 'QueueArn' is not one of",
    ),
    (
        "bad-runtime",
        _replace("Runtime: python3.11", "Runtime: python3.99"),
        "E3030 'python3.99' is not one of",
    ),
    (
        "unknown-event-property",
        _replace(
            "            BatchSize: 10\n", "            BatchSize: 10\n            Bogus: 1\n"
        ),
        "SAM: ",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [(m, e) for _, m, e in MUTATIONS], ids=[i for i, _, _ in MUTATIONS]
)
def test_a_broken_template_fails(
    tools_python: Path, tmp_path: Path, mutate: Callable[[str], str], expected: str
) -> None:
    broken = tmp_path / "template.yaml"
    broken.write_text(mutate(TEMPLATE.read_text()))
    returncode, output = check(tools_python, broken)
    assert returncode == 1
    assert expected in output, output


def _statements(resource: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for policy in resource["Properties"].get("Policies", []):
        statements = policy["PolicyDocument"]["Statement"]
        found += statements if isinstance(statements, list) else [statements]
    return found


def test_secrets_are_never_plain_environment_values(tools_python: Path, tmp_path: Path) -> None:
    translated = tmp_path / "cfn.json"
    returncode, output = check(tools_python, TEMPLATE, keep=translated)
    assert returncode == 0, output
    resources = json.loads(translated.read_text())["Resources"]
    functions = {n: r for n, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}
    for name, function in functions.items():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        text = json.dumps(variables)
        for secret in ('WebhookToken"', 'NotifyUrl"', "resolve:secretsmanager"):
            assert secret not in text, f"{name} has {secret} in its environment"
    http = functions["HttpDetectorFunction"]["Properties"]
    assert "FALCONET_WEBHOOK_TOKEN_SECRET" in http["Environment"]["Variables"]
    assert "FALCONET_WEBHOOK_TOKEN" not in http["Environment"]["Variables"]
    assert http["ReservedConcurrentExecutions"] == {"Ref": "HttpReservedConcurrency"}
    assert resources["AlertsTopic"]["Properties"]["KmsMasterKeyId"] == "alias/aws/sns"
    deny = resources["AuditBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


STATE_ACTIONS = {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem"}


def test_the_state_table_and_who_may_use_it(tools_python: Path, tmp_path: Path) -> None:
    translated = tmp_path / "cfn.json"
    returncode, output = check(tools_python, TEMPLATE, keep=translated)
    assert returncode == 0, output
    template = json.loads(translated.read_text())
    resources = template["Resources"]
    table = resources["StateTable"]
    assert table["Type"] == "AWS::DynamoDB::Table"
    # falconet.state.dynamodb's schema: `pk` (S) alone is the key; expiry is the attribute `x`.
    # The sparse `due` index (`ds` shard, `da` epoch second) lists what the sweep must send.
    assert table["Properties"] == {
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "ds", "AttributeType": "S"},
            {"AttributeName": "da", "AttributeType": "N"},
        ],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": "due",
                "KeySchema": [
                    {"AttributeName": "ds", "KeyType": "HASH"},
                    {"AttributeName": "da", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        "TimeToLiveSpecification": {"AttributeName": "x", "Enabled": True},
        "SSESpecification": {"SSEEnabled": True},
    }
    assert template["Outputs"]["StateTableName"]["Value"] == {"Ref": "StateTable"}

    functions = {n: r for n, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}
    assert set(functions) == {
        "S3DetectorFunction",
        "HttpDetectorFunction",
        "CloudWatchDetectorFunction",
        "SweepFunction",
        "NotifyFunction",
        "BacktestFunction",
    }
    with_state = {
        name: variables["FALCONET_STATE_TABLE"]
        for name, function in functions.items()
        if "FALCONET_STATE_TABLE"
        in (variables := function["Properties"].get("Environment", {}).get("Variables", {}))
    }
    assert with_state == {
        "S3DetectorFunction": {"Ref": "StateTable"},
        "HttpDetectorFunction": {"Ref": "StateTable"},
        "CloudWatchDetectorFunction": {"Ref": "StateTable"},
        "SweepFunction": {"Ref": "StateTable"},
        "BacktestFunction": {"Ref": "StateTable"},
    }

    roles = {name: r for name, r in resources.items() if r["Type"] == "AWS::IAM::Role"}
    grants = {
        name: [
            s
            for s in _statements(role)
            if "StateTable" in json.dumps(s) or "dynamodb" in json.dumps(s["Action"])
        ]
        for name, role in roles.items()
    }
    state = {"Fn::GetAtt": ["StateTable", "Arn"]}
    for name in (
        "S3DetectorFunctionRole",
        "HttpDetectorFunctionRole",
        "CloudWatchDetectorFunctionRole",
        "BacktestFunctionExecutionRole",
    ):
        (statement,) = grants.pop(name)
        assert statement["Effect"] == "Allow"
        assert sorted(statement["Action"]) == sorted(STATE_ACTIONS), name
        assert statement["Resource"] == state, name
        assert "Condition" not in statement
    items, due = grants.pop("SweepFunctionRole")  # the sweep: the table, and Query on `due` only
    assert (sorted(items["Action"]), items["Resource"]) == (sorted(STATE_ACTIONS), state)
    assert due["Action"] == "dynamodb:Query"
    assert due["Resource"] == {"Fn::Sub": "${StateTable.Arn}/index/due"}
    assert grants == {"NotifyFunctionExecutionRole": [], "SweepFunctionEveryFiveMinutesRole": []}


def test_iam_is_least_privilege(tools_python: Path, tmp_path: Path) -> None:
    translated = tmp_path / "cfn.json"
    returncode, output = check(tools_python, TEMPLATE, keep=translated)
    assert returncode == 0, output
    resources = json.loads(translated.read_text())["Resources"]
    roles = {name: r for name, r in resources.items() if r["Type"] == "AWS::IAM::Role"}
    assert set(roles) == {
        "S3DetectorFunctionRole",
        "HttpDetectorFunctionRole",
        "CloudWatchDetectorFunctionRole",
        "SweepFunctionRole",
        "SweepFunctionEveryFiveMinutesRole",  # the scheduler's: invoke the sweep, nothing else
        "NotifyFunctionExecutionRole",
        "BacktestFunctionExecutionRole",
    }
    basic = "service-role/AWSLambdaBasicExecutionRole"
    actions: dict[str, set[str]] = {}
    for name, role in roles.items():
        for arn in role["Properties"].get("ManagedPolicyArns", []):
            assert basic in json.dumps(arn), f"{name} has managed policy {arn}"
        for statement in _statements(role):
            assert statement["Effect"] == "Allow"
            assert statement["Resource"] != "*", f"{name}: {statement}"
            granted = statement["Action"]
            actions.setdefault(name, set()).update(
                [granted] if isinstance(granted, str) else granted
            )
    assert actions == {
        "S3DetectorFunctionRole": {
            "s3:GetObject",
            "sqs:SendMessage*",
            "sns:Publish",
            "sqs:SendMessage",  # the on-failure destination
            *STATE_ACTIONS,  # the state table only (test_the_state_table_...)
        },
        "HttpDetectorFunctionRole": {
            "sqs:SendMessage*",
            "sns:Publish",
            "secretsmanager:GetSecretValue",  # its own token's secret only (below)
            *STATE_ACTIONS,
        },
        "CloudWatchDetectorFunctionRole": {
            "sqs:SendMessage*",
            "sns:Publish",
            "sqs:SendMessage",  # the on-failure destination
            *STATE_ACTIONS,
        },
        "SweepFunctionRole": {"sqs:SendMessage*", "sns:Publish", "dynamodb:Query", *STATE_ACTIONS},
        "SweepFunctionEveryFiveMinutesRole": {"lambda:InvokeFunction"},
        "NotifyFunctionExecutionRole": {
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ChangeMessageVisibility",
            "secretsmanager:GetSecretValue",
        },
        "BacktestFunctionExecutionRole": {  # its queue, the archive, state, the alert sinks
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ChangeMessageVisibility",
            "s3:GetObject",
            "sqs:SendMessage",
            "sns:Publish",
            *STATE_ACTIONS,
        },
    }
    secret_reads = sorted(
        json.dumps(s["Resource"], sort_keys=True)
        for role in roles.values()
        for s in _statements(role)
        if s["Action"] == "secretsmanager:GetSecretValue"
    )
    token = {
        "Fn::If": [
            "TokenFromSecret",
            {"Ref": "WebhookTokenSecret"},
            {"Ref": "WebhookTokenSecretResource"},
        ]
    }
    assert secret_reads == sorted(
        json.dumps(r, sort_keys=True) for r in (token, {"Ref": "NotifyUrlSecret"})
    )
    read = [
        s for s in _statements(roles["S3DetectorFunctionRole"]) if s["Action"] == "s3:GetObject"
    ]
    assert read[0]["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::${AuditBucketName}/${AuditKeyPrefix}*"
    }


def test_one_parameter_subscribes_an_eks_clusters_audit_log(
    tools_python: Path, tmp_path: Path
) -> None:
    translated = tmp_path / "cfn.json"
    returncode, output = check(tools_python, TEMPLATE, keep=translated)
    assert returncode == 0, output
    template = json.loads(translated.read_text())
    resources = template["Resources"]
    assert template["Conditions"]["HasEksCluster"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "EksClusterName"}, ""]}]
    }
    for name in (
        "CloudWatchDetectorFunction",
        "CloudWatchDetectorPermission",
        "EksAuditSubscription",
    ):
        assert resources[name]["Condition"] == "HasEksCluster", name
    function = resources["CloudWatchDetectorFunction"]["Properties"]
    assert function["Handler"] == "lambda_handlers.handle_cloudwatch"
    subscription = resources["EksAuditSubscription"]["Properties"]
    assert subscription["LogGroupName"] == {"Fn::Sub": "/aws/eks/${EksClusterName}/cluster"}
    assert subscription["DestinationArn"] == {"Fn::GetAtt": ["CloudWatchDetectorFunction", "Arn"]}
    permission = resources["CloudWatchDetectorPermission"]["Properties"]
    assert permission["Principal"] == "logs.amazonaws.com"  # only that log group may invoke it
    assert "log-group:/aws/eks/${EksClusterName}/cluster:*" in permission["SourceArn"]["Fn::Sub"]


def test_the_detector_watches_itself(tools_python: Path, tmp_path: Path) -> None:
    translated = tmp_path / "cfn.json"
    returncode, output = check(tools_python, TEMPLATE, keep=translated)
    assert returncode == 0, output
    resources = json.loads(translated.read_text())["Resources"]
    alarms = {
        n: r["Properties"] for n, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert set(alarms) == {"AlertsDeadLetterAlarm", "DetectorFailuresAlarm", "SilentDetectorAlarm"}
    for name in ("AlertsDeadLetterAlarm", "DetectorFailuresAlarm"):  # anything kept: alarm
        assert (alarms[name]["Threshold"], alarms[name]["ComparisonOperator"]) == (
            0,
            "GreaterThanThreshold",
        )
    silent = alarms["SilentDetectorAlarm"]
    assert resources["SilentDetectorAlarm"]["Condition"] == "WatchSilence"
    assert (silent["MetricName"], silent["TreatMissingData"]) == ("Invocations", "breaching")
    logs = {n: r for n, r in resources.items() if r["Type"] == "AWS::Logs::LogGroup"}
    functions = [n for n, r in resources.items() if r["Type"] == "AWS::Lambda::Function"]
    assert len(logs) == len(functions)  # every function's logs, kept LogRetentionDays
    assert all(
        r["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"} for r in logs.values()
    )


def test_a_backtest_has_its_own_capped_queue_and_function(
    tools_python: Path, tmp_path: Path
) -> None:
    """`falconet scan --fan-out` feeds BacktestQueue; its function is capped by the event source's
    MaximumConcurrency (so a backtest cannot take the live detector's executions), retries an
    object BacktestMaxReceives times and then keeps its message, and tells the handler that
    count (it names the object failed on its last receive)."""
    translated = tmp_path / "cfn.json"
    returncode, output = check(tools_python, TEMPLATE, keep=translated)
    assert returncode == 0, output
    template = json.loads(translated.read_text())
    resources = template["Resources"]
    for name in ("BacktestFunction", "BacktestQueue", "BacktestDeadLetterQueue"):
        assert resources[name]["Condition"] == "HasBacktest", name
    function = resources["BacktestFunction"]["Properties"]
    assert function["Handler"] == "lambda_handlers.handle_s3"
    assert function["MemorySize"] == {"Ref": "BacktestMemorySize"}
    assert "ReservedConcurrentExecutions" not in function  # throttled polls would burn receives
    assert function["Environment"]["Variables"]["FALCONET_BACKTEST_MAX_RECEIVES"] == {
        "Ref": "BacktestMaxReceives"
    }
    (mapping,) = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
        and r["Properties"]["FunctionName"] == {"Ref": "BacktestFunction"}
    ]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["BacktestQueue", "Arn"]}
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "BacktestMaxConcurrency"}}
    assert mapping["BatchSize"] == {"Ref": "BacktestBatchSize"}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = resources["BacktestQueue"]["Properties"]
    assert queue["VisibilityTimeout"] == {"Ref": "BacktestVisibilityTimeout"}
    assert queue["RedrivePolicy"]["maxReceiveCount"] == {"Ref": "BacktestMaxReceives"}
    assert template["Parameters"]["BacktestVisibilityTimeout"]["MinValue"] >= 300
    assert template["Outputs"]["BacktestQueueUrl"]["Value"] == {"Ref": "BacktestQueue"}
