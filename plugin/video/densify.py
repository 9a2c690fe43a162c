"""Densify around a moment: more frames where the sparse sampling looked too rarely.

At 0.2 FPS the import sees one frame in five seconds: anything shorter can
fall between two samples. :func:`densify_span` re-samples a span of one video
at a higher rate (default 2 FPS) by seeking, adds the frames it did not have
(``dense=True``), gives every frame of the video its transcript by the one
rule of :mod:`plugin.video.alignment` on the new timeline, links the new
frames to their video sample, and embeds them into an existing frame index
(``sync_frame_index``), so the next search can find them.

Idempotent: a frame whose decoded time is already a frame of the video is
skipped, so running it again adds nothing. The dense frames belong to their
video: deleting or re-importing a changed file removes them with it; an
unchanged re-import keeps them.
"""

import dataclasses
from pathlib import Path

import fiftyone as fo
from fiftyone import ViewField as F

from plugin.errors import IndexNotFoundError, InvalidInputError
from plugin.progress import report
from plugin.retrieval.frame_index import DEFAULT_BRAIN_KEY, sync_frame_index
from plugin.video import alignment, videos
from plugin.video.moments import Moment
from plugin.video.sampling import frames_at
from plugin.video.transcripts import load_video_record

DEFAULT_RADIUS_S = 10.0  # seconds either side of the moment
DEFAULT_DENSE_FPS = 2.0
JPEG_QUALITY = 90
_SAME_TIME_S = 1e-3  # a decoded frame this close to a stored one is that frame


@dataclasses.dataclass
class DensifyResult:
    video_id: str
    start: float
    end: float
    fps: float
    added: list  # timestamps of the frames added
    skipped: int  # frames the video had already
    index: dict | None = None  # sync_frame_index's {"added", "removed"}
    note: str = ""

    def to_dict(self):
        return dataclasses.asdict(self)


def densify_around(
    dataset,
    moment,
    radius_s=DEFAULT_RADIUS_S,
    fps=DEFAULT_DENSE_FPS,
    brain_key=DEFAULT_BRAIN_KEY,
    settings=None,
    progress=None,
):
    """Densifies ``radius_s`` seconds either side of a :class:`Moment` (its
    frame's time, else its span's middle)."""
    if not isinstance(moment, Moment):
        raise InvalidInputError(f"Not a moment: {type(moment).__name__}")
    center = moment.timestamp
    if center is None:
        center = (moment.start + moment.end) / 2
    return densify_span(
        dataset,
        moment.video_id,
        center - radius_s,
        center + radius_s,
        fps=fps,
        brain_key=brain_key,
        settings=settings,
        progress=progress,
    )


def densify_span(
    dataset,
    video_id,
    start,
    end,
    fps=DEFAULT_DENSE_FPS,
    brain_key=DEFAULT_BRAIN_KEY,
    settings=None,
    progress=None,
):
    """Adds frames of ``video_id`` at ``fps`` in ``[start, end]`` seconds.

    Args:
        dataset: the frames dataset
        video_id: the video (its content hash)
        start, end: the span, clipped to the video
        fps (2.0): the sampling rate inside the span
        brain_key ("frame_sim"): the frame index to add the new frames to;
            None (or an index that does not exist) leaves indexes alone
        settings (None): a :class:`~plugin.settings.Settings` (the Milvus store)
        progress (None): ``progress(fraction, label)``

    Returns:
        a :class:`DensifyResult`
    """
    dataset = dataset._root_dataset
    record = _record(dataset, video_id)
    if not fps or fps <= 0:
        raise InvalidInputError(f"fps must be positive, got {fps}")
    frames = dataset.match(F("video_id") == video_id)
    duration = _duration(frames, record)
    start, end = max(0.0, float(start)), min(float(end), duration)
    if end < start:
        raise InvalidInputError(f"The span {start:.1f}-{end:.1f} s is empty")
    report(progress, 0.0, f"Sampling {start:.1f}-{end:.1f} s at {fps} FPS")
    known = sorted(t for t in frames.values("timestamp") if t is not None)
    wanted = [start + k / fps for k in range(int((end - start) * fps + 1e-6) + 1)]
    new, skipped = _decode_new(record, frames, wanted, known)
    result = DensifyResult(video_id, start, end, fps, [t for t, _ in new], skipped)
    if new:
        report(progress, 0.3, f"Adding {len(new)} frames")
        _add_dense_frames(dataset, record, frames, new)
    result.index, result.note = _embed(dataset, brain_key, settings, progress)
    report(progress, 1.0, f"Added {len(new)} frames")
    return result


def _record(dataset, video_id):
    record = load_video_record(dataset, video_id)
    if not record or not record.get("complete"):
        raise InvalidInputError(
            f"Video {video_id!r} is not (completely) imported in {dataset.name!r}"
        )
    if not Path(record["video_path"]).is_file():
        raise InvalidInputError(
            f"The video file {record['video_path']} is gone: densify needs it"
        )
    return record


def _duration(frames, record):
    durations = [d for d in frames.distinct("video_duration") if d]
    return record.get("duration") or (max(durations) if durations else float("inf"))


def _decode_new(record, frames, wanted, known):
    """``([(time, image)], skipped)``: decoded frames not stored yet."""
    sizes = [m.width and max(m.width, m.height) for m in frames.values("metadata") if m]
    long_side = max(sizes) if sizes else None
    new, skipped, seen = [], 0, set()
    for time, image in frames_at(record["video_path"], wanted, long_side):
        if _has_time(known, time) or round(time, 6) in seen:
            skipped += 1
            continue
        seen.add(round(time, 6))
        new.append((time, image))
    return new, skipped


def _has_time(known, time):
    return any(abs(t - time) <= _SAME_TIME_S for t in known)


def _add_dense_frames(dataset, record, frames, new):
    folder = Path(record["frames_dir"])
    folder.mkdir(parents=True, exist_ok=True)
    template = frames.first()
    samples = []
    for time, image in new:
        path = folder / f"dense_{round(time * 1000):09d}.jpg"
        image.save(path, quality=JPEG_QUALITY)
        samples.append(_dense_sample(template, path, time, image))
    ids = dataset.add_samples(samples, progress=False)
    _realign(dataset, record)
    _link(dataset, record["video_id"], ids)


def _dense_sample(template, path, time, image):
    copied = (
        "video_path",
        "video_id",
        "transcript_status",
        "video_title",
        "video_duration",
        "video_frame_rate",
        "video_width",
        "video_height",
        "video_sample_id",
    )
    fields = {n: template[n] for n in copied if template.has_field(n)}
    return fo.Sample(
        filepath=str(path),
        metadata=fo.ImageMetadata(
            width=image.width,
            height=image.height,
            size_bytes=path.stat().st_size,
            mime_type="image/jpeg",
        ),
        timestamp=time,
        dense=True,
        **fields,
    )


def _realign(dataset, record):
    """Every frame of the video gets the transcript the rule gives it on the
    new timeline (what transcript search's segment -> frames mapping reads)."""
    frames = dataset.match(F("video_id") == record["video_id"]).sort_by("timestamp")
    ids, times, durations = frames.values(["id", "timestamp", "video_duration"])
    duration = record.get("duration") or (durations[0] if durations else None)
    texts = alignment.frame_texts(
        times, record.get("segments") or [], duration, record.get("transcript_window")
    )
    frames.set_values("transcript", dict(zip(ids, texts)), key_field="id")


def _link(dataset, video_id, new_ids):
    """The video sample lists all its frames (in time order), and they it."""
    samples = videos.video_samples(dataset, [video_id])
    sample = samples.get(video_id)
    if sample is None:
        return  # imported before video samples existed
    frames = dataset.match(F("video_id") == video_id).sort_by("timestamp")
    sample["frame_ids"] = frames.values("id")
    sample.save()
    dataset.select(new_ids).set_values("video_sample_id", [sample.id] * len(new_ids))


def _embed(dataset, brain_key, settings, progress):
    """Adds the new frames to the frame index ``brain_key``, if it exists."""
    if not brain_key:
        return None, "no index named: frames not embedded"
    if brain_key not in dataset.list_brain_runs():
        return None, f"no frame index {brain_key!r}: frames not embedded"
    report(progress, 0.6, f"Embedding new frames into {brain_key!r}")
    try:
        return sync_frame_index(dataset, brain_key, settings=settings), ""
    except IndexNotFoundError as e:
        return None, e.message
