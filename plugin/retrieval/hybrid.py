"""Hybrid retrieval: frames from the frame, transcript and on-screen text indexes, fused.

Each index ranks frames for the query (a transcript or screen-text hit ranks
the frames it covers); :func:`plugin.retrieval.fusion.fuse` merges the
rankings by weighted reciprocal rank fusion (the formula is there). Each
:class:`FusedHit` carries its evidence: its FrameHit, its transcript and
screen-text TextHits, its frame's fields (``frame``), and per signal that
found it, the rank, score and share of the fused score (``signals``).
"""

import logging

from plugin.errors import IndexNotFoundError
from plugin.inputs import require_int, validate_query
from plugin.retrieval.frame_index import DEFAULT_BRAIN_KEY
from plugin.retrieval.frame_search import require_k, search_frames
from plugin.retrieval.fusion import (  # noqa: F401 (hybrid's public names)
    DEFAULT_MIN_SHARE,
    DEFAULT_RRF_K,
    DEFAULT_WEIGHTS,
    FRAMES,
    SCREEN_TEXT,
    SIGNALS,
    TRANSCRIPTS,
    check_weights,
    fuse,
)
from plugin.retrieval.screen_text_index import (
    screen_text_index_info,
    search_screen_text,
)
from plugin.retrieval.transcript_index import search_transcript, transcript_index_info
from plugin.settings import Settings

logger = logging.getLogger(__name__)


def available_indexes(dataset, brain_key=DEFAULT_BRAIN_KEY):
    """``{"frames", "transcripts", "screen_text": bool}``: which indexes
    ``dataset`` has."""
    root = dataset._root_dataset
    return {
        FRAMES: brain_key in root.list_brain_runs(),
        TRANSCRIPTS: transcript_index_info(root) is not None,
        SCREEN_TEXT: screen_text_index_info(root) is not None,
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
    weights=None,
    screen_k=None,
    min_share=DEFAULT_MIN_SHARE,
):
    """One ranked list of frames for ``query``, from every index, best first.

    Uses whichever indexes exist (a missing one is logged) and whose weight
    is above 0; raises :class:`~plugin.errors.IndexNotFoundError` if none.

    Args:
        dataset: the dataset (or a view, to search within it)
        query: the search text (empty or very long text is refused)
        k (10): how many fused frames to return
        brain_key ("frame_sim"): the frame index
        rrf_k (60): the RRF constant
        frame_k, text_k, screen_k (None): how many frame / transcript /
            screen-text hits to fuse; default ``k`` each
        settings (None): a :class:`~plugin.settings.Settings`, for all indexes
        weights (None): ``{"frames", "transcripts", "screen_text": weight}``
            (missing ones 1.0; 0 leaves a signal out)
        min_share (0.5): a text hit counts if its similarity is at least this
            share of its index's best (see :mod:`plugin.retrieval.fusion`)

    Returns:
        a list of :class:`FusedHit`
    """
    text = validate_query(query)
    require_k(k)
    require_int("rrf_k", rrf_k, lowest=0)
    for name, value in (
        ("frame_k", frame_k),
        ("text_k", text_k),
        ("screen_k", screen_k),
    ):
        if value is not None:
            require_k(value, name)
    weights = check_weights(weights)
    have = available_indexes(dataset, brain_key)
    use = {s: have[s] and weights[s] > 0 for s in SIGNALS}
    if not any(use.values()):
        raise IndexNotFoundError(
            f"Dataset {dataset._root_dataset.name!r} has neither a frame index "
            f"{brain_key!r} nor a transcript or on-screen text index (with a "
            "weight above 0): build them with build_indexes()"
        )
    for name, present in have.items():
        if not present:
            logger.info("Hybrid search without the %s index (not built)", name)
    settings = Settings.coerce(settings)  # loaded once for all indexes
    frame_hits, text_hits, screen_hits = [], [], []
    if use[FRAMES]:
        frame_hits = search_frames(dataset, text, frame_k or k, brain_key, settings)
    if use[TRANSCRIPTS]:
        text_hits = search_transcript(dataset, text, text_k or k, settings)
    if use[SCREEN_TEXT]:
        screen_hits = search_screen_text(dataset, text, screen_k or k, settings)
    if _distance_metric(dataset):  # the share applies to similarities only
        min_share = 0
    return fuse(
        frame_hits,
        text_hits,
        k=k,
        rrf_k=rrf_k,
        screen_hits=screen_hits,
        weights=weights,
        min_share=min_share,
    )


def _distance_metric(dataset):
    infos = (transcript_index_info(dataset), screen_text_index_info(dataset))
    return any(info and info.get("metric") == "euclidean" for info in infos)
