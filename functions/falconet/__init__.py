"""falconet: Falco-compatible detection of threats in Kubernetes audit logs.

Public API (kept small and stable)::

    from falconet import Engine
    engine = Engine.from_paths(["rules/"], rule_matching="first", min_priority="debug")
    for alert in engine.evaluate(event):
        print(alert.to_dict())
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from falconet.context import EventContext
from falconet.errors import ConfigError, DecodeError, FalconetError, RuleError, SinkError

if TYPE_CHECKING:
    from falconet.alerts import Alert
    from falconet.engine import Engine

__version__ = "0.1.0"
__all__ = [
    "Alert",
    "ConfigError",
    "DecodeError",
    "Engine",
    "EventContext",
    "FalconetError",
    "RuleError",
    "SinkError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # Engine and Alert are imported on first use so `import falconet` stays cheap for the CLI's
    # help path: alerts.py pulls in dataclasses (and inspect), hashlib and orjson, ~15 ms.
    if name == "Engine":
        from falconet.engine import Engine  # noqa: PLC0415 - lazy on purpose (see above)

        return Engine
    if name == "Alert":
        from falconet.alerts import Alert  # noqa: PLC0415 - lazy on purpose (see above)

        return Alert
    raise AttributeError(f"module 'falconet' has no attribute {name!r}")
