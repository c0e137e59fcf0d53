"""Optional dependencies: a missing one is a `ConfigError` naming the extra to install.

The core install (`pip install falconet`) scans local files and runs the rules; AWS needs the
`aws` extra (boto3), the functions-framework entry point the `functions` extra, GCS the `gcs`
extra. The check finds the module without importing it (boto3's import costs ~200 ms, paid where it
is first used, not here). It never imports anything itself.
"""

from __future__ import annotations

import importlib.util

from falconet.errors import ConfigError

AWS_HINT = "pip install 'falconet[aws]'"


def require_aws(what: str) -> None:
    """Return if boto3 is installed, else raise ConfigError: `what` needs the `aws` extra."""
    if importlib.util.find_spec("boto3") is None:
        raise ConfigError(f"{what} needs boto3, which is not installed: {AWS_HINT}")
