"""The on-screen text index: what frames show in writing, searchable like speech.

Rows are **screen-text spans**: in one video, consecutive frames (read by
:mod:`plugin.video.screen_text`) that show the same text make ONE row, from
the first such frame's time to the last one's. A slide held for a minute is
one row, not twelve: its frames do not crowd every other slide out of the
top-k, and a hit maps back to exactly the frames that show that text.

Its own Milvus collection (``vrag_<dataset>_screen_text``), with the
transcript collection's shape (``segment_id | vector | dataset | video_id |
start | end | text``), rather than rows tagged by kind in the transcript
collection, because:

- it has its own life: screen text is often read after the import
  (``add_screen_text``) or not at all, and building, syncing or dropping it
  must not re-embed or touch the transcript rows;
- hybrid search ranks each signal on its own (a top-k per signal), which a
  shared collection would need a filter for on every search;
- each index records its own text model and row count in ``dataset.info``.

What both text indexes share (embedding, writing, syncing, searching a
text collection) lives in :mod:`plugin.retrieval.text_index` and
:mod:`plugin.retrieval.text_collection`.
"""

from collections import defaultdict

from fiftyone import ViewField as F

from plugin.retrieval.hits import Frame, read_frames
from plugin.retrieval.text_collection import fit_text
from plugin.retrieval.text_index import TextSource, video_ids
from plugin.video.screen_text import TEXT_FIELD

INFO_KEY = "vrag_screen_text_index"


def screen_text_spans(dataset, live_video_ids):
    """Screen-text spans of the videos in ``live_video_ids`` (see above):
    dicts ``{segment_id, video_id, start, end, text}``, in video then time
    order; a span's id is ``"<video_id>:screen:<start in ms>"``."""
    frames = _read_frames_with_text(dataset, live_video_ids)
    spans = []
    for video_id, rows in sorted(frames.items()):
        current = None
        for timestamp, text in sorted(rows, key=lambda r: r[0]):
            if current is not None and current["text"] == text:
                current["end"] = timestamp
                continue
            current = None
            if text:
                current = {
                    "segment_id": f"{video_id}:screen:{round(timestamp * 1000)}",
                    "video_id": video_id,
                    "start": timestamp,
                    "end": timestamp,
                    "text": text,
                }
                spans.append(current)
    return spans


def _read_frames_with_text(samples, wanted):
    """``{video_id: [(timestamp, text)]}`` of the frames that were read
    (``screen_text`` not None); blank text is ``""``."""
    if not samples.has_sample_field(TEXT_FIELD) or not wanted:
        return {}
    view = samples.match(
        F("video_id").is_in(sorted(wanted)) & (F(TEXT_FIELD) != None)  # noqa: E711
    )
    rows = defaultdict(list)
    for video_id, timestamp, text in zip(
        *view.values(["video_id", "timestamp", TEXT_FIELD])
    ):
        if timestamp is not None:
            rows[video_id].append((float(timestamp), " ".join((text or "").split())))
    return rows


def attach_frames(samples, hits):
    """Each hit's frames: those of its video, inside its span, showing its
    text, in time order; their fields read once for all hits."""
    by_video = defaultdict(list)
    for hit in hits:
        by_video[hit.video_id].append(hit)
    view = samples.match(F("video_id").is_in(sorted(by_video)))
    found = defaultdict(list)
    for sample_id, video_id, timestamp, text in zip(
        *view.values(["id", "video_id", "timestamp", TEXT_FIELD])
    ):
        if timestamp is None:
            continue
        text = fit_text(" ".join((text or "").split()))
        for hit in by_video[video_id]:
            if hit.start <= timestamp <= hit.end and text == hit.text:
                found[hit.segment_id].append((timestamp, sample_id))
    rows = read_frames(samples, {i for pairs in found.values() for _, i in pairs})
    for hit in hits:
        ordered = [i for _, i in sorted(found[hit.segment_id])]
        hit.frame_ids = [i for i in ordered if i in rows]
        hit.frames = {i: Frame(i, **rows[i]) for i in hit.frame_ids}


def _nothing_to_index(dataset, live):
    if not dataset.has_sample_field(TEXT_FIELD):
        return (
            "no frame was read yet: read them with add_screen_text() or the "
            "'read_screen_text' operator, or import with screen_text=True"
        )
    return f"no frame of its {len(live)} video(s) shows text"


SCREEN_TEXT = TextSource(
    what="on-screen text",
    items="screen-text spans",
    info_key=INFO_KEY,
    collection_suffix="screen_text",
    builder="build_screen_text_index() or the 'build_indexes' operator",
    rows=screen_text_spans,
    attach_frames=attach_frames,
    nothing_to_index=_nothing_to_index,
)


def screen_text_index_info(dataset):
    """The recorded settings of ``dataset``'s on-screen text index, or None."""
    return SCREEN_TEXT.info(dataset)


def build_screen_text_index(dataset, **kwargs):
    """Embeds the screen-text spans of ``dataset`` into a new collection.

    Same arguments and result as
    :func:`plugin.retrieval.transcript_index.build_transcript_index`
    (``text_model``, ``collection_name``, ``overwrite``, ``progress``,
    ``metric``, ``settings``).
    """
    return SCREEN_TEXT.build(dataset, **kwargs)


def sync_screen_text_index(dataset, progress=None, settings=None):
    """Adds new or changed spans, removes those of deleted frames or videos.
    Returns ``{"added", "updated", "removed"}``."""
    return SCREEN_TEXT.sync(dataset, progress=progress, settings=settings)


def delete_screen_text_index(dataset, settings=None):
    """Drops the collection and forgets the index's settings."""
    SCREEN_TEXT.delete(dataset, settings=settings)


def search_screen_text(dataset, query, k=10, settings=None):
    """The top-``k`` screen-text spans for ``query``, best first: a list of
    :class:`~plugin.retrieval.hits.TextHit` whose frames show the text."""
    return SCREEN_TEXT.search(dataset, query, k, settings=settings)


__all__ = [
    "INFO_KEY",
    "SCREEN_TEXT",
    "build_screen_text_index",
    "delete_screen_text_index",
    "screen_text_index_info",
    "screen_text_spans",
    "search_screen_text",
    "sync_screen_text_index",
    "video_ids",
]
