"""Frame indexes on Milvus through fiftyone-brain, on BOTH stores.

Models here are tiny and randomly initialised (no CLIP weights reach these
machines): they prove the code paths and the index, not search quality,
which the offline-model tests measure.
"""

import os
import subprocess
import sys
import uuid

import fiftyone as fo
import numpy as np
import pytest
from support.tiny_models import (
    TINY_ALTCLIP_DIM,
    TINY_OPEN_CLIP,
    TINY_OPEN_CLIP_DIM,
    make_frame_images,
    make_tiny_altclip,
    make_tiny_open_clip_checkpoint,
)

from plugin.milvus import MilvusUnreachableError
from plugin.models.image_text import resolve_image_text_model
from plugin.retrieval.frame_index import (
    IndexConfigError,
    build_frame_index,
    delete_frame_index,
    embeddings_field_for,
    index_ids,
    sync_frame_index,
)
from plugin.retrieval.frame_search import search_frames
from plugin.settings import Settings

N_FRAMES = 60


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """The registry name + pretrained path of a tiny random OpenCLIP model."""
    path = make_tiny_open_clip_checkpoint(tmp_path_factory.mktemp("oc"))
    return resolve_image_text_model(f"open_clip:{TINY_OPEN_CLIP}", pretrained=path)


@pytest.fixture(scope="module")
def frames_dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("frames")
    dataset = fo.Dataset(f"vrag-frames-{uuid.uuid4().hex[:8]}")
    samples = [
        fo.Sample(filepath=p, video_id="v1", timestamp=5.0 * i)
        for i, p in enumerate(make_frame_images(folder, N_FRAMES))
    ]
    dataset.add_samples(samples)
    yield dataset
    dataset.delete()


def _build(dataset, spec, store, **kwargs):
    key = kwargs.pop("brain_key", f"k{uuid.uuid4().hex[:8]}")
    return build_frame_index(
        dataset, model=spec, brain_key=key, settings=store, **kwargs
    ), key


def _tiny_spec_name(spec):
    return spec.name, spec.model_kwargs["pretrained"]


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dotproduct"])
@pytest.mark.parametrize("consistency", ["Strong", "Bounded"])
def test_metric_and_consistency_on_both_stores(
    frames_dataset, tiny_clip, any_store, metric, consistency
):
    index, key = _build(
        frames_dataset,
        tiny_clip,
        any_store,
        metric=metric,
        consistency_level=consistency,
    )
    try:
        assert index.total_index_size == N_FRAMES
        info = frames_dataset.get_brain_info(key).config
        assert (info.metric, info.consistency_level) == (metric, consistency)
        for k in (5, 50):
            hits = search_frames(
                frames_dataset, "a red car", k=k, brain_key=key, settings=any_store
            )
            assert len(hits) == k
            scores = [h.score for h in hits]
            best_first = sorted(scores, reverse=metric != "euclidean")
            assert scores == pytest.approx(best_first)
        # Query by a frame (the App's "sort by similarity"): the best match
        # is the one brute force finds (for dotproduct it need not be itself).
        target = frames_dataset.skip(7).first()
        view = frames_dataset.sort_by_similarity(target.id, k=5, brain_key=key)
        assert view.first().id == _brute_force_best(frames_dataset, key, target, metric)
    finally:
        delete_frame_index(frames_dataset, key, settings=any_store)


def _brute_force_best(dataset, key, target, metric):
    ids, vectors = dataset.values(["id", embeddings_field_for(key)])
    vectors = np.asarray(vectors)
    query = np.asarray(target[embeddings_field_for(key)])
    if metric == "euclidean":
        return ids[int(np.argmin(np.linalg.norm(vectors - query, axis=1)))]
    if metric == "cosine":
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return ids[int(np.argmax(vectors @ query))]


def test_same_top_k_from_both_stores(
    frames_dataset, tiny_clip, local_store, real_milvus
):
    tops = []
    for store in (local_store, real_milvus):
        _, key = _build(frames_dataset, tiny_clip, store, consistency_level="Strong")
        hits = search_frames(
            frames_dataset, "a ship at sea", k=10, brain_key=key, settings=store
        )
        tops.append([h.sample_id for h in hits])
        delete_frame_index(frames_dataset, key, settings=store)
    assert tops[0] == tops[1]


def test_openclip_random_init_tiny_config_gives_right_shape_through_index(
    frames_dataset, tiny_clip, local_store
):
    index, key = _build(frames_dataset, tiny_clip, local_store)
    try:
        stored = frames_dataset.values(embeddings_field_for(key))
        assert np.asarray(stored).shape == (N_FRAMES, TINY_OPEN_CLIP_DIM)
        assert index.supports_prompts
        assert len(set(index_ids(index))) == N_FRAMES
    finally:
        delete_frame_index(frames_dataset, key, settings=local_store)


def test_altclip_random_init_tiny_config_gives_right_shape_through_index(
    frames_dataset, local_store, tmp_path
):
    spec = resolve_image_text_model("altclip")
    tiny = make_tiny_altclip(tmp_path / "altclip")
    spec = type(spec)(spec.name, spec.zoo_name, {"name_or_path": tiny}, "tiny")
    index, key = _build(frames_dataset, spec, local_store)
    try:
        stored = frames_dataset.values(embeddings_field_for(key))
        assert np.asarray(stored).shape == (N_FRAMES, TINY_ALTCLIP_DIM)
        hits = search_frames(frames_dataset, "a photo of a horse", k=5, brain_key=key)
        assert len(hits) == 5  # the text path works (FiftyOne's wrapper fails)
    finally:
        delete_frame_index(frames_dataset, key, settings=local_store)


def test_unknown_model_lists_the_choices():
    with pytest.raises(ValueError, match="Choices: clip-vit-b32, altclip"):
        resolve_image_text_model("no-such-model")


def test_existing_collection_with_other_dimension_is_left_untouched(
    frames_dataset, tiny_clip, local_store
):
    client = local_store.milvus().client()
    name = f"taken_{uuid.uuid4().hex[:8]}"
    client.create_collection(name, dimension=7, metric_type="COSINE")
    client.insert(name, [{"id": 1, "vector": [0.1] * 7}])
    with pytest.raises(IndexConfigError, match="dimension 7"):
        _build(frames_dataset, tiny_clip, local_store, collection_name=name)
    assert client.query(name, filter="id >= 0", output_fields=["id"])[0]["id"] == 1
    client.drop_collection(name)


def test_brain_key_that_exists_is_never_silently_replaced(
    frames_dataset, tiny_clip, local_store
):
    _, key = _build(frames_dataset, tiny_clip, local_store)
    try:
        with pytest.raises(IndexConfigError, match="already exists"):
            _build(frames_dataset, tiny_clip, local_store, brain_key=key)
        index, _ = _build(
            frames_dataset, tiny_clip, local_store, brain_key=key, overwrite=True
        )
        assert index.total_index_size == N_FRAMES
    finally:
        delete_frame_index(frames_dataset, key, settings=local_store)


def test_bad_inputs_fail_clearly(frames_dataset, tiny_clip, local_store):
    with pytest.raises(ValueError, match="empty"):
        _build(frames_dataset.limit(0), tiny_clip, local_store)
    with pytest.raises(ValueError, match="Unknown metric"):
        _build(frames_dataset, tiny_clip, local_store, metric="hamming")
    with pytest.raises(ValueError, match="consistency"):
        _build(frames_dataset, tiny_clip, local_store, consistency_level="Weak")
    with pytest.raises(MilvusUnreachableError, match="127.0.0.1:9"):
        _build(
            frames_dataset, tiny_clip, Settings.load(milvus_uri="http://127.0.0.1:9")
        )
    assert not [k for k in frames_dataset.list_brain_runs() if k.startswith("k")]


def test_empty_and_very_long_queries_are_refused(
    frames_dataset, tiny_clip, local_store
):
    _, key = _build(frames_dataset, tiny_clip, local_store)
    try:
        with pytest.raises(ValueError, match="empty"):
            search_frames(frames_dataset, "   ", brain_key=key)
        with pytest.raises(ValueError, match="limit is"):
            search_frames(frames_dataset, "horse " * 400, brain_key=key)
    finally:
        delete_frame_index(frames_dataset, key, settings=local_store)


def test_sync_adds_new_frames_and_drops_deleted_ones(tiny_clip, local_store, tmp_path):
    dataset = fo.Dataset(f"vrag-sync-{uuid.uuid4().hex[:8]}")
    paths = make_frame_images(tmp_path, 30, seed=3)
    dataset.add_samples([fo.Sample(filepath=p) for p in paths[:20]])
    index, key = _build(dataset, tiny_clip, local_store)
    field = embeddings_field_for(key)
    before = {s.id: s[field] for s in dataset}
    try:
        dataset.add_samples([fo.Sample(filepath=p) for p in paths[20:]])
        dataset.delete_samples(dataset.limit(3))
        assert sync_frame_index(dataset, key, settings=local_store) == {
            "added": 10,
            "removed": 3,
        }
        kept = {s.id: s[field] for s in dataset if s.id in before}
        assert all(np.array_equal(kept[i], before[i]) for i in kept)  # not recomputed
        assert sorted(index_ids(dataset.load_brain_results(key))) == sorted(
            dataset.values("id")
        )
        assert sync_frame_index(dataset, key, settings=local_store) == {
            "added": 0,
            "removed": 0,
        }
    finally:
        delete_frame_index(dataset, key, settings=local_store)
        dataset.delete()


_APP_STANDIN = """
import sys
sys.path.insert(0, "tests")
from support.tiny_models import register_tiny_open_clip
register_tiny_open_clip(sys.argv[3])
import fiftyone as fo
from plugin.runtime import prepare_process
prepare_process()  # what the plugin's register() does in the App server
dataset = fo.load_dataset(sys.argv[1])
view = dataset.sort_by_similarity("a horse", k=5, brain_key=sys.argv[2])
print(len(view))
"""


def test_app_process_and_notebook_process_use_the_same_index(
    tiny_clip, local_store, tmp_path
):
    """A second process searches the index by text the way the App's search
    bar does, while this process adds frames to it."""
    dataset = fo.Dataset(f"vrag-shared-{uuid.uuid4().hex[:8]}")
    dataset.persistent = True
    paths = make_frame_images(tmp_path, 25, seed=5)
    dataset.add_samples([fo.Sample(filepath=p) for p in paths[:20]])
    _, key = _build(dataset, tiny_clip, local_store)
    configs = os.path.dirname(tiny_clip.model_kwargs["pretrained"]) + "/configs"
    try:
        app = subprocess.Popen(
            [sys.executable, "-c", _APP_STANDIN, dataset.name, key, configs],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
        dataset.add_samples([fo.Sample(filepath=p) for p in paths[20:]])
        assert sync_frame_index(dataset, key, settings=local_store)["added"] == 5
        out, err = app.communicate(timeout=180)
        assert app.returncode == 0, err[-2000:]
        assert out.strip().splitlines()[-1] == "5"
        assert dataset.load_brain_results(key).total_index_size == 25
    finally:
        delete_frame_index(dataset, key, settings=local_store)
        dataset.delete()


def test_search_within_a_large_view_matches_brains_restricted_search(
    frames_dataset, tiny_clip, local_store, monkeypatch
):
    """Past VIEW_EXPR_MAX_IDS frames a view is searched by asking the whole
    index deeper and keeping the view's hits (brain's `pk in [...]` costs
    ~10 us per id): the same frames as brain's restricted search, for a dense
    view and for a sparse one that needs a deeper second ask."""
    from plugin.retrieval import frame_search

    _, key = _build(frames_dataset, tiny_clip, local_store, consistency_level="Strong")
    query = "a ship at sea"
    try:
        ranking = [
            h.sample_id
            for h in search_frames(frames_dataset, query, N_FRAMES, key, local_store)
        ]
        assert len(ranking) == N_FRAMES
        views = {
            "dense": (frames_dataset.select(ranking[::2]), 10),
            "sparse": (frames_dataset.select(ranking[-5:]), 2),
        }
        asks = []
        nearest = frame_search.brain_fixes.nearest

        def spy(index, text, k):
            asks.append((index.has_view, k))
            return nearest(index, text, k)

        monkeypatch.setattr(frame_search.brain_fixes, "nearest", spy)
        for name, (view, k) in views.items():
            found = {}
            for threshold in (10**9, 0):  # brain's expression, then ours
                monkeypatch.setattr(frame_search, "VIEW_EXPR_MAX_IDS", threshold)
                asks.clear()
                hits = search_frames(view, query, k, key, local_store)
                found[threshold] = [h.sample_id for h in hits]
            assert len(found[0]) == k, name
            assert set(found[0]) <= set(view.values("id")), name
            assert found[0] == found[10**9], name
            assert all(not restricted for restricted, _ in asks), name
            assert asks[0][1] >= 4 * k, name  # asked deeper than k
        # the sparse view's frames rank last: the first ask (depth 48) missed
        # them and a second, deeper one found them
        assert [depth for _, depth in asks] == [48, 192]
        assert not set(ranking[-5:]) & set(ranking[:48])
    finally:
        delete_frame_index(frames_dataset, key, settings=local_store)
