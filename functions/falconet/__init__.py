"""falconet: Falco-compatible detection of threats in Kubernetes audit logs.

The public API, what the entry points (`functions/main.py`, `functions/lambda_handlers.py`) and
other programs use; everything else is internal and may change::

    from falconet import Engine
    engine = Engine.from_paths(["rules/"], rule_matching="first", min_priority="debug")
    for alert in engine.evaluate(event):
        print(alert.to_dict())

    from falconet import get_runtime, EventContext
    result = get_runtime().pipeline.run(body, context=EventContext(cluster="prod"))

- the engine: `Engine`, `Alert`, `load_rules`, `EventContext`;
- the process (`falconet.runtime`): `get_runtime`, `start_runtime`, `reset_runtime`, `Settings`;
- the pipeline (`falconet.pipeline`): `Pipeline`, `Result`, `log_invocation`; `Deadline`, the
  time an invocation's deliveries must end by (`Deadline.for_lambda(context)`);
- triggers and storage: `objects_in_event`, `sqs_records`, `Ignored`, `ObjectRef`;
- backtest runs (`falconet.triggers`, `falconet.state.runs`): `run_of` (a message's run id),
  `receive_count`, `outcome_of` (what a run counts of a `Result`);
- the HTTP contract (`falconet.webhook`): `handle_request`, `handle_cloudevent`, `authorized`,
  `too_large`, `Response`, `BadRequest` (a request that can never be served as sent);
- notifications (`falconet.notify`): `alerts_from_message`, `deliver`;
- the errors: `FalconetError` and its branches.

Names are imported on first use, so `import falconet` stays cheap (the CLI's help, a cold start
that needs only part of it).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from falconet.context import EventContext
from falconet.errors import (
    ConfigError,
    DecodeError,
    FalconetError,
    ObjectGone,
    RuleError,
    SinkError,
    StateError,
    StorageError,
)

if TYPE_CHECKING:
    from falconet.alerts import Alert
    from falconet.config import Settings
    from falconet.deadline import Deadline
    from falconet.engine import Engine
    from falconet.notify import alerts_from_message, deliver
    from falconet.pipeline import Pipeline, Result, log_invocation, metric_lines
    from falconet.rules.loader import load_rules
    from falconet.runtime import get_runtime, reset_runtime, start_runtime
    from falconet.state.runs import outcome_of
    from falconet.storage import ObjectRef
    from falconet.triggers import Ignored, objects_in_event, receive_count, run_of, sqs_records
    from falconet.webhook import (
        BadRequest,
        Response,
        authorized,
        handle_cloudevent,
        handle_request,
        too_large,
    )

__version__ = "0.1.0"

_LAZY = {
    "Alert": "falconet.alerts",
    "BadRequest": "falconet.webhook",
    "Deadline": "falconet.deadline",
    "Engine": "falconet.engine",
    "Ignored": "falconet.triggers",
    "ObjectRef": "falconet.storage",
    "Pipeline": "falconet.pipeline",
    "Response": "falconet.webhook",
    "Result": "falconet.pipeline",
    "Settings": "falconet.config",
    "alerts_from_message": "falconet.notify",
    "authorized": "falconet.webhook",
    "deliver": "falconet.notify",
    "get_runtime": "falconet.runtime",
    "handle_cloudevent": "falconet.webhook",
    "handle_request": "falconet.webhook",
    "load_rules": "falconet.rules.loader",
    "log_invocation": "falconet.pipeline",
    "metric_lines": "falconet.pipeline",
    "objects_in_event": "falconet.triggers",
    "outcome_of": "falconet.state.runs",
    "receive_count": "falconet.triggers",
    "reset_runtime": "falconet.runtime",
    "run_of": "falconet.triggers",
    "sqs_records": "falconet.triggers",
    "start_runtime": "falconet.runtime",
    "too_large": "falconet.webhook",
}

__all__ = [
    "Alert",
    "BadRequest",
    "ConfigError",
    "Deadline",
    "DecodeError",
    "Engine",
    "EventContext",
    "FalconetError",
    "Ignored",
    "ObjectGone",
    "ObjectRef",
    "Pipeline",
    "Response",
    "Result",
    "RuleError",
    "Settings",
    "SinkError",
    "StateError",
    "StorageError",
    "__version__",
    "alerts_from_message",
    "authorized",
    "deliver",
    "get_runtime",
    "handle_cloudevent",
    "handle_request",
    "load_rules",
    "log_invocation",
    "metric_lines",
    "objects_in_event",
    "outcome_of",
    "receive_count",
    "reset_runtime",
    "run_of",
    "sqs_records",
    "start_runtime",
    "too_large",
]


def __getattr__(name: str) -> Any:
    # Imported on first use: `import falconet` stays cheap (alerts.py alone pulls in hashlib and
    # orjson; the pipeline, the engine and the rule compiler much more).
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'falconet' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
