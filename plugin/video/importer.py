"""Import videos into a FiftyOne dataset of frame samples with transcripts.

One sample per sampled frame; the transcript segments go once per video to
the store described in :mod:`plugin.video.transcripts`, and each video
becomes a video sample of the companion video dataset
(:mod:`plugin.video.videos`), linked to its frames both ways. Each video is
handled on its own: a bad one gets a message in the report and the others go
on. Idempotent: a video is keyed by its content hash (``video_id``); a
complete video is skipped, a changed file replaces its old version only once
its new one is stored (the record names the versions it replaces, so a run
killed before they are gone finishes the job next time), and a video
interrupted half-way is redone from scratch. Several processes may import
into the same dataset at once: a per-video claim (:mod:`plugin.video.claims`)
keeps each video imported once.
"""

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import fiftyone as fo
from fiftyone import ViewField as F
from PIL import Image

from plugin.errors import VideoRagError, VideoReadError
from plugin.settings import workbench_home
from plugin.video import alignment, claims, videos
from plugin.video import transcripts as store
from plugin.video.duration import stream_duration
from plugin.video.inputs import (  # noqa: F401 (the importer's public names)
    VIDEO_EXTENSIONS,
    ImportReport,
    VideoResult,
    find_videos,
    video_content_id,
)
from plugin.video.options import ImportOptions
from plugin.video.playable import ensure_playable
from plugin.video.sampling import probe_video, sample_frames
from plugin.video.transcribe import transcribe_video

DEFAULT_DATASET = "video-frames"
GROUPED_VIEW = "frames_by_video"  # saved view: frames grouped by video
#: Transcribe in a thread while the frames are sampled and written (both
#: mostly outside the GIL); bench/bench_scale_ingest.py measures it off too.
TRANSCRIBE_WHILE_SAMPLING = True


def get_or_create_dataset(dataset=None):
    """``dataset`` itself, or the (persistent) frames dataset with that name,
    created if new (safe when several processes create it at once)."""
    if isinstance(dataset, fo.Dataset):
        return dataset
    return videos.get_or_create(dataset or DEFAULT_DATASET, "image")


def import_videos(paths, dataset=None, options=None, progress=None, **option_values):
    """Imports videos as frame samples with aligned transcripts, and each
    video as a video sample of the companion video dataset
    (:mod:`plugin.video.videos`).

    Args:
        paths: a path, or a list of files, directories and glob patterns
        dataset (None): a dataset, a dataset name (created if new), or None
            for ``"video-frames"``
        options (None): an :class:`ImportOptions`; ``option_values`` override it
        progress (None): called as ``progress(fraction, label)`` per video

    Returns:
        an :class:`ImportReport` with each video's status and message

    Raises:
        ValueError: if an option is invalid (nothing is imported)
    """
    options = options or ImportOptions()
    if option_values:
        options = ImportOptions.from_dict({**options.to_dict(), **option_values})
    options.validate()
    dataset = get_or_create_dataset(dataset)
    found, problems = find_videos(paths)
    report = ImportReport(dataset.name, videos=list(problems))
    for n, video_path in enumerate(found):
        if progress:
            progress(n / len(found), f"Video {n + 1}/{len(found)}: {video_path.name}")
        report.videos.append(_import_one_safely(dataset, video_path, options))
    if progress:
        progress(1.0, f"Imported {len(found)} video(s)")
    _save_grouped_view(dataset)
    return report


def _import_one_safely(dataset, video_path, options):
    try:
        return _import_one(dataset, video_path, options)
    except VideoRagError as e:
        return VideoResult(path=str(video_path), status="failed", message=e.message)
    except Exception as e:  # one bad video must not stop the others
        message = f"unexpected error: {type(e).__name__}: {e}"
        return VideoResult(path=str(video_path), status="failed", message=message)


def _import_one(dataset, video_path, options):
    info = probe_video(video_path)
    video_id = video_content_id(video_path)
    with claims.claim_video(dataset, video_id) as waited:
        result = _import_claimed(dataset, video_path, info, video_id, options)
    if waited and result.status == "unchanged" and not result.message:
        result.message = "imported by another process meanwhile"
    return result


def _import_claimed(dataset, video_path, info, video_id, options):
    result = VideoResult(path=str(video_path), status="imported", video_id=video_id)
    done = store.load_video_record(dataset, video_id)
    if _is_complete(dataset, done):
        return _unchanged(dataset, video_path, info, done, result)
    _delete_video(dataset, video_id, keep_frames=True)  # an interrupted run's
    frames_dir = _frames_dir(dataset, options) / video_id
    with ThreadPoolExecutor(1) as background:
        heard = background.submit(transcribe_video, video_path, info, options)
        if not TRANSCRIBE_WHILE_SAMPLING:
            heard.result()
        frames, timings = _write_frames(video_path, frames_dir, options)
        result.seconds.update(timings)
        if not frames:
            raise VideoReadError(
                "no frames could be decoded (corrupt or truncated video)"
            )
        claims.refresh(dataset, video_id)
        segments, status, language, result.seconds["transcription"], audio_s = (
            heard.result()
        )
    duration, notes = stream_duration(info, frames, audio_s, options)
    started = time.perf_counter()
    frame_ids = _add_samples(
        dataset, info, duration, video_id, frames, segments, status, options
    )
    if options.screen_text:  # before the record: a complete video has it
        result.seconds["screen_text"] = _read_screen_text(dataset, frame_ids, frames)
    playback = ensure_playable(info, frames_dir)
    notes += [playback.note] if playback.mode == "unplayable" else []
    video = {
        "video_id": video_id,
        "video_path": str(video_path),
        "info": info,
        "duration": duration,
        "segments": segments,
        "transcript_status": status,
        "playback": playback,
        "frame_ids": frame_ids,
    }
    videos.save_video_sample(dataset, video)
    # "replaces" is written with the record, before the old versions go: a
    # run killed in between finishes their removal next time (_unchanged)
    record = _record(video_path, video_id, frames, segments, status, language, options)
    record.update(duration=duration, replaces=_old_versions(dataset, video))
    store.save_video_record(dataset, record)
    replaced = _finish_replacements(dataset, record)
    result.seconds["writing"] += time.perf_counter() - started
    result.message = "; ".join(n for n in notes if n)
    result.status = "reimported" if replaced else "imported"
    result.num_frames, result.num_segments, result.transcript_status = (
        len(frames),
        len(segments),
        status,
    )
    return result


def _unchanged(dataset, video_path, info, record, result):
    """A complete video: finish what an interrupted run left (old versions,
    a missing video sample) and report it unchanged."""
    result.status, result.num_frames = "unchanged", record["num_frames"]
    result.num_segments = len(record["segments"])
    result.transcript_status = record["status"]
    notes = []
    if record["video_path"] != str(video_path):
        notes.append(f"same content already imported from {record['video_path']}")
    leftover = _finish_replacements(
        dataset,
        record,
        _old_versions(
            dataset,
            {"video_id": record["video_id"], "video_path": record["video_path"]},
        ),
    )
    if leftover:
        notes.append(
            f"removed {len(leftover)} earlier version(s) left by an interrupted run"
        )
    if not videos.video_samples(dataset, [record["video_id"]]):
        _add_video_sample(dataset, info, record)
        notes.append("added its video sample")
    result.message = "; ".join(notes)
    return result


def _is_complete(dataset, record):
    if not record or not record.get("complete"):
        return False
    sampled = (F("video_id") == record["video_id"]) & (F("dense") != True)  # noqa: E712
    return dataset.match(sampled).count() == record["num_frames"]


def _frames_dir(dataset, options):
    if options.frames_dir:
        return Path(options.frames_dir).expanduser().resolve()
    return workbench_home() / "frames" / dataset.name


def _write_frames(video_path, frames_dir, options):
    """Samples and writes the frames; returns ``([(frame, jpeg path)], timings)``."""
    shutil.rmtree(frames_dir, ignore_errors=True)  # stale frames of a cut-off run
    frames_dir.mkdir(parents=True, exist_ok=True)
    frames, writing = [], 0.0
    started = time.perf_counter()
    for frame in sample_frames(
        video_path,
        fps=options.fps,
        max_frames=options.max_frames,
        long_side=options.long_side,
        dedup_distance=options.dedup_distance,
        scene_threshold=options.scene_threshold,
        scene_probe_fps=options.scene_probe_fps,
    ):
        write_started = time.perf_counter()
        jpeg_path = frames_dir / f"frame_{frame.index:06d}.jpg"
        _save_jpeg(frame.image, jpeg_path, options.jpeg_quality, frames_dir)
        writing += time.perf_counter() - write_started
        # Keep only its size: holding every decoded image until the video is
        # done took a 3-hour 720p import to 5.2 GB (bench/bench_faults.py).
        frames.append((replace(frame, image=None, size=frame.image.size), jpeg_path))
    sampling = time.perf_counter() - started - writing
    return frames, {"sampling": sampling, "writing": writing}


def _save_jpeg(image, path, quality, frames_dir):
    """Writes one frame; a full or read-only disk removes this video's partial
    frames and says which folder, instead of a raw ``OSError``."""
    try:
        image.save(path, quality=quality)
    except OSError as e:
        shutil.rmtree(frames_dir, ignore_errors=True)
        raise VideoRagError(
            f"Could not write frames to {frames_dir}: {e.strerror or e} (disk "
            "full or not writable?). Free space there or choose another frames "
            "folder; the partial frames were removed.",
            kind="frames_disk",
        ) from None


def _add_samples(dataset, info, duration, video_id, frames, segments, status, options):
    """Adds the frame samples; returns their ids (in time order)."""
    times = [frame.timestamp for frame, _ in frames]
    texts = alignment.frame_texts(times, segments, duration, options.transcript_window)
    samples = [
        fo.Sample(
            filepath=str(jpeg_path),
            metadata=fo.ImageMetadata(
                width=frame.size[0],
                height=frame.size[1],
                size_bytes=jpeg_path.stat().st_size,
                mime_type="image/jpeg",
            ),
            video_path=info.path,
            video_id=video_id,
            frame_index=frame.index,
            timestamp=frame.timestamp,
            transcript=text,
            transcript_status=status,
            video_title=info.title,
            video_duration=duration,
            video_frame_rate=info.frame_rate,
            video_width=info.width,
            video_height=info.height,
        )
        for (frame, jpeg_path), text in zip(frames, texts, strict=True)
    ]
    try:
        return dataset.add_samples(samples, progress=False)
    except ValueError as e:  # "Cannot set media type": filled by another process
        if "media type" not in str(e):
            raise
        dataset.reload()
        return dataset.add_samples(samples, progress=False)


def _read_screen_text(dataset, frame_ids, frames):
    """Reads the new frames' on-screen text (``ImportOptions.screen_text``)
    from their JPEGs, one at a time (decoded frames are not kept in memory,
    see ``_write_frames``); returns the seconds it took."""
    from plugin.video.screen_text import store_video_text  # needs rapidocr

    started = time.perf_counter()
    images = (_open_rgb(path) for _, path in frames)  # lazily: bounded memory
    store_video_text(dataset, frame_ids, images)
    return time.perf_counter() - started


def _open_rgb(path):
    with Image.open(path) as image:
        return image.convert("RGB")


def _record(video_path, video_id, frames, segments, status, language, options):
    return {
        "video_id": video_id,
        "video_path": str(video_path),
        "language": language,
        "backend": options.backend if options.transcribe else None,
        "model": options.model if options.transcribe else None,
        "status": status,
        "num_frames": len(frames),
        "frames_dir": str(frames[0][1].parent),
        "complete": True,
        "transcript_window": options.transcript_window,  # for alignment
        "segments": segments,
    }


def _add_video_sample(dataset, info, record):
    """The video sample of a video imported before video samples existed."""
    frame_ids, timestamps = dataset.match(F("video_id") == record["video_id"]).values(
        ["id", "timestamp"]
    )
    ordered = [i for _, i in sorted(zip(timestamps, frame_ids))]
    duration = record.get("duration") or info.duration
    video = {
        "video_id": record["video_id"],
        "video_path": record["video_path"],
        "info": info,
        "duration": duration,
        "segments": record["segments"],
        "transcript_status": record["status"],
        "playback": ensure_playable(info, record["frames_dir"]),
        "frame_ids": ordered,
    }
    videos.save_video_sample(dataset, video)


def _old_versions(dataset, video):
    """video_ids of earlier contents of the same file (changed since)."""
    view = dataset.match(
        (F("video_path") == video["video_path"]) & (F("video_id") != video["video_id"])
    )
    return sorted(set(view.distinct("video_id")))


def _finish_replacements(dataset, record, found=()):
    """Deletes the old versions ``record`` replaces (and ``found`` ones),
    then clears the intent; returns their ids."""
    replaced = sorted(set(record.get("replaces") or []) | set(found))
    for old_id in replaced:
        _delete_video(dataset, old_id)
    if record.get("replaces"):
        store.save_video_record(dataset, {**record, "replaces": []})
    return replaced


def delete_video(dataset, video_id):
    """Deletes an imported video: its frame samples, its video sample, its
    transcript record and its files (frames, playable copy).

    Index rows go with the next sync (``sync_frame_index``,
    ``sync_transcript_index``), which drops what is no longer in the dataset.
    """
    _delete_video(dataset._root_dataset, video_id)


def _delete_video(dataset, video_id, keep_frames=False):
    """Removes a video's samples, video sample, record and (unless kept) files."""
    record = store.load_video_record(dataset, video_id)
    dataset.delete_samples(dataset.match(F("video_id") == video_id))
    videos.delete_video_sample(dataset, video_id)
    store.delete_video_record(dataset, video_id)
    if record and not keep_frames and record.get("frames_dir"):
        shutil.rmtree(record["frames_dir"], ignore_errors=True)


def _save_grouped_view(dataset):
    if dataset.count() and not dataset.has_saved_view(GROUPED_VIEW):
        view = dataset.group_by("video_id", order_by="timestamp")  # dense frames too
        try:
            dataset.save_view(GROUPED_VIEW, view, description="Frames grouped by video")
        except ValueError:  # saved by another process meanwhile
            dataset.reload()
