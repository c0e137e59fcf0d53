"""Suppression policies: which alerts, grouped how, how many per period, and a digest of the rest.

A falconet extension (Falco has no such thing): YAML mapping documents beside the rules, in a file
of correlation/policy documents, each with a top-level `suppress` (its title):

    suppress: Repeats of a rule for one identity and target
    name: falconet_repeats                 # how a later document turns it off or replaces it
    match:                                 # which alerts (all of them when absent)
      rules: [...]                         #   any of these rule names (correlation titles too)
      tags: [...]                          #   any of these tags
      priority: notice                     #   at most this severe (Notice and less)
      clusters: [...]                      #   falconet.cluster any of these
    group-by: [rule, ka.user.name, ka.target.name, falconet.cluster]   # output fields, or `rule`
    period: 1h                             # Ns, Nm, Nh, Nd: from the group's first alert
    limit: 1                               # alerts of a group sent per period (default 1)
    digest: true                           # then one alert counting the rest (default true)
    enabled: true

`limit: 1` is dedup; a larger limit grouped by `rule` or `falconet.cluster` is a rate cap. A later
document with the same `name` replaces the earlier one (`enabled: false` turns it off): that is
how a deployment turns off a bundled default. `load_policies(documents)` reads the documents that
have `suppress` and leaves the others to the correlation loader.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from falconet import errors as errs
from falconet.correlate.model import parse_timespan
from falconet.rules.diagnostics import Diagnostic, located
from falconet.rules.documents import SCALAR, Doc
from falconet.rules.model import PRIORITIES, Position, parse_priority
from falconet.rules.output import field_problem

RULE = "rule"  # the pseudo-field: the alert's rule
MAX_PERIOD_S = 31 * 86400
MAX_LIMIT = 10_000
MAX_GROUP_BY = 8
MAX_POLICIES = 200
_KEYS = {"suppress", "name", "description", "match", "group-by", "period", "limit", "digest",
         "enabled"}  # fmt: skip
_MATCH_KEYS = {"rules", "tags", "priority", "clusters"}


@dataclass(frozen=True, slots=True)
class Policy:
    """One suppression policy, checked."""

    title: str
    name: str
    group_by: tuple[str, ...]
    period: int  # seconds
    limit: int = 1
    digest: bool = True
    rules: frozenset[str] | None = None
    tags: frozenset[str] | None = None
    max_priority: int | None = None  # Falco's number: alerts with priority number >= this
    clusters: frozenset[str] | None = None
    position: Position | None = None
    key: str = ""  # the state's key: a hash of what shapes the state

    def applies(self, rule: str, priority: str, tags: Sequence[str], cluster: str | None) -> bool:
        if self.rules is not None and rule not in self.rules:
            return False
        if self.tags is not None and self.tags.isdisjoint(tags):
            return False
        if self.max_priority is not None:
            number = parse_priority(priority)
            if number is None or number < self.max_priority:
                return False
        return self.clusters is None or cluster in self.clusters


def load_policies(
    documents: Sequence[Doc], known_rules: Iterable[str] | None = None
) -> tuple[tuple[Policy, ...], list[Diagnostic]]:
    """The enabled policies of the documents that have `suppress`, in load order (a later one
    with an earlier one's name takes its place), and located diagnostics for the bad ones; with
    `known_rules` (the loaded rules' names and correlations' titles), a warning for each name in
    `match.rules` that is none of them (it would match nothing)."""
    by_name: dict[str, Policy | None] = {}
    problems: list[Diagnostic] = []
    for doc in documents:
        if doc.kind != 2 or "suppress" not in doc.value:
            continue
        try:
            if len(by_name) >= MAX_POLICIES:
                raise located(
                    f"more than {MAX_POLICIES} suppression policies",
                    doc.position,
                    cls=errs.RuleLimitError,
                )
            name, policy = _read(doc)
        except errs.RuleError as exc:
            problems.append(Diagnostic(exc))
            continue
        by_name.pop(name, None)  # a replacement takes the later place
        by_name[name] = policy
    policies = tuple(p for p in by_name.values() if p is not None)
    if known_rules is not None:
        known = set(known_rules)
        for policy in policies:
            for name in sorted((policy.rules or set()) - known):
                problems.append(
                    Diagnostic(
                        located(
                            f"match.rules names '{name}', which is no loaded rule or correlation "
                            "title: it matches nothing",
                            policy.position,
                            kind="policy",
                            item=policy.name,
                        ),
                        "warning",
                    )
                )
    return policies, problems


def _error(message: str, doc: Doc | None, name: str | None = None) -> errs.RuleError:
    return located(message, doc.position if doc else None, kind="policy", item=name)


def _read(doc: Doc) -> tuple[str, Policy | None]:
    parts = doc.mapping("a suppression policy")
    title = parts["suppress"].scalar("suppress").strip()
    if not title:
        raise _error("`suppress` needs a title", parts["suppress"])
    name = parts["name"].scalar("name").strip() if "name" in parts else title
    for key, node in parts.items():
        if key not in _KEYS:
            raise _error(f"unknown key '{key}' in a suppression policy", node, name)
    enabled = parts["enabled"].boolean("enabled") if "enabled" in parts else True
    if not enabled:
        return name, None
    period_doc = parts.get("period")
    if period_doc is None:
        raise _error("a suppression policy needs a `period` (e.g. 1h)", doc, name)
    period = parse_timespan(period_doc.scalar("period"))
    if period is None or period <= 0 or period > MAX_PERIOD_S:
        raise _error(
            "period must be a timespan of at most 31 days: 30s, 10m, 1h, 7d", period_doc, name
        )
    limit = 1
    if "limit" in parts:
        text = parts["limit"].scalar("limit").strip()
        if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
            raise _error(
                f"limit must be a whole number from 1 to {MAX_LIMIT}", parts["limit"], name
            )
        limit = int(text)
    digest = parts["digest"].boolean("digest") if "digest" in parts else True
    group_by = _group_by(parts.get("group-by"), name)
    rules, tags, max_priority, clusters = _match(parts.get("match"), name)
    key = hashlib.sha256(repr((name, tuple(group_by), period)).encode()).hexdigest()[:20]
    return name, Policy(
        title=title,
        name=name,
        group_by=tuple(group_by),
        period=period,
        limit=limit,
        digest=digest,
        rules=rules,
        tags=tags,
        max_priority=max_priority,
        clusters=clusters,
        position=doc.position,
        key=key,
    )


def _group_by(doc: Doc | None, name: str) -> list[str]:
    if doc is not None and doc.kind == SCALAR and not doc.is_null():
        items = [doc]  # one field, written without a list
    else:
        items = [] if doc is None else doc.sequence("`group-by`")
    if len(items) > MAX_GROUP_BY:
        raise _error(f"`group-by` has more than {MAX_GROUP_BY} fields", doc, name)
    group_by: list[str] = []
    for item in items:
        field = item.scalar("a group-by field").strip()
        if field != RULE:
            problem = field_problem(field)
            if problem:
                raise _error(problem, item, name)
        if field in group_by:
            raise _error(f"'{field}' is twice in `group-by`", item, name)
        group_by.append(field)
    return group_by


def _match(
    doc: Doc | None, name: str
) -> tuple[frozenset[str] | None, frozenset[str] | None, int | None, frozenset[str] | None]:
    """`match`: rule names, tags, the least severe priority, clusters (None: any)."""
    found: dict[str, frozenset[str]] = {}
    max_priority = None
    if doc is None or doc.is_null():
        return None, None, None, None
    for key, node in doc.mapping("`match`").items():
        if key not in _MATCH_KEYS:
            known = ", ".join(sorted(_MATCH_KEYS))
            raise _error(f"unknown key '{key}' in `match` ({known})", node, name)
        if key == "priority":
            max_priority = parse_priority(node.scalar("priority"))
            if max_priority is None:
                raise _error(
                    f"unknown priority '{node.scalar('priority')}' ({', '.join(PRIORITIES)})",
                    node,
                    name,
                )
            continue
        found[key] = frozenset(v.scalar(key).strip() for v in node.sequence(f"`{key}`"))
    return found.get("rules"), found.get("tags"), max_priority, found.get("clusters")
