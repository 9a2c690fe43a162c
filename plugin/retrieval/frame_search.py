"""Text-to-frame search on a frame index."""

from plugin.inputs import MAX_QUERY_CHARS, require_int, validate_query
from plugin.retrieval import brain_fixes
from plugin.retrieval.frame_index import DEFAULT_BRAIN_KEY, load_frame_index
from plugin.retrieval.hits import FrameHit, read_frames

__all__ = ["MAX_QUERY_CHARS", "hits_view", "search_frames", "validate_query"]


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
    require_int("k", k)
    index = load_frame_index(dataset._root_dataset, brain_key, settings)
    if dataset.view() != dataset._root_dataset.view():
        index.use_view(dataset)
    ids, scores = brain_fixes.nearest(index, text, k)
    return _hits(dataset._root_dataset, ids, scores)


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
    return dataset.select([hit.sample_id for hit in hits], ordered=True)
