"""Near-duplicate frames, within and across videos, on a frame index's vectors.

Talks and static shots give runs of near-identical frames; they crowd search
results and spend the VLM's image budget. :func:`find_duplicates` groups
them with fiftyone-brain (``compute_near_duplicates`` on the index's
embeddings field; the threshold is a cosine distance) and marks them:

- ``near_dup_set``: the id of the set's first frame (in the order of the
  samples: import order, then time), on every frame of a set
- ``near_dup_distance``: on the extras only, their distance to that frame

The saved view ``near_duplicates`` shows the sets, one group per set, the
frame kept first. :func:`tag_extras` tags the extras; :func:`delete_extras`
deletes them and keeps everything else whole: every Milvus frame index and
frame map is synced, the transcript index drops the segments of a video that
lost all its frames, each remaining frame's ``transcript`` is re-derived by
the alignment rule (a deleted frame's narration moves to the frame that now
covers its time), and the video records keep their transcripts.
"""

import fiftyone as fo
import fiftyone.brain as fob
from fiftyone import ViewField as F

from plugin.curation.frame_map import (
    MIN_FRAMES,
    compute_frame_map,
    frame_maps,
    index_of_map,
)
from plugin.curation.vectors import (
    embedded_frames,
    frame_index_keys,
    unembedded_count,
)
from plugin.errors import InvalidInputError
from plugin.progress import report
from plugin.retrieval.frame_index import (
    DEFAULT_BRAIN_KEY,
    load_frame_index,
    sync_frame_index,
)
from plugin.retrieval.text_index import text_sources
from plugin.retrieval.transcript_index import TRANSCRIPTS
from plugin.video import alignment
from plugin.video import transcripts as records

SET_FIELD = "near_dup_set"
DISTANCE_FIELD = "near_dup_distance"
SAVED_VIEW = "near_duplicates"
DEFAULT_TAG = "near_duplicate"
#: Cosine distance. Frames of one static shot lie within ~0.01 of each other
#: (video compression); different scenes lie 0.2-0.8 apart with CLIP models.
DEFAULT_THRESHOLD = 0.05


def find_duplicates(samples, brain_key=DEFAULT_BRAIN_KEY, threshold=None):
    """Finds the sets of near-identical frames in ``samples``.

    Args:
        samples: a dataset or view of frames (all videos: duplicates are
            found across videos too)
        brain_key ("frame_sim"): the frame index whose vectors are compared
        threshold (None): frames closer than this cosine distance are
            duplicates; default :data:`DEFAULT_THRESHOLD`

    Returns:
        a dict: ``sets`` (how many), ``frames`` (in a set), ``extras``
        (frames beyond the first of each set), ``cross_video`` (sets that
        span several videos), ``view`` (the saved view's name)
    """
    threshold = check_threshold(DEFAULT_THRESHOLD if threshold is None else threshold)
    dataset = samples._root_dataset
    view, field = embedded_frames(samples, brain_key, minimum=2)
    _clear_marks(dataset)
    index = fob.compute_near_duplicates(view, threshold=threshold, embeddings=field)
    sets, distances = {}, {}
    for kept, extras in (index.neighbors_map or {}).items():
        sets[kept] = kept
        for extra, distance in extras:
            sets[extra], distances[extra] = kept, float(distance)
    if sets:
        dataset.set_values(SET_FIELD, sets, key_field="id")
        dataset.set_values(DISTANCE_FIELD, distances, key_field="id")
    dataset.save_view(SAVED_VIEW, duplicates_view(dataset), overwrite=True)
    return {
        "sets": len(set(sets.values())),
        "frames": len(sets),
        "extras": len(distances),
        "cross_video": _cross_video(dataset),
        "threshold": threshold,
        "view": SAVED_VIEW,
    }


def check_threshold(threshold):
    """``threshold`` as a float in (0, 2) (cosine distances lie in [0, 2])."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        value = None
    if value is None or not 0.0 < value < 2.0:
        raise InvalidInputError(
            f"The threshold is a cosine distance between 0 and 2 (0.05: nearly "
            f"identical frames), got {threshold!r}"
        )
    return value


def duplicates_view(samples):
    """The frames in a duplicate set, grouped by set, the kept frame first."""
    if not samples.has_sample_field(SET_FIELD):
        return samples.limit(0)
    return samples.exists(SET_FIELD).group_by(SET_FIELD, order_by=DISTANCE_FIELD)


def extras_view(samples):
    """The frames a deletion would remove (all but the first of each set)."""
    if not samples.has_sample_field(DISTANCE_FIELD):
        return samples.limit(0)
    return samples.exists(DISTANCE_FIELD)


def duplicate_sets(samples):
    """``{set id: [frame ids, the kept frame first]}``."""
    view = duplicates_view(samples)
    sets = {}
    for group in view.iter_dynamic_groups():
        sets[group.first()[SET_FIELD]] = group.values("id")
    return sets


def tag_extras(samples, tag=DEFAULT_TAG):
    """Tags the extras with ``tag``; returns how many."""
    extras = extras_view(samples)
    count = len(extras)
    if count:
        extras.tag_samples(tag)
    return count


def delete_extras(samples, settings=None, progress=None):
    """Deletes the extras of ``samples`` and syncs every index.

    Every Milvus frame index of the dataset is opened first: an index that
    cannot be reached stops the deletion before anything is deleted.

    Returns:
        a dict: ``deleted`` (frames), ``videos_emptied`` (video ids that
        lost all their frames), ``frame_indexes`` (``{brain key: vectors
        removed}``), ``text_rows_removed`` (``{text index kind: rows
        removed}``: transcripts, screen text), ``transcript_segments_removed``
        (the transcripts' share), ``maps`` (frame maps
        fitted again)
    """
    dataset = samples._root_dataset
    extras = extras_view(samples)
    ids = extras.values("id")
    result = _deletion_summary()
    if not ids:
        return result
    keys = _milvus_indexes(dataset)
    for key in keys:  # unreachable store, missing collection: raise now
        load_frame_index(dataset, key, settings)
    videos = _video_ids(extras)
    report(progress, 0.1, f"Deleting {len(ids)} near-duplicate frames")
    dataset.delete_samples(ids)
    _clear_marks(dataset)
    result["deleted"] = len(ids)
    result["videos_emptied"] = _realign(dataset, videos)
    for n, key in enumerate(keys):
        report(progress, 0.3 + 0.4 * n / len(keys), f"Syncing frame index {key}")
        synced = sync_frame_index(dataset, key, settings=settings)
        result["frame_indexes"][key] = synced["removed"]
    for source in text_sources():  # screen-text spans follow their frames
        if source.info(dataset):
            report(progress, 0.75, f"Syncing the {source.what} index")
            synced = source.sync(dataset, settings=settings)
            result["text_rows_removed"][source.kind] = synced["removed"]
    removed = result["text_rows_removed"]
    result["transcript_segments_removed"] = removed.get(TRANSCRIPTS.kind, 0)
    for map_key in frame_maps(dataset):
        report(progress, 0.85, f"Refitting frame map {map_key}")
        result["maps"].append(_refit_map(dataset, map_key))
    report(progress, 1.0, "Done")
    return result


def _refit_map(dataset, map_key):
    """Fits the map again without the deleted frames; a map left with too
    few frames to draw is deleted."""
    brain_key = index_of_map(dataset, map_key)
    if unembedded_count(dataset, brain_key) + MIN_FRAMES > len(dataset):
        dataset.delete_brain_run(map_key)
        return f"{map_key} (deleted: fewer than {MIN_FRAMES} frames left)"
    compute_frame_map(dataset, brain_key, map_key=map_key)
    return map_key


def _deletion_summary():
    return {
        "deleted": 0,
        "videos_emptied": [],
        "frame_indexes": {},
        "transcript_segments_removed": 0,
        "text_rows_removed": {},
        "maps": [],
    }


def _milvus_indexes(dataset):
    return [
        key
        for key in frame_index_keys(dataset)
        if getattr(dataset.get_brain_info(key).config, "method", None) == "milvus"
    ]


def _has_videos(samples):
    return samples.has_sample_field("video_id")


def _video_ids(samples):
    if not _has_videos(samples):
        return set()
    return {v for v in samples.distinct("video_id") if v}


def _realign(dataset, video_ids):
    """After frames of ``video_ids`` were deleted: each remaining frame's
    ``transcript`` follows the alignment rule again, and each video record
    counts its frames (so a re-import sees the video as complete). Returns
    the videos left without frames."""
    emptied = []
    for video_id in sorted(video_ids):
        frames = dataset.match(F("video_id") == video_id).sort_by("timestamp")
        record = records.load_video_record(dataset, video_id)
        if record is None:
            continue
        record["num_frames"] = len(frames)
        records.save_video_record(dataset, record)
        if not len(frames):
            emptied.append(video_id)
            continue
        _rewrite_transcripts(frames, record)
    return emptied


def _rewrite_transcripts(frames, record):
    if not frames.has_sample_field("transcript"):
        return
    names = ["id", "timestamp"]
    has_duration = frames.has_sample_field("video_duration")
    if has_duration:
        names.append("video_duration")
    values = frames.values(names)
    ids, times = values[0], values[1]
    duration = values[2][0] if has_duration else None
    texts = alignment.frame_texts(
        times, record.get("segments") or [], duration, record.get("transcript_window")
    )
    frames.set_values("transcript", dict(zip(ids, texts)), key_field="id")


def _clear_marks(dataset):
    for name in (SET_FIELD, DISTANCE_FIELD):
        if not dataset.has_sample_field(name):
            dataset.add_sample_field(name, _FIELD_TYPES[name])
            continue
        marked = dataset.exists(name)
        if len(marked):
            marked.set_values(name, [None] * len(marked))


_FIELD_TYPES = {SET_FIELD: fo.StringField, DISTANCE_FIELD: fo.FloatField}


def _cross_video(dataset):
    """How many sets hold frames of more than one video."""
    if not _has_videos(dataset) or not dataset.has_sample_field(SET_FIELD):
        return 0
    marked = dataset.exists(SET_FIELD)
    videos = {}
    for set_id, video_id in zip(*marked.values([SET_FIELD, "video_id"])):
        videos.setdefault(set_id, set()).add(video_id)
    return sum(1 for found in videos.values() if len(found) > 1)
