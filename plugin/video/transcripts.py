"""Where the transcript segments of imported videos live, and how to read them.

Storage: FiftyOne's execution store (MongoDB), in the store named
``vrag_video_transcripts`` scoped to the dataset (``dataset._doc.id``), one
key per video: the key is the ``video_id`` (content hash), the value a dict::

    {
        "video_id": "...", "video_path": "/abs/path.mp4", "language": "en",
        "backend": "faster-whisper", "model": "tiny.en",
        "status": "ok" | "no_audio" | "silent" | "off" | "failed: ...",
        "num_frames": 12, "complete": True, "transcript_window": None,
        "segments": [{"start": 0.0, "end": 3.0, "text": "..."}, ...],
    }

The record is written LAST for a video, after its frame samples: a video
whose record says ``complete`` is fully imported (resume and idempotence rely
on it). FiftyOne deletes the store with the dataset. Each frame sample also
carries, in its ``transcript`` field, the text of the segments that
:mod:`plugin.video.alignment` links to it. A segment's id is
``"<video_id>:<n>"``, ``n`` its position in its video's ``segments``.
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


def load_video_records(dataset, video_ids=None):
    """The video records of ``dataset`` (those of ``video_ids`` only, when
    given), keyed by video_id; a missing one is None."""
    store = transcript_store(dataset)
    keys = store.list_keys() if video_ids is None else video_ids
    return {key: store.get(key) for key in keys}


def segment_id(video_id, n):
    """The id of the ``n``-th segment of a video."""
    return f"{video_id}:{n}"


def segment_number(ident):
    """``n`` of a segment id ``"<video_id>:<n>"`` (None if it is not one)."""
    number = ident.rpartition(":")[2]
    return int(number) if number.isdigit() else None


def load_transcript_segments(dataset, video_ids=None):
    """All transcript segments of ``dataset``, in video then time order.

    Returns a list of dicts ``{segment_id, video_id, video_path, start, end,
    text}``; ``segment_id`` is ``"<video_id>:<n>"``, stable across reads.
    """
    wanted = None if video_ids is None else sorted(video_ids)
    segments = []
    for video_id, record in sorted(load_video_records(dataset, wanted).items()):
        if not record:
            continue
        for n, segment in enumerate(record.get("segments", [])):
            segments.append(
                {
                    "segment_id": segment_id(video_id, n),
                    "video_id": video_id,
                    "video_path": record.get("video_path"),
                    "start": segment["start"],
                    "end": segment["end"],
                    "text": segment["text"],
                }
            )
    return segments
