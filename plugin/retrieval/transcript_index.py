"""Transcript indexes: transcript segments embedded into their own Milvus collection.

Why pymilvus directly and not fiftyone-brain: brain's similarity indexes
hold one vector per SAMPLE (here: per frame). Transcript segments are not
samples (they live in the execution store, see
:mod:`plugin.video.transcripts`, and span several frames), so they get a
collection of their own, one row per segment: a text index of
:mod:`plugin.retrieval.text_index` (shared with the on-screen text index),
whose rows are the segments and whose hits map to frames by the rule of
:mod:`plugin.video.alignment`.

The index's settings (text model, dimension, metric, collection, Milvus kind;
never credentials) are recorded in ``dataset.info[INFO_KEY]`` so that search
and sync embed with the model the index was built with.
"""

from collections import defaultdict

from plugin.retrieval.hits import Frame, read_frames
from plugin.retrieval.text_collection import TEXT_MAX_BYTES
from plugin.retrieval.text_collection import create_collection as _create_collection
from plugin.retrieval.text_collection import insert_rows as _insert
from plugin.retrieval.text_index import TextSource
from plugin.video.alignment import segment_frame_ids
from plugin.video.transcripts import load_transcript_segments, load_video_records

INFO_KEY = "vrag_transcript_index"
#: the low-level helpers other modules and tests use, by their old names
__all__ = [
    "INFO_KEY",
    "TEXT_MAX_BYTES",
    "TRANSCRIPTS",
    "_attach_frames",
    "_create_collection",
    "_insert",
    "build_transcript_index",
    "delete_transcript_index",
    "search_transcript",
    "sync_transcript_index",
    "transcript_index_info",
]


def _attach_frames(samples, hits):
    """Each hit's frames: those carrying its segment (the rule of
    :mod:`plugin.video.alignment`), with their fields read once for all."""
    spans = [(hit.segment_id, hit.video_id, hit.start, hit.end) for hit in hits]
    frame_ids = segment_frame_ids(samples, spans)
    rows = read_frames(samples, {i for ids in frame_ids.values() for i in ids})
    for hit in hits:
        hit.frame_ids = [i for i in frame_ids[hit.segment_id] if i in rows]
        hit.frames = {i: Frame(i, **rows[i]) for i in hit.frame_ids}


def _statuses(dataset, live):
    """Why there is nothing to index: the transcript status of each video."""
    records = load_video_records(dataset)
    counts = defaultdict(int)
    for video_id in live:
        record = records.get(video_id) or {}
        counts[record.get("status") or "no record"] += 1
    listed = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return f"transcript status per video: {listed or 'none'}"


TRANSCRIPTS = TextSource(
    what="transcript",
    items="transcript segments",
    info_key=INFO_KEY,
    collection_suffix="transcripts",
    builder="build_transcript_index() or the 'index_transcripts' operator",
    rows=lambda dataset, live: load_transcript_segments(dataset, video_ids=live),
    attach_frames=_attach_frames,
    nothing_to_index=_statuses,
)


def default_collection_name(dataset_name):
    return TRANSCRIPTS.default_collection_name(dataset_name)


def transcript_index_info(dataset):
    """The recorded settings of ``dataset``'s transcript index, or None."""
    return TRANSCRIPTS.info(dataset)


def build_transcript_index(dataset, **options):
    """Embeds all transcript segments of ``dataset`` into a new Milvus
    collection; returns the recorded settings (a dict).

    ``options``: ``text_model`` (``"minilm"``, default, or
    ``"openai:<model>"``, see :mod:`plugin.models.text`), ``collection_name``
    (default derived from the dataset name), ``overwrite`` (replace the
    dataset's existing transcript index), ``progress``, ``metric``
    (``cosine``, ``euclidean`` or ``dotproduct``) and ``settings`` (the
    Milvus store and an ``openai:<model>`` endpoint): see
    :meth:`plugin.retrieval.text_index.TextSource.build`.
    """
    return TRANSCRIPTS.build(dataset, **options)


def sync_transcript_index(dataset, progress=None, settings=None):
    """Adds segments of newly imported videos and removes those of deleted videos.

    Existing vectors are not recomputed: only segments that are not in the
    collection (or whose text changed) are embedded.
    Returns ``{"added": n, "updated": u, "removed": m}``.
    """
    return TRANSCRIPTS.sync(dataset, progress=progress, settings=settings)


def delete_transcript_index(dataset, settings=None):
    """Drops the Milvus collection (if it is there) and forgets the settings."""
    TRANSCRIPTS.delete(dataset, settings=settings)


def search_transcript(dataset, query, k=10, settings=None):
    """Returns the top-``k`` transcript segments for ``query``, best first.

    Args:
        dataset: the dataset (or a view, to search the videos in it)
        query: the search text (empty or very long text is refused)
        k (10): how many segments
        settings (None): a :class:`~plugin.settings.Settings`

    Returns:
        a list of :class:`TextHit`; ``frame_ids`` (and ``frames``, their
        fields) are the frames that carry the segment (plugin/video/alignment.py)
    """
    return TRANSCRIPTS.search(dataset, query, k, settings=settings)
