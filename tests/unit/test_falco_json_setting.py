"""FALCONET_FALCO_JSON: the functions read event JSON as Falco's k8saudit plugin does."""

from __future__ import annotations

import pytest

from falconet import Engine
from falconet.config import Settings
from falconet.errors import ConfigError
from falconet.pipeline import Pipeline
from falconet.sinks.stdout import StdoutSink

RULE = b"""
- rule: dup
  desc: a duplicated key
  condition: ka.verb = delete
  output: verb=%ka.verb
  priority: WARNING
  source: k8s_audit
"""
# The first "verb" is Falco's; orjson (the default reading) keeps the last.
EVENT = (
    b'{"kind":"Event","stageTimestamp":"2024-01-01T00:00:00Z","auditID":"a",'
    b'"verb":"delete","verb":"get"}\n'
)


@pytest.mark.parametrize(("value", "alerts"), [("", 0), ("false", 0), ("true", 1)])
def test_the_setting_reaches_the_pipeline(tmp_path, value: str, alerts: int) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_bytes(RULE)
    settings = Settings.from_env({"FALCONET_FALCO_JSON": value})
    assert settings.decode.falco_json is (value == "true")
    pipeline = Pipeline(
        Engine.from_paths([rules]), [StdoutSink()], falco_json=settings.decode.falco_json
    )
    result = pipeline.run(EVENT)
    assert (result.events, result.alerts) == (1, alerts)


def test_a_bad_value_is_named() -> None:
    with pytest.raises(ConfigError, match="FALCONET_FALCO_JSON"):
        _ = Settings.from_env({"FALCONET_FALCO_JSON": "maybe"}).decode
