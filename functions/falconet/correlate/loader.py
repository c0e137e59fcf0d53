"""Reading correlation documents: Sigma's format checked against the Falco rules and the fields.

    correlations, diagnostics = load_correlations(ruleset.documents, rule_names)

Every problem is a located `RuleError` (file, line, column, the correlation's name), recorded as a
diagnostic as a rules file's are, so `falconet validate` lists them all; a correlation with an
error is left out of the set. References are resolved in dependency order (a correlation after
those it names), loops and over-deep chains refused. The format is in `model` and
docs/correlations.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

from falconet import errors as errs
from falconet.correlate.model import (
    DEFAULT_PRIORITY,
    LEVELS,
    MAX_CHAIN,
    MAX_CORRELATIONS,
    MAX_GROUP_BY,
    MAX_HISTORY_S,
    MAX_RULES,
    MAX_THRESHOLD,
    MAX_TIMESPAN_S,
    OPERATORS,
    TYPES,
    WINDOWED,
    Condition,
    Correlation,
    CorrelationSet,
    parse_timespan,
)
from falconet.rules.diagnostics import Diagnostic, located
from falconet.rules.documents import MAPPING, SCALAR, SEQUENCE, Doc
from falconet.rules.model import Position
from falconet.rules.output import field_problem

_KNOWN_TOP = {
    "title",
    "id",
    "name",
    "status",
    "description",
    "author",
    "references",
    "date",
    "modified",
    "correlation",
    "falsepositives",
    "level",
    "tags",
    "generate",
    "taxonomy",
    "license",
    "related",
    "fields",
}
_KNOWN_CORRELATION = {
    "type",
    "rules",
    "group-by",
    "timespan",
    "condition",
    "aliases",
    "generate",
    "learning",
}


def load_correlations(
    documents: Sequence[Doc], rule_names: Iterable[str]
) -> tuple[CorrelationSet, list[Diagnostic]]:
    """Check every correlation document against the loaded Falco rules (`rule_names`, enabled or
    not) and the field registry; problems are located diagnostics (the correlations with errors
    are left out of the set)."""
    reader = _Reader(set(rule_names))
    for doc in documents:
        if doc.kind == MAPPING and "suppress" in doc.value:
            continue  # a suppression policy (falconet.suppress.policy reads it)
        try:
            reader.read(doc)
        except errs.RuleError as exc:
            reader.diagnostics.append(Diagnostic(exc))
    return reader.finish()


class _Draft:
    """A correlation document read, before references are resolved."""

    def __init__(self, doc: Doc, parts: dict[str, Doc], body: dict[str, Doc]) -> None:
        self.doc = doc
        self.parts = parts
        self.body = body
        self.title = ""
        self.name: str | None = None
        self.id: str | None = None
        self.type = ""
        self.rules: list[tuple[str, Doc]] = []


class _Reader:
    def __init__(self, rule_names: set[str]) -> None:
        self.rule_names = rule_names
        self.diagnostics: list[Diagnostic] = []
        self.drafts: list[_Draft] = []
        self.labels: dict[str, _Draft] = {}  # name and id -> draft

    def error(self, message: str, doc: Doc | None, draft: _Draft | None = None) -> errs.RuleError:
        return located(
            message,
            doc.position if doc else None,
            kind="correlation",
            item=(draft.name or draft.title or None) if draft else None,
        )

    def warn(
        self, message: str, position: Position | None, item: str | None, kind: str = "correlation"
    ) -> None:
        self.diagnostics.append(
            Diagnostic(located(message, position, kind=kind, item=item), "warning")
        )

    # -- reading one document ------------------------------------------------------------------

    def read(self, doc: Doc) -> None:
        if len(self.drafts) >= MAX_CORRELATIONS:
            raise located(
                f"more than {MAX_CORRELATIONS} correlations",
                doc.position,
                cls=errs.RuleLimitError,
            )
        parts = doc.mapping("a correlation document")
        if "title" not in parts and "correlation" not in parts:
            raise self.error(
                "neither Falco rules (a sequence of items) nor a correlation (a mapping with "
                "`title` and `correlation`)",
                doc,
            )
        title_doc = parts.get("title")
        if title_doc is None or not title_doc.scalar("title").strip():
            raise self.error("a correlation needs a `title`", title_doc or doc)
        body_doc = parts.get("correlation")
        if body_doc is None:
            if "detection" in parts or "logsource" in parts:
                raise self.error(
                    "this is a Sigma detection rule; falconet's base rules are Falco rules: "
                    "write the detection as a Falco rule and name it in the correlation's `rules`",
                    doc,
                )
            raise self.error("a correlation document needs a `correlation` section", doc)
        draft = _Draft(doc, parts, body_doc.mapping("`correlation`"))
        draft.title = title_doc.scalar("title").strip()
        self.identify(draft)
        self.read_type(draft, body_doc)
        self.read_rules(draft, body_doc)
        for label, where in ((draft.name, parts.get("name")), (draft.id, parts.get("id"))):
            if label is None:
                continue
            if label in self.labels:
                other = self.labels[label]
                raise self.error(
                    f"two correlations are called '{label}' (the other at "
                    f"{_where(other.doc.position)})",
                    where,
                    draft,
                )
            self.labels[label] = draft
        self.drafts.append(draft)

    def identify(self, draft: _Draft) -> None:
        """`name` and `id`, and unknown keys (ignored at the top, refused in `correlation`)."""
        parts = draft.parts
        for key in ("name", "id"):
            if key in parts and not parts[key].is_null():
                value = parts[key].scalar(key).strip()
                if not value:
                    raise self.error(f"`{key}` is empty", parts[key], draft)
                setattr(draft, key, value)
        for key, node in parts.items():
            if key not in _KNOWN_TOP:
                self.warn(f"unknown key '{key}' (ignored)", node.position, draft.title)
        for key, node in draft.body.items():
            if key not in _KNOWN_CORRELATION:
                raise self.error(f"unknown key '{key}' in `correlation`", node, draft)

    def read_type(self, draft: _Draft, body_doc: Doc) -> None:
        type_doc = draft.body.get("type")
        if type_doc is None:
            raise self.error(f"`correlation` needs a `type` ({', '.join(TYPES)})", body_doc, draft)
        draft.type = type_doc.scalar("type").strip()
        if draft.type not in TYPES:
            raise self.error(
                f"unknown correlation type '{draft.type}' (one of {', '.join(TYPES)})",
                type_doc,
                draft,
            )

    def read_rules(self, draft: _Draft, body_doc: Doc) -> None:
        rules_doc = draft.body.get("rules")
        if rules_doc is None:
            raise self.error(
                "`correlation` needs `rules`: the rules it correlates", body_doc, draft
            )
        rules = rules_doc.sequence("`rules`") if rules_doc.kind == SEQUENCE else [rules_doc]
        if not rules:
            raise self.error("`rules` is empty", rules_doc, draft)
        if len(rules) > MAX_RULES:
            raise located(
                f"`rules` names more than {MAX_RULES} rules",
                rules_doc.position,
                cls=errs.RuleLimitError,
            )
        for item in rules:
            name = item.scalar("a rule name").strip()
            if not name:
                raise self.error("empty rule name in `rules`", item, draft)
            if any(name == seen for seen, _ in draft.rules):
                raise self.error(f"'{name}' is named twice in `rules`", item, draft)
            draft.rules.append((name, item))

    # -- resolving references and checking fields --------------------------------------------

    def finish(self) -> tuple[CorrelationSet, list[Diagnostic]]:
        self.built: dict[int, Correlation | None] = {}
        self.order: list[Correlation] = []
        for draft in self.drafts:
            self.build(draft, ())
        return self.summarize(self.order), self.diagnostics

    def build(self, draft: _Draft, path: tuple[int, ...]) -> Correlation | None:
        """The correlation of `draft`, after those it names (None, with the problem recorded,
        when it or one of them has an error)."""
        key = id(draft)
        if key in self.built:
            return self.built[key]
        self.built[key] = None  # a loop back here reads None, and is reported below
        try:
            inner = self.resolve(draft, path + (key,))
            correlation = None if inner is None else self.check(draft, inner)
        except errs.RuleError as exc:
            self.diagnostics.append(Diagnostic(exc))
            return None
        if correlation is not None:
            self.built[key] = correlation
            self.order.append(correlation)
        return correlation

    def resolve(self, draft: _Draft, path: tuple[int, ...]) -> dict[str, Correlation] | None:
        """The correlations `draft` names, built; None when one of them has an error."""
        if len(path) > MAX_CHAIN:
            raise self.limit(f"correlations chained more than {MAX_CHAIN} deep", draft.doc, draft)
        inner: dict[str, Correlation] = {}
        for name, item in draft.rules:
            if name in self.labels and name in self.rule_names:
                raise self.error(
                    f"'{name}' is both a Falco rule and a correlation: rename one", item, draft
                )
            if name in self.labels:
                target = self.labels[name]
                if id(target) in path:
                    raise self.error(
                        f"correlations name each other in a loop, through '{name}'", item, draft
                    )
                built = self.build(target, path)
                if built is None:
                    return None
                inner[name] = built
            elif name not in self.rule_names:
                raise self.error(
                    f"'{name}' is neither a loaded Falco rule nor a correlation's name or id",
                    item,
                    draft,
                )
        return inner

    def summarize(self, order: list[Correlation]) -> CorrelationSet:
        """What the engine needs: the rules counted, the rules and correlations silenced (and a
        warning naming each silenced rule, for `falconet validate`)."""
        counted: set[str] = set()
        silenced: set[str] = set()
        quiet: set[str] = set()
        for correlation in order:
            for name in correlation.rules:
                target = self.labels.get(name)
                if target is None:
                    counted.add(name)
                if not correlation.generate:
                    (silenced if target is None else quiet).add(
                        name if target is None else target.name or target.title
                    )
        for name in sorted(silenced):
            by = [c for c in order if name in c.rules and not c.generate]
            self.warn(
                "raises no alerts of its own: "
                + (
                    f"correlation {by[0].label!r} counts it"
                    if len(by) == 1
                    else f"correlations {', '.join(repr(c.label) for c in by)} count it"
                )
                + " (`generate: true` keeps them)",
                by[0].position,
                name,
                "rule",
            )
        return CorrelationSet(
            tuple(order), frozenset(counted), frozenset(silenced), frozenset(quiet)
        )

    def check(self, draft: _Draft, inner: Mapping[str, Correlation]) -> Correlation:
        """The correlation `draft` describes, every part checked (`inner`: the correlations it
        names, already built)."""
        timespan = self.timespan(draft)
        learning = self.learning(draft)
        aliases = self.aliases(draft)
        group_by, sources = self.groups(draft, aliases, inner)
        bounds, value_field = self.condition(draft)
        value_sources: dict[str, str] = {}
        if value_field is not None:
            for rule, _ in draft.rules:
                source = aliases[value_field][rule] if value_field in aliases else value_field
                self.check_field(source, rule, inner, draft.body.get("condition"), draft)
                value_sources[rule] = source
        rules = tuple(name for name, _ in draft.rules)
        digest = hashlib.sha256(
            repr(
                (
                    draft.id or draft.name or draft.title,
                    draft.type,
                    rules,
                    tuple(sorted(sources.items())),
                    timespan,
                    tuple(sorted(value_sources.items())),
                    learning,
                )
            ).encode()
        ).hexdigest()[:20]
        priority, generate, tags, description = self.meta(draft)
        return Correlation(
            title=draft.title,
            type=draft.type,
            rules=rules,
            group_by=group_by,
            sources=sources,
            timespan=timespan,
            condition=Condition(bounds),
            value_field=value_field,
            value_sources=value_sources,
            name=draft.name,
            id=draft.id,
            priority=priority,
            generate=generate,
            tags=tags,
            description=description,
            learning=learning,
            position=draft.doc.position,
            key=digest,
        )

    def limit(self, message: str, doc: Doc | None, draft: _Draft) -> errs.RuleError:
        return located(
            message,
            doc.position if doc else None,
            cls=errs.RuleLimitError,
            kind="correlation",
            item=draft.name or draft.title,
        )

    def timespan(self, draft: _Draft) -> int:
        span_doc = draft.body.get("timespan")
        if span_doc is None:
            raise self.error("`correlation` needs a `timespan` (e.g. 10m)", draft.doc, draft)
        timespan = parse_timespan(span_doc.scalar("timespan"))
        if timespan is None or timespan <= 0:
            raise self.error(
                "timespan must be a number and a unit: 30s, 10m, 2h, 7d", span_doc, draft
            )
        limit = MAX_TIMESPAN_S if draft.type in WINDOWED else MAX_HISTORY_S
        if timespan > limit:
            raise self.limit(f"timespan is longer than {limit // 86400} days", span_doc, draft)
        return timespan

    def learning(self, draft: _Draft) -> int:
        doc = draft.body.get("learning")
        if doc is None:
            return 0
        if draft.type != "first_seen":
            raise self.error("`learning` is for first_seen only", doc, draft)
        value = parse_timespan(doc.scalar("learning"))
        if value is None or value > MAX_HISTORY_S:
            raise self.error("learning must be a timespan of at most 400 days, e.g. 7d", doc, draft)
        return value

    def aliases(self, draft: _Draft) -> dict[str, dict[str, str]]:
        """alias -> {rule: field}: every rule in `rules` must have its field."""
        doc = draft.body.get("aliases")
        if doc is None or doc.is_null():
            return {}
        names = dict(draft.rules)
        aliases: dict[str, dict[str, str]] = {}
        for alias, per_rule in doc.mapping("`aliases`").items():
            entry: dict[str, str] = {}
            for rule, source in per_rule.mapping(f"alias '{alias}'").items():
                if rule not in names:
                    raise self.error(
                        f"alias '{alias}' names '{rule}', which is not in `rules`", source, draft
                    )
                entry[rule] = source.scalar(f"alias '{alias}'").strip()
            missing = [r for r, _ in draft.rules if r not in entry]
            if missing:
                raise self.error(
                    f"alias '{alias}' gives no field for {', '.join(map(repr, missing))}",
                    per_rule,
                    draft,
                )
            aliases[alias] = entry
        return aliases

    def groups(
        self,
        draft: _Draft,
        aliases: Mapping[str, Mapping[str, str]],
        inner: Mapping[str, Correlation],
    ) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
        """`group-by` and, per rule, the field each group reads (aliases resolved, checked)."""
        doc = draft.body.get("group-by")
        items = [] if doc is None else doc.sequence("`group-by`") if doc.kind == SEQUENCE else []
        if doc is not None and doc.kind == SCALAR and not doc.is_null():
            items = [doc]
        if draft.type == "first_seen" and not items:
            raise self.error("first_seen needs `group-by`: the key it remembers", draft.doc, draft)
        if len(items) > MAX_GROUP_BY:
            raise self.limit(f"`group-by` has more than {MAX_GROUP_BY} fields", doc, draft)
        group_by: list[str] = []
        for item in items:
            group = item.scalar("a group-by field").strip()
            if group in group_by:
                raise self.error(f"'{group}' is twice in `group-by`", item, draft)
            group_by.append(group)
        sources: dict[str, tuple[str, ...]] = {}
        for rule, _ in draft.rules:
            row = []
            for group, where in zip(group_by, items, strict=True):
                source = aliases[group][rule] if group in aliases else group
                self.check_field(source, rule, inner, where, draft)
                row.append(source)
            sources[rule] = tuple(row)
        return tuple(group_by), sources

    def condition(self, draft: _Draft) -> tuple[tuple[tuple[str, int], ...], str | None]:
        """The condition's bounds (defaults for temporal and first_seen) and value_count's
        field."""
        doc = draft.body.get("condition")
        given = doc is not None and not doc.is_null()
        if given and draft.type == "first_seen":
            raise self.error("first_seen takes no `condition`", doc, draft)
        value_field = None
        bounds: list[tuple[str, int]] = []
        for op, value_doc in (
            doc.mapping("`condition`").items() if doc is not None and given else ()
        ):
            if op == "field":
                value_field = value_doc.scalar("field").strip()
            else:
                bounds.append((op, self.bound(op, value_doc, draft)))
        kind = draft.type
        if kind in ("event_count", "value_count") and not bounds:
            raise self.error(f"{kind} needs a `condition` (e.g. gte: 10)", doc or draft.doc, draft)
        if kind in ("temporal", "temporal_ordered"):
            bounds = bounds or [("gte", len(draft.rules))]
            if any(v > len(draft.rules) and op in ("gt", "gte", "eq") for op, v in bounds):
                raise self.error(
                    f"{kind} counts the rules that matched: at most {len(draft.rules)} here",
                    doc,
                    draft,
                )
        if kind == "first_seen":
            bounds = [("gte", 1)]
        if kind == "value_count" and not value_field:
            raise self.error(
                "value_count needs `field` in its condition: the field whose distinct values it "
                "counts",
                doc,
                draft,
            )
        if kind != "value_count" and value_field is not None:
            raise self.error("`field` is for value_count only", doc, draft)
        ops = [op for op, _ in bounds]
        if len(ops) != len(set(ops)) or ("eq" in ops and len(ops) > 1) or len(ops) > 2:
            raise self.error("a condition is one bound, or two for a range", doc, draft)
        return tuple(bounds), value_field

    def bound(self, op: str, doc: Doc, draft: _Draft) -> int:
        if op not in OPERATORS:
            raise self.error(
                f"unknown condition '{op}' (one of {', '.join(OPERATORS)}, and `field` for "
                "value_count)",
                doc,
                draft,
            )
        text = doc.scalar(op).strip()
        if not text.isascii() or not text.isdigit() or len(text) > 7:
            raise self.error(f"'{op}' needs a whole number, got '{text}'", doc, draft)
        number = int(text)
        if number > MAX_THRESHOLD:
            raise self.limit(
                f"condition value {number} is over the limit of {MAX_THRESHOLD}", doc, draft
            )
        return number

    def meta(self, draft: _Draft) -> tuple[str, bool, tuple[str, ...], str]:
        """Priority (from `level`), `generate`, tags and description."""
        parts, body = draft.parts, draft.body
        priority = DEFAULT_PRIORITY
        if "level" in parts and not parts["level"].is_null():
            level = parts["level"].scalar("level").strip().lower()
            if level not in LEVELS:
                raise self.error(
                    f"unknown level '{level}' (one of {', '.join(LEVELS)})", parts["level"], draft
                )
            priority = LEVELS[level]
        places = [d for d in (body.get("generate"), parts.get("generate")) if d is not None]
        if len(places) == 2:
            raise self.error("`generate` is given twice", places[1], draft)
        generate = places[0].boolean("generate") if places else False
        tags: tuple[str, ...] = ()
        if "tags" in parts and not parts["tags"].is_null():
            tags = tuple(
                sorted(t.scalar("a tag").strip() for t in parts["tags"].sequence("`tags`"))
            )
        description = parts["description"].scalar("description") if "description" in parts else ""
        return priority, generate, tags, description

    def check_field(
        self,
        source: str,
        rule: str,
        inner: Mapping[str, Correlation],
        where: Doc | None,
        draft: _Draft,
    ) -> None:
        """The field `source` must be readable in the matches of `rule`: a falconet field for a
        Falco rule, a group name of a correlation named in `rules`."""
        if rule in inner:
            target = inner[rule]
            if source not in target.group_by:
                raise self.error(
                    f"correlation '{rule}' carries only its group-by fields "
                    f"({', '.join(target.group_by) or 'none'}), not '{source}'",
                    where,
                    draft,
                )
            return
        problem = field_problem(source)
        if problem:
            raise self.error(f"{problem} (in the matches of '{rule}')", where, draft)


def _where(position: Position | None) -> str:
    return f"{position.file}:{position.line}" if position else "?"
