"""The process-wide objects, built in one place, once per cold start.

    from falconet import get_runtime
    pipeline = get_runtime().pipeline     # engine, sinks, key pattern, decode limits
    http = get_runtime().http             # the webhook token (from its secret) and body limit
    notify = get_runtime().notify         # the notification function's delivery configuration

`get_runtime()` reads the environment once (`falconet.config.Settings`) and builds each object
the first time it is asked for, then keeps it for every later invocation of the process (a warm
function): the Lambda handlers use it lazily, so a handler that never asks for the pipeline (the
notifier) never loads rules, and one whose settings are wrong fails with the `ConfigError` naming
the variable. `start_runtime()` is the eager form for an entry point whose import is its cold
start (functions-framework's `main.py`): a bad setting stops the server from starting.
`build_engine` and `build_pipeline` are the same recipe for callers with their own settings.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING

from falconet.attribution import Attributor
from falconet.config import (
    NOTIFY_URL_SECRET,
    STATE_TABLE,
    WEBHOOK_TOKEN_SECRET,
    EngineSettings,
    HttpSettings,
    Settings,
    StateSettings,
    http_url,
)
from falconet.correlate.correlator import Correlator
from falconet.decode import DecodeLimits
from falconet.engine import Engine
from falconet.pipeline import Pipeline
from falconet.secrets import CachedSecret
from falconet.sinks import sinks_from_settings
from falconet.state import MemoryStore, StateStore
from falconet.suppress.suppressor import Suppressor

if TYPE_CHECKING:
    from falconet.notify import NotifyConfig
    from falconet.state.runs import RunProgress


def build_engine(settings: EngineSettings) -> Engine:
    """The engine `settings` describe, with its GeoIP database when one is set.

    Raises ConfigError (a bad setting or database) or RuleError (the first rule problem)."""
    geoip = None
    if settings.geoip_db:
        from falconet.geoip import GeoIP

        geoip = GeoIP.from_setting(settings.geoip_db)
    return Engine.from_paths(
        settings.rules,
        rule_matching=settings.rule_matching,
        min_priority=settings.min_priority,
        extra_fields=settings.extra_fields,
        hostname=settings.hostname,
        time_format_iso8601=settings.time_format_iso8601,
        geoip=geoip,
        code_cache=settings.code_cache,
        falco_config=settings.falco_config,
    )


def build_pipeline(settings: Settings) -> Pipeline:
    """Engine, sinks, correlations, suppression policies and attribution with their state store,
    key pattern and decode limits from `settings`. Raises ConfigError / RuleError."""
    engine = build_engine(settings.engine)
    state = settings.state
    suppress = state.suppress and bool(engine.policies)
    needed = engine.correlations or suppress or state.attribution
    store = build_store(state) if needed else None
    return Pipeline(
        engine,
        sinks_from_settings(settings.sinks),
        key_pattern=settings.key_pattern,
        timeout=settings.sinks.function_timeout,
        body_limits=DecodeLimits.like(settings.decode.body),
        object_limits=DecodeLimits.like(settings.decode.object),
        correlator=build_correlator(engine, state, store),
        suppressor=Suppressor.for_engine(engine, store) if suppress and store is not None else None,
        attributor=build_attributor(engine, state, store),
        falco_json=settings.decode.falco_json,
    )


def build_store(settings: StateSettings) -> StateStore:
    """The DynamoDB table `settings` names, else this process's memory (and a warning: on a
    deployment of several instances, each then knows only what it sees)."""
    if settings.table:
        from falconet.state.dynamodb import DynamoDBStore

        return DynamoDBStore(settings.table)
    logging.getLogger("falconet.runtime").warning(
        "falconet: correlations, suppression and attribution keep their state in this "
        "instance's memory (no %s): with several instances, each counts and knows only the "
        "events it sees",
        STATE_TABLE,
    )
    return MemoryStore()


def build_correlator(
    engine: Engine, settings: StateSettings, store: StateStore | None = None
) -> Correlator | None:
    """The correlator of `engine`'s correlations (None when it has none), its state in `store`,
    else in the store `settings` name (`build_store`)."""
    if not engine.correlations:
        return None
    return Correlator.for_engine(engine, store if store is not None else build_store(settings))


def build_attributor(
    engine: Engine, settings: StateSettings, store: StateStore | None = None
) -> Attributor | None:
    """The attributor (None when FALCONET_ATTRIBUTION is off), its records in `store`, else in
    the store `settings` name; it reads `falconet.cluster` as the rules do."""
    if not settings.attribution:
        return None
    return Attributor(
        store if store is not None else build_store(settings),
        cluster=engine.field_getter("falconet.cluster"),
    )


class Runtime:
    """One process's settings and the objects built from them (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._secrets: dict[str, CachedSecret] = {}
        self._notify: NotifyConfig | None = None

    @cached_property
    def pipeline(self) -> Pipeline:
        return build_pipeline(self.settings)

    @cached_property
    def runs(self) -> RunProgress | None:
        """Backtest runs' progress in the state table (`falconet.state.runs`); None without a
        table: the run's alerts still carry its id, and nothing counts its objects."""
        table = self.settings.state.table
        if not table:
            return None
        from falconet.state.dynamodb import DynamoDBStore
        from falconet.state.runs import RunProgress

        return RunProgress(DynamoDBStore(table))

    @property
    def http(self) -> HttpSettings:
        """The HTTP function's settings, with the token read from where
        FALCONET_WEBHOOK_TOKEN_SECRET says (re-read every FALCONET_SECRET_TTL seconds, so a
        rotated token is picked up). Raises ConfigError when the secret cannot be read."""
        settings = self.settings.http
        if settings.token_secret is None:
            return settings
        token = self._secret(WEBHOOK_TOKEN_SECRET, settings.token_secret, settings.secret_ttl)
        return replace(settings, token=token.value() or None)

    @property
    def notify(self) -> NotifyConfig:
        """The notifier's delivery configuration, with its URL read from
        FALCONET_NOTIFY_URL_SECRET when set (re-read like the token)."""
        from falconet.notify import NotifyConfig

        settings = self.settings.notify
        if settings.url_secret is not None:
            secret = self._secret(NOTIFY_URL_SECRET, settings.url_secret, settings.secret_ttl)
            settings = replace(settings, url=http_url(NOTIFY_URL_SECRET, secret.value()))
        config = self._notify
        if config is None or config.url != settings.url:
            config = self._notify = NotifyConfig.from_settings(settings)
        return config

    def _secret(self, setting: str, reference: str, ttl: float) -> CachedSecret:
        secret = self._secrets.get(setting)
        if secret is None:
            secret = self._secrets[setting] = CachedSecret(setting, reference, ttl=ttl)
        return secret


_lock = threading.Lock()
_RUNTIME: Runtime | None = None


def get_runtime() -> Runtime:
    """The process's runtime, made from the environment on first use (the cold start)."""
    global _RUNTIME  # noqa: PLW0603 - one runtime per process is the design
    if _RUNTIME is None:
        with _lock:
            if _RUNTIME is None:
                _RUNTIME = Runtime(Settings.from_env())
    return _RUNTIME


def start_runtime() -> Runtime:
    """A new runtime from the environment as it is now, made the process's, with its pipeline
    built at once. Raises ConfigError / RuleError."""
    from falconet.oidc import push_verifier

    global _RUNTIME  # noqa: PLW0603
    started = Runtime(Settings.from_env())
    started.pipeline  # noqa: B018 - built now: a bad setting or rule fails the start
    http = started.http  # the token read now, from its secret if it has one
    if http.push_accounts and http.push_audience:  # google-auth there to verify push tokens
        push_verifier(http.push_audience, http.push_accounts, http.push_certs_url)
    with _lock:
        _RUNTIME = started
    return started


def reset_runtime() -> None:
    """Forget the process's runtime: the next `get_runtime()` reads the environment again."""
    global _RUNTIME  # noqa: PLW0603
    _RUNTIME = None
