"""The fast engine (indexed, generated code) agrees with the reference tree-walker everywhere.

For the bundled rules and upstream's k8s_audit_rules.yaml, in `first` and `all` matching: every
event of the seeded benchmark corpus, every rule fixture and Falco trace, and hypothesis-generated
events built to hit the index edges (unknown verbs/resources, missing and non-string fields,
nulls, containers, bindings, subresources).
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import json
import marshal
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from falconet import Engine
from falconet.alerts import compile_filler
from falconet.context import EMPTY_CONTEXT, EventContext
from tests.conftest import BUNDLED_RULES, ROOT, SHARED

UPSTREAM = SHARED / "conformance/falco-plugins-k8saudit/v0.18.0/k8s_audit_rules.yaml"
TRACES = SHARED / "conformance/falco-legacy-tests/test/trace_files/k8s_audit"
RULESETS = {"bundled": [BUNDLED_RULES], "upstream": [UPSTREAM]}


def _corpus(count: int) -> list[dict[str, Any]]:
    spec = importlib.util.spec_from_file_location("bench_corpus", ROOT / "bench" / "corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(itertools.islice(module.events(seed=7), count))


def _fixtures() -> list[dict[str, Any]]:
    events = []
    for path in sorted((ROOT / "tests" / "data").rglob("*.json")):
        try:
            value = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(value, dict) and value.get("kind") == "Event":
            events.append(value)
    if TRACES.is_dir():
        for path in sorted(TRACES.glob("*.json")):
            for line in path.read_text().splitlines():
                value = json.loads(line) if line.strip() else None
                if isinstance(value, dict) and value.get("kind") == "Event":
                    events.append(value)
    return events


_ENGINES: dict[tuple[str, str], Engine] = {}


def engine(ruleset: str, matching: str) -> Engine:
    if ruleset == "upstream" and not UPSTREAM.is_file():
        pytest.skip("../shared (upstream rules) is not beside the repository")
    key = (ruleset, matching)
    if key not in _ENGINES:
        _ENGINES[key] = Engine.from_paths(RULESETS[ruleset], rule_matching=matching)
    return _ENGINES[key]


CASES = [(r, m) for r in RULESETS for m in ("first", "all")]
IDS = [f"{r}-{m}" for r, m in CASES]


@pytest.mark.parametrize(("ruleset", "matching"), CASES, ids=IDS)
def test_corpus_and_fixtures_agree(ruleset: str, matching: str) -> None:
    e = engine(ruleset, matching)
    fired = 0
    for event in [*_corpus(4000), *_fixtures()]:
        fast = [a.rule for a in e.evaluate(event)]
        assert fast == e.matches_reference(event), event.get("auditID")
        fired += bool(fast)
    assert fired > 20  # the comparison covers matching events, not only misses


@pytest.mark.parametrize("ruleset", list(RULESETS))
def test_generated_alert_fields_agree_with_getters(ruleset: str) -> None:
    """Every rule's generated alert code (fields read in place) gives the message and
    output_fields its field getters give, on the corpus and every fixture, with and without an
    envelope context."""
    e = engine(ruleset, "first")
    contexts = [EMPTY_CONTEXT, EventContext(cluster="prod", account="1234", origin="s3://b/k")]
    for event in [*_corpus(300), *_fixtures()]:
        if "auditID" not in event:
            continue
        for factory, ctx in itertools.product(_factories(e), contexts):
            assert_same_fields(factory, event, ctx)


_FILLERS: dict[int, Any] = {}


def _factories(e: Engine) -> list[Any]:
    """Every rule's alert factory (the engine makes each at its rule's first alert)."""
    return [e._factories[slot] or e._make_factory(slot) for slot in range(len(e._factories))]


def assert_same_fields(factory: Any, event: dict[str, Any], ctx: EventContext) -> None:
    fill = _FILLERS.get(id(factory))
    if fill is None:
        fill = _FILLERS[id(factory)] = compile_filler(
            factory.specs, factory.keys, factory.time_index, factory.template, factory.parts
        )
    expected = factory.getter_fields(event, ctx, 1_700_000_000_123_456_789, gate=False)
    got = fill(event, ctx, 1_700_000_000_123_456_789)
    assert got == expected, (factory.rule, event.get("auditID"))
    assert list(got[1]) == list(expected[1])  # same key order (sorted, as Falco prints)


_text = st.sampled_from(
    [
        "",
        "null",
        "pods",
        "kube-system",
        "system:anonymous",
        "admin",
        "exec",
        "cluster-admin",
        "default",
        "create",
        "get",
        "*",
        "secrets",
    ]
)
_scalar = st.one_of(_text, st.integers(-3, 300), st.booleans(), st.none())
_verbs = st.sampled_from(
    [
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
        "impersonate",
        "escalate",
        "bind",
        "approve",
        "connect",
        "proxy",
        "weird",
    ]
)
_resources = st.sampled_from(
    [
        "pods",
        "secrets",
        "configmaps",
        "namespaces",
        "clusterroles",
        "clusterrolebindings",
        "rolebindings",
        "roles",
        "services",
        "deployments",
        "daemonsets",
        "cronjobs",
        "serviceaccounts",
        "nodes",
        "mutatingwebhookconfigurations",
        "certificatesigningrequests",
        "events",
        "ingresses",
        "persistentvolumes",
        "leases",
        "unknown",
    ]
)
_users = st.sampled_from(
    [
        "system:anonymous",
        "alice@example.com",
        "kubernetes-admin",
        "system:serviceaccount:kube-system:replicaset-controller",
        "system:serviceaccount:default:default",
        "eks:node-manager",
        "system:node:ip-10-0-0-1",
        "system:kube-controller-manager",
        "admin",
    ]
)
_container = st.fixed_dictionaries(
    {
        "name": st.one_of(_text, st.just("c")),
        "image": st.sampled_from(
            ["nginx", "busybox:1", "localhost:5000/x:1", "falcosecurity/falco", "docker.io/alpine"]
        ),
    },
    optional={
        "securityContext": st.fixed_dictionaries(
            {},
            optional={
                "privileged": st.booleans(),
                "runAsUser": st.integers(0, 2),
                "allowPrivilegeEscalation": st.booleans(),
                "capabilities": st.fixed_dictionaries(
                    {
                        "add": st.lists(
                            st.sampled_from(["NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE", "CHOWN"]),
                            max_size=2,
                        )
                    }
                ),
            },
        ),
        "command": st.lists(st.sampled_from(["sh", "-c", "bash", "nc", "curl"]), max_size=3),
        "ports": st.lists(
            st.fixed_dictionaries(
                {"containerPort": st.integers(1, 9000)}, optional={"hostPort": st.integers(1, 9000)}
            ),
            max_size=2,
        ),
    },
)
_request_object = st.fixed_dictionaries(
    {},
    optional={
        "spec": st.fixed_dictionaries(
            {},
            optional={
                "containers": st.lists(_container, max_size=3),
                "initContainers": st.lists(_container, max_size=1),
                "ephemeralContainers": st.lists(_container, max_size=1),
                "hostNetwork": st.booleans(),
                "hostPID": st.booleans(),
                "hostIPC": st.booleans(),
                "type": st.sampled_from(["NodePort", "ClusterIP", "LoadBalancer"]),
                "volumes": st.lists(
                    st.fixed_dictionaries(
                        {
                            "name": _text,
                            "hostPath": st.fixed_dictionaries(
                                {
                                    "path": st.sampled_from(
                                        ["/", "/etc", "/var/run/docker.sock", "/proc", "/data"]
                                    )
                                }
                            ),
                        }
                    ),
                    max_size=2,
                ),
            },
        ),
        "roleRef": st.fixed_dictionaries(
            {
                "name": st.sampled_from(["cluster-admin", "admin", "view"]),
                "kind": st.just("ClusterRole"),
            }
        ),
        "subjects": st.lists(
            st.fixed_dictionaries(
                {
                    "kind": st.sampled_from(["User", "Group", "ServiceAccount"]),
                    "name": st.sampled_from(
                        [
                            "system:anonymous",
                            "system:unauthenticated",
                            "default",
                            "bob",
                            "system:authenticated",
                        ]
                    ),
                },
                optional={"namespace": st.sampled_from(["default", "kube-system"])},
            ),
            max_size=2,
        ),
        "rules": st.lists(
            st.fixed_dictionaries(
                {
                    "verbs": st.lists(
                        st.sampled_from(["*", "get", "create", "escalate", "bind"]), max_size=2
                    ),
                    "resources": st.lists(
                        st.sampled_from(["*", "pods", "pods/exec", "secrets"]), max_size=2
                    ),
                }
            ),
            max_size=2,
        ),
        "data": st.dictionaries(
            st.sampled_from(["password", "aws_access_key_id", "config"]), _text, max_size=2
        ),
    },
)


@st.composite
def audit_events(draw: st.DrawFn) -> dict[str, Any]:
    ref: dict[str, Any] = {"resource": draw(_resources)}
    for key, strat in (
        ("namespace", st.sampled_from(["default", "kube-system", "kube-public"])),
        ("name", _text),
        (
            "subresource",
            st.sampled_from(
                [
                    "exec",
                    "attach",
                    "portforward",
                    "proxy",
                    "ephemeralcontainers",
                    "approval",
                    "token",
                    "status",
                ]
            ),
        ),
    ):
        if draw(st.booleans()):
            ref[key] = draw(strat)
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "stage": draw(st.sampled_from(["ResponseComplete", "ResponseStarted", "RequestReceived"])),
        "verb": draw(st.one_of(_verbs, _scalar)),
        "user": {
            "username": draw(_users),
            "groups": draw(
                st.lists(
                    st.sampled_from(
                        [
                            "system:authenticated",
                            "system:masters",
                            "system:unauthenticated",
                            "system:serviceaccounts",
                        ]
                    ),
                    max_size=2,
                )
            ),
        },
        "objectRef": ref if draw(st.integers(0, 9)) else draw(st.one_of(st.none(), _text)),
        "responseStatus": {"code": draw(st.sampled_from([200, 201, 101, 403, 404, 500]))},
        "sourceIPs": [draw(st.sampled_from(["10.0.0.1", "81.2.69.160", "127.0.0.1", "::1"]))],
        "userAgent": draw(st.sampled_from(["kubectl/v1.30", "curl/8", "kubeletctl", "nmap"])),
        "requestURI": draw(
            st.sampled_from(
                [
                    "/api/v1/pods",
                    "/api/v1/namespaces/default/pods/x/exec?command=sh&command=-c&tty=true",
                    "/x?a=%zz",
                ]
            )
        ),
        "stageTimestamp": "2026-03-11T15:45:00.123456Z",
        "annotations": {
            "authorization.k8s.io/decision": draw(st.sampled_from(["allow", "forbid"])),
            "authorization.k8s.io/reason": draw(_text),
        },
    }
    if draw(st.integers(0, 9)):
        event["auditID"] = "00000000-0000-4000-8000-000000000000"
    if draw(st.booleans()):
        event["requestObject"] = draw(_request_object)
    if draw(st.booleans()):
        event["impersonatedUser"] = {"username": draw(_users)}
    for key in draw(st.lists(st.sampled_from(list(event)), max_size=2)):
        if key not in ("kind", "stageTimestamp"):
            event.pop(key, None)
    return event


@pytest.mark.parametrize(("ruleset", "matching"), CASES, ids=IDS)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=audit_events())
def test_random_events_agree(ruleset: str, matching: str, event: dict[str, Any]) -> None:
    e = engine(ruleset, matching)
    assert [a.rule for a in e.evaluate(event)] == e.matches_reference(event)


def test_code_cache_round_trip_and_corruption(tmp_path: Path) -> None:
    rules = [BUNDLED_RULES]
    first = Engine.from_paths(rules, code_cache=tmp_path)
    assert first.index_stats()["code_cache_hit"] == 0
    second = Engine.from_paths(rules, code_cache=tmp_path)
    assert second.index_stats()["index_cache_hit"] == 1
    (index,) = tmp_path.glob("index-*.marshal")
    index.write_bytes(b"\x00garbage")
    third = Engine.from_paths(rules, code_cache=tmp_path)  # built again, its code from the cache
    assert (third.index_stats()["index_cache_hit"], third.index_stats()["code_cache_hit"]) == (0, 1)
    (cached,) = tmp_path.glob("rules-*.marshal")
    cached.write_bytes(b"\x00garbage")
    index.unlink()
    fourth = Engine.from_paths(rules, code_cache=tmp_path)  # a bad file is recompiled, not trusted
    assert fourth.index_stats()["code_cache_hit"] == 0
    event = _fixtures()[0]
    for e in (second, third, fourth):
        assert [a.rule for a in e.evaluate(event)] == [a.rule for a in first.evaluate(event)]


@pytest.mark.parametrize("ruleset", list(RULESETS))
@pytest.mark.parametrize("matching", ["first", "all"])
def test_an_index_from_the_cache_raises_the_same_alerts(
    ruleset: str, matching: str, tmp_path: Path
) -> None:
    """The finished index read back from the cache (its objects made again from their recipes,
    its matchers compiled at first use) raises byte-identical alerts to a fresh build."""
    if ruleset == "upstream" and not UPSTREAM.is_file():
        pytest.skip("../shared (upstream rules) is not beside the repository")
    paths = RULESETS[ruleset]
    fresh = Engine.from_paths(paths, rule_matching=matching, hostname="h")
    Engine.from_paths(paths, rule_matching=matching, hostname="h", code_cache=tmp_path)
    cached = Engine.from_paths(paths, rule_matching=matching, hostname="h", code_cache=tmp_path)
    assert cached.index_stats()["index_cache_hit"] == 1
    events = [*_corpus(2000), *_fixtures()]
    raised = 0
    for event in events:
        got = [a.to_json() for a in cached.evaluate(event)]
        assert got == [a.to_json() for a in fresh.evaluate(event)]
        raised += len(got)
    assert raised > 20
    assert cached.explain() == fresh.explain()  # the listing `falconet explain` prints


SMALL_RULES = """
- rule: Secret read
  desc: d
  condition: ka.verb=get and ka.target.resource=secrets
  output: "%ka.user.name read %ka.target.name"
  priority: WARNING
  source: k8s_audit
- rule: Any read
  desc: d
  condition: ka.verb in (get, list)
  output: "%ka.user.name read"
  priority: INFO
  source: k8s_audit
"""


def test_the_index_cache_is_keyed_by_what_changes_the_index(tmp_path: Path) -> None:
    """Each matching mode and each set of active rules has its own index; the same load with
    other alert options (extra fields, host name) shares one, and changed rules miss."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(SMALL_RULES)
    cache = tmp_path / "cache"
    Engine.from_paths([rules], code_cache=cache)
    assert len(list(cache.glob("index-*.marshal"))) == 1
    e = Engine.from_paths([rules], code_cache=cache, hostname="x", extra_fields=[])
    assert e.index_stats()["index_cache_hit"] == 1
    for options in ({"rule_matching": "all"}, {"min_priority": "warning"}):
        e = Engine.from_paths([rules], code_cache=cache, **options)
        assert e.index_stats()["index_cache_hit"] == 0
        e = Engine.from_paths([rules], code_cache=cache, **options)
        assert e.index_stats()["index_cache_hit"] == 1
    assert len(list(cache.glob("index-*.marshal"))) == 3
    rules.write_text(SMALL_RULES.replace("secrets", "configmaps"))
    e = Engine.from_paths([rules], code_cache=cache)
    assert e.index_stats()["index_cache_hit"] == 0
    event = {
        "kind": "Event",
        "auditID": "a",
        "stage": "ResponseComplete",
        "verb": "get",
        "objectRef": {"resource": "configmaps", "name": "c"},
        "user": {"username": "u"},
        "stageTimestamp": "2026-03-11T15:45:00.000000Z",
    }
    assert [a.rule for a in e.evaluate(event)] == ["Secret read"]


def test_a_cache_others_can_write_is_not_read(tmp_path: Path) -> None:
    """Cached code runs in the function: a cache file or directory anyone else can write (a
    world-writable file, a directory someone made in a shared /tmp) is neither read nor run."""
    rules = [BUNDLED_RULES]
    cache = tmp_path / "cache"
    Engine.from_paths(rules, code_cache=cache)
    for path in cache.iterdir():
        path.chmod(0o666)
    stats = Engine.from_paths(rules, code_cache=cache).index_stats()
    assert (stats["index_cache_hit"], stats["code_cache_hit"]) == (0, 0)
    for path in cache.iterdir():
        path.chmod(0o644)
    cache.chmod(0o777)
    stats = Engine.from_paths(rules, code_cache=cache).index_stats()
    assert (stats["index_cache_hit"], stats["code_cache_hit"]) == (0, 0)
    cache.chmod(0o755)
    assert Engine.from_paths(rules, code_cache=cache).index_stats()["index_cache_hit"] == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_cache_file_that_is_not_a_regular_file_is_not_waited_on(tmp_path: Path) -> None:
    """A named pipe where a cache file goes (whoever could make one there) must not block the
    start: opening it for reading would wait for a writer for ever. It is ignored, and the rules
    are built as without a cache."""
    import threading

    rules = [BUNDLED_RULES]
    cache = tmp_path / "cache"
    Engine.from_paths(rules, code_cache=cache)
    pipes = sorted(cache.iterdir())
    for path in pipes:
        path.unlink()
        os.mkfifo(path, 0o600)
    stats: list[dict[str, int]] = []
    build = threading.Thread(
        target=lambda: stats.append(Engine.from_paths(rules, code_cache=cache).index_stats()),
        daemon=True,
    )
    build.start()
    build.join(60)  # a hang, not a speed: the build takes well under a second
    hung = build.is_alive()
    while build.is_alive():  # release a reader stuck on a pipe: its writer opens and closes
        for path in pipes:
            with contextlib.suppress(OSError):
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        build.join(0.1)
    assert not hung, "the build waited on a named pipe in the cache"
    assert (stats[0]["index_cache_hit"], stats[0]["code_cache_hit"]) == (0, 0)


def test_writing_the_cache_never_follows_a_link_someone_put_there(tmp_path: Path) -> None:
    """The temporary file a cache write goes through had a predictable name (`<file>.<pid>.tmp`)
    and was written following links: a link placed there (a cache directory in a shared /tmp)
    had the build overwrite whatever file it pointed to."""
    rules = [BUNDLED_RULES]
    first = tmp_path / "first"
    Engine.from_paths(rules, code_cache=first)
    names = sorted(p.name for p in first.iterdir())
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    cache = tmp_path / "cache"
    cache.mkdir()
    for name in names:
        (cache / Path(name).with_suffix(f".{os.getpid()}.tmp")).symlink_to(victim)
    Engine.from_paths(rules, code_cache=cache)
    assert victim.read_text() == "precious"
    assert sorted(p.name for p in cache.iterdir() if not p.is_symlink()) == names  # still cached


def test_an_index_cache_naming_other_objects_is_refused(tmp_path: Path) -> None:
    """The index cache stores recipes (plain data), and only the objects of the recipe table can
    be made from them: a recipe of any other kind, or naming an unknown field, is not a cache."""
    rules = [BUNDLED_RULES]
    Engine.from_paths(rules, code_cache=tmp_path)
    (index,) = tmp_path.glob("index-*.marshal")
    data = marshal.loads(index.read_bytes())
    for bad in (("import", "os"), ("getter", "no.such.field", None), ("helper", "eval")):
        stored = (*data[2], ("m999", bad))
        index.write_bytes(marshal.dumps((*data[:2], stored, *data[3:])))
        e = Engine.from_paths(rules, code_cache=tmp_path)
        assert e.index_stats()["index_cache_hit"] == 0
        event = _fixtures()[0]
        assert [a.rule for a in e.evaluate(event)] == [
            a.rule for a in Engine.from_paths(rules).evaluate(event)
        ]


_odd = st.one_of(
    _scalar,
    st.lists(st.one_of(_scalar, st.dictionaries(_text, _scalar, max_size=1)), max_size=3),
    st.dictionaries(st.sampled_from(["0", "username", "groups", "cluster_name"]), _scalar),
)


@pytest.mark.parametrize("ruleset", list(RULESETS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    event=audit_events(),
    odd=st.dictionaries(
        st.sampled_from(["sourceIPs", "user", "annotations", "impersonatedUser", "objectRef"]),
        _odd,
        max_size=2,
    ),
    groups=_odd,
    cluster=st.one_of(st.none(), st.just("prod")),
)
def test_random_events_alert_fields_agree(
    ruleset: str, event: dict[str, Any], odd: dict[str, Any], groups: Any, cluster: str | None
) -> None:
    """The same with odd shapes where the generated code reads in place: sourceIPs that is not a
    list of strings, user.groups of mixed types, non-object parents, a cluster_name number."""
    event = {**event, **odd, "auditID": "a"}
    if isinstance(event.get("user"), dict):
        event["user"] = {**event["user"], "groups": groups}
    if isinstance(event.get("annotations"), dict):
        event["annotations"] = {**event["annotations"], "cluster_name": groups}
    e = engine(ruleset, "first")
    for factory in _factories(e):
        assert_same_fields(factory, event, EventContext(cluster=cluster))


def test_an_index_too_large_to_build_falls_back_and_keeps_the_semantics(tmp_path: Path) -> None:
    # One rule naming 14,000 verbs (a macro appended to 14,000 times) made a 14,000-row index,
    # each row specialising the 14,000-check condition: minutes of cold start. Past the index's
    # work budget the rule runs in every bucket and checks the verb itself.
    verbs = " or ".join(f"ka.verb=v{i}" for i in range(14_000))
    path = tmp_path / "r.yaml"
    path.write_text(
        "- rule: Many Verbs\n  desc: d\n  condition: ka.target.resource=pods and (" + verbs + ")"
        "\n  output: hit %ka.verb\n  priority: WARNING\n  source: k8s_audit\n"
    )
    engine = Engine.from_paths([path], hostname="test")
    assert engine.index_stats()["buckets"] == 1
    event = {
        "auditID": "a",
        "stageTimestamp": "2026-03-11T15:45:00Z",
        "objectRef": {"resource": "pods"},
    }
    assert [a.message for a in engine.evaluate({**event, "verb": "v13999"})] == ["hit v13999"]
    assert engine.evaluate({**event, "verb": "v14000"}) == []
    assert engine.evaluate({**event, "verb": "v1", "objectRef": {"resource": "secrets"}}) == []
