"""Where the transcript segments of imported videos live, and how to read them.

Storage: FiftyOne's execution store (MongoDB), in the store named
``vrag_video_transcripts`` scoped to the dataset (``dataset._doc.id``), one
key per video: the key is the ``video_id`` (content hash), the value a dict::

    {
        "video_id": "...", "video_path": "/abs/path.mp4", "language": "en",
        "backend": "faster-whisper", "model": "tiny.en",
        "status": "ok" | "no_audio" | "silent" | "off" | "failed: ...",
        "num_frames": 12, "complete": True,
        "segments": [{"start": 0.0, "end": 3.0, "text": "..."}, ...],
    }

The record is written LAST for a video, after its frame samples: a video
whose record says ``complete`` is fully imported (resume and idempotence rely
on it). FiftyOne deletes the store with the dataset. Each frame sample also
carries the text of the segments overlapping its time window (see
:func:`text_in_window`) in its ``transcript`` field.
"""

from fiftyone.operators.store import ExecutionStore

STORE_NAME = "vrag_video_transcripts"


def transcript_store(dataset):
    """The execution store holding ``dataset``'s transcripts."""
    return ExecutionStore.create(STORE_NAME, dataset_id=dataset._doc.id)


def save_video_record(dataset, record):
    """Stores one video's record (see the module docstring) under its video_id."""
    transcript_store(dataset).set(record["video_id"], record)


def load_video_record(dataset, video_id):
    """The record of ``video_id``, or None."""
    return transcript_store(dataset).get(video_id)


def delete_video_record(dataset, video_id):
    transcript_store(dataset).delete(video_id)


def load_video_records(dataset):
    """All video records of ``dataset``, keyed by video_id."""
    store = transcript_store(dataset)
    return {key: store.get(key) for key in store.list_keys()}


def load_transcript_segments(dataset, video_ids=None):
    """All transcript segments of ``dataset``, in video then time order.

    Returns a list of dicts ``{segment_id, video_id, video_path, start, end,
    text}``; ``segment_id`` is ``"<video_id>:<n>"``, stable across reads.
    """
    segments = []
    for video_id, record in sorted(load_video_records(dataset).items()):
        if not record or (video_ids is not None and video_id not in video_ids):
            continue
        for n, segment in enumerate(record.get("segments", [])):
            segments.append(
                {
                    "segment_id": f"{video_id}:{n}",
                    "video_id": video_id,
                    "video_path": record.get("video_path"),
                    "start": segment["start"],
                    "end": segment["end"],
                    "text": segment["text"],
                }
            )
    return segments


def text_in_window(segments, start, end, min_fraction=0.5):
    """The text of the segments that overlap ``[start, end)`` enough, joined.

    A segment counts when its overlap is at least ``min_fraction`` of the
    shorter of the segment and the window: Whisper's word times are loose by
    a few tenths of a second, so a sentence that merely grazes the window
    (it starts just before the next frame) belongs to the next frame only.
    """
    texts = []
    for segment in segments:
        overlap = min(end, segment["end"]) - max(start, segment["start"])
        shorter = min(end - start, segment["end"] - segment["start"])
        if overlap > 0 and overlap >= min_fraction * shorter:
            texts.append(segment["text"])
    return " ".join(texts).strip()
