"""Transcript indexes on BOTH Milvus stores, with the offline MiniLM model.

The narrated sample video (samples/narrated_cifar10.mp4: horse, car, ship,
airplane, cat scenes of 5 s, one frame each at 0.2 FPS) is imported once and
transcribed by Whisper tiny.en; a second, generated video plays "a video
added later". The OpenAI-compatible option runs against a real local HTTP
server started here that speaks the /v1/embeddings protocol.
"""

import json
import re
import traceback
import uuid
import zlib

import fiftyone as fo
import pytest
from fiftyone import ViewField as F
from fiftyone.operators.executor import ExecutionContext, Executor
from support.fake_openai import JSONHandler, serving
from support.sample import SCENE_QUERIES, imported_sample
from support.synth import Scene, make_narrated_video, solid_image

from operators.transcripts import IndexTranscripts, SearchTranscript
from plugin.demo import SAMPLE_VIDEO
from plugin.errors import EmbeddingEndpointError, IndexNotFoundError, UnknownModelError
from plugin.milvus import MilvusUnreachableError
from plugin.models import text as text_models
from plugin.models.text import load_text_embedder
from plugin.retrieval.frame_index import IndexConfigError
from plugin.retrieval.transcript_index import (
    INFO_KEY,
    build_transcript_index,
    delete_transcript_index,
    search_transcript,
    sync_transcript_index,
    transcript_index_info,
)
from plugin.settings import Settings
from plugin.video.importer import import_videos
from plugin.video.transcripts import (
    load_transcript_segments,
    load_video_records,
    save_video_record,
)

SECOND_NARRATION = [
    "A red kite flies high over the sandy beach.",
    "An old green tractor ploughs the muddy farm.",
]
API_KEY = "sk-test-SECRET-0123456789"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The sample video imported once: ``(dataset, segments, frame_at)``."""
    with imported_sample("vrag-tx") as sample:
        yield sample


@pytest.fixture(scope="module")
def second_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("second") / "kite_tractor.mp4"
    scenes = [
        Scene(solid_image(color), text, 5.0)
        for color, text in zip([(200, 40, 40), (40, 150, 40)], SECOND_NARRATION)
    ]
    make_narrated_video(path, scenes, size=(96, 64))
    return path


def _copy(dataset):
    """A clone of ``dataset`` with its transcript records (they are keyed by
    dataset, so ``clone()`` alone does not copy them)."""
    clone = dataset.clone(f"vrag-tx-copy-{uuid.uuid4().hex[:8]}")
    for record in load_video_records(dataset).values():
        save_video_record(clone, record)
    clone.info.pop(INFO_KEY, None)
    clone.save()
    return clone


def test_search_finds_the_scene_with_its_span_and_frame(sample, any_store):
    dataset, segments, frame_at = sample
    info = build_transcript_index(dataset, settings=any_store, overwrite=True)
    try:
        assert info == transcript_index_info(dataset)
        assert (info["text_model"], info["dimension"], info["metric"]) == (
            "minilm",
            384,
            "cosine",
        )
        assert (
            info["milvus_kind"] == any_store.milvus().kind and info["num_segments"] == 5
        )
        client = any_store.milvus().client()
        assert client.has_collection(info["collection_name"])
        for query, scene in SCENE_QUERIES:
            hits = search_transcript(dataset, query, k=3, settings=any_store)
            top, expected = hits[0], segments[scene]
            assert top.segment_id == expected["segment_id"], (query, hits)
            assert top.text == expected["text"] and top.rank == 0
            assert top.video_id == expected["video_id"]
            assert (top.start, top.end) == pytest.approx(
                (expected["start"], expected["end"])
            )
            # Whisper's times are loose by ~0.5 s; the middle is in the scene
            assert scene * 5 <= (top.start + top.end) / 2 < scene * 5 + 5
            assert top.frame_ids == [frame_at[scene * 5]]  # in span or nearest
            assert len(hits) == 3 and hits[0].score > hits[1].score >= hits[2].score
        other_view = dataset.match(F("video_id") == "another-video")
        assert search_transcript(other_view, "a horse", settings=any_store) == []
    finally:
        delete_transcript_index(dataset, settings=any_store)
    assert transcript_index_info(dataset) is None
    assert not client.has_collection(info["collection_name"])


def test_sync_embeds_only_new_segments_and_drops_deleted_ones(
    sample, second_video, any_store, monkeypatch
):
    dataset = _copy(sample[0])
    try:
        info = build_transcript_index(dataset, settings=any_store)
        name, client = info["collection_name"], any_store.milvus().client()
        before = _vectors(client, name)
        import_videos([str(second_video)], dataset=dataset)
        new_video = next(
            v for v in dataset.distinct("video_id") if v not in _videos(before)
        )
        embedded = _count_embeds(monkeypatch)
        assert sync_transcript_index(dataset, settings=any_store) == {
            "added": 2,
            "updated": 0,
            "removed": 0,
        }
        new_texts = [s["text"] for s in load_transcript_segments(dataset, {new_video})]
        assert embedded == new_texts  # only the new video's segments
        after = _vectors(client, name)
        assert {k: after[k] for k in before} == before  # not recomputed
        hit = search_transcript(
            dataset, "a tractor on a farm", k=1, settings=any_store
        )[0]
        assert hit.video_id == new_video and "tractor" in hit.text.lower()

        dataset.delete_samples(dataset.match(F("video_id") == new_video))
        # Gone from search at once (filtered), from Milvus at the next sync
        found = search_transcript(
            dataset, "a tractor on a farm", k=7, settings=any_store
        )
        assert found and new_video not in {h.video_id for h in found}
        assert sync_transcript_index(dataset, settings=any_store)["removed"] == 2
        assert _vectors(client, name) == before
        embedded.clear()
        assert sync_transcript_index(dataset, settings=any_store) == {
            "added": 0,
            "updated": 0,
            "removed": 0,
        }
        assert embedded == []
        # A re-transcribed segment (same id, new text) is re-embedded alone
        record = next(iter(load_video_records(dataset).values()))
        record["segments"][2]["text"] = "A large white ship sails on the open sea."
        save_video_record(dataset, record)
        counts = sync_transcript_index(dataset, settings=any_store)
        assert counts == {"added": 0, "updated": 1, "removed": 0}
        assert embedded == ["A large white ship sails on the open sea."]
    finally:
        delete_transcript_index(dataset, settings=any_store)
        dataset.delete()


def _vectors(client, name):
    rows = client.query(
        name,
        filter='segment_id != ""',
        output_fields=["segment_id", "vector"],
        consistency_level="Strong",
    )
    return {row["segment_id"]: [round(x, 6) for x in row["vector"]] for row in rows}


def _videos(vectors):
    return {segment_id.split(":")[0] for segment_id in vectors}


def _count_embeds(monkeypatch):
    """Records every text the MiniLM embedder embeds from now on."""
    embedded, original = [], text_models.MiniLMEmbedder.embed

    def counting(self, texts):
        embedded.extend(texts)
        return original(self, texts)

    monkeypatch.setattr(text_models.MiniLMEmbedder, "embed", counting)
    return embedded


@pytest.mark.parametrize(
    "dim, metric, problem", [(7, "COSINE", "dimension 7"), (384, "L2", "metric L2")]
)
def test_existing_collection_with_other_settings_is_left_untouched(
    sample, any_store, dim, metric, problem
):
    dataset = sample[0]
    client = any_store.milvus().client()
    name = f"taken_{uuid.uuid4().hex[:8]}"
    client.create_collection(name, dimension=dim, metric_type=metric)
    client.insert(name, [{"id": 1, "vector": [0.1] * dim}])
    try:
        with pytest.raises(IndexConfigError, match=problem):
            build_transcript_index(dataset, settings=any_store, collection_name=name)
        rows = client.query(
            name, filter="id >= 0", output_fields=["id"], consistency_level="Strong"
        )
        assert [row["id"] for row in rows] == [1]
        assert transcript_index_info(dataset) is None
    finally:
        client.drop_collection(name)


def test_bad_inputs_fail_clearly(sample, local_store):
    dataset = sample[0]
    with pytest.raises(UnknownModelError, match=r"Choices: minilm, openai:<model>"):
        build_transcript_index(dataset, text_model="word2vec", settings=local_store)
    with pytest.raises(IndexNotFoundError, match="no transcript index"):
        search_transcript(dataset, "a horse", settings=local_store)
    with pytest.raises(MilvusUnreachableError, match="127.0.0.1:9"):
        build_transcript_index(
            dataset, settings=Settings.load(milvus_uri="http://127.0.0.1:9")
        )
    empty = fo.Dataset()
    with pytest.raises(ValueError, match="is empty"):
        build_transcript_index(empty, settings=local_store)
    empty.add_sample(fo.Sample(filepath="/tmp/x.jpg", video_id="v-silent"))
    save_video_record(
        empty, {"video_id": "v-silent", "status": "no_audio", "segments": []}
    )
    with pytest.raises(ValueError, match="no transcript segments.*1 no_audio"):
        build_transcript_index(empty, settings=local_store)
    empty.delete()
    assert transcript_index_info(dataset) is None

    build_transcript_index(dataset, settings=local_store)
    try:
        with pytest.raises(IndexConfigError, match="already has a transcript index"):
            build_transcript_index(dataset, settings=local_store)
        with pytest.raises(ValueError, match="empty"):
            search_transcript(dataset, "  \n ", settings=local_store)
        with pytest.raises(ValueError, match="limit is"):
            search_transcript(dataset, "horse " * 400, settings=local_store)
        with pytest.raises(ValueError, match="k must be"):
            search_transcript(dataset, "a horse", k=0, settings=local_store)
        with pytest.raises(MilvusUnreachableError, match="127.0.0.1:9"):
            search_transcript(
                dataset,
                "a horse",
                settings=Settings.load(milvus_uri="http://127.0.0.1:9"),
            )
        local_store.milvus().client().drop_collection(
            transcript_index_info(dataset)["collection_name"]
        )
        with pytest.raises(IndexNotFoundError, match="is not in Milvus at"):
            search_transcript(dataset, "a horse", settings=local_store)
    finally:
        delete_transcript_index(dataset, settings=local_store)


def test_operators_flag_bad_input_and_search_sets_the_view(sample, local_store):
    dataset, segments, frame_at = sample
    params = {
        "text_model": "openai",
        "openai_model": "mistral-embed",
        "milvus_uri": local_store.milvus().uri,
    }
    form = IndexTranscripts().resolve_input(_ctx(dataset, params)).type
    assert form.properties["openai_model"].invalid  # no endpoint URL set
    params["text_model"] = "minilm"
    result = IndexTranscripts().execute(_ctx(dataset, params, delegated=True))
    try:
        assert "Indexed 5 segment(s) with minilm" in result["summary"]
        bad = (
            SearchTranscript().resolve_input(_ctx(dataset, {"query": " ", "k": 0})).type
        )
        assert bad.properties["query"].invalid and bad.properties["k"].invalid
        ctx = _ctx(
            dataset,
            {
                "query": "a boat on the sea",
                "k": 2,
                "milvus_uri": local_store.milvus().uri,
            },
        )
        rows = SearchTranscript().execute(ctx)["hits"]
        assert rows[0]["text"] == segments[2]["text"]
        assert rows[0]["video"] == SAMPLE_VIDEO.name and rows[0]["rank"] == 1
        resync = IndexTranscripts().execute(
            _ctx(dataset, {"milvus_uri": local_store.milvus().uri}, True)
        )
        assert resync["summary"] == "Synced: 0 added, 0 updated, 0 removed segment(s)"
    finally:
        delete_transcript_index(dataset, settings=local_store)


def _ctx(dataset, params, delegated=False):
    return ExecutionContext(
        request_params={
            "dataset_name": dataset.name,
            "params": params,
            "delegated": delegated,
        },
        executor=Executor(),
        set_progress=lambda *_: None,
    )


# --- the OpenAI-compatible option, against a real local HTTP server ----------


class _EmbeddingsHandler(JSONHandler):
    """POST /v1/embeddings: 64-d hashed bag-of-words vectors, or an error."""

    def do_POST(self):
        body = self.read_json()
        self.server.requests.append(
            {"path": self.path, "auth": self.headers.get("Authorization"), **body}
        )
        if self.server.mode == "error":  # a server that echoes the key back
            key = self.headers.get("Authorization", "").removeprefix("Bearer ")
            return self.send_json(
                401, {"error": {"message": f"Invalid API key {key}", "type": "auth"}}
            )
        data = [
            {"object": "embedding", "index": n, "embedding": _bag_of_words(text)}
            for n, text in enumerate(body["input"])
        ]
        self.send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            },
        )


def _bag_of_words(text, dim=64):
    vector = [0.0] * dim
    for word in re.findall(r"[a-z]+", text.lower()):
        vector[zlib.crc32(word.encode()) % dim] += 1.0
    return vector


@pytest.fixture(scope="module")
def endpoint():
    with serving(_EmbeddingsHandler, requests=[], mode="ok") as served:
        yield served


def test_openai_endpoint_round_trip(endpoint):
    server, url = endpoint
    embedder = load_text_embedder("openai:fake-embed", _endpoint_settings(url))
    vectors = embedder.embed(["a ship", "a horse", "a ship at sea"])
    assert [len(v) for v in vectors] == [64, 64, 64]
    assert vectors[0] == _bag_of_words("a ship")
    request = server.requests[-1]
    assert (
        request["path"] == "/v1/embeddings" and request["auth"] == f"Bearer {API_KEY}"
    )
    assert (request["model"], request["encoding_format"]) == ("fake-embed", "float")
    assert API_KEY not in repr(embedder)


def test_openai_endpoint_errors_name_the_url_never_the_key(endpoint, monkeypatch):
    server, url = endpoint
    server.mode = "error"
    try:
        embedder = load_text_embedder("openai:fake-embed", _endpoint_settings(url))
        with pytest.raises(
            EmbeddingEndpointError, match="HTTP 401: Invalid API key"
        ) as error:
            embedder.embed(["a ship"])
        _assert_names_url_not_key(error.value, url)
    finally:
        server.mode = "ok"
    dead = "http://127.0.0.1:9/v1"
    with pytest.raises(EmbeddingEndpointError, match="unreachable") as error:
        load_text_embedder("openai:fake-embed", _endpoint_settings(dead)).embed(["x"])
    _assert_names_url_not_key(error.value, dead)
    monkeypatch.delenv("VRAG_EMBEDDINGS_BASE_URL", raising=False)
    with pytest.raises(EmbeddingEndpointError, match="VRAG_EMBEDDINGS_BASE_URL"):
        load_text_embedder("openai:fake-embed", _endpoint_settings(None))
    monkeypatch.delenv("VRAG_EMBEDDINGS_MODEL", raising=False)
    with pytest.raises(UnknownModelError, match="VRAG_EMBEDDINGS_MODEL"):
        load_text_embedder("openai")


def _assert_names_url_not_key(error, url):
    text = "".join(traceback.format_exception(error))
    assert url in str(error)
    assert API_KEY not in text and API_KEY not in repr(error)


def _endpoint_settings(url):
    return Settings.load(embeddings_base_url=url, embeddings_api_key=API_KEY)


def test_openai_model_through_the_transcript_index(
    sample, endpoint, local_store, monkeypatch
):
    dataset, segments, _ = sample
    _, url = endpoint
    info = build_transcript_index(
        dataset,
        text_model="openai:fake-embed",
        settings=local_store.replace(
            embeddings_base_url=url, embeddings_api_key=API_KEY
        ),
    )
    try:
        assert info["text_model"] == "openai:fake-embed" and info["dimension"] == 64
        assert API_KEY not in json.dumps(dataset.info) and url not in json.dumps(
            dataset.info
        )
        # Search takes the endpoint from the environment (or plugin secrets).
        monkeypatch.setenv("VRAG_EMBEDDINGS_BASE_URL", url)
        monkeypatch.setenv("VRAG_EMBEDDINGS_API_KEY", API_KEY)
        settings = Settings.load(milvus_uri="local")
        hits = search_transcript(dataset, "the open sea", k=2, settings=settings)
        assert hits[0].segment_id == segments[2]["segment_id"]
    finally:
        delete_transcript_index(dataset, settings=local_store)
