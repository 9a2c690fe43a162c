"""Faults of the Milvus store, injected through the real parts.

A process holding indexes (the App server above all) must outlive the
store: stopped and started again (by another process), killed with -9,
frozen, or gone. Each test drives a Milvus Lite server of its OWN (another
root, another port): the session's store is never touched. The URIs carry
credentials (``http://user:SECRET@host:port``) that must never show.
"""

import os
import signal
import subprocess
import sys
import time

import pytest
from support import faults
from support.faults import (
    SECRET,
    freeze,
    make_frames_dataset,
    managed_settings,
    thaw,
    with_credentials,
)
from support.ports import stable_free_port

from plugin import process
from plugin.errors import StoreUnreachableError
from plugin.milvus import LocalMilvusServer
from plugin.retrieval.frame_index import (
    build_frame_index,
    delete_frame_index,
    sync_frame_index,
)
from plugin.retrieval.frame_search import search_frames
from plugin.retrieval.frame_store import index_ids, load_frame_index
from plugin.retrieval.hybrid import hybrid_search
from plugin.retrieval.transcript_index import (
    build_transcript_index,
    search_transcript,
    sync_transcript_index,
)
from plugin.settings import Settings

KEY = "faults"
QUERY = "a red apple on the table"


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return faults.tiny_clip(tmp_path_factory)


def _index(dataset, tiny_clip, settings):
    build_frame_index(dataset, model=tiny_clip, brain_key=KEY, settings=settings)
    build_transcript_index(dataset, settings=settings)


@pytest.fixture(scope="module")
def managed(tmp_path_factory, tiny_clip):
    """Both indexes on a MANAGED local store of its own (restarted on demand)."""
    home = tmp_path_factory.mktemp("managed")
    settings = managed_settings(home)
    dataset = make_frames_dataset(home / "images")
    _index(dataset, tiny_clip, settings)
    yield dataset, settings
    LocalMilvusServer(settings=settings).stop()
    dataset.delete()


@pytest.fixture(scope="module")
def remote(tmp_path_factory, tiny_clip):
    """Both indexes on a Lite server reached by URI, with credentials in it:
    a server the workbench does not start (as a real Milvus server)."""
    root = tmp_path_factory.mktemp("remote")
    server = LocalMilvusServer(root=root / "store", port=stable_free_port())
    settings = Settings.load(milvus_uri=with_credentials(server.ensure_running()))
    dataset = make_frames_dataset(root / "images")
    _index(dataset, tiny_clip, settings)
    yield dataset, settings, server
    server.stop()
    dataset.delete()


def _results(dataset, settings):
    """What the three searches return, by id."""
    frames = search_frames(dataset, QUERY, 4, KEY, settings)
    texts = search_transcript(dataset, QUERY, 4, settings)
    fused = hybrid_search(dataset, QUERY, 4, brain_key=KEY, settings=settings)
    return (
        [h.sample_id for h in frames],
        [h.segment_id for h in texts],
        [h.sample_id for h in fused],
    )


def _start_from_another_process(settings):
    env = {
        **os.environ,
        "VRAG_HOME": settings.home,
        "VRAG_MILVUS_LITE_PORT": str(settings.milvus_lite_port),
    }
    done = subprocess.run(
        [sys.executable, "-m", "plugin.milvus", "start"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def _app_search(dataset, settings):
    """The App's own search bar: brain's sort_by_similarity on the results
    brain loaded and cached (our code is not on that path)."""
    dataset.load_brain_results(KEY, **settings.milvus().credentials())
    return dataset.sort_by_similarity(QUERY, k=4, brain_key=KEY).values("id")


def test_searches_survive_a_restart_of_the_managed_store(managed):
    """Stop the store, start it from another process (as `make store-stop`
    then the App would): the same process searches on, with the same hits,
    through our searches and through brain's own (the App's search bar)."""
    dataset, settings = managed
    before = _results(dataset, settings)
    app_before = _app_search(dataset, settings)
    server = LocalMilvusServer(settings=settings)
    port = server.status()["port"]
    assert server.stop()
    uri = _start_from_another_process(settings)
    assert uri.endswith(f":{port}")  # the same port: TIME_WAIT does not move it
    assert _app_search(dataset, settings) == app_before
    assert _results(dataset, settings) == before


def test_searches_survive_kill_9_of_the_managed_store(managed):
    dataset, settings = managed
    before = _results(dataset, settings)
    server = LocalMilvusServer(settings=settings)
    pid = server.status()["pid"]
    os.killpg(pid, signal.SIGKILL)
    assert process.stop_group(pid, grace=0)  # gone
    assert _results(dataset, settings) == before  # restarted on demand
    assert server.status()["running"]


def test_a_stopped_server_fails_fast_and_nothing_is_lost(remote, caplog, capfd):
    dataset, settings, server = remote
    before = _results(dataset, settings)
    size = len(index_ids(load_frame_index(dataset, KEY, settings)))
    server.stop()
    calls = {
        "search frames": lambda: search_frames(dataset, QUERY, 4, KEY, settings),
        "search transcript": lambda: search_transcript(dataset, QUERY, 4, settings),
        "hybrid": lambda: hybrid_search(
            dataset, QUERY, brain_key=KEY, settings=settings
        ),
        "sync frames": lambda: sync_frame_index(dataset, KEY, settings),
        "sync transcript": lambda: sync_transcript_index(dataset, settings=settings),
        "delete": lambda: delete_frame_index(dataset, KEY, settings),
        "build": lambda: build_frame_index(
            dataset, brain_key="other", settings=settings
        ),
    }
    for what, call in calls.items():
        # pymilvus alone: a raw MilvusException after ~211 s of retries
        with pytest.raises(StoreUnreachableError) as caught:
            call()
        message = caught.value.message
        assert "unreachable" in message and "127.0.0.1" in message, (what, message)
        assert SECRET not in message, what
    server.ensure_running()  # back, on the same port
    assert _results(dataset, settings) == before
    assert KEY in dataset.list_brain_runs()  # the delete did not happen half-way
    assert len(index_ids(load_frame_index(dataset, KEY, settings))) == size
    out, err = capfd.readouterr()
    assert SECRET not in out + err + caplog.text


def test_a_frozen_server_times_out_with_a_clear_message(remote):
    """A server that accepts connections but never answers (SIGSTOP):
    bounded by the milvus_timeout setting, not pymilvus' endless wait."""
    dataset, settings, server = remote
    before = _results(dataset, settings)
    impatient = settings.replace(milvus_timeout=1.5)
    pid = server.status()["pid"]
    freeze(pid)
    started = time.monotonic()
    try:
        with pytest.raises(StoreUnreachableError, match="within 1.5 s") as caught:
            search_frames(dataset, QUERY, 4, KEY, impatient)
        assert SECRET not in caught.value.message  # brain's error quotes the URI
        with pytest.raises(StoreUnreachableError, match="within 1.5 s"):
            search_transcript(dataset, QUERY, 4, impatient)
    finally:
        thaw(pid)
    print(f"frozen store: both searches failed in {time.monotonic() - started:.1f} s")
    assert _results(dataset, settings) == before


@pytest.mark.real_milvus
def test_searches_survive_a_restart_of_the_real_milvus_server(
    real_milvus, tmp_path_factory, tiny_clip
):
    """The real server, restarted in place (same data, same port) while this
    process holds its indexes: the next searches reconnect and reload."""
    dataset = make_frames_dataset(tmp_path_factory.mktemp("real-restart"))
    try:
        _index(dataset, tiny_clip, real_milvus)
        before = _results(dataset, real_milvus)
        seconds = faults.restart_real_milvus()
        print(f"real Milvus restarted in {seconds:.1f} s")
        assert _results(dataset, real_milvus) == before
    finally:
        delete_frame_index(dataset, KEY, real_milvus)
        from plugin.retrieval.transcript_index import delete_transcript_index

        delete_transcript_index(dataset, settings=real_milvus)
        dataset.delete()
