"""The cluster an object belongs to, read from its key (or a file's path) by a pattern.

The pattern is a regular expression with a named group `cluster`, searched in the key; the
default reads `cluster=<name>` path segments (`s3://bucket/cluster=prod/2026/...`). It is the
`FALCONET_CLUSTER_KEY_PATTERN` setting, checked and compiled by `falconet.config`.
"""

from __future__ import annotations

import re

from falconet.config import DEFAULT_KEY_PATTERN, compile_key_pattern


def cluster_from_key(
    key: str, pattern: str | re.Pattern[str] | None = DEFAULT_KEY_PATTERN
) -> str | None:
    """The cluster named in an object key or path by `pattern`'s `cluster` group, else None.

    >>> cluster_from_key("audit/cluster=prod-eu/2024/06/01/x.gz")
    'prod-eu'
    """
    if pattern is None:
        return None
    match = compile_key_pattern(pattern).search(key)
    return (match.group("cluster") or None) if match else None
