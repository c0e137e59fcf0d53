"""Configuration: read once per cold start from the environment, validated, with clear errors.

Every setting is a `FALCONET_*` environment variable; a bad value raises `ConfigError` naming the
variable, so a misconfigured function fails its cold start instead of running half-configured.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from falconet.errors import ConfigError
from falconet.rules.model import PRIORITIES, parse_priority

_PACKAGE_DIR = Path(__file__).resolve().parent


def bundled_rules_dir() -> Path:
    """The bundled `rules/` directory: beside the package when deployed, else at the repo top.

    A SAM/Lambda artifact holds `falconet/` and `rules/` side by side; a source checkout holds
    `functions/falconet/` and the top-level `rules/`.
    """
    for candidate in (_PACKAGE_DIR.parent / "rules", _PACKAGE_DIR.parent.parent / "rules"):
        if candidate.is_dir():
            return candidate
    raise ConfigError(
        "the bundled rules directory was not found beside the falconet package; "
        "set FALCONET_RULES to a rules file or directory"
    )


def rules_paths(environ: Mapping[str, str] | None = None) -> list[str]:
    """FALCONET_RULES (comma-separated files or directories), else the bundled rules."""
    env = os.environ if environ is None else environ
    setting = env.get("FALCONET_RULES", "").strip()
    return split_list(setting) if setting else [str(bundled_rules_dir())]


def split_list(value: str) -> list[str]:
    """A comma-separated setting as a list (blank items dropped)."""
    return [item.strip() for item in value.split(",") if item.strip()]


@dataclass(frozen=True, slots=True)
class EngineConfig:
    rules: tuple[str, ...]
    rule_matching: str = "first"
    min_priority: str = "debug"
    extra_fields: tuple[str, ...] | None = None
    time_format_iso8601: bool = False
    hostname: str | None = None
    geoip_db: str | None = None
    code_cache: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EngineConfig:
        """Read FALCONET_RULES, FALCONET_RULE_MATCHING, FALCONET_MIN_PRIORITY,
        FALCONET_EXTRA_FIELDS, FALCONET_TIME_FORMAT_ISO8601, FALCONET_HOSTNAME (or
        FALCO_HOSTNAME), FALCONET_GEOIP_DB and FALCONET_CODE_CACHE. Raises ConfigError naming
        the variable."""
        env = os.environ if environ is None else environ
        rules = tuple(rules_paths(env))
        for path in rules:
            if not Path(path).exists():
                raise ConfigError(f"FALCONET_RULES: '{path}' does not exist")
        matching = env.get("FALCONET_RULE_MATCHING", "first").strip().lower() or "first"
        if matching not in ("first", "all"):
            raise ConfigError(f"FALCONET_RULE_MATCHING must be 'first' or 'all', got '{matching}'")
        priority = env.get("FALCONET_MIN_PRIORITY", "debug").strip() or "debug"
        if parse_priority(priority) is None:
            raise ConfigError(
                f"FALCONET_MIN_PRIORITY '{priority}' is not one of {', '.join(PRIORITIES)}"
            )
        extra_setting = env.get("FALCONET_EXTRA_FIELDS")
        extra = tuple(split_list(extra_setting)) if extra_setting is not None else None
        iso = env.get("FALCONET_TIME_FORMAT_ISO8601", "false").strip().lower()
        if iso not in ("true", "false", "1", "0", "yes", "no", ""):
            raise ConfigError(f"FALCONET_TIME_FORMAT_ISO8601 must be true or false, got '{iso}'")
        hostname = env.get("FALCONET_HOSTNAME") or env.get("FALCO_HOSTNAME") or None
        geoip = env.get("FALCONET_GEOIP_DB", "").strip() or None
        code_cache = env.get("FALCONET_CODE_CACHE", "").strip() or None
        return cls(
            rules=rules,
            rule_matching=matching,
            min_priority=priority,
            extra_fields=extra,
            time_format_iso8601=iso in ("true", "1", "yes"),
            hostname=hostname,
            geoip_db=geoip,
            code_cache=code_cache,
        )


def cluster_key_pattern(environ: Mapping[str, str] | None = None) -> str:
    """FALCONET_CLUSTER_KEY_PATTERN: a regex with a `cluster` group matched against object keys.

    Default: `cluster=<name>` as a path segment (`s3://bucket/cluster=prod/2026/...`).
    """
    from falconet.sources import DEFAULT_KEY_PATTERN, compile_key_pattern

    env = os.environ if environ is None else environ
    pattern = env.get("FALCONET_CLUSTER_KEY_PATTERN", "").strip() or DEFAULT_KEY_PATTERN
    try:
        compile_key_pattern(pattern)
    except ConfigError as exc:
        raise ConfigError(f"FALCONET_CLUSTER_KEY_PATTERN: {exc}") from None
    return pattern
