"""Curation through the real parts: the frame map, near-duplicates, storyboards.

Two narrated videos are made here and imported by the real importer at 0.2
FPS (one frame per 5 s scene): ``abacbd`` shows the patterns A B A C B D,
``c`` shows C once more. The frames are indexed with the offline LiT model
on the managed local Milvus store (it tells these patterns apart: cosine
distances 0.27-0.82 between scenes, ~0 between repeats), and the
transcripts get their own index. So the near-duplicate sets are known in
advance: {A, A}, {B, B}, {C, C'} (the last one across videos).

The tests run in file order; the deletion test comes last (it deletes).
"""

import asyncio
import uuid

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types
import numpy as np
import pytest
from fiftyone.operators.executor import resolve_type
from fiftyone.operators.registry import OperatorRegistry
from PIL import Image
from sklearn.decomposition import PCA
from support.synth import Scene, make_narrated_video

from plugin.curation.duplicates import (
    DISTANCE_FIELD,
    SAVED_VIEW,
    check_threshold,
    delete_extras,
    duplicate_sets,
    find_duplicates,
    tag_extras,
)
from plugin.curation.frame_map import compute_frame_map, default_method
from plugin.curation.storyboard import (
    build_storyboard,
    check_k,
    pick_representatives,
    storyboard_ids,
)
from plugin.errors import InvalidInputError
from plugin.models.image_text import OFFLINE_MODEL
from plugin.retrieval.frame_index import (
    build_frame_index,
    delete_frame_index,
    index_ids,
    load_frame_index,
    sync_frame_index,
)
from plugin.retrieval.screen_text_index import SCREEN_TEXT, screen_text_spans
from plugin.retrieval.text_index import video_ids
from plugin.retrieval.transcript_index import (
    build_transcript_index,
    delete_transcript_index,
    transcript_index_info,
)
from plugin.video.alignment import segment_frame_ids
from plugin.video.importer import import_videos
from plugin.video.screen_text import TEXT_FIELD as SCREEN_TEXT_FIELD
from plugin.video.transcripts import load_transcript_segments, load_video_records

KEY = "frame_sim"
SIZE = (160, 120)
NARRATION = {
    "A": "A red checkerboard covers the floor.",
    "B": "A yellow sun rises over the hill.",
    "A2": "The checkerboard comes back again.",
    "C": "Blue stripes cross the yellow wall.",
    "B2": "The sun sets behind the hill.",
    "D": "Black bars stand in a row.",
    "C2": "Stripes once more on the wall.",
}


def _checker():
    return _draw((255, 255, 255), (200, 0, 0), lambda x, y: (x // 40 + y // 40) % 2)


def _disc():
    return _draw(
        (0, 90, 0), (250, 250, 0), lambda x, y: (x - 160) ** 2 + (y - 120) ** 2 < 80**2
    )


def _bars():
    return _draw((250, 200, 0), (0, 0, 120), lambda x, y: (y // 40) % 2)


def _columns():
    return _draw((240, 240, 240), (20, 20, 20), lambda x, y: (x // 20) % 2)


def _draw(back, front, inside):
    pixels = np.zeros((240, 320, 3), dtype=np.uint8)
    ys, xs = np.mgrid[0:240, 0:320]
    pixels[:] = back
    pixels[inside(xs, ys).astype(bool)] = front
    return Image.fromarray(pixels)


SCENES = {"A": _checker, "B": _disc, "C": _bars, "D": _columns}
FIRST = ["A", "B", "A2", "C", "B2", "D"]  # scene names; "A2" shows A again
SECOND = ["C2"]


def _video(path, names):
    scenes = [Scene(SCENES[name[0]](), NARRATION[name], 5.0) for name in names]
    make_narrated_video(path, scenes, size=SIZE)
    return str(path)


@pytest.fixture(scope="module")
def curated(tmp_path_factory, local_store):
    """The two videos imported, frame- and transcript-indexed; yields
    ``(dataset, scene_of)`` with ``scene_of[sample id]`` its scene name."""
    root = tmp_path_factory.mktemp("curation")
    paths = [_video(root / "abacbd.mp4", FIRST), _video(root / "c.mp4", SECOND)]
    dataset = fo.Dataset(f"vrag-curation-{uuid.uuid4().hex[:8]}")
    report = import_videos(paths, dataset=dataset, fps=0.2)
    assert not report.failed, report.summary_lines()
    build_frame_index(dataset, model=OFFLINE_MODEL, brain_key=KEY, settings=local_store)
    build_transcript_index(dataset, settings=local_store)
    ordered = dataset.sort_by("timestamp")
    scene_of = {}
    for path, names in zip(paths, (FIRST, SECOND), strict=True):
        ids = ordered.match({"video_path": path}).values("id")
        assert len(ids) == len(names), f"{path}: {len(ids)} frames"
        scene_of.update(zip(ids, names))
    yield dataset, scene_of
    if KEY in dataset.list_brain_runs():
        delete_frame_index(dataset, KEY, local_store)
    if transcript_index_info(dataset):
        delete_transcript_index(dataset, local_store)
    dataset.delete()


def _pairwise(points):
    return np.linalg.norm(points[:, None] - points[None], axis=2)


def test_the_frame_map_projects_the_index_vectors_and_follows_syncs(
    curated, local_store
):
    dataset, scene_of = curated
    assert default_method() == "umap"  # umap-learn is a requirement
    made = compute_frame_map(dataset, KEY, method="pca")
    assert made == {
        "map_key": "frame_sim_map",
        "method": "pca",
        "frames": 7,
        "added": 7,
        "refit": True,
        "unmapped": 0,
    }
    config = dataset.get_brain_info("frame_sim_map").config
    assert (config.type, config.method) == ("visualization", "pca")
    assert config.embeddings_field == "frame_sim_embedding"  # the index's vectors
    results = dataset.load_brain_results("frame_sim_map")
    ids, vectors = dataset.values(["id", "frame_sim_embedding"])
    order = [list(results.sample_ids).index(i) for i in ids]
    points = results.points[order]
    expected = PCA(2, random_state=51).fit_transform(np.asarray(vectors))
    np.testing.assert_allclose(_pairwise(points), _pairwise(expected), atol=1e-3)
    at = {scene_of[i]: p for i, p in zip(ids, points, strict=True)}
    spread = _pairwise(points).max()
    assert np.linalg.norm(at["A"] - at["A2"]) < 0.05 * spread  # a repeat: one spot

    # A frame imported since: sync the index, re-run: placed on the same map
    before = results.points.copy()
    extra = dataset.match({"video_path": {"$regex": "/c.mp4$"}}).first().copy()
    extra["video_id"], extra["frame_sim_embedding"] = "extra", None
    dataset.add_sample(extra)
    assert sync_frame_index(dataset, KEY, settings=local_store)["added"] == 1
    updated = compute_frame_map(dataset, KEY)
    assert (updated["method"], updated["refit"]) == ("pca", False)
    assert (updated["added"], updated["frames"]) == (1, 8)
    after = dataset.load_brain_results("frame_sim_map").points
    np.testing.assert_allclose(after[: len(before)], before)  # the same map

    # A deleted frame leaves the map by a refit
    dataset.delete_samples(extra.id)
    assert sync_frame_index(dataset, KEY, settings=local_store)["removed"] == 1
    refit = compute_frame_map(dataset, KEY)
    assert (refit["refit"], refit["frames"]) == (True, 7)
    assert dataset.list_brain_runs(type="visualization") == ["frame_sim_map"]
    switched = compute_frame_map(dataset, KEY, method="tsne")  # another method
    assert switched["refit"]
    assert dataset.get_brain_info("frame_sim_map").config.method == "tsne"


def test_near_duplicate_sets_are_exactly_the_repeated_scenes(curated):
    dataset, scene_of = curated
    found = find_duplicates(dataset, KEY)
    assert (found["sets"], found["extras"], found["cross_video"]) == (3, 3, 1)
    sets = duplicate_sets(dataset)
    named = sorted([scene_of[i] for i in ids] for ids in sets.values())
    assert named == [["A", "A2"], ["B", "B2"], ["C", "C2"]]  # the first one kept
    assert dataset.load_saved_view(SAVED_VIEW)._is_dynamic_groups

    assert tag_extras(dataset) == 3
    tagged = dataset.match_tags("near_duplicate").values("id")
    assert sorted(scene_of[i] for i in tagged) == ["A2", "B2", "C2"]
    dataset.untag_samples("near_duplicate")

    for bad in (0, 2.5, "x", None):
        with pytest.raises(InvalidInputError, match="cosine distance"):
            check_threshold(bad)


def test_storyboards_are_k_distinct_frames_per_video(curated):
    dataset, scene_of = curated
    made = build_storyboard(dataset, KEY, k=3)
    assert (made["videos"], made["frames"]) == (2, 4)  # 3 + the 1 of video "c"
    first_video = dataset.match({"video_path": {"$regex": "abacbd.mp4$"}})
    picked = storyboard_ids(dataset, first_video.distinct("video_id"))
    scenes = [scene_of[i][0] for i in picked]
    assert len(set(picked)) == 3 and len(set(scenes)) == 3, scenes
    shares = dataset.select(picked).values("storyboard")
    assert sum(shares) == pytest.approx(1.0)  # together they stand for all 6
    assert len(dataset.load_saved_view("storyboard")) == 4

    build_storyboard(first_video, KEY, k=6)  # k >= frames: every frame
    assert len(storyboard_ids(dataset, first_video.distinct("video_id"))) == 6
    assert len(storyboard_ids(dataset)) == 7

    same = np.ones((5, 4))  # identical frames still give k distinct picks
    assert len({i for i, _ in pick_representatives(same, 3)}) == 3
    for bad in (0, 51, 2.0):
        with pytest.raises(InvalidInputError):
            check_k(bad)


def test_operators_validate_their_forms_and_run(curated, plugin_loaded):
    dataset, scene_of = curated

    def form(name, params):
        request = {"dataset_name": dataset.name, "params": params}
        prop = asyncio.run(
            resolve_type(OperatorRegistry(), f"{plugin_loaded}/{name}", request)
        )
        assert isinstance(prop, types.Property), getattr(prop, "error", prop)
        return prop.type.properties

    def run(name, params, view=None):
        ctx = {"dataset": dataset, "params": {"brain_key": KEY, **params}}
        if view is not None:
            ctx["view"] = view
        result = foo.execute_operator(f"{plugin_loaded}/{name}", ctx=ctx)
        assert result.error is None, result.error
        assert "error" not in result.result, result.result
        return result.result

    assert form("find_duplicate_frames", {"threshold": 3.0})["threshold"].invalid
    delete = form("find_duplicate_frames", {"action": "delete"})
    assert delete["confirm"].invalid and "milvus_uri" in delete
    assert not form("find_duplicate_frames", {"action": "delete", "confirm": True})[
        "confirm"
    ].invalid
    assert form("representative_frames", {"k": 0})["k"].invalid
    assert form("compute_frame_map", {"brain_key": KEY, "map_key": "a b"})[
        "map_key"
    ].invalid
    assert form("compute_frame_map", {"brain_key": KEY})["method"].default == "umap"

    assert run("find_duplicate_frames", {"action": "show"})["sets"] == 3
    assert run("representative_frames", {"k": 2})["frames"] == 3
    mapped = run("compute_frame_map", {"method": "pca", "map_key": "ops_map"})
    assert (mapped["frames"], mapped["method"]) == (7, "pca")
    dataset.delete_brain_run("ops_map")

    lasso = dataset.limit(2)  # what a lasso in the Embeddings panel leaves
    assert run("select_shown_frames", {}, view=lasso) == {"selected": 2}
    assert not form("select_shown_frames", {})["shown"].invalid


def _check_screen_text_follows_frames(dataset, done, spans_before, store):
    spans = {s["segment_id"] for s in screen_text_spans(dataset, video_ids(dataset))}
    assert 0 < len(spans) < len(spans_before)  # spans merged or went away
    removed = done["text_rows_removed"][SCREEN_TEXT.kind]
    assert removed == len({s["segment_id"] for s in spans_before} - spans)
    name = SCREEN_TEXT.info(dataset)["collection_name"]
    rows = (
        store.milvus()
        .client()
        .query(name, filter="start >= 0", output_fields=["segment_id"])
    )
    assert {r["segment_id"] for r in rows} == spans


def test_deleting_extras_syncs_every_index_and_keeps_the_rest(curated, local_store):
    dataset, scene_of = curated
    records = load_video_records(dataset)
    compute_frame_map(dataset, KEY, method="pca")
    find_duplicates(dataset, KEY)
    kept = set(dataset.values("id")) - set(dataset.exists(DISTANCE_FIELD).values("id"))
    c_video = dataset.match({"video_path": {"$regex": "/c.mp4$"}}).first().video_id
    # on-screen text: each frame shows its scene's slide; one span per run
    ids = dataset.values("id")
    dataset.set_values(SCREEN_TEXT_FIELD, [f"SLIDE {scene_of[i]}" for i in ids])
    SCREEN_TEXT.build(dataset, settings=local_store)
    spans_before = screen_text_spans(dataset, video_ids(dataset))

    try:
        done = delete_extras(dataset, settings=local_store)
        _check_screen_text_follows_frames(dataset, done, spans_before, local_store)
    finally:
        SCREEN_TEXT.delete(dataset, settings=local_store)

    assert done["deleted"] == 3
    assert done["videos_emptied"] == [c_video]
    assert done["frame_indexes"] == {KEY: 3}
    assert done["transcript_segments_removed"] == 1  # video "c"'s only line
    assert done["maps"] == ["frame_sim_map"]
    assert set(dataset.values("id")) == kept
    assert sorted(scene_of[i] for i in kept) == ["A", "B", "C", "D"]
    # Milvus: the frame index holds exactly the frames left
    index = load_frame_index(dataset, KEY, local_store)
    assert sorted(index_ids(index)) == sorted(kept)
    # the transcript index: the first video's 6 lines, not the emptied video's
    info = transcript_index_info(dataset)
    client = local_store.milvus().client()
    rows = client.query(
        info["collection_name"], filter="start >= 0", output_fields=["video_id"]
    )
    assert len(rows) == 6
    assert c_video not in {r["video_id"] for r in rows}
    # the records keep every transcript line; they count the frames left
    after = load_video_records(dataset)
    for video_id, record in records.items():
        assert after[video_id]["segments"] == record["segments"]
    assert after[c_video]["num_frames"] == 0
    # every line of the first video is still carried by a frame, by the rule
    segments = load_transcript_segments(dataset, [r for r in records if r != c_video])
    spans = [(s["segment_id"], s["video_id"], s["start"], s["end"]) for s in segments]
    carriers = segment_frame_ids(dataset, spans)
    texts = dict(zip(*dataset.values(["id", "transcript"])))
    for segment in segments:
        frames = carriers[segment["segment_id"]]
        assert frames, segment
        assert all(segment["text"].strip() in texts[f] for f in frames), segment
    # the marks are gone; the map was fitted again on the frames left
    assert len(dataset.exists(DISTANCE_FIELD)) == 0
    assert dataset.load_brain_results("frame_sim_map").total_index_size == 4
