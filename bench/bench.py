"""`make bench`: falconet's speed and memory, as ratios to bare `orjson.loads` measured in one run.

One process; variants interleaved round-robin; the median of >= 5 rounds is reported, in CPU time
of the process (the machines are shared and noisy: judge ratios, not absolute times). For the
bundled ruleset and for upstream's k8s_audit_rules.yaml (when ../shared is present), on a seeded
synthetic corpus plus the real Falco traces:

- decode = gunzip + split + parse (+ per-record checks), evaluate = rules + alert formatting,
  parse + evaluate = the HTTP EventList path, end to end = from a gzip JSON-lines object, both
  through `Pipeline.run` with the garbage collector on, as in production;
- rules per index bucket, rule build time, `import falconet`, import + build without boto3;
- cold start of the S3 handler to its first alert, with and without precompiled bytecode;
- peak RSS scanning generated gzip objects of two sizes (flat in the size means streaming);
- GeoIP enrichment cost with a database and without;
- with the bundled correlations: what they add per event end to end, and the state store requests
  per 1,000 events (a fresh in-memory store: every group is new, the most writes);
- attribution (`falconet.owner.*`, on as deployed in the pipeline rows): what it adds end to end
  on the corpus, and its cost per pod event naming an owner (warm, and each a new ReplicaSet);
- on a harder corpus (`corpus.hard_events`: stageTimestamp unsorted across a day, tens of
  thousands of client addresses, large pods and managedFields), for both rulesets: matching alone
  next to evaluation with alerts, on pre-parsed events and straight after each parse, the cost
  per alert (the difference over the alerts raised), and decoding whole events next to decoding
  only what each ruleset reads (`falconet.decode.partial`, which the end-to-end rows use).
"""

from __future__ import annotations

import argparse
import copy
import gc
import gzip
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "functions"), str(ROOT / "bench")]

import corpus  # noqa: E402
from falconet.attribution import Attributor  # noqa: E402
from falconet.correlate.correlator import Correlator  # noqa: E402
from falconet.decode import DecodeStats, decode  # noqa: E402
from falconet.decode.partial import BodyPlan  # noqa: E402
from falconet.engine import Engine  # noqa: E402
from falconet.pipeline import Pipeline  # noqa: E402
from falconet.state import MemoryStore  # noqa: E402
from falconet.suppress.suppressor import Suppressor  # noqa: E402

SHARED = ROOT.parent / "shared"
UPSTREAM = SHARED / "conformance" / "falco-plugins-k8saudit" / "v0.18.0" / "k8s_audit_rules.yaml"
TRACES = SHARED / "conformance" / "falco-legacy-tests" / "test" / "trace_files" / "k8s_audit"


def build_corpus(count: int) -> list[bytes]:
    """Seeded synthetic events, with the real traces spread through them."""
    traces: list[bytes] = []
    if TRACES.is_dir():
        for path in sorted(TRACES.glob("*.json")):
            for line in path.read_bytes().splitlines():
                if line.strip().startswith(b'{"') and b'"kind": 0' not in line:
                    traces.append(orjson.dumps(orjson.loads(line)))
    lines = []
    stream = corpus.events(seed=42)
    for n in range(count):
        if traces and n % 2000 == 0:
            lines.append(traces[(n // 2000) % len(traces)])
        else:
            lines.append(orjson.dumps(next(stream)))
    return lines


def timed(fn: Callable[[], object], *, collector: bool = False) -> float:
    """CPU seconds `fn` takes (this process's, `time.process_time`: the work measured is CPU-bound
    and single-threaded, and on a shared machine wall time also counts the other sessions' work
    whenever this process is preempted). The collector is off while it runs (the same for every
    variant), unless `collector`: the pipeline rows run as in production, with it on
    (Pipeline.run pauses it while it decodes and evaluates, and that pause is part of what they
    measure)."""
    gc.collect()
    if not collector:
        gc.disable()
    try:
        start = time.process_time()
        fn()
        return time.process_time() - start
    finally:
        gc.enable()


def parse_all(lines: list[bytes]) -> None:
    loads = orjson.loads
    for line in lines:
        loads(line)


def run_engine(engine: Engine, events: list[dict[str, Any]]) -> int:
    evaluate = engine.evaluate
    return sum(len(evaluate(e)) for e in events)


def decode_only(data: bytes, bodies: BodyPlan | None = None) -> int:
    stats = DecodeStats()
    for _ in decode(data, stats=stats, bodies=bodies):
        pass
    return stats.events


def pipeline_run(pipeline: Pipeline, data: bytes, *, bucket_object: bool = False) -> int:
    """What an invocation does with a body or an object (under the limits `scan` uses): decode,
    evaluate, count the alerts (no sinks)."""
    limits = pipeline.object_limits if bucket_object else pipeline.body_limits
    return pipeline.run(data, limits=limits).alerts


def measure_speed(engines: dict[str, Engine], lines: list[bytes], rounds: int) -> None:
    body = b"\n".join(lines) + b"\n"
    gz = gzip.compress(body, compresslevel=6, mtime=0)
    # The apiserver's webhook backend sends batches of at most 400 events (its default).
    eventlists = [
        b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":['
        + b",".join(lines[i : i + 400])
        + b"]}"
        for i in range(0, len(lines), 400)
    ]
    parsed = [orjson.loads(line) for line in lines]
    gc.freeze()  # the parsed corpus is long-lived: keep the collector off it
    n = len(lines)
    print(
        f"corpus: {n} events, {len(body) / 1e6:.1f} MB, mean event {len(body) / n:.0f} bytes, "
        f"gzip {len(gz) / 1e6:.1f} MB"
    )
    samples: dict[str, list[float]] = {}

    def add(name: str, seconds: float) -> None:
        samples.setdefault(name, []).append(seconds / n * 1e6)

    alerts: dict[str, int] = {}
    # Rulesets with correlations run as deployed (a correlator over an in-memory store, new each
    # run, so nothing is "delivered again"), and once more without their correlation files: the
    # difference is what correlations add per event.
    bundled = engines.get("bundled")
    plain = {"bundled": bundled_rules_only()} if bundled and bundled.correlations else {}
    requests: dict[str, tuple[int, int, int]] = {}

    def pipeline_of(
        engine: Engine, *, attribution: bool = True, suppression: bool = True
    ) -> Pipeline:
        # As deployed: attribution on, correlations and suppression policies when the ruleset
        # has some, one store.
        store = MemoryStore()
        correlator = Correlator.for_engine(engine, store) if engine.correlations else None
        attributor = (
            Attributor(store, cluster=engine.field_getter("falconet.cluster"))
            if attribution
            else None
        )
        suppressor = (
            Suppressor.for_engine(engine, store) if suppression and engine.policies else None
        )
        return Pipeline(
            engine, [], correlator=correlator, attributor=attributor, suppressor=suppressor
        )

    for _ in range(rounds):
        add("parse (orjson.loads)", timed(lambda: parse_all(lines)))
        add("decode: gunzip + split + parse", timed(lambda: decode_only(gz)))
        for name, engine in engines.items():
            add(f"{name}: evaluate + alerts", timed(lambda e=engine: run_engine(e, parsed)))
            add(
                f"{name}: parse + evaluate (400-event EventLists)",
                timed(  # one warm instance: its pipeline (and correlator) serves every body
                    lambda e=engine: sum(
                        pipeline_run(p, b) for p in [pipeline_of(e)] for b in eventlists
                    ),
                    collector=True,
                ),
            )
            add(
                f"{name}: end to end from gzip JSON lines",
                timed(
                    lambda e=engine: pipeline_run(pipeline_of(e), gz, bucket_object=True),
                    collector=True,
                ),
            )
            if name == "bundled":
                add(
                    f"{name}, attribution off: end to end",
                    timed(
                        lambda e=engine: pipeline_run(
                            pipeline_of(e, attribution=False), gz, bucket_object=True
                        ),
                        collector=True,
                    ),
                )
            if engine.policies:
                add(
                    f"{name}, suppression off: end to end",
                    timed(
                        lambda e=engine: pipeline_run(
                            pipeline_of(e, suppression=False), gz, bucket_object=True
                        ),
                        collector=True,
                    ),
                )
                store = MemoryStore()
                quiet = Pipeline(engine, [], suppressor=Suppressor.for_engine(engine, store))
                result = quiet.run(gz, limits=quiet.object_limits)
                requests[name + ", suppression alone, one object"] = (
                    store.requests["read"],
                    store.requests["write"],
                    result.suppressed,
                )
            if name in plain:
                add(
                    f"{name}, correlations off: end to end",
                    timed(
                        lambda e=plain[name]: pipeline_run(Pipeline(e, []), gz, bucket_object=True),
                        collector=True,
                    ),
                )
                store = MemoryStore()
                correlated = Pipeline(engine, [], correlator=Correlator.for_engine(engine, store))
                result = correlated.run(gz, limits=correlated.object_limits)
                requests[name + ", one object"] = (
                    store.requests["read"],
                    store.requests["write"],
                    result.correlation["matches"],
                )
                store = MemoryStore()
                warm = Pipeline(engine, [], correlator=Correlator.for_engine(engine, store))
                matches = sum(warm.run(body).correlation["matches"] for body in eventlists)
                requests[name + ", 400-event bodies to one warm instance"] = (
                    store.requests["read"],
                    store.requests["write"],
                    matches,
                )
            alerts[name] = run_engine(engine, parsed)
    parse = statistics.median(samples["parse (orjson.loads)"])
    print(
        f"\n{'stage (median of ' + str(rounds) + ' rounds)':52} {'us/event':>9} {'x parse':>8} "
        f"{'events/s/core':>14}"
    )
    for name, values in samples.items():
        med = statistics.median(values)
        print(f"{name:52} {med:9.2f} {med / parse:8.2f} {1e6 / med:14,.0f}")
    for name, count in alerts.items():
        print(f"{name}: alert rate {count / n:.2%} ({count} alerts)")
    for name, (reads, writes, matches) in requests.items():
        what = "alerts suppressed" if "suppression" in name else "counted matches"
        print(
            f"{name}: {matches / n * 1000:.1f} {what}, {reads / n * 1000:.2f} store "
            f"reads and {writes / n * 1000:.2f} writes per 1,000 events"
        )
    for name, engine in engines.items():
        if engine.policies:
            on = statistics.median(samples[f"{name}: end to end from gzip JSON lines"])
            off = statistics.median(samples[f"{name}, suppression off: end to end"])
            print(
                f"{name}: {len(engine.policies)} suppression policies add {on - off:+.2f} "
                f"us/event end to end ({(on - off) / parse:+.2f} x parse)"
            )
    if "bundled" in engines:
        on = statistics.median(samples["bundled: end to end from gzip JSON lines"])
        off = statistics.median(samples["bundled, attribution off: end to end"])
        print(
            f"bundled: attribution adds {on - off:+.2f} us/event end to end "
            f"({(on - off) / parse:+.2f} x parse) on the corpus"
        )
        measure_attribution(engines["bundled"], parse)
    for name in plain:
        on = statistics.median(samples[f"{name}: end to end from gzip JSON lines"])
        off = statistics.median(samples[f"{name}, correlations off: end to end"])
        print(
            f"{name}: {len(engines[name].correlations)} correlations add {on - off:+.2f} us/event "
            f"end to end ({(on - off) / parse:+.2f} x parse), against the bundled detections alone "
            "(no correlation file, no base rules)"
        )


def measure_attribution(engine: Engine, parse: float) -> None:
    """Attribution per pod event that names an owner (its ReplicaSet and Deployment recorded):
    warm (the chain in the process's memory) and cold (each pod of a new ReplicaSet: one batched
    read of the in-memory store)."""
    sys.path.insert(0, str(ROOT))
    from tests.workloads import deployment_chain

    from falconet import EventContext

    ctx = EventContext(cluster="bench")
    n = 2000
    chains = [deployment_chain(when=corpus_time(i)) for i in range(n)]
    for i, (deployment, replicaset, pod) in enumerate(chains):
        app, rs = f"web{i}", f"web{i}-7d4b9c8f5"  # as the deployment-controller names it
        deployment["objectRef"]["name"] = deployment["requestObject"]["metadata"]["name"] = app
        replicaset["objectRef"]["name"] = replicaset["requestObject"]["metadata"]["name"] = rs
        replicaset["requestObject"]["metadata"]["ownerReferences"][0]["name"] = app
        pod["requestObject"]["metadata"]["ownerReferences"][0]["name"] = rs
        for event in (deployment, replicaset, pod):
            event.pop("responseObject", None)
    store = MemoryStore()
    attributor = Attributor(store, cluster=engine.field_getter("falconet.cluster"))
    seed = attributor.batch()
    for deployment, replicaset, _ in chains:
        seed.see(deployment, ctx)
        seed.see(replicaset, ctx)
    seed.flush()
    pods = [pod for *_, pod in chains]

    def run(a: Attributor) -> None:
        batch = a.batch()
        for pod in pods:
            batch.see(pod, ctx)

    cold: list[float] = []
    warm: list[float] = []
    for _ in range(5):
        fresh = Attributor(store, cluster=engine.field_getter("falconet.cluster"))
        cold.append(timed(lambda a=fresh: run(a)) / n * 1e6)
        warm.append(timed(lambda a=fresh: run(a)) / n * 1e6)
    for label, values in (("warm", warm), ("cold, one store read", cold)):
        med = statistics.median(values)
        print(
            f"bundled: attribution per pod event naming an owner, {label}: {med:.2f} us "
            f"({med / parse:.2f} x parse)"
        )


def corpus_time(i: int) -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime(2026, 3, 11, 15, tzinfo=UTC) + timedelta(seconds=i)


def bundled_rules_only() -> Engine:
    """The bundled detections alone: the Falco rules files without the correlation files and
    without the base rules only correlations count (tag `correlation_base`)."""
    from falconet.rules.loader import expand_paths, load_rules

    files = [f for f in expand_paths([ROOT / "rules"]) if not load_rules([f])[1].documents]
    rules, _ = load_rules(files)
    return Engine([r for r in rules if "correlation_base" not in r.tags])


def measure_build(paths: dict[str, list[Path]], rounds: int) -> dict[str, Engine]:
    """Build time (YAML + resolve + compile + index), without and with the code cache, and the
    loader's share of the uncached build ('load ms': load_rules alone, YAML to checked rules),
    so that a change is attributed to the loader or to the index. Interleaved; best of rounds."""
    from falconet.rules.loader import load_rules

    engines = {}
    print(
        f"\n{'ruleset':10} {'rules':>5} {'build ms':>9} {'load ms':>8} {'cached ms':>10} "
        f"{'buckets':>8} {'rules/bucket':>13} {'wildcard':>9}"
    )
    with tempfile.TemporaryDirectory() as cache:
        for name, rule_paths in paths.items():
            best = {None: float("inf"), cache: float("inf")}
            load = float("inf")
            for _ in range(rounds):
                for code_cache, fastest in list(best.items()):
                    start = time.process_time()
                    engine = Engine.from_paths(rule_paths, code_cache=code_cache)
                    best[code_cache] = min(fastest, time.process_time() - start)
                start = time.process_time()
                load_rules(rule_paths)
                load = min(load, time.process_time() - start)
            stats = engine.index_stats()
            engines[name] = engine
            print(
                f"{name:10} {stats['active_rules']:5} {best[None] * 1000:9.1f} {load * 1000:8.1f} "
                f"{best[cache] * 1000:10.1f} {stats['buckets']:8} "
                f"{stats['min_rules']:>6}-{stats['max_rules']:<6} {stats['wildcard_rules']:9}"
            )
    return engines


CHILD_IMPORT = """
import sys, time
t0 = time.process_time()
import falconet
t1 = time.process_time()
from falconet.engine import Engine
Engine.from_paths([sys.argv[1]], code_cache=sys.argv[2])
t2 = time.process_time()
assert "boto3" not in sys.modules
print((t1 - t0) * 1000, (t2 - t0) * 1000)
"""


def measure_import(rounds: int) -> None:
    """import falconet, then import + build the bundled engine, in fresh processes; the first
    process fills the code cache as `sam build` does, the others read it like a cold start.

    Two bytecode states, interleaved: "with .pyc", every module from bytecode written by the first
    process (what `make build` ships: precompiled .pyc); "falconet .py", the same but falconet's
    own modules compiled from source at each start (what a checkout run with
    PYTHONDONTWRITEBYTECODE=1 costs, about 40 ms more). The pycache prefix is private to this
    measure, so the figures do not depend on the caller's environment or on stale __pycache__."""
    figures: dict[str, list[tuple[float, float]]] = {"with .pyc": [], "falconet .py": []}
    env = {**os.environ, "PYTHONPATH": str(ROOT / "functions")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as pyc:
        warm, cold = Path(pyc, "warm"), Path(pyc, "cold")
        for i in range(rounds + 1):
            for label, values in figures.items():
                extra = {"PYTHONPYCACHEPREFIX": str(warm)}
                if label == "falconet .py":
                    if i == 0:  # the warm prefix minus falconet's own bytecode, never written
                        shutil.copytree(warm, cold)
                        shutil.rmtree(Path(str(cold) + str(ROOT / "functions")))
                    extra = {"PYTHONPYCACHEPREFIX": str(cold), "PYTHONDONTWRITEBYTECODE": "1"}
                out = subprocess.run(
                    [sys.executable, "-c", CHILD_IMPORT, str(ROOT / "rules"), cache],
                    capture_output=True,
                    text=True,
                    check=True,
                    env={**env, **extra},
                ).stdout.split()
                if i:  # the first round fills the code cache and the bytecode
                    values.append((float(out[0]), float(out[1])))
    print(
        f"\nimport falconet, then + bundled engine build from the code cache (no boto3), "
        f"median of {rounds} fresh processes:"
    )
    for label, values in figures.items():
        print(
            f"  {label:13} import {statistics.median(r[0] for r in values):6.1f} ms   "
            f"import + build {statistics.median(r[1] for r in values):6.1f} ms"
        )


CHILD_COLD = """
import sys, time
start = time.perf_counter()
sys.path.insert(0, sys.argv[1])
import lambda_handlers
imported = time.perf_counter()
from falconet import get_runtime
get_runtime().pipeline
built = time.perf_counter()
lambda_handlers.handle_s3({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
    "awsRegion": "us-east-1", "s3": {"bucket": {"name": "bench"}, "object": {"key": "a.log.gz"}}}]})
done = time.perf_counter()
print("PHASES", (imported - start) * 1e3, (built - imported) * 1e3, (done - built) * 1e3,
      file=sys.stderr)
"""


def measure_cold_start(rounds: int) -> None:
    """Process start to first alert for the S3 handler: a fresh interpreter imports the handler
    (no Flask), builds the engine from the bundled rules, reads an object from a moto server
    running in its own process, and prints the first alert. With .pyc: bytecode already compiled
    (what the SAM build ships); without: a fresh pycache prefix, so every module, boto3 included,
    is compiled from source (what a plain zip without .pyc costs)."""
    import socket

    try:
        import moto  # noqa: F401
    except ImportError:
        print("\ncold start: skipped (moto is not installed)")
        return
    import boto3

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        for _ in range(100):
            try:
                s3.create_bucket(Bucket="bench")
                break
            except Exception:  # the server is still starting
                time.sleep(0.1)
        s3.put_object(
            Bucket="bench",
            Key="a.log.gz",
            Body=gzip.compress((ROOT / "examples" / "audit-batch.json").read_bytes()),
        )
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_DEFAULT_REGION": "us-east-1",
            "PYTHONPATH": str(ROOT / "functions"),
        }
        figures: dict[str, list[tuple[float, ...]]] = {"with .pyc": [], "without .pyc": []}
        with tempfile.TemporaryDirectory() as cache:
            env["FALCONET_CODE_CACHE"] = cache
            for _ in range(rounds + 1):  # the first round warms the .pyc and rule code caches
                for label, values in figures.items():
                    cold_dir = tempfile.mkdtemp()
                    # With: the normal __pycache__ (compiled once, as the SAM build ships it).
                    # Without: an empty pycache prefix and no writing, so every module is
                    # compiled from source on every start.
                    extra = (
                        {}
                        if label == "with .pyc"
                        else {"PYTHONPYCACHEPREFIX": cold_dir, "PYTHONDONTWRITEBYTECODE": "1"}
                    )
                    start = time.perf_counter()
                    proc = subprocess.run(
                        [sys.executable, "-c", CHILD_COLD, str(ROOT / "functions")],
                        capture_output=True,
                        text=True,
                        env={**env, **extra},
                        check=True,
                    )
                    total = (time.perf_counter() - start) * 1000
                    assert '"hostname"' in proc.stdout, proc.stderr[-2000:]
                    line = next(x for x in proc.stderr.splitlines() if x.startswith("PHASES"))
                    values.append((total, *map(float, line.split()[1:])))
                    subprocess.run(["rm", "-rf", cold_dir], check=False)
    finally:
        server.terminate()
        server.wait(timeout=20)
    print(
        f"\ncold start of the S3 handler, process start -> first alert (bundled rules, boto3, "
        f"moto on loopback), median of {rounds}:"
    )
    print(f"  {'':14} {'total':>7} {'import':>7} {'engine':>7} {'boto3+S3+scan':>14}  (ms)")
    for label, values in figures.items():
        rows = values[1:]
        med = [statistics.median(r[i] for r in rows) for i in range(4)]
        print(f"  {label:14} {med[0]:7.0f} {med[1]:7.0f} {med[2]:7.0f} {med[3]:14.0f}")


CHILD_RSS = """
import sys
sys.path.insert(0, sys.argv[2])
from falconet.pipeline import Pipeline
from falconet.engine import Engine
from falconet.sinks.stdout import StdoutSink
pipeline = Pipeline(Engine.from_paths([sys.argv[3]]), [StdoutSink(open("/dev/null", "wb"))])
with open(sys.argv[1], "rb") as f:
    result = pipeline.run(f, limits=pipeline.object_limits)  # as Pipeline.scan reads an object
# VmHWM: this address space's peak (ru_maxrss would carry the parent's peak across exec).
hwm = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM"))
print(hwm // 1024, result.events, result.alerts)
"""


def measure_memory(sizes_mb: list[int], lines: list[bytes]) -> None:
    chunk = b"\n".join(lines[:12_000]) + b"\n"
    member = zlib.compressobj(6, zlib.DEFLATED, 31)
    compressed = member.compress(chunk) + member.flush()
    print(
        "\npeak RSS scanning a gzip JSON-lines object (several gzip members, as Firehose writes), "
        "full pipeline with the bundled rules:"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes_mb:
            path = Path(tmp) / f"{size}.gz"
            repeats = max(1, size * 1_000_000 // len(chunk))
            with path.open("wb") as f:
                for _ in range(repeats):
                    f.write(compressed)
            start = time.perf_counter()
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    CHILD_RSS,
                    str(path),
                    str(ROOT / "functions"),
                    str(ROOT / "rules"),
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            print(
                f"  {repeats * len(chunk) / 1e6:7.0f} MB uncompressed "
                f"({path.stat().st_size / 1e6:.0f} MB gzip): peak RSS {out[0]} MB, "
                f"{int(out[1]):,} events, {int(out[2]):,} alerts, "
                f"{time.perf_counter() - start:.1f} s"
            )
            path.unlink()


def measure_geoip() -> None:
    try:
        import geoip_cost
    except ImportError as exc:
        print(f"\nGeoIP: skipped ({exc})")
        return
    figures = geoip_cost.measure(events=20_000, rounds=5)
    parse = figures["orjson.loads per event"]["median_us"]
    print("\nGeoIP enrichment (falconet.src.* fields), median us:")
    for name, value in figures.items():
        if name.startswith("_"):
            continue
        print(f"  {name:42} {value['median_us']:7.2f}  ({value['median_us'] / parse:.3f} x parse)")


def build_hard_corpus(count: int) -> list[bytes]:
    """The harder corpus (`corpus.hard_events`): unsorted times across a day, tens of thousands of
    client addresses, large pods and managedFields."""
    stream = corpus.hard_events(seed=42)
    return [orjson.dumps(next(stream)) for _ in range(count)]


def without_alerts(engine: Engine) -> Engine:
    """The same engine with alert building switched off: `evaluate` runs everything (the gate,
    the index, the rules, first-match) but builds no alert, so the difference to `engine` is
    what the alerts cost (the event time, the output fields, message, times and uuid)."""
    clone = copy.copy(engine)
    clone._alerts = lambda _event, _context, _slots: []  # type: ignore[method-assign]
    return clone


def parse_then_evaluate(engine: Engine, lines: list[bytes]) -> int:
    """Each event evaluated straight after it is parsed (its objects still in the CPU caches), as
    the decoders hand events to the engine."""
    loads = orjson.loads
    evaluate = engine.evaluate
    return sum(len(evaluate(loads(line))) for line in lines)


def measure_hard(engines: dict[str, Engine], lines: list[bytes], rounds: int) -> None:
    """Evaluation and alert cost on the harder corpus, for each ruleset: matching alone (the
    engine with alert building off) next to evaluation with alerts, on pre-parsed events and
    straight after each parse; and the cost per alert, measured on the events that raise one
    (with alerts minus without, over the alerts raised), pre-parsed and straight after parsing."""
    body = b"\n".join(lines) + b"\n"
    gz = gzip.compress(body, compresslevel=6, mtime=0)
    parsed = [orjson.loads(line) for line in lines]
    gc.freeze()
    n = len(lines)
    addresses = len({str(e.get("sourceIPs")) for e in parsed})
    print(
        f"\nharder corpus: {n} events, {len(body) / 1e6:.1f} MB, mean event {len(body) / n:.0f} "
        f"bytes, stageTimestamp unsorted across a day, {addresses} distinct sourceIPs"
    )
    samples: dict[str, list[float]] = {}

    def add(name: str, seconds: float, count: int = n) -> None:
        samples.setdefault(name, []).append(seconds / count * 1e6)

    silent = {name: without_alerts(engine) for name, engine in engines.items()}
    alerting: dict[str, tuple[list[dict[str, Any]], list[bytes], int]] = {}
    for name, engine in engines.items():
        chosen = [i for i, event in enumerate(parsed) if engine.evaluate(event)]
        events = [parsed[i] for i in chosen]
        alerting[name] = (events, [lines[i] for i in chosen], run_engine(engine, events))
    plans = {name: Pipeline(engine, []).bodies() for name, engine in engines.items()}
    for _ in range(rounds):
        add("parse (orjson.loads)", timed(lambda: parse_all(lines)))
        add("decode, gzip JSON lines, whole events", timed(lambda: decode_only(gz)))
        for name, engine in engines.items():
            quiet = silent[name]
            add(
                f"{name}: decode, gzip JSON lines, what the rules read",
                timed(lambda p=plans[name]: decode_only(gz, p)),
            )
            events, raw, _ = alerting[name]
            add(f"{name}: matching only", timed(lambda e=quiet: run_engine(e, parsed)))
            add(f"{name}: evaluate + alerts", timed(lambda e=engine: run_engine(e, parsed)))
            add(
                f"{name}: parse, then matching only",
                timed(lambda e=quiet: parse_then_evaluate(e, lines)),
            )
            add(
                f"{name}: parse, then evaluate + alerts",
                timed(lambda e=engine: parse_then_evaluate(e, lines)),
            )
            add(
                f"{name}: end to end, gzip JSON lines, detections only",
                timed(lambda e=engine: pipeline_run(Pipeline(e, []), gz, bucket_object=True)),
            )
            for label, fn, data in (
                ("alerting events, matching only", run_engine, (quiet, events)),
                ("alerting events, evaluate + alerts", run_engine, (engine, events)),
                ("alerting lines, parse, then matching only", parse_then_evaluate, (quiet, raw)),
                (
                    "alerting lines, parse, then evaluate + alerts",
                    parse_then_evaluate,
                    (engine, raw),
                ),
            ):
                add(
                    f"{name}: {label}",
                    timed(lambda fn=fn, data=data: fn(*data)),
                    len(events),
                )
    parse = statistics.median(samples["parse (orjson.loads)"])
    print(f"\n{'stage (median of ' + str(rounds) + ' rounds)':52} {'us/event':>9} {'x parse':>8}")
    for name, values in samples.items():
        if "alerting" not in name:
            med = statistics.median(values)
            print(f"{name:52} {med:9.2f} {med / parse:8.2f}")
    for name, (events, _, count) in alerting.items():
        med = {k.removeprefix(name + ": "): statistics.median(v) for k, v in samples.items()}
        fresh = med["parse, then evaluate + alerts"] - parse
        print(
            f"{name}: alert rate {count / n:.2%} ({count} alerts); evaluate + alerts straight "
            f"after parsing (that row minus the parse) {fresh:.2f} us/event = "
            f"{fresh / parse:.2f} x parse"
        )
        for label, prefix in (
            ("pre-parsed events", "alerting events, "),
            ("straight after parsing", "alerting lines, parse, then "),
        ):
            cost = med[prefix + "evaluate + alerts"] - med[prefix + "matching only"]
            per_alert = cost * len(events) / max(count, 1)
            print(
                f"{name}: per alert, {label}: {per_alert:.2f} us = {per_alert / parse:.2f} x the "
                "parse of a mean event"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    # Not smaller with --quick: the alerting events must outnumber any 4,096-entry cache, or
    # repeating them round after round flatters a per-value cache (the alerts of 20,000 events
    # of the bundled rules all fit in one).
    parser.add_argument("--hard-events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rss-sizes", default="200,1000", help="uncompressed MB, comma-separated")
    parser.add_argument("--quick", action="store_true", help="small corpus, no cold start/RSS")
    args = parser.parse_args()
    if args.quick:
        args.events, args.rounds = 20_000, 5
    from falconet.decode import compression

    inflater = "zlib" if compression.backend() is compression.ZLIB else "isal"
    print(
        f"falconet bench: python {sys.version.split()[0]}, orjson {orjson.__version__}, "
        f"gunzip {inflater}, {os.cpu_count()} cpus"
    )
    paths = {"bundled": [ROOT / "rules"]}
    if UPSTREAM.is_file():
        paths["upstream"] = [UPSTREAM]
    else:
        print("(upstream k8s_audit_rules.yaml skipped: ../shared is absent)")
    engines = measure_build(paths, args.rounds)
    lines = build_corpus(args.events)
    measure_speed(engines, lines, args.rounds)
    measure_hard(engines, build_hard_corpus(args.hard_events), args.rounds)
    measure_import(args.rounds)
    if not args.quick:
        measure_cold_start(args.rounds)
        measure_memory([int(s) for s in args.rss_sizes.split(",")], lines)
    measure_geoip()


if __name__ == "__main__":
    main()
