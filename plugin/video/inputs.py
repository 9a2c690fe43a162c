"""What an import takes and gives: the video files found, the report per video."""

import glob
import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg")


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
        try:
            found, message = _expand_one(str(raw).strip())
        except (OSError, ValueError) as e:  # a name too long, a NUL byte...
            found, message = [], f"unusable path ({getattr(e, 'strerror', None) or e})"
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
