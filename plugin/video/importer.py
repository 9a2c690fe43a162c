"""Import videos into a FiftyOne dataset of frame samples with transcripts.

One sample per sampled frame; the transcript segments go once per video to
the store described in :mod:`plugin.video.transcripts`. Each video is handled
on its own: a bad one gets a message in the report and the others go on.
Idempotent: a video is keyed by its content hash (``video_id``); a complete
video is skipped, a changed file replaces its old frames only once its new
ones are stored, and a video interrupted half-way is redone from scratch.
"""

import glob
import hashlib
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import fiftyone as fo
from fiftyone import ViewField as F

from plugin.settings import workbench_home
from plugin.video import alignment
from plugin.video import transcripts as store
from plugin.video.options import ImportOptions
from plugin.video.sampling import (
    VideoReadError,
    fixed_rate_times,
    probe_video,
    sample_frames,
)
from plugin.video.transcribe import is_silent, load_audio, transcribe_audio

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg")
DEFAULT_DATASET = "video-frames"
GROUPED_VIEW = "frames_by_video"  # saved view: frames grouped by video


@dataclass
class VideoResult:
    """What happened to one input path."""

    path: str
    status: str  # imported | reimported | unchanged | failed
    message: str = ""
    video_id: str | None = None
    num_frames: int = 0
    num_segments: int = 0
    transcript_status: str | None = None
    seconds: dict = field(default_factory=dict)  # per stage


@dataclass
class ImportReport:
    dataset_name: str
    videos: list[VideoResult] = field(default_factory=list)

    @property
    def failed(self):
        return [v for v in self.videos if v.status == "failed"]

    def to_dict(self):
        return {
            "dataset_name": self.dataset_name,
            "videos": [asdict(v) for v in self.videos],
        }

    def summary_lines(self):
        lines = [f"Dataset {self.dataset_name!r}:"]
        for v in self.videos:
            detail = f"{v.num_frames} frames, {v.num_segments} transcript lines"
            note = f" - {v.message}" if v.message else ""
            lines.append(f"  [{v.status}] {v.path}: {detail}{note}")
        return lines


def find_videos(paths):
    """Expands files, directories (recursively) and globs into video files.

    Returns ``(videos, problems)``: the video paths, and a VideoResult of
    status ``failed`` for each input that gives no video.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    videos, problems = [], []
    for raw in paths:
        found, message = _expand_one(str(raw).strip())
        videos.extend(p for p in found if p not in videos)
        if message:
            problems.append(
                VideoResult(path=str(raw), status="failed", message=message)
            )
    return videos, problems


def _expand_one(raw):
    path = Path(raw).expanduser()
    if path.is_dir():
        found = sorted(
            p.resolve()
            for p in path.rglob("*")
            if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
        )
        return (
            found,
            None
            if found
            else f"no videos ({', '.join(VIDEO_EXTENSIONS)}) in the directory",
        )
    if path.is_file():
        return [path.resolve()], None
    if glob.has_magic(raw):
        found = sorted(Path(p).resolve() for p in glob.glob(str(path), recursive=True))
        found = [p for p in found if p.is_file()]
        return found, None if found else "the pattern matches no files"
    return [], "path not found"


def video_content_id(path):
    """A stable id of the video's bytes (BLAKE2b, 16 bytes, hex)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(
            f, lambda: hashlib.blake2b(digest_size=16)
        ).hexdigest()


def get_or_create_dataset(dataset=None):
    """``dataset`` itself, or the (persistent) dataset with that name, created if new."""
    if isinstance(dataset, fo.Dataset):
        return dataset
    name = dataset or DEFAULT_DATASET
    if fo.dataset_exists(name):
        return fo.load_dataset(name)
    new = fo.Dataset(name)
    new.persistent = True
    return new


def import_videos(paths, dataset=None, options=None, progress=None, **option_values):
    """Imports videos as frame samples with aligned transcripts.

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
    videos, problems = find_videos(paths)
    report = ImportReport(dataset.name, videos=list(problems))
    for n, video_path in enumerate(videos):
        if progress:
            progress(n / len(videos), f"Video {n + 1}/{len(videos)}: {video_path.name}")
        report.videos.append(_import_one_safely(dataset, video_path, options))
    if progress:
        progress(1.0, f"Imported {len(videos)} video(s)")
    _save_grouped_view(dataset)
    return report


def _import_one_safely(dataset, video_path, options):
    try:
        return _import_one(dataset, video_path, options)
    except VideoReadError as e:
        return VideoResult(path=str(video_path), status="failed", message=str(e))
    except Exception as e:  # one bad video must not stop the others
        message = f"unexpected error: {type(e).__name__}: {e}"
        return VideoResult(path=str(video_path), status="failed", message=message)


def _import_one(dataset, video_path, options):
    info = probe_video(video_path)
    video_id = video_content_id(video_path)
    result = VideoResult(path=str(video_path), status="imported", video_id=video_id)
    done = store.load_video_record(dataset, video_id)
    if _is_complete(dataset, done):
        result.status, result.num_frames = "unchanged", done["num_frames"]
        result.num_segments, result.transcript_status = (
            len(done["segments"]),
            done["status"],
        )
        if done["video_path"] != str(video_path):
            result.message = f"same content already imported from {done['video_path']}"
        return result
    _delete_video(
        dataset, video_id, keep_frames=True
    )  # leftovers of an interrupted run
    frames_dir = _frames_dir(dataset, options) / video_id
    frames, timings = _write_frames(video_path, frames_dir, options)
    result.seconds.update(timings)
    if not frames:
        raise VideoReadError("no frames could be decoded (corrupt or truncated video)")
    result.message = _truncation_note(info, frames, options)
    segments, status, language, result.seconds["transcription"] = _transcript(
        video_path, info, options
    )
    started = time.perf_counter()
    _add_samples(dataset, info, video_id, frames, segments, status, options)
    replaced = _old_versions(dataset, str(video_path), video_id)
    store.save_video_record(
        dataset,
        _record(video_path, video_id, frames, segments, status, language, options),
    )
    for old_id in replaced:  # only now that the new version is stored
        _delete_video(dataset, old_id)
    result.seconds["writing"] += time.perf_counter() - started
    result.status = "reimported" if replaced else "imported"
    result.num_frames, result.num_segments, result.transcript_status = (
        len(frames),
        len(segments),
        status,
    )
    return result


def _is_complete(dataset, record):
    if not record or not record.get("complete"):
        return False
    count = dataset.match(F("video_id") == record["video_id"]).count()
    return count == record["num_frames"]


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
        frame.image.save(jpeg_path, quality=options.jpeg_quality)
        writing += time.perf_counter() - write_started
        frames.append((frame, jpeg_path))
    sampling = time.perf_counter() - started - writing
    return frames, {"sampling": sampling, "writing": writing}


def _truncation_note(info, frames, options):
    if options.scene_threshold is not None or options.dedup_distance is not None:
        return ""
    wanted = len(fixed_rate_times(info.duration, options.fps, options.max_frames))
    if len(frames) >= wanted:
        return ""
    last = frames[-1][0].timestamp
    return (
        f"video stream ends early (last frame at {last:.1f} s of {info.duration:.1f} s:"
        f" truncated?); imported {len(frames)} of {wanted} frames"
    )


def _transcript(video_path, info, options):
    """Returns ``(segments, status, language, seconds)``."""
    started = time.perf_counter()
    if not options.transcribe:
        return [], "off", None, 0.0
    if not info.has_audio:
        return [], "no_audio", None, 0.0
    try:
        audio = load_audio(video_path)
        if is_silent(audio):
            return [], "silent", None, time.perf_counter() - started
        transcript = transcribe_audio(
            audio, options.backend, options.model, options.language_code
        )
    except Exception as e:  # frames are still worth keeping
        return (
            [],
            f"failed: {type(e).__name__}: {e}",
            None,
            time.perf_counter() - started,
        )
    segments = [
        {"start": s.start, "end": s.end, "text": s.text} for s in transcript.segments
    ]
    status = "ok" if segments else "no_speech"
    return segments, status, transcript.language, time.perf_counter() - started


def _add_samples(dataset, info, video_id, frames, segments, status, options):
    times = [frame.timestamp for frame, _ in frames]
    texts = alignment.frame_texts(
        times, segments, info.duration, options.transcript_window
    )
    samples = []
    for (frame, jpeg_path), text in zip(frames, texts, strict=True):
        samples.append(
            fo.Sample(
                filepath=str(jpeg_path),
                metadata=fo.ImageMetadata(
                    width=frame.image.width,
                    height=frame.image.height,
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
                video_duration=info.duration,
                video_frame_rate=info.frame_rate,
                video_width=info.width,
                video_height=info.height,
            )
        )
    dataset.add_samples(samples, progress=False)


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


def _old_versions(dataset, video_path, video_id):
    """video_ids of earlier contents of the same file (changed since)."""
    view = dataset.match((F("video_path") == video_path) & (F("video_id") != video_id))
    return sorted(set(view.distinct("video_id")))


def _delete_video(dataset, video_id, keep_frames=False):
    """Removes a video's samples, record and (unless kept) frame files."""
    record = store.load_video_record(dataset, video_id)
    dataset.delete_samples(dataset.match(F("video_id") == video_id))
    store.delete_video_record(dataset, video_id)
    if record and not keep_frames and record.get("frames_dir"):
        shutil.rmtree(record["frames_dir"], ignore_errors=True)


def _save_grouped_view(dataset):
    if dataset.count() and not dataset.has_saved_view(GROUPED_VIEW):
        view = dataset.group_by("video_id", order_by="frame_index")
        dataset.save_view(GROUPED_VIEW, view, description="Frames grouped by video")
