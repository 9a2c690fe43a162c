"""The store doctor and the move: ``python -m plugin.milvus doctor`` on the
managed local store, and ``migrate`` from it to a real Milvus server, for a
dataset with every kind of index: frames (brain), transcripts and screen
text (text indexes, built here with the offline MiniLM through their
``TextSource``); and text search on a Lite collection refitted to IVF_FLAT."""

import uuid

import fiftyone as fo
import fiftyone.brain as fob
import numpy as np
import pymilvus
import pytest

from plugin.errors import IndexConfigError
from plugin.milvus import doctor, migrate
from plugin.milvus.__main__ import main as milvus_cli
from plugin.retrieval import lite_index
from plugin.retrieval.frame_index import load_frame_index
from plugin.retrieval.screen_text_index import SCREEN_TEXT
from plugin.retrieval.text_collection import insert_rows
from plugin.retrieval.text_index import text_sources
from plugin.retrieval.transcript_index import TRANSCRIPTS
from plugin.runtime import prepare_process
from plugin.video.screen_text import TEXT_FIELD
from plugin.video.transcripts import save_video_record

FRAMES, DIM = 60, 16
TOPICS = ["horses", "cars", "ships", "planes", "cats", "rain", "bread", "chess"]
#: one sentence every 2 s of the 60-s video
SENTENCES = [f"Part {n} of the talk is about {TOPICS[n % 8]}." for n in range(30)]
#: one slide every 10 frames (1 FPS): six screen-text spans
SLIDES = [f"Slide {n}: {TOPICS[n]} and more {TOPICS[n]}" for n in range(6)]
QUERIES = ["a talk about ships", "chess", "slide about cats"]


def _vectors(n, seed, dim=DIM):
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def indexed(local_store, dataset_name):
    """A dataset of one 60-s video at 1 FPS with a frame index, a transcript
    index and a screen-text index on the local store:
    ``(dataset, frame vectors, {kind: collection})``."""
    prepare_process(local_store)
    tag = uuid.uuid4().hex[:8]
    dataset = fo.Dataset(dataset_name)
    dataset.add_samples(
        [
            fo.Sample(
                filepath=f"/x/{i}.jpg",
                video_id="v",
                timestamp=float(i),
                **{TEXT_FIELD: SLIDES[i // 10]},
            )
            for i in range(FRAMES)
        ]
    )
    segments = [
        {"start": 2.0 * n, "end": 2.0 * n + 2, "text": text}
        for n, text in enumerate(SENTENCES)
    ]
    save_video_record(
        dataset,
        {"video_id": "v", "status": "ok", "complete": True, "segments": segments},
    )
    vectors = _vectors(FRAMES, 0)
    names = {"frames": f"vrag_doc_frames_{tag}"}
    fob.compute_similarity(
        dataset,
        backend="milvus",
        brain_key="frames",
        embeddings=vectors,
        metric="cosine",
        collection_name=names["frames"],
        **local_store.milvus().credentials(),
    )
    for source in (TRANSCRIPTS, SCREEN_TEXT):
        name = f"vrag_doc_{source.kind}_{tag}"
        source.build(dataset, collection_name=name, settings=local_store)
        names[source.kind] = name
    yield dataset, vectors, names
    client = local_store.milvus().client()
    for collection in names.values():
        if client.has_collection(collection):
            client.drop_collection(collection)


def _text_hits(dataset, settings):
    """Every text index's hits for :data:`QUERIES`: ids, frames, scores."""
    return {
        (source.kind, query): [
            (h.segment_id, h.frame_ids, round(h.score, 4))
            for h in source.search(dataset, query, k=4, settings=settings)
        ]
        for source in text_sources()
        for query in QUERIES
    }


def test_every_text_index_is_a_text_source():
    assert [s.kind for s in text_sources()] == ["transcripts", "screen_text"]
    assert TRANSCRIPTS in text_sources() and SCREEN_TEXT in text_sources()


ROWS = {"frames": FRAMES, "transcripts": len(SENTENCES), "screen_text": len(SLIDES)}


def test_doctor_says_what_the_store_holds_and_when_to_move(
    indexed, local_store, monkeypatch, capsys
):
    dataset, _, names = indexed
    report = doctor.examine(local_store, datasets=[dataset.name], probes=5)
    assert report["is_lite"] and report["kind"] == "local"
    (entry,) = report["datasets"]
    found = {c["kind"]: c for c in entry["collections"]}
    assert {kind: c["collection"] for kind, c in found.items()} == names
    assert {kind: c["rows"] for kind, c in found.items()} == ROWS
    assert found["screen_text"]["key"] == SCREEN_TEXT.info_key
    assert {c["index_type"] for c in found.values()} == {"FLAT"}
    for c in found.values():
        assert 0 < c["p50_ms"] <= c["p99_ms"]
    assert not report["advice"]["move"] and report["advice"]["next"] == []

    monkeypatch.setattr(doctor, "LITE_MOVE_ABOVE", 20)  # as if it had grown
    report = doctor.examine(local_store, datasets=[dataset.name], probes=5)
    assert report["advice"]["move"]
    assert report["advice"]["next"] == [
        f"python -m plugin.milvus migrate --dataset {dataset.name} --to http://HOST:19530"
    ]
    assert milvus_cli(["doctor", "--dataset", dataset.name]) == 0
    printed = capsys.readouterr().out
    assert "Move to a Milvus server: YES" in printed
    for kind, name in names.items():  # all three listed with their rows
        assert f"{kind} " in printed and f"{name}: {ROWS[kind]:,} rows, FLAT" in printed
    assert f"migrate --dataset {dataset.name} --to http://HOST:19530" in printed


def test_migrate_copies_verifies_and_repoints_leaving_the_source(
    indexed, local_store, real_milvus
):
    dataset, vectors, names = indexed
    before = load_frame_index(dataset, "frames", local_store)
    expected = dataset.sort_by_similarity(vectors[7], k=10, brain_key="frames").values(
        "id"
    )
    expected_text = _text_hits(dataset, local_store)
    assert all(expected_text.values())
    try:
        result = migrate.migrate_dataset(dataset, real_milvus, source=local_store)
        assert result["verified"] and not result["source_dropped"]
        rows = {
            r["kind"]: (r["collection"], r["source_rows"], r["target_rows"])
            for r in result["collections"]
        }
        assert rows == {k: (names[k], n, n) for k, n in ROWS.items()}
        assert all(r["same_top1"] == r["checks"] > 0 for r in result["collections"])
        assert all(r["overlap_at_10"] == 1.0 for r in result["collections"])
        # the server's indexes: HNSW with the build params asked for
        server = real_milvus.milvus().client()
        built = {k: lite_index.describe(server, n)["params"] for k, n in names.items()}
        asked = {
            kind: migrate._index_params(
                {"kind": kind, "metric": "cosine"}, real_milvus.milvus(), 0
            )
            for kind in names
        }
        assert {a["index_type"] for a in asked.values()} == {"HNSW"}
        assert built == {k: a["params"] for k, a in asked.items()}
        # the source is intact
        client = local_store.milvus().client()
        assert all(client.has_collection(n) for n in names.values())
        # re-pointed: the records name the server
        dataset.reload()
        assert dataset.info[migrate.STORE_KEY]["kind"] == "server"
        for source in text_sources():
            assert source.info(dataset)["milvus_kind"] == "server"
        # the same searches, now answered by the server
        dataset._brain_cache.clear()
        moved = load_frame_index(dataset, "frames", real_milvus)
        assert moved.config.uri != before.config.uri
        got = dataset.sort_by_similarity(vectors[7], k=10, brain_key="frames").values(
            "id"
        )
        assert got == expected
        assert _text_hits(dataset, real_milvus) == expected_text
        with pytest.raises(IndexConfigError, match="already exists"):
            migrate.migrate_dataset(dataset, real_milvus, source=local_store)
    finally:
        client = real_milvus.milvus().client()
        for name in names.values():
            if client.has_collection(name):
                client.drop_collection(name)


def test_text_search_on_a_lite_collection_refitted_to_ivf_sends_nprobe(
    indexed, local_store, monkeypatch
):
    """Past the IVF threshold (lowered here, as in test_scale_lite_index.py)
    a text collection is IVF_FLAT, and its searches pass the ``nprobe`` the
    index was fitted for, not an ``ef`` that IVF ignores."""
    dataset, _, names = indexed
    monkeypatch.setattr(lite_index, "LITE_IVF_ABOVE", 1000)
    sent = _record_search_params(monkeypatch)
    name = names["transcripts"]
    hits = TRANSCRIPTS.search(dataset, SENTENCES[3], k=5, settings=local_store)
    assert hits[0].segment_id == "v:3"
    assert sent == [{"metric_type": "COSINE", "params": {"ef": 64}}]  # FLAT

    # Rows of a video deleted since (filtered out of searches), to grow it
    filler = [
        {"segment_id": f"gone:{n}", "video_id": "gone", "start": n, "end": n + 1.0}
        for n in range(1100)
    ]
    filler = [{**row, "text": f"filler {n}"} for n, row in enumerate(filler)]
    client = local_store.milvus().client()
    insert_rows(client, name, dataset.name, filler, _vectors(1100, 2, dim=384))
    index = lite_index.describe(client, name)
    assert (index["index_type"], index["params"]["nlist"]) == ("IVF_FLAT", 256)
    sent.clear()
    hits = TRANSCRIPTS.search(dataset, SENTENCES[3], k=5, settings=local_store)
    assert sent == [{"metric_type": "COSINE", "params": {"nprobe": 16}}]
    assert lite_index.nprobe_of(index) == 16
    assert hits[0].segment_id == "v:3" and len(hits) == 5
    assert {h.video_id for h in hits} == {"v"}

    # An index refitted before build params were kept (pymilvus passed them
    # flat, Lite dropped them: no nlist described) is still searched with
    # nprobe, and the next write refits it with its nlist.
    client.release_collection(name)
    client.drop_index(name, "vector")
    flat = client.prepare_index_params()
    flat.add_index(field_name="vector", **lite_index.lite_index_params("COSINE", 1100))
    client.create_index(name, flat)
    client.load_collection(name)
    assert lite_index.describe(client, name)["params"] == {}
    sent.clear()
    assert TRANSCRIPTS.search(dataset, SENTENCES[3], k=5, settings=local_store)
    assert sent == [{"metric_type": "COSINE", "params": {"nprobe": 16}}]
    insert_rows(client, name, dataset.name, filler[:1], _vectors(1, 3, dim=384))
    assert lite_index.describe(client, name)["params"] == {"nlist": 256}


def _record_search_params(monkeypatch):
    """The ``search_params`` of every pymilvus search from now on (the
    search itself runs as usual)."""
    sent, original = [], pymilvus.MilvusClient.search

    def recording(self, *args, **kwargs):
        sent.append(kwargs.get("search_params"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pymilvus.MilvusClient, "search", recording)
    return sent
