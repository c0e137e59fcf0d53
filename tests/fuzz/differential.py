"""A seeded, grammar-based generator of rules and audit events, and the differential check that
falconet's compiled engine and its reference evaluator agree on them.

    disagreements, compared = check(seed=7)

Each seed gives one rules file (well-typed rules built from the rule language's grammar: checks
of scalar, list and numeric fields with every operator, the `oneof`/`anyof`/`allof` modifiers,
`len`/`join`/`concat`/`tolower`... transformers, `val()` comparisons, `exists`, nested
`and`/`or`/`not`, macros, lists and exceptions) and a batch of events drawn from the same small
vocabulary (so conditions match often), with the odd values decoders let through (numbers,
nulls, objects where strings are expected, unicode, missing keys). Both engines (rule matching
`first` and `all`) evaluate every event; every (rule, event) pair is compared, and each
disagreement is reported with the seed, the rule's condition and the event.

The generator is deterministic: the same seed gives the same rules and events, on any machine,
so a failing seed is a reproducible bug report. `tests/fuzz/test_differential.py` runs a few
seeds on each `make test`; `tools/differential.py` runs as many as you give it time for.
"""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path
from typing import Any

from falconet import Engine
from falconet.rules.lexer import LIST_OPS, MODIFIERS, STR_OPS
from falconet.rules.lexer import MODIFIER_OPS as LEXER_MODIFIER_OPS

# -- the vocabulary: literals in conditions are drawn from the values events hold ---------------

VERBS = ("get", "list", "create", "update", "patch", "delete", "watch", "Create", "")
RESOURCES = ("pods", "secrets", "configmaps", "deployments", "clusterrolebindings", "pods/exec")
NAMESPACES = ("default", "kube-system", "prod", "Prod", "")
NAMES = ("p", "web-1", "admin", "x y", "é", "a*b", "")
USERS = ("admin-x", "alice", "system:serviceaccount:kube-system:x", "ADMIN", "root", "", "é\u202e")
GROUPS = ("system:authenticated", "system:masters", "devs", "Devs", "system:serviceaccounts")
IMAGES = ("nginx:1.27", "busybox", "localhost:5000/app:1", "docker.io/library/nginx", "")
AGENTS = ("kubectl/v1.31.0", "curl/8.0", "Mozilla/5.0", "nmap", "")
URIS = (
    "/api/v1/namespaces/default/pods",
    "/api/v1/namespaces/prod/pods/web-1/exec?command=sh&command=-c&tty=true",
    "/api/v1/pods?watch=true&x=1",
    "/apis/apps/v1/deployments?x=%zz",
    "/",
)
CODES = (200, 201, 403, 404, "200", None)
ODD = (None, True, 3, 2.5, [], {}, {"a": 1}, ["x"], "null", "true")
WORDS = tuple(
    sorted(
        {
            *VERBS,
            *RESOURCES,
            *NAMESPACES,
            *NAMES,
            *USERS,
            *GROUPS,
            *IMAGES,
            *AGENTS,
            "sys",
            "adm",
            "-x",
            "nginx",
            "system:",
            "kube",
            "1",
            "exec",
        }
    )
)

# (field, kind): kind "s" a string scalar, "l" a list, "n" a number; the arguments they take.
SCALARS = (
    "ka.verb",
    "ka.target.resource",
    "ka.target.namespace",
    "ka.target.name",
    "ka.target.subresource",
    "ka.user.name",
    "ka.impuser.name",
    "ka.useragent",
    "ka.uri",
    "ka.response.code",
    "ka.auth.decision",
    "jevt.value[/verb]",
    "jevt.value[/user/username]",
    "jevt.value[/objectRef/namespace]",
    "jevt.value[/user/groups/0]",
    "ka.uri.param[watch]",
    "ka.uri.param[command]",
    "ka.req.pod.host_network",
    "ka.req.container.image",
    "ka.req.container.privileged",
    "evt.source",
)
LISTS = (
    "ka.user.groups",
    "ka.req.pod.containers.image",
    "ka.req.pod.containers.image[0]",
    "ka.req.pod.containers.name",
    "ka.req.pod.containers.privileged",
    "ka.req.pod.containers.host_port",
    "ka.req.pod.volumes.hostpath",
)
NUMBERS = ("evt.rawtime", "evt.rawtime.s", "evt.rawtime.ns", "evt.num")
# The operators a string operand takes (bcontains/bstartswith are refused on strings); the list
# modifiers on those whose values are words (regex values are drawn separately).
STRING_OPS = tuple(op for op in (*STR_OPS, *LIST_OPS) if op not in ("bcontains", "bstartswith"))
MODIFIER_OPS = tuple(sorted(op for op in LEXER_MODIFIER_OPS - {"regex"} if not op.startswith("b")))
NUMBER_OPS = ("=", "!=", "<", "<=", ">", ">=", "in")
STRING_TRANSFORMERS = ("tolower", "toupper", "basename", "b64")
GLOBS = ("*", "a*", "*x", "*admin*", "[a-c]*", "?dmin*", "*/exec*", "[[:upper:]]*", "[!a]*")
REGEXES = ("a.*", ".*x", "[a-z]+", "(get|list)", ".*:.*", "ADMIN|root", "")


def quote(text: str) -> str:
    """A literal as condition text: bare when the parser reads it back unchanged."""
    if text and all(c.isalnum() or c in "._-:/*?@" for c in text) and text not in KEYWORDS:
        return text
    return quoted(text)


KEYWORDS = {"and", "or", "not", "oneof", "anyof", "allof"}


def quoted(text: str) -> str:
    """A literal as a quoted string (what a transformer argument must be)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Generator:
    """Rules and events from one seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    # -- conditions ---------------------------------------------------------------------------

    def word(self) -> str:
        word = self.rng.choice(WORDS)
        roll = self.rng.random()
        if roll < 0.1:
            return word.upper()
        if roll < 0.2 and len(word) > 2:
            return word[: len(word) // 2]
        return word

    def value(self, op: str) -> str:
        base = op.split()[0]
        if base in ("glob", "iglob"):
            return quote(self.rng.choice(GLOBS))
        if base == "regex":
            return quote(self.rng.choice(REGEXES))
        if base == "pmatch":
            return quote(self.rng.choice(("/api", "/api/v1/*", "/apis")))
        return quote(self.word())

    def values(self, op: str, most: int = 4) -> str:
        count = self.rng.randint(0, most)
        return "(" + ", ".join(self.value(op) for _ in range(count)) + ")"

    def string_operand(self) -> str:
        roll = self.rng.random()
        field = self.rng.choice(SCALARS)
        if roll < 0.6:
            return field
        if roll < 0.8:
            return f"{self.rng.choice(STRING_TRANSFORMERS)}({field})"
        if roll < 0.9:
            return f"concat({field}, {quoted(self.word())}, {self.rng.choice(SCALARS)})"
        return f'join("{self.rng.choice((",", "-", ""))}", {self.join_list()})'

    def list_operand(self) -> str:
        roll = self.rng.random()
        field = self.rng.choice(LISTS)
        if roll < 0.8:
            return field
        return f"{self.rng.choice(('tolower', 'toupper'))}({field})"

    def join_list(self) -> str:
        """join's second argument: a list operand, or a `(...)` list of values and fields."""
        if self.rng.random() < 0.5:
            return self.list_operand()
        items = [self.rng.choice((*SCALARS, '"x"', "1")) for _ in range(self.rng.randint(0, 2))]
        items.insert(self.rng.randint(0, len(items)), self.rng.choice(SCALARS))  # a field: read
        return "(" + ", ".join(items) + ")"

    def number_operand(self) -> str:
        roll = self.rng.random()
        if roll < 0.4:
            return self.rng.choice(NUMBERS)
        if roll < 0.7:
            return f"len({self.rng.choice(LISTS)})"
        return f"len({self.string_operand()})"

    def number(self, operand: str) -> str:
        if operand.startswith("len("):
            return str(self.rng.randint(0, 12))
        if operand == "evt.num":
            return str(self.rng.randint(0, 40))
        if operand == "evt.rawtime.ns":
            return self.rng.choice(("0", "100000000", "123456000", "0x0"))
        if operand == "evt.rawtime.s":
            return self.rng.choice(("1773243902", "1773243900", "0"))
        return self.rng.choice(("1773243902100000000", "1773243900000000000", "0", "-1"))

    def check(self) -> str:
        kind = self.rng.random()
        if kind < 0.55:
            operand = self.string_operand()
            if self.rng.random() < 0.08:
                return f"{operand} exists"
            if self.rng.random() < 0.2:
                op = f"{self.rng.choice(MODIFIER_OPS)} {self.rng.choice(MODIFIERS)}"
                return f"{operand} {op} {self.values(op)}"
            op = self.rng.choice(STRING_OPS)
            if op in ("in", "intersects", "pmatch"):
                return f"{operand} {op} {self.values(op)}"
            if op not in ("regex", "pmatch") and self.rng.random() < 0.07:
                return f"{operand} {op} val({self.rng.choice(SCALARS)})"
            return f"{operand} {op} {self.value(op)}"
        if kind < 0.8:
            operand = self.list_operand()
            if self.rng.random() < 0.15:
                return f"{operand} exists"
            return f"{operand} {self.rng.choice(('in', 'intersects'))} {self.values('in')}"
        operand = self.number_operand()
        if self.rng.random() < 0.1:
            return f"{operand} exists"
        op = self.rng.choice(NUMBER_OPS)
        if op == "in":
            count = self.rng.randint(1, 3)
            return f"{operand} in (" + ", ".join(self.number(operand) for _ in range(count)) + ")"
        return f"{operand} {op} {self.number(operand)}"

    def condition(self, depth: int = 0, macros: tuple[str, ...] = ()) -> str:
        roll = self.rng.random()
        if depth < 4 and roll < 0.25:
            terms = [self.condition(depth + 1, macros) for _ in range(self.rng.randint(2, 3))]
            return "(" + " and ".join(terms) + ")"
        if depth < 4 and roll < 0.45:
            terms = [self.condition(depth + 1, macros) for _ in range(self.rng.randint(2, 4))]
            return "(" + " or ".join(terms) + ")"
        if depth < 4 and roll < 0.55:
            return f"not {self.condition(depth + 1, macros)}"
        if macros and roll < 0.62:
            return self.rng.choice(macros)
        if roll < 0.66:
            return f"ka.verb in (gen_verbs) and {self.check()}"
        return self.check()

    # -- rules files --------------------------------------------------------------------------

    def plain(self) -> str:
        """An exception value: a word YAML and the condition text both read as it is."""
        while True:
            word = self.word()
            if word and all(c.isalnum() or c in "-_." for c in word):
                return word

    def exception(self, n: int) -> str:
        if self.rng.random() < 0.5:
            field = self.rng.choice((*SCALARS[:10], "toupper(ka.user.name)", "tolower(ka.verb)"))
            op = self.rng.choice(("in", "pmatch", "startswith anyof", "= oneof", "!= allof"))
            values = ", ".join(self.plain() for _ in range(self.rng.randint(1, 3)))
            return (
                f"  - name: e{n}\n    fields: {field}\n    comps: {json.dumps(op)}\n"
                f"    values: [{values}]\n"
            )
        fields = self.rng.sample(SCALARS[:10], 2)
        comps = [self.rng.choice(("=", "!=", "startswith", "contains")), "in"]
        rows = [
            f"[{self.plain()}, [{self.plain()}, {self.plain()}]]"
            for _ in range(self.rng.randint(1, 2))
        ]
        return (
            f"  - name: e{n}\n    fields: [{', '.join(fields)}]\n"
            f"    comps: {json.dumps(comps)}\n    values: [{', '.join(rows)}]\n"
        )

    def rules(self, count: int) -> str:
        out = ["- list: gen_verbs\n  items: [get, create, delete, list]\n"]
        macros = []
        for n in range(3):
            name = f"gen_macro_{n}"
            text = self.condition(2, tuple(macros)).replace("'", "''")
            out.append(f"- macro: {name}\n  condition: '{text}'\n")
            macros.append(name)
        for n in range(count):
            text = self.condition(0, tuple(macros)).replace("'", "''")
            item = (
                f"- rule: R{n}\n  desc: generated\n  condition: '{text}'\n"
                f"  output: 'r{n} %ka.user.name %len(ka.user.groups) %evt.num'\n"
                f"  priority: {self.rng.choice(('WARNING', 'NOTICE', 'INFO'))}\n"
                "  source: k8s_audit\n"
            )
            if self.rng.random() < 0.2:
                item += "  exceptions:\n" + self.exception(n)
            out.append(item)
        return "\n".join(out)

    # -- events -------------------------------------------------------------------------------

    def maybe(self, values: tuple[Any, ...], odd: float = 0.05) -> Any:
        return self.rng.choice(ODD) if self.rng.random() < odd else self.rng.choice(values)

    def event(self) -> dict[str, Any]:
        rng = self.rng
        resource = self.maybe(RESOURCES)
        ref: dict[str, Any] = {"resource": resource, "namespace": self.maybe(NAMESPACES)}
        if rng.random() < 0.7:
            ref["name"] = self.maybe(NAMES)
        if rng.random() < 0.2:
            ref["subresource"] = rng.choice(("exec", "status", "log"))
        user: dict[str, Any] = {"username": self.maybe(USERS)}
        if rng.random() < 0.9:
            user["groups"] = [self.maybe(GROUPS, 0.1) for _ in range(rng.randint(0, 3))]
        event: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "auditID": f"{rng.getrandbits(64):016x}",
            "stage": rng.choice(("ResponseComplete", "ResponseStarted")),
            "verb": self.maybe(VERBS),
            "user": user,
            "objectRef": ref,
            "requestURI": self.maybe(URIS),
            "userAgent": self.maybe(AGENTS),
            "sourceIPs": ["203.0.113.9"],
            "responseStatus": {"code": rng.choice(CODES)},
            "annotations": {"authorization.k8s.io/decision": rng.choice(("allow", "forbid"))},
            "stageTimestamp": rng.choice(
                ("2026-03-11T15:45:02.100000Z", "2026-03-11T15:45:00.123456Z")
            ),
        }
        if rng.random() < 0.3:
            event["impersonatedUser"] = {"username": self.maybe(USERS)}
        if rng.random() < 0.5:
            event["requestObject"] = self.pod()
        for key in rng.sample(sorted(event), rng.randint(0, 2)):
            if key not in ("auditID", "stageTimestamp"):
                del event[key]
        return event

    def pod(self) -> dict[str, Any]:
        rng = self.rng
        containers = []
        for n in range(rng.randint(0, 3)):
            container: dict[str, Any] = {"name": f"c{n}", "image": self.maybe(IMAGES)}
            if rng.random() < 0.5:
                container["securityContext"] = {"privileged": rng.choice((True, False, "true"))}
            if rng.random() < 0.4:
                port = {"containerPort": 80, "hostPort": rng.choice((8080, 0, "1"))}
                container["ports"] = [port]
            containers.append(container)
        spec: dict[str, Any] = {"containers": containers}
        if rng.random() < 0.3:
            spec["hostNetwork"] = rng.choice((True, False))
        if rng.random() < 0.3:
            spec["volumes"] = [{"name": "v", "hostPath": {"path": rng.choice(("/", "/etc"))}}]
        return {"kind": "Pod", "spec": spec}


def check(seed: int, rules: int = 40, events: int = 40) -> tuple[list[str], int]:
    """Disagreements between the compiled engine and the reference evaluator on the rules and
    events of `seed`, in `first` and `all` matching, and how many (rule, event) pairs were
    compared."""
    gen = Generator(seed)
    text = gen.rules(rules)
    batch = [gen.event() for _ in range(events)]
    found: list[str] = []
    compared = 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"generated-{seed}.yaml"
        path.write_text(text)
        for matching in ("all", "first"):
            engine = Engine.from_paths(
                [path], rule_matching=matching, extra_fields=[], hostname="gen"
            )
            conditions = {r.name: r.condition_text for r in engine.active_rules()}
            for event in batch:
                fast = [a.rule for a in engine.evaluate(event)]  # counts evt.num first
                slow = engine.matches_reference(event)
                compared += len(conditions)
                if fast != slow:
                    differ = sorted(set(fast) ^ set(slow)) or ["(order)"]
                    found.append(
                        f"seed {seed} ({matching}): compiled {fast} != reference {slow}; "
                        f"rule {differ[0]}: {conditions.get(differ[0], '')!r}; "
                        f"event {json.dumps(event, ensure_ascii=False)}"
                    )
    return found, compared
