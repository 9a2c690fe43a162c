"""The frame-index operators, run through FiftyOne's own operator machinery."""

import uuid

import fiftyone as fo
import fiftyone.operators as foo
import pytest
from fiftyone.operators.executor import ExecutionContext
from support.tiny_models import (
    TINY_OPEN_CLIP,
    make_frame_images,
    make_tiny_open_clip_checkpoint,
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_tiny_open_clip_checkpoint(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def frames(tmp_path_factory, local_store, checkpoint):
    dataset = _frames_dataset(tmp_path_factory.mktemp("opframes"), 12)
    yield dataset, checkpoint
    dataset.delete()


def _frames_dataset(folder, count):
    dataset = fo.Dataset(f"vrag-ops-{uuid.uuid4().hex[:8]}")
    dataset.add_samples(_frame_samples(folder, count))
    return dataset


def _frame_samples(folder, count, seed=0):
    return [
        fo.Sample(
            filepath=p, video_id="v", video_path="/videos/clip.mp4", timestamp=5.0 * i
        )
        for i, p in enumerate(make_frame_images(folder, count, seed))
    ]


def _params(checkpoint, **extra):
    return {
        "model": "custom",
        "custom_model": f"open_clip:{TINY_OPEN_CLIP}",
        "pretrained": checkpoint,
        "metric": "euclidean",
        "consistency_level": "Bounded",
        "brain_key": "ops_sim",
        **extra,
    }


def _form(plugin, name, dataset, params):
    operator = foo.get_operator(f"{plugin}/{name}")
    ctx = ExecutionContext(
        request_params={"dataset_name": dataset.name, "params": params}
    )
    return operator.resolve_input(ctx).type.properties


def test_index_then_search_through_the_operators(plugin_loaded, frames):
    dataset, checkpoint = frames
    result = foo.execute_operator(
        f"{plugin_loaded}/index_frames",
        ctx={"dataset": dataset, "params": _params(checkpoint)},
    )
    assert result.error is None, result.error
    assert result.result["vectors"] == 12
    info = dataset.get_brain_info("ops_sim").config
    assert (info.metric, info.consistency_level) == ("euclidean", "Bounded")

    found = foo.execute_operator(
        f"{plugin_loaded}/search_frames",
        ctx={
            "dataset": dataset,
            "params": {"query": "a cat", "k": 5, "brain_key": "ops_sim"},
        },
    )
    assert found.error is None, found.error
    rows = found.result["hits"]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    assert all(r["video"] == "clip.mp4" for r in rows)


def test_forms_flag_bad_input_instead_of_raising(plugin_loaded, frames):
    dataset, checkpoint = frames
    if "ops_sim" not in dataset.list_brain_runs():
        foo.execute_operator(
            f"{plugin_loaded}/index_frames",
            ctx={"dataset": dataset, "params": _params(checkpoint)},
        )
    form = _form(plugin_loaded, "index_frames", dataset, _params(checkpoint))
    assert form["brain_key"].invalid  # exists, and overwrite not ticked
    assert "overwrite" in form
    ok = _form(
        plugin_loaded, "index_frames", dataset, _params(checkpoint, overwrite=True)
    )
    assert not ok["brain_key"].invalid

    bad_model = _form(
        plugin_loaded, "index_frames", dataset, _params(checkpoint, custom_model="nope")
    )
    assert bad_model["custom_model"].invalid
    assert "Choices" in bad_model["custom_model"].error_message

    search = _form(plugin_loaded, "search_frames", dataset, {"query": "  ", "k": 0})
    assert search["query"].invalid and search["k"].invalid


def test_an_index_on_a_chosen_store_is_synced_and_searched_there(
    plugin_loaded, checkpoint, tmp_path
):
    """The Milvus choice of the form reaches build, sync and search alike."""
    dataset = _frames_dataset(tmp_path / "frames", 6)
    store = {"milvus_uri": str(tmp_path / "chosen.db")}  # a Milvus Lite file
    try:
        built = foo.execute_operator(
            f"{plugin_loaded}/index_frames",
            ctx={"dataset": dataset, "params": _params(checkpoint, **store)},
        )
        assert built.error is None and "error" not in built.result, built.result
        assert built.result["vectors"] == 6

        dataset.add_samples(_frame_samples(tmp_path / "more", 2, seed=1))
        dataset.clear_cache()  # as in another process: the index loads anew
        synced = foo.execute_operator(
            f"{plugin_loaded}/sync_frame_index",
            ctx={"dataset": dataset, "params": {"brain_key": "ops_sim", **store}},
        )
        assert synced.result == {"added": 2, "removed": 0}

        search = {"query": "a cat", "k": 8, "brain_key": "ops_sim"}
        dataset.clear_cache()
        found = foo.execute_operator(
            f"{plugin_loaded}/search_frames",
            ctx={"dataset": dataset, "params": {**search, **store}},
        )
        assert len(found.result["hits"]) == 8  # the 6 built + the 2 synced

        dataset.clear_cache()
        elsewhere = foo.execute_operator(  # the default store lacks this index
            f"{plugin_loaded}/search_frames",
            ctx={"dataset": dataset, "params": search},
        )
        assert elsewhere.error is None  # shown to the user, not a traceback
        assert "ops_sim" in elsewhere.result["error"]
    finally:
        dataset.delete()
