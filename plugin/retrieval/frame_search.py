"""Text-to-frame search on a frame index."""

from plugin.inputs import MAX_QUERY_CHARS, require_int, validate_query
from plugin.retrieval.frame_index import DEFAULT_BRAIN_KEY, load_frame_index
from plugin.retrieval.hits import FrameHit

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
    # Brain's public sort_by_similarity() returns scores only by writing them
    # into a dataset field; these two calls are what it runs, without writes.
    vector = index._parse_query(text)[0]  # one prompt -> one vector
    ids, _, scores = index._kneighbors(query=vector, k=k, return_dists=True)
    return _hits(dataset._root_dataset, ids, scores)


def _hits(dataset, ids, scores):
    """Joins index results with the frames' fields; skips ids no longer in
    the dataset (deleted after indexing, before a sync)."""
    names = [n for n in _FIELDS if dataset.has_sample_field(n)]
    rows = dataset.select(ids).values(["id"] + names)
    by_id = {row[0]: dict(zip(names, row[1:])) for row in zip(*rows)}
    hits = []
    for sample_id, score in zip(ids, scores):
        if sample_id not in by_id:
            continue
        row = by_id[sample_id]
        hits.append(
            FrameHit(
                sample_id=sample_id,
                score=float(score),
                rank=len(hits),
                filepath=row["filepath"],
                video_id=row.get("video_id") or "",
                video_path=row.get("video_path") or "",
                timestamp=row.get("timestamp"),
            )
        )
    return hits


_FIELDS = ("filepath", "video_id", "video_path", "timestamp")


def hits_view(dataset, hits):
    """A view of the hit frames in rank order (for the App)."""
    return dataset.select([hit.sample_id for hit in hits], ordered=True)
