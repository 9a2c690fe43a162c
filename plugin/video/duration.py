"""A video's real length: the container's word checked against the stream.

Containers lie (``mvhd``/``tkhd``/``mdhd`` durations that say 2.5 s for a
25-s stream): sampling runs until the decoded stream ends, and these checks
turn what it found into the duration to record and the notes to report.
"""

from plugin.video.sampling import fixed_rate_times, stream_end_time

_TIME_SLACK_S = 0.5  # frames this far past the container's end: it lied
_AUDIO_SLACK_S = 2.0  # audio this much longer than the video is reported


def stream_duration(info, frames, audio_s, options):
    """``(duration, notes)``: the video's real length and what to warn about.

    The container's duration is not trusted alone: sampling ran until the
    decoded stream ended, so frames past it mean the container lied; then the
    stream's own end is the duration, and the audio's length is reported
    beside it as a cross-check.
    """
    last = frames[-1][0].timestamp
    notes = [_truncation_note(info, frames, options)]
    duration = info.duration
    if last > info.duration + _TIME_SLACK_S:
        duration = max(last, stream_end_time(info.path) or last)
        audio = f", the audio {audio_s:.1f} s" if audio_s else ""
        notes.append(
            f"the container says {info.duration:.1f} s but the video stream runs to"
            f" {duration:.1f} s{audio}: sampled the whole stream"
        )
    elif audio_s and audio_s > duration + _AUDIO_SLACK_S:
        notes.append(
            f"the audio ({audio_s:.1f} s) runs past the video ({duration:.1f} s)"
        )
    return duration, notes


def _truncation_note(info, frames, options):
    if options.scene_threshold is not None or options.dedup_distance is not None:
        return ""
    # A rate above the video's own gives every frame: never "truncated" then
    rate = min(options.fps, info.frame_rate or options.fps)
    wanted = len(fixed_rate_times(info.duration, rate, options.max_frames))
    if len(frames) >= wanted:
        return ""
    last = frames[-1][0].timestamp
    return (
        f"video stream ends early (last frame at {last:.1f} s of {info.duration:.1f} s:"
        f" truncated?); imported {len(frames)} of {wanted} frames"
    )
