"""Our fixes to fiftyone-brain's Milvus backend, pinned to the brain they were
written for, and applied only by ``plugin.runtime.prepare_process``."""

import importlib.metadata
import inspect
import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import fiftyone as fo
import fiftyone.brain as fob
import numpy as np
from fiftyone.brain.internal.core import milvus as brain_milvus

from plugin.retrieval import brain_fixes
from plugin.runtime import prepare_process
from plugin.settings import Settings

REPO = Path(__file__).resolve().parents[1]
RECHECK = (
    "fiftyone-brain changed under us: re-check plugin/retrieval/brain_fixes.py "
    "(and every use of brain's private names it holds) against the installed "
    "brain, then set WRITTEN_FOR there."
)


def _run_python(code, env=None):
    # A fresh process: nothing inherited from processes this session prepared
    # (plugin.models.zoo exports its manifest path to subprocesses)
    inherited = {
        k: v for k, v in os.environ.items() if k != "FIFTYONE_MODEL_ZOO_MANIFEST_PATHS"
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        env={**inherited, "PYTHONPATH": str(REPO), **(env or {})},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_installed_brain_is_the_one_the_fixes_were_written_for():
    installed = importlib.metadata.version("fiftyone-brain")
    assert installed == brain_fixes.WRITTEN_FOR == "0.27.0", (
        f"{RECHECK} Written for {brain_fixes.WRITTEN_FOR}, installed {installed}."
    )


# Runs in a fresh process: brain exactly as shipped, before any patch.
_BRAIN_AS_SHIPPED = """
import inspect, json
from fiftyone.brain.internal.core import milvus as m
config = m.MilvusSimilarityConfig(metric="euclidean", uri="http://h:1")
print(json.dumps({
    "metrics": m._SUPPORTED_METRICS,
    "properties": [isinstance(m.MilvusSimilarityConfig.__dict__.get(n), property)
                   for n in ("search_params", "index_params")],
    "kneighbors": list(inspect.signature(m.MilvusSimilarityIndex._kneighbors).parameters),
    "parse_query": list(inspect.signature(m.MilvusSimilarityIndex._parse_query).parameters),
    "add_to_index": list(inspect.signature(m.MilvusSimilarityIndex.add_to_index).parameters),
    "search_params": config.search_params,
    "index_params": config.index_params,
}))
"""


def test_private_names_the_fixes_rely_on_still_have_their_shapes():
    shipped = _run_python(_BRAIN_AS_SHIPPED)
    assert shipped["metrics"] == {
        "cosine": "COSINE",
        "dotproduct": "IP",
        "euclidean": "L2",
    }, f"{RECHECK} _SUPPORTED_METRICS is now {shipped['metrics']}"
    assert shipped["properties"] == [True, True], (
        f"{RECHECK} MilvusSimilarityConfig.search_params/index_params are no "
        "longer properties"
    )
    assert shipped["kneighbors"][:3] == ["self", "query", "k"], RECHECK
    assert "return_dists" in shipped["kneighbors"], RECHECK
    assert shipped["parse_query"] == ["self", "query"], RECHECK
    # We refit Lite indexes after add_to_index (it must stay the write path)
    assert shipped["add_to_index"][:3] == ["self", "embeddings", "sample_ids"], RECHECK
    # The bug we fix: if brain ships well-formed params, drop _search_params.
    assert shipped["search_params"] == {
        "HNSW": {"metric_type": "L2", "params": {"ef": 10}}
    }, f"{RECHECK} brain's search params are now {shipped['search_params']}"
    assert shipped["index_params"]["index_type"] == "HNSW", RECHECK
    # Brain must still read the two properties we replace, where it searches
    # and where it creates the collection's index.
    source = inspect.getsource(brain_milvus)
    assert "param=self.config.search_params" in source, RECHECK
    assert "index_params=self.config.index_params" in source, RECHECK
    # ... and it flushes after its inserts (the Lite refit counts flushed rows)
    add_source = inspect.getsource(brain_milvus.MilvusSimilarityIndex.add_to_index)
    if brain_fixes.is_applied():
        add_source = inspect.getsource(
            brain_milvus.MilvusSimilarityIndex.add_to_index.__wrapped__
        )
    assert "self._collection.flush()" in add_source, RECHECK


_IMPORT_ONLY = """
import json
import plugin, plugin.retrieval
import plugin.retrieval.frame_search, plugin.retrieval.hybrid
import fiftyone as fo
from fiftyone.brain.internal.core import milvus as m
from plugin.retrieval import brain_fixes
from plugin.models.zoo import MANIFEST_PATH
config = m.MilvusSimilarityConfig(metric="cosine", uri="x.db")
print(json.dumps({
    "applied": brain_fixes.is_applied(),
    "search_params": config.search_params,
    "zoo": str(MANIFEST_PATH) in (fo.config.model_zoo_manifest_paths or []),
}))
"""


def test_importing_the_retrieval_package_does_not_patch_brain():
    got = _run_python(_IMPORT_ONLY)
    assert got == {
        "applied": False,
        "search_params": {"HNSW": {"metric_type": "COSINE", "params": {"ef": 10}}},
        "zoo": False,
    }


def test_prepare_process_makes_search_params_well_formed(tmp_path):
    prepare_process(Settings.load(milvus_uri=str(tmp_path / "s.db")))
    assert brain_fixes.is_applied()
    config = brain_milvus.MilvusSimilarityConfig(metric="euclidean", uri="http://h:1")
    assert config.search_params == {"metric_type": "L2", "params": {"ef": 64}}
    assert config.index_params["index_type"] == "HNSW"  # a real server
    # A query records its k, so that ef >= k (Milvus rejects ef < k).
    fake_index = type("FakeIndex", (), {"config": config})()
    try:  # brain refuses query=None before it touches any collection
        brain_milvus.MilvusSimilarityIndex._kneighbors(fake_index, query=None, k=500)
    except ValueError:
        pass
    assert config.search_params == {"metric_type": "L2", "params": {"ef": 500}}
    lite = brain_milvus.MilvusSimilarityConfig(metric="cosine", uri="any.db")
    assert lite.index_params == {
        "metric_type": "COSINE",
        "index_type": "FLAT",
        "params": {},
    }


def _dataset_of(rows):
    dataset = fo.Dataset(f"vrag-fixes-{uuid.uuid4().hex[:8]}")
    dataset.add_samples([fo.Sample(filepath=f"/x/{i}.jpg") for i in range(rows)])
    return dataset


def _brain_index(store, dataset, embeddings, metric, collection):
    """A brain Milvus index on ``store`` (Settings), fixes applied."""
    prepare_process(store)
    return fob.compute_similarity(
        dataset,
        backend="milvus",
        brain_key="fixes",
        embeddings=embeddings,
        metric=metric,
        collection_name=collection,
        consistency_level="Strong",
        **store.milvus().credentials(),
    )


def test_lite_collections_use_flat_and_return_k_hits(local_store):
    """A real index on the managed local store: FLAT index, and k=50 > brain's
    ef of 10 returns 50 hits."""
    connection = local_store.milvus()
    dataset = _dataset_of(80)
    vectors = np.random.default_rng(0).normal(size=(80, 16)).astype(np.float32)
    collection = f"vrag_fixes_{uuid.uuid4().hex[:8]}"
    index = _brain_index(local_store, dataset, vectors, "dotproduct", collection)
    try:
        client = connection.client()
        (name,) = client.list_indexes(collection)
        assert client.describe_index(collection, name)["index_type"] == "FLAT"
        view = dataset.sort_by_similarity(vectors[0], k=50, brain_key="fixes")
        assert len(view) == 50
        assert index.config.search_params["params"]["ef"] >= 50
    finally:
        index.cleanup()
        dataset.delete()


def test_prepare_process_is_cheap_on_repeat_calls(tmp_path, monkeypatch):
    import plugin.milvus

    calls = []
    monkeypatch.setattr(plugin.milvus, "use_for_brain", calls.append)
    settings = Settings.load(milvus_uri=str(tmp_path / "cheap.db"))
    prepare_process(settings)
    prepare_process(settings)
    prepare_process(Settings.load(milvus_uri=str(tmp_path / "cheap.db")))
    assert len(calls) == 1, "brain was pointed at the same store again"
    prepare_process(settings.replace(milvus_uri=str(tmp_path / "other.db")))
    assert [c.uri for c in calls] == [
        str(tmp_path / "cheap.db"),
        str(tmp_path / "other.db"),
    ]


def test_prepare_process_warns_but_never_raises_for_the_store(caplog):
    bad = Settings.load(milvus_uri="ftp://nowhere:1", milvus_password="s3cret-pw")
    with caplog.at_level(logging.WARNING, logger="plugin.runtime"):
        prepare_process(bad)
    (record,) = [r for r in caplog.records if r.name == "plugin.runtime"]
    assert "Milvus store not available" in record.getMessage()
    assert "ftp://nowhere:1" in record.getMessage()
    assert "s3cret-pw" not in record.getMessage()
    assert brain_fixes.is_applied()  # the rest of the process is prepared


def test_inserts_numpy_batches_with_exact_rows_on_the_real_server(real_milvus):
    """brain's plain add_to_index path is ours on a real server: rows sent as
    numpy arrays in INSERT_BATCH calls (not brain's 100), every row stored
    once with its exact vector, and brain's own search finds them."""
    rows = 2 * brain_fixes.INSERT_BATCH + 7
    dataset = _dataset_of(rows)
    ids = dataset.values("id")
    vectors = np.random.default_rng(1).normal(size=(rows, 24)).astype(np.float32)
    collection = f"vrag_insert_{uuid.uuid4().hex[:8]}"
    index = _brain_index(real_milvus, dataset, False, "cosine", collection)
    try:
        index.add_to_index(vectors[:1], ids[:1])  # creates the collection
        sent = []
        insert = index.collection.insert
        index.collection.insert = lambda data, *a, **k: (
            sent.append(len(data[0])),
            insert(data, *a, **k),
        )[1]
        index.add_to_index(vectors[1:], ids[1:])
        assert sent == [brain_fixes.INSERT_BATCH, brain_fixes.INSERT_BATCH, 6]
        assert index.collection.num_entities == rows
        stored, stored_ids, _ = index.get_embeddings(sample_ids=ids[-3:])
        assert list(stored_ids) == ids[-3:]
        assert np.allclose(stored, vectors[-3:], atol=1e-6)
        found, _ = index._kneighbors(query=vectors[1500], k=1)
        assert found == [ids[1500]]
    finally:
        index.cleanup()
        dataset.delete()
