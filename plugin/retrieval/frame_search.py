"""Text-to-frame search on a frame index."""

import math

from plugin.errors import InvalidInputError
from plugin.inputs import (
    MAX_QUERY_CHARS,
    require_int,
    require_sample_ids,
    validate_query,
)
from plugin.retrieval import brain_fixes
from plugin.retrieval.frame_store import DEFAULT_BRAIN_KEY, with_frame_index
from plugin.retrieval.hits import FrameHit, read_frames

__all__ = ["MAX_K", "MAX_QUERY_CHARS", "hits_view", "search_frames", "validate_query"]

MAX_K = 16384  # Milvus' largest top-k
#: A search within a view of more frames than this asks the whole index for
#: more hits and keeps the view's: brain sends ``pk in [every id of the
#: view]``, which costs the server ~10 us per id (1 s a search for a view of
#: 100k frames, 100 ms for 10k: docs/scaling.md)
VIEW_EXPR_MAX_IDS = 5000


def search_frames(dataset, query, k=10, brain_key=DEFAULT_BRAIN_KEY, settings=None):
    """Returns the top-``k`` frames for a text query, best first.

    Args:
        dataset: the dataset (or a view, to search within it) with the index
        query: the search text
        k (10): how many frames
        brain_key: the frame index to use
        settings (None): a :class:`~plugin.settings.Settings` (the Milvus store)

    Returns:
        a list of :class:`FrameHit`
    """
    text = validate_query(query)
    require_k(k)
    root = dataset._root_dataset
    restricted = dataset.view() != root.view()

    def search(index):
        # The index is cached and shared: set (or clear) the view every time
        index.clear_view()
        if not restricted:
            return brain_fixes.nearest(index, text, k)
        size = dataset.count()
        if size > VIEW_EXPR_MAX_IDS:
            found = _nearest_in_large_view(index, dataset, size, text, k)
            if found is not None:
                return found
        index.use_view(dataset)
        return brain_fixes.nearest(index, text, k)

    doing = f"searching frame index {brain_key!r}"
    ids, scores = with_frame_index(root, brain_key, settings, doing, search)
    return _hits(root, ids, scores)


def _nearest_in_large_view(index, view, view_size, text, k):
    """The view's top-``k`` from the whole index's top hits, asking deeper
    until ``k`` of them are in the view: they are then exactly the view's
    nearest (any closer frame of the view would rank among them). None when
    even Milvus' largest top-k holds fewer (a view too sparse for this)."""
    total = max(index.total_index_size, 1)
    depth = min(MAX_K, max(4 * k, math.ceil(2 * k * total / view_size)))
    while True:
        ids, scores = brain_fixes.nearest(index, text, depth)
        inside = set(view.select(ids).values("id"))
        kept = [(i, s) for i, s in zip(ids, scores) if i in inside][:k]
        if len(kept) == min(k, view_size) or len(ids) < depth:
            return [i for i, _ in kept], [s for _, s in kept]
        if depth == MAX_K:
            return None
        depth = min(MAX_K, depth * 4)


def require_k(k, name="k"):
    """``k`` if it is a top-k Milvus accepts (1 to :data:`MAX_K`)."""
    require_int(name, k)
    if k > MAX_K:
        raise InvalidInputError(f"{name} must be at most {MAX_K}, got {k}")
    return k


def _hits(dataset, ids, scores):
    """Index results with the frames' fields (``hits.FRAME_FIELDS``, read
    once); skips ids no longer in the dataset (deleted after indexing,
    before a sync)."""
    rows = read_frames(dataset, ids)
    hits = []
    for sample_id, score in zip(ids, scores):
        if sample_id in rows:
            hit = FrameHit(sample_id, float(score), len(hits), **rows[sample_id])
            hits.append(hit)
    return hits


def hits_view(dataset, hits):
    """A view of the hit frames in rank order (for the App)."""
    ids = require_sample_ids([hit.sample_id for hit in hits])
    return dataset.select(ids, ordered=True)
