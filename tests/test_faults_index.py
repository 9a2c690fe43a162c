"""Faults of index builds: nothing is changed by a build that cannot succeed.

A model of another dimension, a collection of another kind (the transcript
collection), a collection holding another index's vectors, a store that
fails half-way through the writing, a broken run left by an older version:
each gives a specific message, and the existing index, its embeddings field
and the other collections are exactly as they were.
"""

import fiftyone as fo
import numpy as np
import pytest
from support import faults
from support.faults import make_frames_dataset, managed_settings

from plugin.errors import IndexConfigError, StoreError, VideoRagError
from plugin.milvus import LocalMilvusServer
from plugin.retrieval.frame_index import (
    build_frame_index,
    delete_frame_index,
    embeddings_field_for,
    staging_field_for,
)
from plugin.retrieval.frame_search import search_frames
from plugin.retrieval.frame_store import index_ids, load_frame_index
from plugin.retrieval.transcript_index import (
    build_transcript_index,
    search_transcript,
    transcript_index_info,
)

KEY = "frames"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A dataset with a frame index and a transcript index, on a store of its own."""
    home = tmp_path_factory.mktemp("index-faults")
    settings = managed_settings(home)
    model = faults.tiny_clip(tmp_path_factory)
    dataset = make_frames_dataset(home / "images")
    build_frame_index(dataset, model=model, brain_key=KEY, settings=settings)
    build_transcript_index(dataset, settings=settings)
    yield dataset, settings, model
    LocalMilvusServer(settings=settings).stop()
    dataset.delete()


def _snapshot(dataset, settings):
    """Everything a failed build must leave as it was."""
    client = settings.milvus().client()
    field = embeddings_field_for(KEY)
    return {
        "runs": sorted(dataset.list_brain_runs()),
        "fields": sorted(dataset.get_field_schema()),
        "embeddings": np.asarray(dataset.values(field), dtype=np.float32),
        "collections": {
            name: client.get_collection_stats(name)["row_count"]
            for name in client.list_collections()
        },
        "frame_ids": sorted(index_ids(load_frame_index(dataset, KEY, settings))),
        "transcript": transcript_index_info(dataset),
    }


def _assert_unchanged(before, after):
    assert before.keys() == after.keys()
    for key in before:
        if key == "embeddings":
            np.testing.assert_array_equal(before[key], after[key])
        else:
            assert before[key] == after[key], key


def _make_collection(settings, name, dim, rows=0):
    """A collection shaped like brain's, ``dim``-d, with ``rows`` vectors."""
    from pymilvus import DataType

    client = settings.milvus().client()
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("sample_id", DataType.VARCHAR, max_length=64)
    index = client.prepare_index_params()
    index.add_index(field_name="vector", index_type="FLAT", metric_type="COSINE")
    client.create_collection(name, schema=schema, index_params=index)
    if rows:
        data = [
            {"pk": f"x{i}", "vector": [0.1 + i] * dim, "sample_id": f"x{i}"}
            for i in range(rows)
        ]
        client.insert(name, data)
        client.flush(name)
    return client


@pytest.mark.parametrize(
    ("collection", "dim", "rows", "build", "error"),
    [
        # Issue #16 case 4: the dimension is read from ONE frame before
        # anything is embedded or replaced (it used to overwrite the field first)
        (
            "vrag_taken_7d",
            7,
            0,
            {"brain_key": KEY, "overwrite": True},
            "dimension 7.*needs dimension 32",
        ),
        # Brain would adopt them (and skip adding ours): an index of another
        # dataset's frames
        (
            "vrag_foreign_frames",
            32,
            3,
            {"brain_key": "other"},
            "already holds 3 vectors",
        ),
    ],
    ids=["another-dimension", "other-vectors"],
)
def test_a_frame_index_into_an_unfit_collection_changes_nothing(
    setup, collection, dim, rows, build, error
):
    dataset, settings, model = setup
    client = _make_collection(settings, collection, dim=dim, rows=rows)
    try:
        before = _snapshot(dataset, settings)
        with pytest.raises(IndexConfigError, match=error):
            build_frame_index(
                dataset,
                model=model,
                collection_name=collection,
                settings=settings,
                **build,
            )
        _assert_unchanged(before, _snapshot(dataset, settings))
        assert not dataset.has_sample_field(staging_field_for(build["brain_key"]))
    finally:
        client.drop_collection(collection)


def test_a_frame_index_into_the_transcript_collection_is_refused(setup):
    """Issue #16 case 5: it used to fail with a raw DataNotMatchException and
    leave a broken brain run behind."""
    dataset, settings, model = setup
    transcripts = transcript_index_info(dataset)["collection_name"]
    before = _snapshot(dataset, settings)
    with pytest.raises(IndexConfigError, match="is a transcript index"):
        build_frame_index(
            dataset,
            model=model,
            brain_key="wrong",
            collection_name=transcripts,
            settings=settings,
        )
    _assert_unchanged(before, _snapshot(dataset, settings))
    assert search_transcript(dataset, "a red apple", 2, settings)


def test_a_transcript_index_into_a_frame_collection_is_refused(setup):
    """With overwrite=True it used to DROP any collection of that name."""
    dataset, settings, _ = setup
    frames = dataset.get_brain_info(KEY).config.collection_name
    before = _snapshot(dataset, settings)
    with pytest.raises(IndexConfigError, match="is a frame index"):
        build_transcript_index(
            dataset, collection_name=frames, overwrite=True, settings=settings
        )
    _assert_unchanged(before, _snapshot(dataset, settings))


def test_a_store_failing_half_way_leaves_no_broken_index(setup, monkeypatch):
    """The store fails after the first insert: the run and the partial
    collection are removed; search and delete of the other index work."""
    from fiftyone.brain.internal.core import milvus as brain_milvus
    from pymilvus.exceptions import MilvusException

    dataset, settings, model = setup
    original = brain_milvus.MilvusSimilarityIndex.add_to_index

    def failing(self, embeddings, sample_ids, *args, **kwargs):
        original(self, embeddings[:2], sample_ids[:2], *args, **kwargs)
        raise MilvusException(code=65535, message="disk quota exceeded (injected)")

    monkeypatch.setattr(brain_milvus.MilvusSimilarityIndex, "add_to_index", failing)
    before = _snapshot(dataset, settings)
    with pytest.raises(StoreError, match="disk quota exceeded") as caught:
        build_frame_index(dataset, model=model, brain_key="half", settings=settings)
    assert "writing frame index 'half'" in caught.value.message
    monkeypatch.undo()
    after = _snapshot(dataset, settings)
    assert "half" not in after["runs"]
    assert after["collections"] == before["collections"]  # the partial one is gone
    assert search_frames(dataset, "a red apple", 3, KEY, settings)


def test_a_broken_run_of_an_older_version_can_be_searched_and_deleted(setup):
    """What brain left when it wrote into the transcript collection: a run
    without results. Search says so; delete removes it and keeps the
    transcript collection (it is not a frame collection)."""
    import fiftyone.brain as fob

    dataset, settings, _ = setup
    transcripts = transcript_index_info(dataset)["collection_name"]
    vectors = np.random.default_rng(0).random((len(dataset), 384), dtype=np.float32)
    with pytest.raises(Exception):  # noqa: B017 - brain's raw error, as before
        fob.compute_similarity(
            dataset,
            backend="milvus",
            brain_key="broken",
            embeddings=vectors,
            collection_name=transcripts,
            **settings.milvus().credentials(),
        )
    assert "broken" in dataset.list_brain_runs()  # what brain leaves behind
    with pytest.raises(VideoRagError, match="never completed"):
        search_frames(dataset, "a red apple", 3, "broken", settings)
    delete_frame_index(dataset, "broken", settings)
    assert "broken" not in dataset.list_brain_runs()
    assert settings.milvus().client().has_collection(transcripts)
    assert search_transcript(dataset, "a red apple", 2, settings)


def test_a_sync_cut_off_before_writing_is_completed_by_the_next(setup, monkeypatch):
    """New frames get embedded, then the store fails: they have embeddings
    but are not in the index. The next sync adds them (it used to skip
    every frame that had an embedding, forever)."""
    from fiftyone.brain.internal.core import milvus as brain_milvus
    from pymilvus.exceptions import MilvusException

    from plugin.retrieval.frame_index import sync_frame_index

    dataset, settings, _ = setup
    first = dataset.first()
    new = [
        fo.Sample(filepath=first.filepath, video_id="video9", timestamp=float(i))
        for i in range(2)
    ]
    dataset.add_samples(new)
    try:

        def failing(self, *args, **kwargs):
            raise MilvusException(code=65535, message="connection reset (injected)")

        monkeypatch.setattr(brain_milvus.MilvusSimilarityIndex, "add_to_index", failing)
        with pytest.raises(VideoRagError, match="connection reset"):
            sync_frame_index(dataset, KEY, settings)
        monkeypatch.undo()
        assert dataset.exists(embeddings_field_for(KEY), False).count() == 0
        assert sync_frame_index(dataset, KEY, settings) == {"added": 2, "removed": 0}
        indexed = set(index_ids(load_frame_index(dataset, KEY, settings)))
        assert {s.id for s in new} <= indexed
    finally:
        dataset.delete_samples(new)
        sync_frame_index(dataset, KEY, settings)


def test_a_model_whose_weights_cannot_be_had_changes_nothing(setup):
    """Offline, the default CLIP's weights cannot be downloaded: a clear
    ModelLoadError naming the offline model, before anything is written."""
    from plugin.errors import ModelLoadError

    dataset, settings, _ = setup
    before = _snapshot(dataset, settings)
    with pytest.raises(ModelLoadError, match="offline"):
        build_frame_index(dataset, brain_key=KEY, overwrite=True, settings=settings)
    _assert_unchanged(before, _snapshot(dataset, settings))
