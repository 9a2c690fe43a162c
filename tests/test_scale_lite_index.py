"""Milvus Lite indexed by size (plugin/retrieval/lite_index.py): FLAT while
small, IVF_FLAT past the threshold, refitted after each flushed write, for
brain's frame collections and the transcript collections, on the managed
local store. The threshold itself is measured by bench/bench_scale_milvus.py;
here it is lowered so that a test needs a thousand rows, not 20,000."""

import uuid

import fiftyone as fo
import fiftyone.brain as fob
import numpy as np
import pytest

from plugin.retrieval import brain_fixes, lite_index, transcript_index
from plugin.runtime import prepare_process


@pytest.mark.parametrize(
    "rows, kind, nlist",
    [
        (0, "FLAT", None),
        (19_999, "FLAT", None),
        (20_000, "IVF_FLAT", 512),
        (100_000, "IVF_FLAT", 1024),
        (1_000_000, "IVF_FLAT", 4096),
        (7_200_000, "IVF_FLAT", 4096),
    ],
)
def test_lite_index_follows_the_size(rows, kind, nlist):
    params = lite_index.lite_index_params("COSINE", rows)
    assert params["index_type"] == kind and params["metric_type"] == "COSINE"
    assert params["params"].get("nlist") == nlist


def test_refits_happen_at_the_threshold_with_hysteresis():
    flat = lite_index.lite_index_params("IP", 0)
    ivf_512 = lite_index.lite_index_params("IP", 20_000)
    ivf_1024 = lite_index.lite_index_params("IP", 100_000)
    assert not lite_index.is_due(flat, flat, 100)
    assert lite_index.is_due(flat, ivf_512, 20_000)
    assert lite_index.is_due(ivf_512, ivf_1024, 100_000)  # nlist doubles
    assert not lite_index.is_due(ivf_1024, ivf_512, 30_000)  # no shrink churn
    assert not lite_index.is_due(ivf_512, flat, 15_000)  # just under the line
    assert lite_index.is_due(ivf_512, flat, 9_000)  # well under it
    assert lite_index.nprobe_of(ivf_1024) == 32
    assert lite_index.nprobe_of(ivf_512) == 16
    assert lite_index.nprobe_of(flat) is None


@pytest.fixture
def low_threshold(monkeypatch):
    monkeypatch.setattr(lite_index, "LITE_IVF_ABOVE", 1000)


def _vectors(n, dim=16, seed=0):
    vectors = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_brain_collection_starts_flat_and_becomes_ivf_when_it_grows(
    local_store, low_threshold, dataset_name
):
    prepare_process(local_store)
    client = local_store.milvus().client()
    dataset = fo.Dataset(dataset_name)
    dataset.add_samples([fo.Sample(filepath=f"/x/{i}.jpg") for i in range(1200)])
    ids = dataset.values("id")
    vectors = _vectors(1200)
    collection = f"vrag_size_{uuid.uuid4().hex[:8]}"
    index = fob.compute_similarity(
        dataset.select(ids[:400]),
        backend="milvus",
        brain_key="size",
        embeddings=vectors[:400],
        metric="cosine",
        collection_name=collection,
        **local_store.milvus().credentials(),
    )
    try:
        assert lite_index.describe(client, collection)["index_type"] == "FLAT"
        index.add_to_index(vectors[400:], ids[400:])  # what sync does
        # flushed by the write: every row counted, no flush call here
        assert client.get_collection_stats(collection)["row_count"] == 1200
        described = lite_index.describe(client, collection)
        assert described["index_type"] == "IVF_FLAT"
        assert described["params"]["nlist"] == 256
        view = dataset.sort_by_similarity(vectors[700], k=10, brain_key="size")
        assert len(view) == 10
        assert view.first().id == ids[700]  # a stored vector finds itself
        assert index.config.search_params["params"] == {"nprobe": 16}
    finally:
        index.cleanup()


def test_transcript_writes_are_flushed_and_refitted(local_store, low_threshold):
    connection = local_store.milvus()
    client = connection.client()
    name = f"vrag_size_tx_{uuid.uuid4().hex[:8]}"
    transcript_index._create_collection(client, connection, name, 16, "cosine")
    segments = [
        {
            "segment_id": f"v:{n}",
            "video_id": "v",
            "start": n,
            "end": n + 1.0,
            "text": f"s{n}",
        }
        for n in range(1100)
    ]
    try:
        transcript_index._insert(client, name, "ds", segments[:600], _vectors(600))
        assert client.get_collection_stats(name)["row_count"] == 600  # flushed
        assert lite_index.describe(client, name)["index_type"] == "FLAT"
        transcript_index._insert(
            client, name, "ds", segments[600:], _vectors(500, seed=1)
        )
        assert client.get_collection_stats(name)["row_count"] == 1100
        assert lite_index.describe(client, name)["index_type"] == "IVF_FLAT"
        hits = client.search(
            name,
            data=[_vectors(600)[3].tolist()],
            limit=5,
            output_fields=["segment_id"],
            search_params={"metric_type": "COSINE", "params": {"nprobe": 16}},
        )[0]
        assert hits[0]["entity"]["segment_id"] == "v:3"
    finally:
        client.drop_collection(name)


def test_writes_refit_only_lite_collections_and_servers_keep_hnsw():
    calls = []

    def brain_add(self, embeddings, sample_ids, label_ids=None, batch_size=100):
        calls.append(batch_size)

    fake = type("Index", (), {"collection": None})()
    add = brain_fixes._wrap_add_to_index(brain_add)
    # Calls off brain's plain path (label ids) go to brain, in larger batches
    # (the plain path is ours: tests/test_brain_fixes.py, on a real server)
    add(fake, np.zeros((2, 4)), ["a", "b"], label_ids=["x", "y"])
    assert calls == [brain_fixes.INSERT_BATCH]
    brain_fixes.apply()
    config = brain_fixes.brain_milvus.MilvusSimilarityConfig(
        metric="cosine", uri="http://h:1"
    )
    assert config.index_params["index_type"] == "HNSW"
    assert (
        brain_fixes.frame_index_params("cosine", "http://h:1")["index_type"] == "HNSW"
    )
    lite = brain_fixes.frame_index_params("cosine", "x.db", rows=50_000)
    assert lite == lite_index.lite_index_params("COSINE", 50_000)
