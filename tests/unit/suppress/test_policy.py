"""Suppression policy documents at load: a policy's parts, what is refused (located: file, line),
how a later document replaces or turns off an earlier one of the same name, and which alerts a
policy applies to."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from falconet import Engine
from falconet.errors import RuleError
from falconet.suppress.policy import Policy
from tests.conftest import BUNDLED_RULES

BASE = """\
- rule: Secret read denied
  desc: a denied secret read
  condition: ka.verb=get and ka.target.resource=secrets and ka.response.code=403
  output: denied secret (user=%ka.user.name ns=%ka.target.namespace name=%ka.target.name)
  priority: WARNING
  source: k8s_audit
  tags: [k8s, credentials]
- rule: Namespace deleted
  desc: a namespace deleted
  condition: ka.verb=delete and ka.target.resource=namespaces
  output: deleted (user=%ka.user.name ns=%ka.target.name)
  priority: NOTICE
  source: k8s_audit
  tags: [k8s]
"""

# Every key a policy has, one per line (the line numbers below count on it).
FULL = """\
suppress: Repeats of a denied secret read
name: denied_repeats
description: one alert per identity and secret every hour
match:
  rules: [Secret read denied]
  tags: [credentials]
  priority: warning
  clusters: [prod-eu, prod-us]
group-by: [rule, ka.user.name, ka.target.name, falconet.cluster]
period: 1h
limit: 3
digest: false
enabled: true
"""

REPEATS = """\
suppress: Repeats of a rule for one identity and object
name: falconet_repeats
group-by: [rule, ka.user.name, ka.target.name]
period: 1h
"""


def engine(tmp_path: Path, *policies: str) -> Engine:
    """The engine of BASE and each policy text as a file of its own (policies-0.yaml, ...)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    rules = tmp_path / "base.yaml"
    rules.write_text(BASE)
    paths = [rules]
    for n, text in enumerate(policies):
        path = tmp_path / f"policies-{n}.yaml"
        path.write_text(textwrap.dedent(text))
        paths.append(path)
    return Engine.from_paths(paths, hostname="h")


def refused(tmp_path: Path, text: str) -> RuleError:
    with pytest.raises(RuleError) as info:
        engine(tmp_path, text)
    return info.value


def test_a_policy_loads_with_its_parts(tmp_path: Path) -> None:
    (p,) = engine(tmp_path, FULL).policies
    assert (p.title, p.name, p.period, p.limit, p.digest) == (
        "Repeats of a denied secret read",
        "denied_repeats",
        3600,
        3,
        False,
    )
    assert p.group_by == ("rule", "ka.user.name", "ka.target.name", "falconet.cluster")
    assert p.rules == {"Secret read denied"}
    assert p.tags == {"credentials"}
    assert p.max_priority == 4  # Falco's number for Warning
    assert p.clusters == {"prod-eu", "prod-us"}
    assert p.position is not None
    assert (Path(p.position.file).name, p.position.line) == ("policies-0.yaml", 1)


def test_defaults_limit_one_a_digest_and_every_alert(tmp_path: Path) -> None:
    (p,) = engine(tmp_path, "suppress: Quiet\nperiod: 10m\n").policies
    assert (p.name, p.limit, p.digest, p.period, p.group_by) == ("Quiet", 1, True, 600, ())
    assert (p.rules, p.tags, p.max_priority, p.clusters) == (None, None, None, None)


def test_the_state_key_changes_with_what_shapes_the_state(tmp_path: Path) -> None:
    """A period written under one grouping must not be read under another."""
    (a,) = engine(tmp_path / "a", REPEATS).policies
    (b,) = engine(tmp_path / "b", REPEATS.replace("period: 1h", "period: 2h")).policies
    (c,) = engine(tmp_path / "c", REPEATS.replace(", ka.target.name]", "]")).policies
    (d,) = engine(tmp_path / "d", REPEATS + "limit: 5\n").policies
    assert len({a.key, b.key, c.key}) == 3
    assert d.key == a.key  # the limit shapes no state: raising it keeps the periods running


@pytest.mark.parametrize(
    ("old", "new", "message", "line"),
    [
        ("limit: 3\n", "limit: 3\nwindow: 1h\n", "unknown key 'window' in a suppression", 12),
        ("period: 1h", "period: 1 hour", "period must be a timespan of at most 31 days", 10),
        ("period: 1h", "period: 32d", "period must be a timespan of at most 31 days", 10),
        ("period: 1h", "period: 0s", "period must be a timespan of at most 31 days", 10),
        ("period: 1h\n", "", "a suppression policy needs a `period` (e.g. 1h)", 1),
        ("limit: 3", "limit: 0", "limit must be a whole number from 1 to 10000", 11),
        ("limit: 3", "limit: many", "limit must be a whole number from 1 to 10000", 11),
        ("limit: 3", "limit: 10001", "limit must be a whole number from 1 to 10000", 11),
        ("limit: 3", "limit: -2", "limit must be a whole number from 1 to 10000", 11),
        ("limit: 3", "limit: 2.5", "limit must be a whole number from 1 to 10000", 11),
        ("ka.user.name,", "ka.user.nam,", "unknown field 'ka.user.nam'", 9),
        ("ka.target.name,", "ka.user.name,", "'ka.user.name' is twice in `group-by`", 9),
        ("priority: warning", "priority: severe", "unknown priority 'severe'", 7),
        ("  clusters", "  severity: high\n  clusters", "unknown key 'severity' in `match`", 8),
        ("digest: false", "digest: sometimes", "digest must be true or false", 12),
        ("enabled: true", "enabled: maybe", "enabled must be true or false", 13),
        ("suppress: Repeats of a denied secret read", "suppress: ''", "needs a title", 1),
    ],
    ids=[
        "unknown-key",
        "period-words",
        "period-too-long",
        "period-zero",
        "period-missing",
        "limit-zero",
        "limit-word",
        "limit-too-big",
        "limit-negative",
        "limit-fraction",
        "group-by-unknown-field",
        "group-by-twice",
        "match-unknown-priority",
        "match-unknown-key",
        "digest-not-boolean",
        "enabled-not-boolean",
        "empty-title",
    ],
)
def test_problems_are_located(tmp_path: Path, old: str, new: str, message: str, line: int) -> None:
    assert old in FULL
    error = refused(tmp_path, FULL.replace(old, new))
    assert message in error.message
    assert (Path(error.file or "").name, error.line) == ("policies-0.yaml", line)


def test_an_unknown_group_by_field_renders_with_its_place_and_a_suggestion(
    tmp_path: Path,
) -> None:
    error = refused(tmp_path, FULL.replace("ka.user.name,", "ka.user.nam,"))
    path = tmp_path / "policies-0.yaml"
    assert error.render() == (
        f"{path}:9:18: error: policy 'denied_repeats': field 'ka.user.nam': unknown field "
        "'ka.user.nam' in output (did you mean 'ka.user.name'?)"
    )


def test_an_unknown_match_key_lists_the_known_ones(tmp_path: Path) -> None:
    error = refused(tmp_path, FULL.replace("  clusters", "  severity: high\n  clusters"))
    assert error.message.endswith(
        "unknown key 'severity' in `match` (clusters, priority, rules, tags)"
    )
    assert error.item == "denied_repeats"


# ---- a later document with the same name ---------------------------------------------------------


def test_a_later_document_with_the_same_name_replaces_the_earlier(tmp_path: Path) -> None:
    site = REPEATS.replace("period: 1h", "period: 10m\nlimit: 5")
    (p,) = engine(tmp_path, REPEATS, site).policies
    assert (p.name, p.period, p.limit) == ("falconet_repeats", 600, 5)
    assert p.position is not None and Path(p.position.file).name == "policies-1.yaml"


def test_a_replacement_takes_the_later_place_in_the_order(tmp_path: Path) -> None:
    """Policies apply in load order: a replaced one applies where it was loaded last."""
    other = "suppress: Deletions\nname: deletions\nmatch: {rules: [Namespace deleted]}\nperiod: 1d"
    first = engine(tmp_path / "a", REPEATS + "---\n" + other).policies
    assert [p.name for p in first] == ["falconet_repeats", "deletions"]
    replaced = engine(tmp_path / "b", REPEATS + "---\n" + other, REPEATS).policies
    assert [p.name for p in replaced] == ["deletions", "falconet_repeats"]


def test_enabled_false_in_a_later_file_turns_a_policy_off(tmp_path: Path) -> None:
    off = "suppress: off\nname: falconet_repeats\nenabled: false\n"  # no period needed to turn off
    assert engine(tmp_path, REPEATS, off).policies == ()


def test_a_later_document_turns_a_turned_off_policy_back_on(tmp_path: Path) -> None:
    off = "suppress: off\nname: falconet_repeats\nenabled: false\n"
    (p,) = engine(tmp_path, REPEATS, off, REPEATS.replace("1h", "2h")).policies
    assert p.period == 7200


def test_a_deployment_turns_the_bundled_policy_off(tmp_path: Path) -> None:
    """The recipe rules/policies.yaml gives: a file after the bundled rules, same name."""
    assert [p.name for p in Engine.from_paths([BUNDLED_RULES]).policies] == ["falconet_repeats"]
    site = tmp_path / "site.yaml"
    site.write_text("suppress: not here\nname: falconet_repeats\nenabled: false\n")
    assert Engine.from_paths([BUNDLED_RULES, site]).policies == ()


def test_policies_and_correlations_load_from_one_file(tmp_path: Path) -> None:
    both = """\
    title: Denied burst
    name: denied_burst
    correlation:
      type: event_count
      rules: [Secret read denied]
      group-by: [ka.user.name]
      timespan: 10m
      condition: {gte: 3}
    ---
    suppress: One burst alert a day
    match: {rules: [Denied burst]}
    group-by: [ka.user.name]
    period: 1d
    """
    e = engine(tmp_path, both)
    assert [c.name for c in e.correlations.correlations] == ["denied_burst"]
    assert [(p.name, p.rules) for p in e.policies] == [("One burst alert a day", {"Denied burst"})]


def test_a_single_group_by_field_may_be_written_without_a_list(tmp_path: Path) -> None:
    one = REPEATS.replace("[rule, ka.user.name, ka.target.name]", "rule")
    (p,) = engine(tmp_path, one).policies
    assert p.group_by == ("rule",)


# ---- which alerts a policy applies to ------------------------------------------------------------


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    (p,) = engine(tmp_path_factory.mktemp("full"), FULL).policies
    return p


@pytest.mark.parametrize(
    ("rule", "priority", "tags", "cluster", "applies"),
    [
        ("Secret read denied", "Warning", ("k8s", "credentials"), "prod-eu", True),
        ("Secret read denied", "Notice", ("credentials",), "prod-us", True),
        ("Secret read denied", "Debug", ("credentials",), "prod-us", True),
        ("Namespace deleted", "Warning", ("credentials",), "prod-eu", False),
        ("Secret read denied", "Warning", ("k8s",), "prod-eu", False),
        ("Secret read denied", "Error", ("credentials",), "prod-eu", False),
        ("Secret read denied", "Critical", ("credentials",), "prod-eu", False),
        ("Secret read denied", "Warning", ("credentials",), "staging", False),
        ("Secret read denied", "Warning", ("credentials",), None, False),
    ],
    ids=[
        "all-match",
        "less-severe",
        "least-severe",
        "other-rule",
        "no-tag",
        "more-severe",
        "much-more-severe",
        "other-cluster",
        "no-cluster",
    ],
)
def test_applies_to_rules_tags_priority_and_clusters(
    full: Policy,
    rule: str,
    priority: str,
    tags: tuple[str, ...],
    cluster: str | None,
    applies: bool,
) -> None:
    assert full.applies(rule, priority, tags, cluster) is applies


def test_without_match_a_policy_applies_to_every_alert(tmp_path: Path) -> None:
    (p,) = engine(tmp_path, REPEATS).policies
    assert p.applies("Anything", "Emergency", (), None)
    assert p.applies("Namespace deleted", "Debug", ("k8s",), "prod")


def test_priority_names_are_falco_s_in_any_case(tmp_path: Path) -> None:
    (p,) = engine(tmp_path, "suppress: q\nmatch: {priority: INFO}\nperiod: 1h\n").policies
    assert p.applies("r", "Informational", (), None)
    assert p.applies("r", "Debug", (), None)
    assert not p.applies("r", "Notice", (), None)


def test_a_rule_name_that_matches_nothing_is_a_warning(tmp_path: Path) -> None:
    typo = FULL.replace("rules: [Secret read denied]", "rules: [Secret read denid]")
    warnings = engine(tmp_path, typo).warnings
    assert any("'Secret read denid', which is no loaded rule" in w for w in warnings)
    assert not any("which is no loaded rule" in w for w in engine(tmp_path / "ok", FULL).warnings)
