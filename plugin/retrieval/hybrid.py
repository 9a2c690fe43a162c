"""Hybrid retrieval: frames from the frame index and the transcript index, fused.

Reciprocal rank fusion (RRF, Cormack et al. 2009) over two rankings of frames:

- the frame index's ranking (rank ``r_img`` of each frame hit), and
- the transcript ranking: each frame of a transcript hit takes that hit's
  rank ``r_txt`` (its best one, if several hits cover it; frames of one
  segment tie).

``score(frame) = 1 / (rrf_k + r_img + 1) + 1 / (rrf_k + r_txt + 1)``, a term
only for the lists the frame is in (ranks are 0-based). RRF uses ranks, not
scores, so CLIP similarities and text-model similarities need no calibration.
Each :class:`FusedHit` carries its evidence: its FrameHit and its TextHits,
and its frame's fields (``frame``).
"""

import logging
from collections import defaultdict

from plugin.errors import IndexNotFoundError
from plugin.inputs import require_int, validate_query
from plugin.retrieval.frame_index import DEFAULT_BRAIN_KEY
from plugin.retrieval.frame_search import require_k, search_frames
from plugin.retrieval.hits import FusedHit
from plugin.retrieval.transcript_index import search_transcript, transcript_index_info
from plugin.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_RRF_K = 60  # the constant of the RRF paper; damps the top ranks


def available_indexes(dataset, brain_key=DEFAULT_BRAIN_KEY):
    """``{"frames": bool, "transcripts": bool}``: which indexes ``dataset`` has."""
    root = dataset._root_dataset
    return {
        "frames": brain_key in root.list_brain_runs(),
        "transcripts": transcript_index_info(root) is not None,
    }


def hybrid_search(
    dataset,
    query,
    k=10,
    brain_key=DEFAULT_BRAIN_KEY,
    rrf_k=DEFAULT_RRF_K,
    frame_k=None,
    text_k=None,
    settings=None,
):
    """One ranked list of frames for ``query``, from both indexes, best first.

    Uses whichever of the two indexes exist (the missing one is logged);
    raises :class:`~plugin.errors.IndexNotFoundError` if neither does.

    Args:
        dataset: the dataset (or a view, to search within it)
        query: the search text (empty or very long text is refused)
        k (10): how many fused frames to return
        brain_key ("frame_sim"): the frame index
        rrf_k (60): the RRF constant
        frame_k, text_k (None): how many frame / transcript hits to fuse;
            default ``k`` each
        settings (None): a :class:`~plugin.settings.Settings`, for both indexes

    Returns:
        a list of :class:`FusedHit`
    """
    text = validate_query(query)
    require_k(k)
    require_int("rrf_k", rrf_k, lowest=0)
    for name, value in (("frame_k", frame_k), ("text_k", text_k)):
        if value is not None:
            require_k(value, name)
    have = available_indexes(dataset, brain_key)
    if not any(have.values()):
        raise IndexNotFoundError(
            f"Dataset {dataset._root_dataset.name!r} has neither a frame index "
            f"{brain_key!r} nor a transcript index: build at least one "
            "(build_frame_index / build_transcript_index)"
        )
    for name, present in have.items():
        if not present:
            logger.info("Hybrid search without the %s index (not built)", name)
    settings = Settings.coerce(settings)  # loaded once for both indexes
    frame_hits, text_hits = [], []
    if have["frames"]:
        frame_hits = search_frames(dataset, text, frame_k or k, brain_key, settings)
    if have["transcripts"]:
        text_hits = search_transcript(dataset, text, text_k or k, settings)
    return fuse(frame_hits, text_hits, k=k, rrf_k=rrf_k)


def fuse(frame_hits, text_hits, k=10, rrf_k=DEFAULT_RRF_K):
    """Reciprocal rank fusion of frame hits and transcript hits (see above)."""
    scores = defaultdict(float)
    frame_by_id = {hit.sample_id: hit for hit in frame_hits}
    for hit in frame_hits:
        scores[hit.sample_id] += _rrf(hit.rank, rrf_k)
    texts_by_id, text_rank = defaultdict(list), {}
    for hit in sorted(text_hits, key=lambda h: h.rank):
        for sample_id in hit.frame_ids:
            texts_by_id[sample_id].append(hit)
            text_rank.setdefault(sample_id, hit.rank)  # the best one counts
    for sample_id, rank in text_rank.items():
        scores[sample_id] += _rrf(rank, rrf_k)
    # The frame's fields, from whichever hit read them (evidence reads no more)
    frames = {i: f for hit in text_hits for i, f in hit.frames.items()}
    frames.update(frame_by_id)

    def order(sample_id):  # ties: the better single rank, then a stable id
        ranks = [text_rank.get(sample_id, float("inf"))]
        if sample_id in frame_by_id:
            ranks.append(frame_by_id[sample_id].rank)
        return (-scores[sample_id], min(ranks), sample_id)

    return [
        FusedHit(
            sample_id=sample_id,
            score=scores[sample_id],
            frame_hit=frame_by_id.get(sample_id),
            text_hits=texts_by_id.get(sample_id, []),
            frame=frames.get(sample_id),
        )
        for sample_id in sorted(scores, key=order)[:k]
    ]


def _rrf(rank, rrf_k):
    return 1.0 / (rrf_k + rank + 1)
