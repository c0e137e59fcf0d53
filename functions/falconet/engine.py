"""The engine: rules loaded and compiled once, then `evaluate(event)` per audit event.

    engine = Engine.from_paths(["rules/"], rule_matching="first", min_priority="debug")
    alerts = engine.evaluate(event)            # list[Alert], usually empty

Built once per cold start: YAML parse, list/macro resolution, type checks, the (verb, resource)
index and one generated function per bucket. Per event: two dictionary look-ups pick the bucket,
its function runs the bucket's rules in position order, and only a match costs more (the alert).
Matches Falco's semantics: `rule_matching` `first` (default: at most one alert per event, the
first matching rule in definition position) or `all`; rules less severe than `min_priority` are not
loaded at all, so they cannot shadow others.

Pure: no I/O after construction, no environment, no globals but the compiled rules; safe to share
between threads. Its one piece of state is the event counter behind `evt.num` (Falco numbers the
events of a run); threads sharing an engine share that numbering.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from falconet import fields
from falconet.alerts import Alert, AlertFactory, FieldSpec
from falconet.context import EMPTY_CONTEXT, EventContext
from falconet.correlate.loader import load_correlations
from falconet.correlate.model import CorrelationSet
from falconet.errors import ConfigError, RuleError
from falconet.outputs import appended, extra_spec, factory
from falconet.rules.compiler import OTHER, CompiledRule, Index, build_index
from falconet.rules.falcoconfig import FalcoConfig
from falconet.rules.loader import Diagnostic, RuleSet, load_rules
from falconet.rules.model import PRIORITIES, Rule, parse_priority
from falconet.rules.reference import ReferenceEvaluator
from falconet.suppress.policy import Policy, load_policies
from falconet.timestamps import parse_rfc3339_ns

RULE_MATCHING = ("first", "all")
# Added to every alert's output_fields when present (Falco's append_output.extra_fields).
DEFAULT_EXTRA_FIELDS: tuple[str, ...] = (
    # who and what: so any alert, read back from a queue, can say who did what to which object
    "ka.user.name",
    "ka.user.groups",
    "ka.impuser.name",
    "ka.verb",
    "ka.target.resource",
    "ka.target.namespace",
    "ka.target.name",
    "ka.target.subresource",
    "ka.response.code",
    # where
    "ka.cluster.name",
    "falconet.cluster",
    "falconet.account",
    "falconet.region",
    "falconet.origin",
    "falconet.src.ip",
    "falconet.src.scope",
    "falconet.src.country",
    "falconet.src.city",
    "falconet.src.asn",
    # who is behind it: the person who wrote the workload a controller's pod belongs to
    "falconet.owner.user",
)
_LOCATION_FIELDS = frozenset({"falconet.src.country", "falconet.src.city", "falconet.src.asn"})
# A reader of request/response objects: the verbs and resources it is limited to (None: any),
# and whether it may read their managedFields (`Engine.body_readers`).
BodyReader = tuple[frozenset[str] | None, frozenset[str] | None, bool]
_MISSING = object()
_NO_ALERTS: list[Alert] = []


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """A loaded rule, as `falconet rules` lists it."""

    name: str
    priority: str
    tags: tuple[str, ...]
    desc: str
    enabled: bool
    order: int  # evaluation order: the rule's first definition


def _key(value: Any) -> Any:
    if type(value) is str:
        return value
    return None if value is _MISSING else fields.stringify(value)


class Engine:
    """Compiled rules; `evaluate` returns the alerts one audit event raises."""

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        rule_matching: str = "first",
        min_priority: str = "debug",
        extra_fields: Sequence[str] | None = None,
        hostname: str | None = None,
        time_format_iso8601: bool = False,
        geoip: Any = None,
        code_cache: str | Path | None = None,
        diagnostics: Sequence[Diagnostic] = (),
        correlations: CorrelationSet | None = None,
        policies: Sequence[Policy] = (),
        falco_config: FalcoConfig | None = None,
        rules_key: str | None = None,
    ) -> None:
        """`rules_key` is the load cache's key of exactly `rules` (`RuleSet.cache_key`, which
        `from_paths` passes): with `code_cache`, the finished index is cached under it."""
        if rule_matching not in RULE_MATCHING:
            raise ConfigError(f"rule_matching must be 'first' or 'all', got '{rule_matching}'")
        threshold = parse_priority(min_priority)
        if threshold is None:
            raise ConfigError(
                f"min_priority '{min_priority}' is not a priority ({', '.join(PRIORITIES)})"
            )
        self.rule_matching = rule_matching
        self.min_priority = PRIORITIES[threshold]
        self.diagnostics = tuple(diagnostics)
        if hostname is None:
            hostname = _host_name()
        self._hostname = hostname
        self.hostname = hostname
        self.time_format_iso8601 = time_format_iso8601
        # evt.num: the engine numbers the events it evaluates, as Falco numbers a run's events.
        self._counter = fields.EventCounter()
        self._env = fields.BindEnv(geoip=geoip, counter=self._counter, hostname=hostname)
        self._extra_fields = extra_fields
        self._falco_config = falco_config
        # Configured extra fields are checked now (a ConfigError at start-up); the defaults are
        # known good, and read when the first alert needs them.
        self._extra_specs = None if extra_fields is None else self._bind_extras()
        if falco_config is not None:  # falco.yaml's `rules:` enable/disable commands, in order
            rules = falco_config.select(rules)
        self.correlations = correlations or CorrelationSet()
        self.policies = tuple(policies)  # suppression policies (falconet.suppress)
        counted, silenced = self.correlations.counted, self.correlations.silenced
        # Rules below the threshold are not loaded (Falco), unless a correlation counts them;
        # disabled rules are compiled, not run.
        active = [r for r in rules if r.enabled and (r.priority <= threshold or r.name in counted)]
        self.rules = tuple(
            RuleInfo(r.name, r.priority_name, r.tags, r.desc, r.enabled, r.order) for r in rules
        )
        self._active = tuple(active)
        # One per rule, made at the rule's first alert: most rules never fire in a function's
        # life, and making all at a cold start cost ~4 ms (bundled rules). With falco.yaml's
        # append_output / static_fields all are made now, so that a bad one fails the start.
        self._factories: list[AlertFactory | None] = [None] * len(active)
        if falco_config is not None and (falco_config.append_output or falco_config.static_fields):
            for slot in range(len(active)):
                self._make_factory(slot)
        # A rule emits its own alerts unless it is below the threshold (kept only to be counted)
        # or a correlation silences it (`generate: false`); only emitting rules take part in
        # first-match, so a rule kept for a correlation never hides another rule's alert.
        self._emits = tuple(r.priority <= threshold and r.name not in silenced for r in active)
        self._counts = tuple(r.name in counted for r in active)
        self._names = tuple(r.name for r in active)
        self._judging = any(self._counts) or not all(self._emits)
        self._index: Index = build_index(
            [CompiledRule(slot, r.condition, r.name) for slot, r in enumerate(active)],
            match_all=rule_matching == "all" or self._judging,
            env=self._env,
            cache_dir=Path(code_cache) if code_cache else None,
            rules_key=rules_key,
        )
        self._table = self._index.table
        self._table_other = self._table[OTHER]
        self._first = rule_matching == "first"
        self._reference = ReferenceEvaluator(self._env)
        self._by_name = {r.name: r for r in rules}  # for `why` (the disabled and silent too)

    @classmethod
    def from_paths(
        cls,
        paths: Iterable[str | Path],
        *,
        rule_matching: str = "first",
        min_priority: str = "debug",
        extra_fields: Sequence[str] | None = None,
        hostname: str | None = None,
        time_format_iso8601: bool = False,
        geoip: Any = None,
        code_cache: str | Path | None = None,
        falco_config: FalcoConfig | None = None,
    ) -> Engine:
        """Load rules files (or directories of `*.yaml`, by name) in order and compile them.

        `geoip` is a `falconet.geoip.GeoIP` for the `falconet.src.*` location fields.
        `code_cache` is a directory for the compiled rule code (`FALCONET_CODE_CACHE`; the SAM
        build fills it so a cold start skips compiling). `falco_config` is falco.yaml's `rules:`,
        `append_output` and `static_fields` (`falconet.rules.falcoconfig`).
        Raises RuleError (file:line:col, item name) for the first problem in the rules, and
        ConfigError for a bad `rule_matching` / `min_priority`.
        """
        paths = list(paths)
        if not paths:
            raise ConfigError("no rules paths given")
        for p in paths:
            if not Path(p).exists():
                raise ConfigError(f"rules path '{p}' does not exist")
        rules, ruleset = load_rules(paths, cache_dir=code_cache)
        correlations, policies = load_documents(ruleset, rules)
        _raise_first(ruleset)
        return cls(
            rules,
            rule_matching=rule_matching,
            min_priority=min_priority,
            extra_fields=extra_fields,
            hostname=hostname,
            time_format_iso8601=time_format_iso8601,
            geoip=geoip,
            code_cache=code_cache,
            diagnostics=ruleset.diagnostics,
            correlations=correlations,
            policies=policies,
            falco_config=falco_config,
            rules_key=ruleset.cache_key,
        )

    def active_rules(self) -> tuple[Rule, ...]:
        """The rules this engine evaluates (enabled, at or above min_priority or counted by a
        correlation), in evaluation order."""
        return self._active

    def fields_read(self) -> frozenset[str]:
        """Every field read by the loaded rules that can match (conditions and outputs) and by
        the correlations counting them (group-by). Computed on demand, not at a cold start: the
        CLI asks it to say "geolocation is off" only when a location field is among them."""
        from falconet.rules.compiler import can_match

        live = [r for r in self._active if can_match(r.condition)]
        names = {r.name for r in live}
        return frozenset().union(
            *(r.fields_used for r in live),
            *(c.group_by for c in self.correlations.correlations if names.intersection(c.rules)),
        )

    def body_readers(self) -> list[BodyReader] | None:
        """For which events this engine reads the request or response object (a rule's condition
        or output, the fields added to every alert, a correlation's groups): one reader per rule
        reading one, its (verb, resource) index keys (None: any) and whether it may read their
        `managedFields` (`falconet.fields.reads`). None when something reads the whole event or
        a field that module cannot place: then every event is decoded whole. The pipeline hands
        them to `decode(bodies=...)`, which decodes the other events without them."""
        from falconet.fields.reads import BODIES, POINTERS, reads_managed, reads_of, split_spec
        from falconet.rules.compiler import can_match
        from falconet.rules.expressions import field_uses
        from falconet.rules.index import RESOURCE, VERB, required
        from falconet.rules.output import FieldToken

        def reads(specs: Iterable[tuple[str, str | None]]) -> frozenset[str] | None:
            found: set[str] = set()
            for name, arg in specs:
                keys = reads_of(name, arg)
                if keys is None:
                    return None
                found |= keys
            return frozenset(found)

        extras = DEFAULT_EXTRA_FIELDS if self._extra_fields is None else self._extra_fields
        extra_specs = [split_spec(spec) for spec in extras]
        every_alert = reads(extra_specs)
        if every_alert is None:
            return None
        readers: list[BodyReader] = []
        for rule in self._active:
            # The names the rule reads (condition and output); the arguments where they matter
            specs: list[tuple[str, str | None]] = [
                (name, None) for name in rule.fields_used if name not in POINTERS
            ]
            if not POINTERS.isdisjoint(rule.fields_used):
                specs += [key for key in field_uses(rule.condition) if key[0] in POINTERS]
            specs += [(p.name, p.arg) for p in rule.output_parts if isinstance(p, FieldToken)]
            for c in self.correlations.correlations:
                if rule.name in c.rules:
                    specs += [split_spec(s) for s in c.sources.get(rule.name, ())]
                    if rule.name in c.value_sources:
                        specs.append(split_spec(c.value_sources[rule.name]))
            keys = reads(specs)
            if keys is not None and not (keys | every_alert).intersection(BODIES):
                continue
            if not can_match(rule.condition):  # (asked only here: it costs ~0.1 ms a rule)
                continue
            if keys is None:
                return None
            managed = any(reads_managed(name, arg) for name, arg in specs + extra_specs)
            verbs, resources = required(rule.condition, VERB), required(rule.condition, RESOURCE)
            readers.append((verbs, resources, managed))
        return readers

    # -- evaluation ------------------------------------------------------------------------------

    def evaluate(
        self, event: Mapping[str, Any], context: EventContext = EMPTY_CONTEXT
    ) -> list[Alert]:
        """The alerts `event` raises (at most one with rule_matching 'first'). Never raises for
        any event content; an event without a valid `stageTimestamp` raises no alert (Falco's
        k8saudit plugin drops such events)."""
        self._counter.value += 1
        if "auditID" not in event:
            return self._evaluate_reference(event, context)
        hit = self._hits(event, context)
        if self._judging:
            return self._emitted(event, context, hit) if hit else _NO_ALERTS
        if self._first:
            if hit < 0:
                return _NO_ALERTS
            return self._alerts(event, context, (hit,))
        return self._alerts(event, context, hit) if hit else _NO_ALERTS

    def judge(
        self, event: Mapping[str, Any], context: EventContext = EMPTY_CONTEXT
    ) -> tuple[list[Alert], list[str]]:
        """`evaluate`, and the names of every rule a correlation counts that `event` matched,
        whatever `rule_matching` says (first-match decides which alert is emitted, not what
        correlations count). An event without a valid `stageTimestamp` raises no alert, and the
        correlator counts none of its matches (it reads the time once, when it buffers them)."""
        if not self._judging or "auditID" not in event:
            return self.evaluate(event, context), []
        self._counter.value += 1
        slots = self._hits(event, context)
        if not slots:
            return _NO_ALERTS, []
        counts = self._counts
        names = self._names
        matched = [names[s] for s in slots if counts[s]]
        return self._emitted(event, context, slots), matched

    def _hits(self, event: Mapping[str, Any], context: EventContext) -> Any:
        """The bucket function's answer for `event`: the first matching slot (-1: none) with
        first-match, every matching slot in order when matching all (or judging)."""
        # The four hot fields every bucket function takes (codegen.HOT_PATHS), read in place:
        # this runs for every event.
        verb = event.get("verb", _MISSING)
        if type(verb) is not str:
            verb = _key(verb)
        ref = event.get("objectRef")
        resource = ref.get("resource", _MISSING) if type(ref) is dict else _MISSING
        if type(resource) is not str:
            resource = _key(resource)
        stage = event.get("stage", _MISSING)
        if type(stage) is not str:
            stage = _key(stage)
        user = event.get("user")
        name = user.get("username", _MISSING) if type(user) is dict else _MISSING
        if type(name) is not str:
            name = _key(name)
        row = self._table.get(verb)
        if row is None:
            row = self._table_other
        bucket = row.get(resource)
        if bucket is None:
            bucket = row[OTHER]
        return bucket(event, context, verb, resource, stage, name)

    def _emitted(
        self, event: Mapping[str, Any], context: EventContext, slots: Sequence[int]
    ) -> list[Alert]:
        """The alerts of the emitting rules among `slots` (the first of them with first-match)."""
        emits = self._emits
        chosen = [s for s in slots if emits[s]]
        if not chosen:
            return _NO_ALERTS
        return self._alerts(event, context, chosen[:1] if self._first else chosen)

    def _alerts(
        self, event: Mapping[str, Any], context: EventContext, slots: Iterable[int]
    ) -> list[Alert]:
        time_ns = parse_rfc3339_ns(event.get("stageTimestamp"))
        if time_ns is None:
            return _NO_ALERTS
        factories = self._factories
        return [
            (factories[slot] or self._make_factory(slot)).make(event, context, time_ns)
            for slot in slots
        ]

    def _make_factory(self, slot: int) -> AlertFactory:
        """The alert factory of the rule in `slot`, made on its first alert."""
        extras = self._extra_specs
        if extras is None:
            extras = self._extra_specs = self._bind_extras()
        made = self._factories[slot] = factory(
            *appended(self._active[slot], self._falco_config, extras, self._env),
            self._hostname,
            self.time_format_iso8601,
            self._env,
        )
        return made

    def _bind_extras(self) -> list[FieldSpec]:
        configured = self._extra_fields
        names = DEFAULT_EXTRA_FIELDS if configured is None else tuple(configured)
        geoip = self._env.geoip
        located = geoip is not None and getattr(geoip, "enabled", False)
        return [
            extra_spec(name, self._env)
            for name in names
            if _known(name, configured)
            # Without a GeoIP database the location fields are always absent: skip their reads.
            and (located or configured is not None or name not in _LOCATION_FIELDS)
        ]

    def _evaluate_reference(self, event: Mapping[str, Any], context: EventContext) -> list[Alert]:
        slots = []
        for slot, rule in enumerate(self._active):
            if not self._emits[slot]:
                continue
            if self._reference.evaluate(rule.condition, event, context):
                slots.append(slot)
                if self._first:
                    break
        return self._alerts(event, context, slots) if slots else _NO_ALERTS

    def matches_reference(
        self, event: Mapping[str, Any], context: EventContext = EMPTY_CONTEXT
    ) -> list[str]:
        """Rule names matching `event` by the reference tree-walker (for differential tests)."""
        return [a.rule for a in self._evaluate_reference(event, context)]

    def why(
        self, name: str, event: Mapping[str, Any], context: EventContext = EMPTY_CONTEXT
    ) -> Why:
        """Why rule `name` did or did not raise an alert on `event` (`falconet explain --rule`):
        its condition traced by the reference evaluator, whether it takes part in matching, the
        earlier rule first-match gave the event to, and the alerts `evaluate` really raises.
        Raises ConfigError for an unknown rule name."""
        from falconet.rules.trace import trace_condition

        rule = self._by_name.get(name)
        if rule is None:
            raise ConfigError(f"no loaded rule is named '{name}' (see `falconet rules`)")
        matched, lines = trace_condition(rule.condition, self._reference, event, context)
        slot = self._names.index(name) if name in self._names else None
        if not rule.enabled:
            state = "disabled"
        elif slot is None:
            state = f"not loaded: less severe than min_priority {self.min_priority}"
        elif not self._emits[slot]:
            state = "silenced: it raises no alerts of its own (a correlation counts it)"
        else:
            state = "active"
        taken_by = None
        if matched and self._first and slot is not None:
            for s, other in enumerate(self._active[:slot]):
                if self._emits[s] and self._reference.evaluate(other.condition, event, context):
                    taken_by = other.name
                    break
        timed = parse_rfc3339_ns(event.get("stageTimestamp")) is not None
        alerts = tuple(a.rule for a in self.evaluate(event, context))
        return Why(
            rule.name, rule.defined_at, matched, tuple(lines), state, taken_by, timed, alerts
        )

    def field_getter(self, spec: str) -> Callable[[Mapping[str, Any], EventContext], Any]:
        """How a correlation reads a field (`spec` with its argument, checked at load): the
        registry's getter bound to this engine's GeoIP database; ka.* fields read the event."""
        return extra_spec(spec, self._env).getter

    # -- introspection ---------------------------------------------------------------------------

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(str(d) for d in self.diagnostics if d.severity == "warning")

    def explain(self) -> str:
        """The generated code of the bucket functions, with the rule names beside their code and
        the events each bucket serves (for debugging: the names are notes, never compiled)."""
        return self._index.listing.render()

    def index_stats(self) -> dict[str, int]:
        """Rules per distinct bucket (min/max), buckets, wildcard rules, and whether the compiled
        code came from the code cache (1) or was compiled (0)."""
        return {
            **self._bucket_stats(),
            "code_cache_hit": int(self._index.cache_hit),
            "index_cache_hit": int(self._index.index_cached),
        }

    def _bucket_stats(self) -> dict[str, int]:
        """Rules per distinct bucket (min/max), the number of buckets and of wildcard rules."""
        sizes = self._index.sizes or [0]
        return {
            "buckets": len(self._index.sizes),
            "min_rules": min(sizes),
            "max_rules": max(sizes),
            "wildcard_rules": self._index.wildcard,
            "active_rules": len(self._active),
        }


@dataclass(frozen=True, slots=True)
class Why:
    """What `Engine.why` found: did the rule match, does it take part, who took the event."""

    rule: str
    defined_at: Any  # rules.model.Position
    matched: bool  # its condition, by the reference evaluator
    trace: tuple[str, ...]  # the condition tree, one part per line with its value
    state: str  # "active", or why the rule raises no alert whatever the event
    taken_by: str | None  # first-match: the earlier rule that matched the event first
    timed: bool  # the event has a valid stageTimestamp (else no rule alerts on it)
    alerts: tuple[str, ...]  # the rules whose alerts `evaluate` raises for the event

    @property
    def fired(self) -> bool:
        return self.rule in self.alerts

    def verdict(self) -> str:
        if self.fired:
            return f"fired: rule '{self.rule}' raised an alert"
        if not self.matched:
            return "did not fire: its condition is false (see the false parts above)"
        if self.state != "active":
            return f"did not fire: its condition is true, but the rule is {self.state}"
        if self.taken_by is not None:
            return (
                f"did not fire: its condition is true, but under rule_matching 'first' the "
                f"earlier rule '{self.taken_by}' took the event (see `falconet validate` and "
                "docs/rules.md, 'Your own rules and first-match')"
            )
        if not self.timed:
            return "did not fire: the event has no valid stageTimestamp (Falco drops such events)"
        return "did not fire"


def load_documents(
    ruleset: RuleSet, rules: Sequence[Rule]
) -> tuple[CorrelationSet, tuple[Policy, ...]]:
    """The correlations and suppression policies of the rules paths' mapping documents, checked
    against the loaded `rules`; their problems join `ruleset.diagnostics`."""
    correlations, problems = load_correlations(ruleset.documents, [r.name for r in rules])
    ruleset.diagnostics.extend(problems)
    policies, problems = load_policies(
        ruleset.documents,
        [r.name for r in rules] + [c.title for c in correlations.correlations],
    )
    ruleset.diagnostics.extend(problems)
    return correlations, policies


def _host_name() -> str:
    """This host's name, as `socket.gethostname()` gives it: on POSIX that is the kernel's node
    name, read without importing socket (~2-5 ms of a cold start)."""
    import os

    uname = getattr(os, "uname", None)
    if uname is not None:
        return str(uname().nodename)
    import socket

    return socket.gethostname()


def _known(name: str, configured: Sequence[str] | None) -> bool:
    if fields.lookup(name.split("[", 1)[0]) is not None:
        return True
    if configured is not None:
        raise ConfigError(f"unknown extra field '{name}' (see `falconet fields`)")
    return False  # a default extension field whose provider is not installed


def _raise_first(ruleset: RuleSet) -> None:
    problems = ruleset.errors
    if not problems:
        return
    first = problems[0]
    if len(problems) > 1:
        first.args = (
            f"{first.render()}\n({len(problems) - 1} more error(s); run "
            "`falconet validate` to list them all)",
        )
    raise first


__all__ = ["DEFAULT_EXTRA_FIELDS", "Alert", "Engine", "RuleError", "RuleInfo", "Why"]
