"""The Milvus store: the managed local server, the resolver, the real server."""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from plugin.milvus import (
    LITE_FILE,
    LOCAL,
    SERVER,
    ZILLIZ,
    LocalMilvusServer,
    MilvusUnreachableError,
    resolve_milvus,
)
from plugin.process import free_port

DIM = 8


def _vectors(n, seed):
    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n, DIM)).astype(np.float32)
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def _make_collection(client, name):
    if client.has_collection(name):
        client.drop_collection(name)
    client.create_collection(name, dimension=DIM, metric_type="COSINE")


_WRITER = """
import json, sys, numpy as np
from plugin.milvus import resolve_milvus
name, seed = sys.argv[1], int(sys.argv[2])
client = resolve_milvus("local").client()
rng = np.random.default_rng(seed)
vecs = rng.normal(size=(20, 8)).astype(np.float32)
rows = [{"id": 1000 + i, "vector": v.tolist()} for i, v in enumerate(vecs)]
client.insert(name, rows)
client.flush(name)
print(json.dumps(client.query(name, filter="id >= 0", output_fields=["id"], limit=100)))
"""


def test_two_processes_share_the_local_store(local_store):
    """A second process (standing in for the App server) and this one write
    to and read from the default local store at the same time."""
    client = local_store.milvus().client()
    _make_collection(client, "shared_two_procs")
    other = subprocess.Popen(
        [sys.executable, "-c", _WRITER, "shared_two_procs", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    mine = [{"id": i, "vector": v.tolist()} for i, v in enumerate(_vectors(20, 0))]
    client.insert("shared_two_procs", mine)
    client.flush("shared_two_procs")
    out, err = other.communicate(timeout=120)
    assert other.returncode == 0, err[-2000:]

    ids = {
        row["id"]
        for row in client.query("shared_two_procs", filter="id >= 0", limit=100)
    }
    assert ids == set(range(20)) | set(range(1000, 1020))  # I see theirs
    hits = client.search(
        "shared_two_procs", data=[_vectors(20, 0)[3].tolist()], limit=1
    )
    assert hits[0][0]["id"] == 3
    their_view = {row["id"] for row in json.loads(out.strip().splitlines()[-1])}
    assert set(range(1000, 1020)) <= their_view  # they see their own rows...
    assert len(their_view) >= 20  # ...and the store is shared, not a copy


def test_store_api_works_against_the_real_milvus_server(real_milvus):
    assert real_milvus.milvus().kind == SERVER
    client = real_milvus.milvus().client()
    _make_collection(client, "real_server_api")
    vecs = _vectors(50, 7)
    client.insert(
        "real_server_api", [{"id": i, "vector": v.tolist()} for i, v in enumerate(vecs)]
    )
    client.flush("real_server_api")
    hits = client.search("real_server_api", data=[vecs[11].tolist()], limit=5)
    assert hits[0][0]["id"] == 11
    client.drop_collection("real_server_api")


def test_resolver_forms(tmp_path, monkeypatch, local_store):
    monkeypatch.delenv("VRAG_MILVUS_URI", raising=False)
    assert resolve_milvus().kind == LOCAL
    assert resolve_milvus().uri == local_store.milvus().uri
    lite = resolve_milvus(str(tmp_path / "x.db"))
    assert lite.kind == LITE_FILE and lite.uri.endswith("x.db")
    assert resolve_milvus("http://10.1.2.3:19530").kind == SERVER
    cloud = resolve_milvus(
        "https://in01-abc.api.gcp-us-west1.zillizcloud.com", token="s3cret"
    )
    assert cloud.kind == ZILLIZ and cloud.credentials()["token"] == "s3cret"
    assert "s3cret" not in repr(cloud)
    with pytest.raises(ValueError, match="Unsupported Milvus URI"):
        resolve_milvus("ftp://nope")


def test_settings_come_from_secrets_then_environment(monkeypatch):
    monkeypatch.setenv("VRAG_MILVUS_URI", "http://env-host:1")
    assert resolve_milvus().uri == "http://env-host:1"
    conn = resolve_milvus(secrets={"VRAG_MILVUS_URI": "http://secret-host:2"})
    assert conn.uri == "http://secret-host:2"


def test_credentials_in_uri_are_redacted_in_errors():
    conn = resolve_milvus("http://alice:pw123@127.0.0.1:9")
    with pytest.raises(MilvusUnreachableError) as info:
        conn.client(timeout=2)
    assert "pw123" not in str(info.value)
    assert "127.0.0.1:9" in str(info.value)


def test_unreachable_uri_fails_fast_naming_the_uri():
    # A closed port on this machine (tests never send traffic elsewhere).
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
    uri = f"http://127.0.0.1:{port}"
    start = time.monotonic()
    with pytest.raises(MilvusUnreachableError, match=f"127.0.0.1:{port}"):
        resolve_milvus(uri).client(timeout=3)
    assert time.monotonic() - start < 5


def test_stale_pid_file_is_detected_and_restarted(tmp_path):
    server = LocalMilvusServer(root=tmp_path / "store", port=free_port())
    server.root.mkdir(parents=True)
    # A pid that is certainly dead, on a port nobody listens on.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    server.state_path.write_text(json.dumps({"pid": dead.pid, "port": 1}))
    assert server.status()["stale"] is True
    try:
        uri = server.ensure_running()
        assert server.status()["running"] is True
        assert resolve_milvus(uri).client().list_collections() == []
    finally:
        server.stop()
    assert server.status()["running"] is False


def test_port_in_use_is_handled(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        server = LocalMilvusServer(root=tmp_path / "store2", port=taken)
        try:
            uri = server.ensure_running()
            assert not uri.endswith(f":{taken}")
            assert resolve_milvus(uri).client().list_collections() == []
        finally:
            server.stop()


def test_concurrent_starts_share_one_server(tmp_path):
    root, port = tmp_path / "store3", free_port()
    code = (
        "import sys; from plugin.milvus import LocalMilvusServer;"
        f"print(LocalMilvusServer(root={str(root)!r}, port={port}).ensure_running())"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    uris = {p.communicate(timeout=120)[0].strip() for p in procs}
    server = LocalMilvusServer(root=root, port=port)
    try:
        assert uris == {f"http://127.0.0.1:{port}"}
        assert server.status()["running"]
    finally:
        server.stop()


def test_idle_client_survives_keepalive_pings(local_store):
    """pymilvus pings every 10 s even when idle; Milvus Lite's stock server
    answers GOAWAY "too many pings" after a few, killing the connection (seen
    in long sessions). Our launcher accepts the pings."""
    client = local_store.milvus().client()
    _make_collection(client, "idle_client")
    time.sleep(35)  # > 3 idle pings
    client.insert("idle_client", [{"id": 1, "vector": _vectors(1, 9)[0].tolist()}])
    assert (
        client.query("idle_client", filter="id >= 0", output_fields=["id"])[0]["id"]
        == 1
    )
    client.drop_collection("idle_client")
