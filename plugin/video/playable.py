"""Videos the App's player can show: detect them, and make an H.264 copy of the others.

The App plays a video sample in the browser's ``<video>`` element, which
reliably plays H.264 (8-bit 4:2:0) in an MP4/MOV container. HEVC, VP9 in
MP4, MPEG-4 Part 2, ProRes, 10-bit or 4:2:2 pixel formats often do not play.
For those the importer writes a browser-playable copy (PyAV's libx264 and
AAC encoders; no system ffmpeg) beside the video's frames; when that is not
possible the video sample says why in ``playback_note``. Frames, transcripts
and search never depend on it: they come from the original file.
"""

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

PLAYABLE_CODECS = ("h264",)
PLAYABLE_PIXEL_FORMATS = ("yuv420p", "yuvj420p")
PLAYABLE_CONTAINERS = ("mp4", "mov")
COPY_NAME = "playable.mp4"
_AUDIO_RATE = 48000


@dataclass
class Playback:
    """How the App plays a video: which file, and a note when it cannot."""

    filepath: str  # what the video sample's filepath is
    mode: str  # original | h264_copy | unplayable
    note: str = ""


def is_browser_playable(info):
    """Whether the browser plays the file of ``info`` (a ``VideoInfo``) as is."""
    formats = set(info.container_format.split(","))
    return (
        info.codec in PLAYABLE_CODECS
        and info.pixel_format in PLAYABLE_PIXEL_FORMATS
        and bool(formats & set(PLAYABLE_CONTAINERS))
    )


def why_not_playable(info):
    """A sentence saying what stops the browser (empty when nothing does)."""
    if is_browser_playable(info):
        return ""
    return (
        f"the browser cannot play this video as is ({info.codec or 'unknown codec'},"
        f" {info.pixel_format or 'unknown pixel format'}, container"
        f" {info.container_format or 'unknown'}): the App's player needs H.264"
        " (yuv420p) in MP4"
    )


def ensure_playable(info, folder):
    """The :class:`Playback` of a video: its own file when the browser plays it,
    else an H.264 copy written to ``folder``, else the original with a note
    saying why the player cannot show it."""
    reason = why_not_playable(info)
    if not reason:
        return Playback(info.path, "original")
    if "libx264" not in av.codecs_available:
        return Playback(info.path, "unplayable", f"{reason}; no H.264 encoder")
    target = Path(folder) / COPY_NAME
    try:
        write_h264_copy(info.path, target)
    except (av.FFmpegError, OSError, ValueError) as e:
        target.unlink(missing_ok=True)
        return Playback(
            info.path, "unplayable", f"{reason}; the H.264 copy failed ({e})"
        )
    return Playback(str(target), "h264_copy", f"{reason}: playing an H.264 copy")


def write_h264_copy(source, target, crf=23, preset="veryfast"):
    """Re-encodes ``source`` to an H.264/AAC MP4 at ``target`` (index first,
    so the browser starts playing before the whole file arrives).

    Frame times are kept (rounded to the output's frame rate); odd frame
    sizes are cropped to even ones, as 4:2:0 requires.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial.mp4")
    with av.open(str(source)) as src:
        with av.open(
            str(partial), "w", format="mp4", options={"movflags": "faststart"}
        ) as dst:
            _transcode(src, dst, crf, preset)
    partial.replace(target)  # a cut-off run never leaves a half file in place


def _transcode(src, dst, crf, preset):
    video_in = src.streams.video[0]
    rate = Fraction(video_in.average_rate or video_in.guessed_rate or 25)
    video_out = dst.add_stream("libx264", rate=rate)
    video_out.width = video_in.codec_context.width // 2 * 2
    video_out.height = video_in.codec_context.height // 2 * 2
    video_out.pix_fmt = "yuv420p"
    video_out.options = {"crf": str(crf), "preset": preset}
    audio_in = src.streams.audio[0] if src.streams.audio else None
    audio_out, resampler = None, None
    if audio_in is not None and "aac" in av.codecs_available:
        audio_out = dst.add_stream("aac", rate=_AUDIO_RATE, layout="stereo")
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=_AUDIO_RATE)
    streams = [video_in] + ([audio_in] if audio_out else [])
    last_pts = -1
    for frame in src.decode(*streams):
        if isinstance(frame, av.VideoFrame):
            last_pts = _encode_video(dst, video_out, frame, rate, last_pts)
        else:
            for chunk in resampler.resample(frame):
                chunk.pts = None  # the encoder numbers the samples itself
                dst.mux(audio_out.encode(chunk))
    dst.mux(video_out.encode(None))
    if audio_out is not None:
        dst.mux(audio_out.encode(None))


def _encode_video(dst, stream, frame, rate, last_pts):
    """Encodes ``frame`` at its own time; a frame that would land on the same
    output tick as the previous one is dropped. Returns the last pts used."""
    pts = round((frame.time or 0.0) * rate)
    if pts <= last_pts:
        return last_pts
    out = frame.reformat(width=stream.width, height=stream.height, format="yuv420p")
    out.pts, out.time_base = pts, 1 / rate
    dst.mux(stream.encode(out))
    return pts
