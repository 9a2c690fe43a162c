"""The companion video dataset: each imported video as a FiftyOne video sample.

The frames dataset ``X`` (image samples: what indexes, search, hybrid and
Ask use) has a companion video dataset ``X-videos`` holding one video sample
per imported video, which plays in the App with its transcript on the
timeline. docs/moments.md says why a companion, not ``to_frames()``.

Links, both ways:

- ``X.info["vrag_videos_dataset"] == "X-videos"`` and
  ``X-videos.info["vrag_frames_dataset"] == "X"``
- each frame sample's ``video_sample_id`` is its video sample's id
- each video sample has ``video_id`` (the content hash its frames carry),
  ``frames_dataset`` and ``frame_ids`` (its frame samples, in time order)

A video sample's ``filepath`` is what the browser plays (the original, or an
H.264 copy, see :mod:`plugin.video.playable`); ``video_path`` is the
original. ``transcript`` holds one ``TemporalDetection`` per transcript
segment: label = the text, ``support`` = its frames, and the exact times in
``start`` / ``end`` with its ``segment_id``. ``metadata`` is a
``VideoMetadata`` filled from our PyAV probe (FiftyOne's would need ffprobe).
"""

import math
import time

import fiftyone as fo
from fiftyone import ViewField as F

from plugin.errors import InvalidInputError
from plugin.video.transcripts import segment_id

VIDEOS_SUFFIX = "-videos"
FRAMES_LINK = "vrag_frames_dataset"  # in the video dataset's info
VIDEOS_LINK = "vrag_videos_dataset"  # in the frames dataset's info
TRANSCRIPT_FIELD = "transcript"
_CREATE_ATTEMPTS = 8


def get_or_create(name, media_type):
    """The persistent dataset ``name`` of ``media_type``, created if new.

    Safe when several processes create or fill the same new dataset at once:
    a creation race (``DuplicateKeyError``, "already exists") is retried as a
    load, and the media type is set while the dataset is still empty, so a
    later ``add_samples`` never has to ("Cannot set media type of a non-empty
    dataset").
    """
    error = None
    for attempt in range(_CREATE_ATTEMPTS):
        try:
            dataset = _load_or_create(name)
            _ensure_media_type(dataset, media_type)
            return dataset
        except _RaceError as e:  # the other process won: load what it made
            error = e
            time.sleep(0.05 * (attempt + 1))
    raise InvalidInputError(f"Could not open or create dataset {name!r}: {error}")


class _RaceError(Exception):
    pass


def _load_or_create(name):
    if fo.dataset_exists(name):
        return fo.load_dataset(name)
    try:
        return fo.Dataset(name, persistent=True)
    except Exception as e:  # pymongo DuplicateKeyError, or FiftyOne's ValueError
        if fo.dataset_exists(name):
            raise _RaceError(f"created by another process ({type(e).__name__})") from e
        raise


def _ensure_media_type(dataset, media_type):
    if dataset.media_type is None:
        dataset.reload()  # another process may have set it since we loaded
    if dataset.media_type is None:
        try:
            dataset.media_type = media_type
        except ValueError as e:  # filled meanwhile by another process
            dataset.reload()
            raise _RaceError(str(e)) from e
    if dataset.media_type != media_type:
        raise InvalidInputError(
            f"Dataset {dataset.name!r} holds {dataset.media_type} samples; "
            f"this needs a dataset of {media_type} samples. Choose another name."
        )


def videos_dataset_name(frames):
    """The name of the video dataset that goes with the frames dataset ``frames``."""
    return frames.info.get(VIDEOS_LINK) or f"{frames.name}{VIDEOS_SUFFIX}"


def videos_dataset(frames, create=False):
    """The video dataset of ``frames`` (created and linked if ``create``), or None."""
    frames = frames._root_dataset
    name = videos_dataset_name(frames)
    if not create:
        return fo.load_dataset(name) if fo.dataset_exists(name) else None
    videos = get_or_create(name, "video")
    if videos.info.get(FRAMES_LINK) != frames.name:
        videos.info[FRAMES_LINK] = frames.name
        videos.save()
    if frames.info.get(VIDEOS_LINK) != name:
        frames.info[VIDEOS_LINK] = name
        frames.save()
    return videos


def frames_dataset(videos):
    """The frames dataset a video dataset (or view, or clips) belongs to."""
    name = videos._root_dataset.info.get(FRAMES_LINK)
    if not name or not fo.dataset_exists(name):
        raise InvalidInputError(
            f"Dataset {videos._root_dataset.name!r} is not linked to a frames dataset"
        )
    return fo.load_dataset(name)


def video_metadata(info, duration=None):
    """``fo.VideoMetadata`` from a ``VideoInfo`` (and the stream's real
    duration, when the container's was wrong)."""
    duration = duration or info.duration
    return fo.VideoMetadata(
        size_bytes=info.size_bytes or None,
        mime_type="video/mp4" if "mp4" in info.container_format else None,
        frame_width=info.width,
        frame_height=info.height,
        frame_rate=info.frame_rate,
        total_frame_count=max(1, round(duration * info.frame_rate)),
        duration=duration,
        encoding_str=info.codec or None,
    )


def frame_support(start, end, metadata):
    """``[first, last]`` frame numbers (1-based) of ``[start, end]`` seconds."""
    rate = metadata.frame_rate or 1.0
    total = metadata.total_frame_count or max(1, math.ceil(end * rate))
    first = min(total, max(1, math.floor(start * rate + 1e-6) + 1))
    last = min(total, max(first, math.ceil(end * rate - 1e-6)))
    return [first, last]


def support_seconds(support, metadata):
    """``(start, end)`` seconds of a ``[first, last]`` frame support."""
    rate = metadata.frame_rate or 1.0
    return (support[0] - 1) / rate, support[1] / rate


def transcript_detections(video_id, segments, metadata):
    """``fo.TemporalDetections``: one per segment (label: its text)."""
    return fo.TemporalDetections(
        detections=[
            fo.TemporalDetection(
                label=segment["text"].strip(),
                support=frame_support(segment["start"], segment["end"], metadata),
                start=float(segment["start"]),
                end=float(segment["end"]),
                segment_id=segment_id(video_id, n),
            )
            for n, segment in enumerate(segments)
        ]
    )


def save_video_sample(frames, video):
    """Adds (or replaces) the video sample of one imported video and links it
    to its frames both ways.

    Args:
        frames: the frames dataset
        video: a dict with ``video_id``, ``video_path``, ``info`` (its
            ``VideoInfo``), ``duration``, ``segments``, ``transcript_status``,
            ``playback`` (a :class:`~plugin.video.playable.Playback`) and
            ``frame_ids`` (in time order)

    Returns:
        the video sample's id
    """
    videos = videos_dataset(frames, create=True)
    delete_video_sample(frames, video["video_id"], videos=videos)
    metadata = video_metadata(video["info"], video["duration"])
    playback = video["playback"]
    sample = fo.Sample(
        filepath=playback.filepath,
        metadata=metadata,
        video_id=video["video_id"],
        video_path=video["video_path"],
        video_title=video["info"].title,
        frames_dataset=frames.name,
        frame_ids=list(video["frame_ids"]),
        transcript_status=video["transcript_status"],
        playback=playback.mode,
        playback_note=playback.note,
    )
    sample[TRANSCRIPT_FIELD] = transcript_detections(
        video["video_id"], video["segments"], metadata
    )
    videos.add_sample(sample)
    linked = frames.select(video["frame_ids"])
    linked.set_values("video_sample_id", [sample.id] * len(video["frame_ids"]))
    return sample.id


def video_samples(frames, video_ids):
    """``{video_id: video sample}`` of ``frames``' video dataset."""
    videos = videos_dataset(frames)
    if videos is None or not video_ids:
        return {}
    view = videos.match(F("video_id").is_in(sorted(set(video_ids))))
    return {sample.video_id: sample for sample in view}


def delete_video_sample(frames, video_id, videos=None):
    """Removes the video sample of ``video_id`` (if any)."""
    videos = videos or videos_dataset(frames)
    if videos is not None:
        videos.delete_samples(videos.match(F("video_id") == video_id))
