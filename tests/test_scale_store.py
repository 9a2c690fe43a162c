"""The store doctor and the move: ``python -m plugin.milvus doctor`` on the
managed local store, and ``migrate`` from it to a real Milvus server."""

import uuid

import fiftyone as fo
import fiftyone.brain as fob
import numpy as np
import pytest

from plugin.errors import IndexConfigError
from plugin.milvus import doctor, migrate
from plugin.milvus.__main__ import main as milvus_cli
from plugin.retrieval import transcript_index
from plugin.retrieval.frame_index import load_frame_index
from plugin.runtime import prepare_process

FRAMES, SEGMENTS, DIM = 60, 30, 16


def _vectors(n, seed):
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def indexed(local_store, dataset_name):
    """A dataset with a frame index and a transcript index on the local store."""
    prepare_process(local_store)
    connection = local_store.milvus()
    tag = uuid.uuid4().hex[:8]
    dataset = fo.Dataset(dataset_name)
    dataset.add_samples([fo.Sample(filepath=f"/x/{i}.jpg") for i in range(FRAMES)])
    vectors = _vectors(FRAMES, 0)
    fob.compute_similarity(
        dataset,
        backend="milvus",
        brain_key="frames",
        embeddings=vectors,
        metric="cosine",
        collection_name=f"vrag_doc_frames_{tag}",
        **connection.credentials(),
    )
    name = f"vrag_doc_tx_{tag}"
    client = connection.client()
    transcript_index._create_collection(client, connection, name, DIM, "cosine")
    segments = [
        {
            "segment_id": f"v:{n}",
            "video_id": "v",
            "start": n,
            "end": n + 1,
            "text": f"t{n}",
        }
        for n in range(SEGMENTS)
    ]
    transcript_index._insert(
        client, name, dataset.name, segments, _vectors(SEGMENTS, 1)
    )
    dataset.info[transcript_index.INFO_KEY] = {
        "text_model": "minilm",
        "dimension": DIM,
        "metric": "cosine",
        "collection_name": name,
        "milvus_kind": connection.kind,
        "num_segments": SEGMENTS,
    }
    dataset.save()
    yield dataset, vectors, [f"vrag_doc_frames_{tag}", name]
    for collection in (f"vrag_doc_frames_{tag}", name):
        if client.has_collection(collection):
            client.drop_collection(collection)


def test_doctor_says_what_the_store_holds_and_when_to_move(
    indexed, local_store, monkeypatch, capsys
):
    dataset, _, (frames, transcripts) = indexed
    report = doctor.examine(local_store, datasets=[dataset.name], probes=5)
    assert report["is_lite"] and report["kind"] == "local"
    (entry,) = report["datasets"]
    found = {c["collection"]: c for c in entry["collections"]}
    assert found[frames]["rows"] == FRAMES and found[frames]["kind"] == "frames"
    assert found[transcripts]["rows"] == SEGMENTS
    assert found[frames]["index_type"] == "FLAT"
    assert 0 < found[frames]["p50_ms"] <= found[frames]["p99_ms"]
    assert not report["advice"]["move"] and report["advice"]["next"] == []

    monkeypatch.setattr(doctor, "LITE_MOVE_ABOVE", 40)  # as if it had grown
    report = doctor.examine(local_store, datasets=[dataset.name], probes=5)
    assert report["advice"]["move"]
    assert report["advice"]["next"] == [
        f"python -m plugin.milvus migrate --dataset {dataset.name} --to http://HOST:19530"
    ]
    assert milvus_cli(["doctor", "--dataset", dataset.name]) == 0
    printed = capsys.readouterr().out
    assert (
        f"{FRAMES:,} rows, FLAT" in printed
        and "Move to a Milvus server: YES" in printed
    )
    assert f"migrate --dataset {dataset.name} --to http://HOST:19530" in printed


def test_migrate_copies_verifies_and_repoints_leaving_the_source(
    indexed, local_store, real_milvus
):
    dataset, vectors, names = indexed
    before = load_frame_index(dataset, "frames", local_store)
    expected = dataset.sort_by_similarity(vectors[7], k=10, brain_key="frames").values(
        "id"
    )
    try:
        result = migrate.migrate_dataset(dataset, real_milvus, source=local_store)
        assert result["verified"] and not result["source_dropped"]
        rows = {
            r["collection"]: (r["source_rows"], r["target_rows"])
            for r in result["collections"]
        }
        assert rows == {names[0]: (FRAMES, FRAMES), names[1]: (SEGMENTS, SEGMENTS)}
        assert all(r["same_top1"] == r["checks"] > 0 for r in result["collections"])
        # the source is intact
        assert all(local_store.milvus().client().has_collection(n) for n in names)
        # re-pointed: the records name the server
        dataset.reload()
        assert dataset.info[migrate.STORE_KEY]["kind"] == "server"
        assert dataset.info[transcript_index.INFO_KEY]["milvus_kind"] == "server"
        # the same search, now answered by the server
        dataset._brain_cache.clear()
        moved = load_frame_index(dataset, "frames", real_milvus)
        assert moved.config.uri != before.config.uri
        got = dataset.sort_by_similarity(vectors[7], k=10, brain_key="frames").values(
            "id"
        )
        assert got == expected
        with pytest.raises(IndexConfigError, match="already exists"):
            migrate.migrate_dataset(dataset, real_milvus, source=local_store)
    finally:
        client = real_milvus.milvus().client()
        for name in names:
            if client.has_collection(name):
                client.drop_collection(name)
