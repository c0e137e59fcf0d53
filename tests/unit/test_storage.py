"""`falconet.storage`: local paths, stdin, and S3 through a real moto server on loopback."""

from __future__ import annotations

import copy
import gzip
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from falconet.context import EventContext
from falconet.decode import DecodeStats, decode
from falconet.decode.compression import CHUNK
from falconet.errors import ConfigError
from falconet.storage import cluster_from_key, open_inputs
from tests.unit.decode.wrap import firehose_object, gz, jsonl, load_events

EVENTS = load_events()


def _decode_all(specs: list[str], **kwargs) -> list[tuple[str, str | None, str | None, int]]:
    """(name, origin, cluster, events) per input."""
    out = []
    for item in open_inputs(specs, **kwargs):
        stats = DecodeStats()
        pairs = list(decode(item.chunks, stats=stats, context=item.context, name=item.name))
        out.append(
            (item.name, item.context.origin, pairs[0][1].cluster if pairs else None, len(pairs))
        )
    return out


# --- key pattern ---------------------------------------------------------------------------------
def test_cluster_from_key() -> None:
    assert cluster_from_key("logs/cluster=prod-eu/2024/06/01/a.gz") == "prod-eu"
    assert cluster_from_key("logs/2024/06/01/a.gz") is None
    assert cluster_from_key("aws/eks/demo/x", r"eks/(?P<cluster>[^/]+)/") == "demo"
    assert cluster_from_key("cluster=x/a", None) is None


@pytest.mark.parametrize("pattern", ["(", "cluster=([^/]+)"])
def test_bad_key_patterns_are_config_errors(pattern: str) -> None:
    with pytest.raises(ConfigError, match="key pattern"):
        cluster_from_key("k", pattern)


# --- local ---------------------------------------------------------------------------------------
def test_directory_files_in_name_order_with_cluster_from_path(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    (root / "cluster=blue" / "2024").mkdir(parents=True)
    (root / "cluster=green").mkdir()
    (root / "cluster=green" / "b.log").write_bytes(jsonl(EVENTS[:1]))
    (root / "cluster=green" / "a.log.gz").write_bytes(gz(jsonl(EVENTS)))
    (root / "cluster=blue" / "2024" / "z").write_bytes(firehose_object(copy.deepcopy(EVENTS)))
    (root / ".hidden").write_bytes(b"junk")
    got = _decode_all([str(root)])
    assert [(Path(n).relative_to(root).as_posix(), c, k) for n, _, c, k in got] == [
        ("cluster=blue/2024/z", "demo", 4),  # the EKS envelope names the cluster: it wins
        ("cluster=green/a.log.gz", "green", 4),
        ("cluster=green/b.log", "green", 1),
    ]
    assert all(origin == name for name, origin, _, _ in got)


def test_caller_cluster_beats_the_key_pattern(tmp_path: Path) -> None:
    path = tmp_path / "cluster=green.log"
    path.write_bytes(jsonl(EVENTS))
    got = _decode_all([str(path)], context=EventContext(cluster="explicit"))
    assert got[0][2] == "explicit"


def test_missing_path_and_unknown_scheme() -> None:
    with pytest.raises(ConfigError, match="no such file"):
        list(open_inputs(["/nonexistent/audit.log"]))
    with pytest.raises(ConfigError, match="unsupported input"):
        list(open_inputs(["https://example.com/audit.log"]))


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = io.TextIOWrapper(io.BytesIO(gz(jsonl(EVENTS))))
    monkeypatch.setattr(sys, "stdin", fake)
    assert _decode_all(["-"]) == [("<stdin>", "<stdin>", None, 4)]


def test_inputs_are_lazy(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(jsonl(EVENTS))
    (item,) = list(open_inputs([str(path)]))
    path.write_bytes(jsonl(EVENTS[:1]))  # nothing was read yet
    assert sum(1 for _ in decode(item.chunks, stats=DecodeStats())) == 1


def test_gcs_without_the_extra_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    import sys

    from falconet.storage import gcs

    # As without the extra (the test extra installs it): the import fails.
    monkeypatch.setitem(sys.modules, "google.cloud.storage", None)
    if (cloud := sys.modules.get("google.cloud")) is not None:
        monkeypatch.delattr(cloud, "storage", raising=False)
    gcs.client.cache_clear()
    request.addfinalizer(gcs.client.cache_clear)
    with pytest.raises(ConfigError, match=r"pip install 'falconet\[gcs\]'"):
        list(open_inputs(["gs://bucket/audit/"]))


# --- S3 through moto on loopback ----------------------------------------------------------
@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch):
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    client = boto3.client("s3")  # the test's own client, to set up the bucket
    bucket = f"audit-{os.getpid()}-{id(monkeypatch)}"
    client.create_bucket(Bucket=bucket)
    return client, bucket


def test_s3_prefix_streams_every_object(s3) -> None:
    client, bucket = s3
    objects = {
        "eks/cluster=prod/2024/06/01/12/stream-1-2024-06-01-12-05-33-a": firehose_object(
            copy.deepcopy(EVENTS), cluster="prod"
        ),
        "eks/cluster=prod/2024/06/01/12/stream-1-2024-06-01-12-10-33-b": firehose_object(
            copy.deepcopy(EVENTS[:2]), cluster="prod"
        ),
        "selfmanaged/cluster=onprem/audit-2024-06-01.log.gz": gz(jsonl(EVENTS)),
        "selfmanaged/cluster=onprem/": b"",  # a console "folder"
    }
    for key, body in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)
    got = _decode_all([f"s3://{bucket}/"])
    assert got == [
        (f"s3://{bucket}/{k}", f"s3://{bucket}/{k}", c, n)
        for k, c, n in [
            ("eks/cluster=prod/2024/06/01/12/stream-1-2024-06-01-12-05-33-a", "prod", 4),
            ("eks/cluster=prod/2024/06/01/12/stream-1-2024-06-01-12-10-33-b", "prod", 2),
            ("selfmanaged/cluster=onprem/audit-2024-06-01.log.gz", "onprem", 4),
        ]
    ]
    # a prefix without a trailing slash, and one exact key
    assert [g[0] for g in _decode_all([f"s3://{bucket}/eks/cluster=prod/2024"])] == [
        g[0] for g in got[:2]
    ]
    key = "selfmanaged/cluster=onprem/audit-2024-06-01.log.gz"
    assert _decode_all([f"s3://{bucket}/{key}"]) == [got[2]]


def test_s3_objects_are_streamed_in_chunks(s3) -> None:
    client, bucket = s3
    events = []
    for _ in range(2000):
        for event in copy.deepcopy(EVENTS):
            event["auditID"] = os.urandom(16).hex()  # incompressible: a multi-chunk object
            events.append(event)
    body = gz(jsonl(events))
    assert len(body) > 3 * CHUNK
    client.put_object(Bucket=bucket, Key="big.gz", Body=body)
    (item,) = list(open_inputs([f"s3://{bucket}/big.gz"]))
    sizes = [len(c) for c in item.chunks]
    assert sum(sizes) == len(body) and max(sizes) <= CHUNK
    stats = DecodeStats()
    assert sum(1 for _ in decode(item.chunks, stats=stats)) == 8000
    assert gzip.decompress(body).count(b"\n") == 8000


def test_s3_missing_objects_and_buckets_are_config_errors(s3) -> None:
    _, bucket = s3
    with pytest.raises(ConfigError, match="no such object or prefix"):
        list(open_inputs([f"s3://{bucket}/nothing/here"]))
    with pytest.raises(ConfigError, match="cannot list objects"):
        list(open_inputs(["s3://no-such-bucket-falconet-test/x"]))
    with pytest.raises(ConfigError, match="no bucket"):
        list(open_inputs(["s3:///key"]))
