"""Frame sampling with PyAV: seek to each wanted time instead of decoding all.

Fixed-rate sampling wants frame ``k`` at ``t = k / fps``: we seek to the
keyframe before ``t`` and decode forward to the first frame whose time is at
or after ``t``; the frame's own presentation time is what we report. Scene
sampling probes the video at a higher rate the same way and keeps a frame
when its perceptual hash differs from the previous probe's.

Sampling runs until the decoded stream ends, not until the container's
stated duration: a container can lie (``mvhd``/``mdhd`` saying 2.5 s for a
25-s stream), so the times go on past it until a seek finds no more frames.
"""

import itertools
from dataclasses import dataclass
from pathlib import Path

import av
import imagehash
from PIL import Image

from plugin.errors import InvalidInputError, VideoReadError

# Targets closer than this to the decoder's position are reached by decoding
# forward: cheaper than a seek back to a keyframe.
_DECODE_FORWARD_S = 1.0
_TIME_EPS = 1e-6
# Scene sampling ignores changes this soon after a kept frame: the frame
# right after a cut is often coded coarsely and "changes" again a probe later.
MIN_SCENE_S = 2.0


@dataclass
class VideoInfo:
    """What the container says about a video."""

    path: str
    duration: float
    frame_rate: float
    width: int
    height: int
    has_audio: bool
    title: str
    codec: str = ""  # the video stream's codec, e.g. "h264"
    pixel_format: str = ""  # e.g. "yuv420p"
    container_format: str = ""  # FFmpeg's demuxer names, e.g. "mov,mp4,m4a,..."
    size_bytes: int = 0

    def to_dict(self):
        return dict(self.__dict__)


@dataclass
class SampledFrame:
    """One sampled frame: its position in the sample, its time, its image."""

    index: int
    timestamp: float
    image: Image.Image | None
    size: tuple[int, int] | None = None  # (width, height), kept once written


def probe_video(path):
    """Returns the :class:`VideoInfo` of ``path``; raises :class:`VideoReadError`."""
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise VideoReadError("empty file (0 bytes)")
    try:
        with av.open(str(path)) as container:
            return _info_from_container(path, container)
    except av.FFmpegError as e:
        raise VideoReadError(f"not a readable video ({_short(e)})") from e


def _info_from_container(path, container):
    if not container.streams.video:
        raise VideoReadError("no video stream in the file")
    stream = container.streams.video[0]
    duration = _stream_duration(container, stream)
    if duration <= 0:
        raise VideoReadError("zero-length video (no duration)")
    title = container.metadata.get("title") or path.stem
    return VideoInfo(
        path=str(path),
        duration=duration,
        frame_rate=float(stream.average_rate or stream.guessed_rate or 0),
        width=stream.codec_context.width,
        height=stream.codec_context.height,
        has_audio=bool(container.streams.audio),
        title=title,
        codec=stream.codec_context.name or "",
        pixel_format=stream.codec_context.pix_fmt or "",
        container_format=container.format.name or "",
        size_bytes=path.stat().st_size,
    )


def _stream_duration(container, stream):
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def fixed_rate_times(duration, fps, max_frames=None):
    """The wanted times ``k / fps`` inside ``[0, duration)``, at most ``max_frames``."""
    if fps <= 0:
        raise InvalidInputError(f"fps must be positive, got {fps}")
    count = int(duration * fps - _TIME_EPS) + 1
    if max_frames:
        count = min(count, int(max_frames))
    return [k / fps for k in range(count)]


def open_ended_times(fps, max_frames=None):
    """``k / fps`` for ``k = 0, 1, ...`` (at most ``max_frames``): the
    sampler stops where the decoded stream ends."""
    if fps <= 0:
        raise InvalidInputError(f"fps must be positive, got {fps}")
    count = itertools.count() if not max_frames else range(int(max_frames))
    return (k / fps for k in count)


def stream_end_time(path):
    """Where the decoded video stream really ends (the last frame's time plus
    one frame), found by seeking to the end and decoding the last GOP; None
    if nothing decodes. The container's stated duration can be wrong."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 0)
        container.seek(2**62, stream=stream)  # lands on the last keyframe
        last = None
        try:
            for frame in container.decode(stream):
                last = frame.time if frame.time is not None else last
        except av.FFmpegError:
            pass  # a broken tail: what decoded is where it ends
    if last is None:
        return None
    return last + (1.0 / rate if rate else 0.0)


def frames_at(path, times, long_side=None):
    """Yields ``(time, image)``: the first frame at or after each of ``times``
    (ascending), by seeking; stops where the stream ends."""
    yield from _decode_at(path, times, long_side)


def sample_frames(
    path,
    fps=0.2,
    max_frames=None,
    long_side=None,
    dedup_distance=None,
    scene_threshold=None,
    scene_probe_fps=1.0,
):
    """Yields :class:`SampledFrame` s of the video at ``path``.

    Args:
        path: the video file
        fps (0.2): frames per second for fixed-rate sampling
        max_frames (None): stop after this many frames
        long_side (None): downscale frames so their long side is at most this
        dedup_distance (None): skip a frame whose perceptual hash is within
            this Hamming distance of the last kept frame
        scene_threshold (None): if set, sample on scene changes instead: probe
            at ``scene_probe_fps`` and keep a probe whose hash is at least this
            far from the previous probe's (the first frame is always kept)
        scene_probe_fps (1.0): the probing rate of scene sampling
    """
    probe_video(path)  # a clear error for an unreadable file
    probe_fps = scene_probe_fps if scene_threshold is not None else fps
    times = open_ended_times(probe_fps)
    kept, last_kept_hash, previous_hash, last_kept_time = 0, None, None, 0.0
    for timestamp, image in _decode_at(path, times, long_side):
        if max_frames and kept >= max_frames:
            return
        phash = _phash_if(image, dedup_distance, scene_threshold)
        is_new_scene = scene_threshold is None or (
            previous_hash is None
            or phash - previous_hash >= scene_threshold
            and timestamp - last_kept_time >= MIN_SCENE_S
        )
        previous_hash = phash
        is_duplicate = (
            dedup_distance is not None
            and last_kept_hash is not None
            and phash - last_kept_hash <= dedup_distance
        )
        if is_new_scene and not is_duplicate:
            last_kept_hash, last_kept_time = phash, timestamp
            yield SampledFrame(index=kept, timestamp=timestamp, image=image)
            kept += 1


def _phash_if(image, dedup_distance, scene_threshold):
    if dedup_distance is None and scene_threshold is None:
        return None
    return imagehash.phash(image)


def _decode_at(path, times, long_side=None):
    """Yields ``(time, image)`` for the first decoded frame at or after each time.

    Images are scaled by FFmpeg (swscale) while converting to RGB: cheaper
    than converting a 4K frame whole and shrinking it afterwards.

    Stops early (without error) where the stream ends or breaks, e.g. a
    truncated file; the caller compares what it got with what it wanted.
    """
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        width, height = scaled_size(
            stream.codec_context.width, stream.codec_context.height, long_side
        )
        position = None  # time of the last decoded frame
        frames = None
        for target in times:
            if position is None or target - position > _DECODE_FORWARD_S:
                container.seek(int(target / stream.time_base), stream=stream)
                frames = container.decode(stream)
            found = _first_frame_at_or_after(frames, target)
            if found is None:
                return
            position = found.time
            yield found.time, found.to_image(width=width, height=height)


def _first_frame_at_or_after(frames, target):
    try:
        for frame in frames:
            if frame.time is not None and frame.time >= target - _TIME_EPS:
                return frame
    except av.FFmpegError:
        return None  # a broken packet ends the stream for us
    return None


def scaled_size(width, height, long_side):
    """``(width, height)`` shrunk (never enlarged) to a long side of ``long_side``."""
    if not long_side or max(width, height) <= long_side:
        return width, height
    scale = long_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _short(error):
    return str(error).split(":")[-1].strip() or type(error).__name__
