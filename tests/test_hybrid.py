"""Hybrid retrieval (frame index + transcript index, fused) on BOTH stores.

The frame index uses a tiny RANDOM OpenCLIP model (no CLIP weights reach
these machines), so image scores are noise; the transcript index uses the
real offline MiniLM. A query about a scene's narration must then put that
scene's frame first thanks to the transcript evidence.
"""

import uuid

import pytest
from support.sample import SCENE_QUERIES, imported_sample
from support.tiny_models import make_tiny_open_clip_checkpoint

from plugin.errors import IndexNotFoundError
from plugin.models.image_text import resolve_image_text_model
from plugin.retrieval.frame_index import build_frame_index, delete_frame_index
from plugin.retrieval.frame_search import search_frames
from plugin.retrieval.fusion import confident
from plugin.retrieval.hits import Frame, FrameHit, TextHit
from plugin.retrieval.hybrid import available_indexes, fuse, hybrid_search
from plugin.retrieval.transcript_index import (
    build_transcript_index,
    delete_transcript_index,
    search_transcript,
)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """The registry name + pretrained path of a tiny random OpenCLIP model."""
    path = make_tiny_open_clip_checkpoint(tmp_path_factory.mktemp("oc"))
    return resolve_image_text_model("open_clip:vrag-tiny-test", pretrained=path)


@pytest.fixture(scope="module")
def sample():
    """The sample video imported once: ``(dataset, segments, frame_at)``."""
    with imported_sample("vrag-hybrid") as sample:
        yield sample


@pytest.fixture
def indexes(sample, tiny_clip, any_store):
    """Both indexes of the sample dataset on ``any_store``; yields the brain key."""
    dataset = sample[0]
    key = f"h{uuid.uuid4().hex[:8]}"
    build_frame_index(
        dataset,
        model=tiny_clip,
        brain_key=key,
        settings=any_store,
        consistency_level="Strong",
    )
    build_transcript_index(dataset, settings=any_store, overwrite=True)
    yield key
    delete_frame_index(dataset, key, settings=any_store)
    delete_transcript_index(dataset, settings=any_store)


def test_transcript_evidence_puts_the_scene_frame_first(sample, indexes, any_store):
    dataset, segments, frame_at = sample
    image_ranks = []
    for query, scene in SCENE_QUERIES:
        # text_k=1: the best transcript hit only, so its evidence decides
        fused = hybrid_search(
            dataset, query, k=5, brain_key=indexes, settings=any_store, text_k=1
        )
        top = fused[0]
        assert top.sample_id == frame_at[scene * 5], query
        assert [h.segment_id for h in top.text_hits] == [segments[scene]["segment_id"]]
        assert top.frame_hit is not None and top.frame_hit.sample_id == top.sample_id
        assert top.score == pytest.approx(1 / 61 + 1 / (61 + top.frame_hit.rank))
        assert all(not hit.text_hits for hit in fused[1:])  # image evidence only
        assert [h.sample_id for h in fused[1:]] == [
            h.sample_id
            for h in search_frames(dataset, query, 5, indexes, any_store)
            if h.sample_id != top.sample_id
        ]
        image_ranks.append(top.frame_hit.rank)
    # Image scores are noise: some scene frames were NOT the image index's
    # first, and the transcript evidence moved them up.
    assert any(rank > 0 for rank in image_ranks), image_ranks
    _check_default_fusion(dataset, indexes, any_store)


def _check_default_fusion(dataset, brain_key, store):
    """Defaults: RRF over k frame hits and the k transcript hits that are
    confident (at least half the best one's similarity), with evidence."""
    query = "a boat sailing on the ocean"
    fused = hybrid_search(dataset, query, k=10, brain_key=brain_key, settings=store)
    frames = search_frames(dataset, query, k=10, brain_key=brain_key, settings=store)
    texts = confident(search_transcript(dataset, query, k=10, settings=store))
    assert len(fused) == 5  # every frame is in the frame list
    for hit in fused:
        frame_rank = next(f.rank for f in frames if f.sample_id == hit.sample_id)
        covering = [t for t in texts if hit.sample_id in t.frame_ids]
        assert hit.frame_hit.rank == frame_rank
        assert [t.segment_id for t in hit.text_hits] == [t.segment_id for t in covering]
        expected = 1 / (61 + frame_rank)
        expected += 1 / (61 + covering[0].rank) if covering else 0
        assert hit.score == pytest.approx(expected)
    assert [h.score for h in fused] == sorted((h.score for h in fused), reverse=True)


def test_one_index_is_enough_and_neither_is_a_clear_error(
    sample, tiny_clip, local_store
):
    dataset, segments, frame_at = sample
    build_transcript_index(dataset, settings=local_store, overwrite=True)
    try:
        assert available_indexes(dataset, "no_such_key") == {
            "frames": False,
            "transcripts": True,
            "screen_text": False,
        }
        fused = hybrid_search(
            dataset,
            "a kitten staring at the camera",
            brain_key="no_such_key",
            settings=local_store,
        )
        assert fused[0].sample_id == frame_at[20]
        assert all(h.frame_hit is None and h.text_hits for h in fused)
        assert all(h.frame.filepath and h.frame.timestamp is not None for h in fused)
    finally:
        delete_transcript_index(dataset, settings=local_store)
    key = f"h{uuid.uuid4().hex[:8]}"
    build_frame_index(dataset, model=tiny_clip, brain_key=key, settings=local_store)
    try:
        fused = hybrid_search(
            dataset, "a horse", k=3, brain_key=key, settings=local_store
        )
        frames = search_frames(
            dataset, "a horse", k=3, brain_key=key, settings=local_store
        )
        assert [h.sample_id for h in fused] == [h.sample_id for h in frames]
        assert all(h.frame_hit is not None and not h.text_hits for h in fused)
    finally:
        delete_frame_index(dataset, key, settings=local_store)
    with pytest.raises(
        IndexNotFoundError, match="neither a frame index 'frame_sim' nor"
    ):
        hybrid_search(dataset, "a horse", settings=local_store)
    with pytest.raises(ValueError, match="empty"):
        hybrid_search(dataset, "   ", settings=local_store)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        hybrid_search(dataset, "a horse", k=0, settings=local_store)


def test_fuse_uses_each_frames_best_rank_per_list():
    frames = [FrameHit("a", 0.9, 0), FrameHit("b", 0.8, 1)]
    rows = {i: Frame(i, filepath=f"{i}.jpg") for i in "bc"}
    texts = [
        TextHit("s1", 0.7, 0, "one", "v", 0.0, 2.0, frame_ids=["b", "c"], frames=rows),
        TextHit("s2", 0.5, 1, "two", "v", 1.0, 3.0, frame_ids=["b"], frames=rows),
    ]
    fused = fuse(frames, texts, k=10, rrf_k=0)
    assert [(h.sample_id, h.score) for h in fused] == [
        ("b", pytest.approx(1 / 2 + 1 / 1)),
        ("a", pytest.approx(1 / 1)),  # ties with c: a's single rank is as good,
        ("c", pytest.approx(1 / 1)),  # then the id decides
    ]
    assert [t.segment_id for t in fused[0].text_hits] == ["s1", "s2"]
    assert fused[1].frame_hit is frames[0] and fused[2].frame_hit is None
    # each fused hit carries its frame's fields, from whichever hit had them
    assert [h.frame for h in fused] == [frames[1], frames[0], rows["c"]]
    assert len(fuse(frames, texts, k=1)) == 1
