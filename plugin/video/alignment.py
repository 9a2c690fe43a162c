"""The one rule that links transcript segments to frames, both ways.

The importer writes each frame's ``transcript`` with it and transcript search
maps a segment hit to its frames with it, so a frame carries a segment iff
the segment lists that frame.

The rule, for one video (frame times ascending, segments in time order):

- Each frame owns a **window**: its interval up to the next frame (the last
  one's runs to the end of the video), or ``window`` seconds centred on it
  when the import's ``transcript_window`` option is set.
- Segments separated by a pause shorter than :data:`MAX_PAUSE_S` are
  **continuous speech**; a longer pause is silence. A segment's **reach**
  runs over the short pauses on either side of it, up to its neighbours
  (the start and end of the video count as neighbours too); an edge at
  silence is pulled in by :data:`GRAZE_S` (or to its middle, for a shorter
  segment), because Whisper's word times are loose by a few tenths of a
  second there.

A frame carries a segment when

1. the frame's timestamp lies in the segment's reach (it is being spoken
   then, or the frame sits in a short pause next to it: then it carries
   the segments on both sides), or
2. the segment overlaps the frame's window by at least half the shorter of
   the two (it is spoken during the frame's window), or
3. no frame carries the segment by 1 or 2, and this frame is the nearest
   to it (e.g. between two narrow centred windows).

Example, frames at 1 FPS and 0.2 FPS, segments A = [0.0, 3.9) "apple ...",
B = [4.7, 8.3) "frog ..." (a 0.8 s breath between them), C = [10.9, 12.0)
"dog ..." after 2.6 s of silence:

- at 1 FPS the frame at 4 s sits in the breath: it carries A and B (with
  the 50 % rule alone it carried nothing); 9 s and 10 s carry nothing
  (silence); 11 s carries C.
- at 0.2 FPS the frame at 0 s carries A (rule 1 and 2) but not B: B
  grazes its window [0, 5) by 0.3 s only; the frame at 5 s carries B, and
  the frame at 10 s carries C (rule 2).
"""

import math
from bisect import bisect_left, bisect_right
from collections import defaultdict

from fiftyone import ViewField as F

from plugin.video.transcripts import load_video_records, segment_number

#: A pause shorter than this, between two segments, is a breath inside
#: continuous speech (tiny.en shows 0.3-1.0 s between read sentences); a
#: longer one is silence. Whisper's segmenter ends a segment at 0.8 s
#: already (``plugin.video.transcribe.PAUSE_SPLIT_S``).
MAX_PAUSE_S = 1.2
#: How far inside its edge at silence a segment starts to count as spoken.
GRAZE_S = 0.3


def frames_for_segment(times, segments, j, duration=None, window=None):
    """Indexes of the frames that carry segment ``j`` (the rule above).

    Args:
        times: the frames' timestamps, ascending
        segments: dicts with ``start`` and ``end``, in time order
        j: the segment's index in ``segments``
        duration (None): the video's length (the last frame's window end)
        window (None): centred window length in seconds; None: intervals
    """
    if not times:
        return []
    start, end = segments[j]["start"], segments[j]["end"]
    low, high = _reach(segments, j, duration)
    half = window / 2 if window else 0.0
    first = max(0, bisect_left(times, min(low, start - half)) - 1)
    last = bisect_right(times, max(high, end + half))
    found = [
        i
        for i in range(first, last)
        if low <= times[i] <= high
        or _overlaps(start, end, *frame_window(times, i, duration, window))
    ]
    return found or [_nearest(times, start, end)]


def segments_by_frame(times, segments, duration=None, window=None):
    """For each frame, the indexes of the segments it carries (in time order)."""
    carried = [[] for _ in times]
    for j in range(len(segments)):
        for i in frames_for_segment(times, segments, j, duration, window):
            carried[i].append(j)
    return carried


def segments_for_frame(times, segments, i, duration=None, window=None):
    """Indexes of the segments frame ``i`` carries."""
    return segments_by_frame(times, segments, duration, window)[i]


def frame_texts(times, segments, duration=None, window=None):
    """Each frame's transcript: the text of the segments it carries, joined."""
    return [
        _join(segments, carried)
        for carried in segments_by_frame(times, segments, duration, window)
    ]


def text_for_frame(times, segments, i, duration=None, window=None):
    """Frame ``i``'s transcript (see :func:`frame_texts`)."""
    return _join(segments, segments_for_frame(times, segments, i, duration, window))


def segment_frame_ids(samples, spans):
    """The rule on stored data: the frames of ``samples`` carrying each segment.

    Args:
        samples: a dataset or view of imported frames
        spans: ``(segment_id, video_id, start, end)`` of each segment (e.g.
            of transcript search hits)

    Returns:
        ``{segment_id: [frame sample ids, in time order]}``: the rule runs on
        all the video's frames (as the import did; the segment's neighbours
        and the import's window come from the video's record), then a view
        keeps its own frames only
    """
    root = samples._root_dataset
    video_ids = sorted({video_id for _, video_id, _, _ in spans})
    timelines = _timelines(root, video_ids)
    records = load_video_records(root, video_ids)
    found = {}
    for ident, video_id, start, end in spans:
        times, ids, duration = timelines.get(video_id, ([], [], None))
        record = records.get(video_id) or {}
        segments, j = _segments_around(record, ident, start, end)
        window = record.get("transcript_window")
        picked = frames_for_segment(times, segments, j, duration, window)
        found[ident] = [ids[i] for i in picked]
    if samples is not root:
        listed = [i for ids in found.values() for i in ids]
        shown = set(samples.select(listed).values("id"))
        found = {key: [i for i in ids if i in shown] for key, ids in found.items()}
    return found


def frame_window(times, i, duration=None, window=None):
    """Frame ``i``'s window ``(start, end)``: centred ``window`` s, else its
    interval up to the next frame (the last one's: to ``duration``)."""
    if window:
        return times[i] - window / 2, times[i] + window / 2
    if i + 1 < len(times):
        return times[i], times[i + 1]
    return times[i], max(times[i], math.inf if duration is None else duration)


def _timelines(samples, video_ids):
    """``{video_id: (times, ids, duration)}``: each video's frames in time order."""
    names = ["id", "video_id", "timestamp"]
    if samples.has_sample_field("video_duration"):
        names.append("video_duration")
    view = samples.match(F("video_id").is_in(video_ids))
    frames, durations = defaultdict(list), {}
    for sample_id, video_id, timestamp, *duration in zip(*view.values(names)):
        if timestamp is not None:
            frames[video_id].append((timestamp, sample_id))
            durations[video_id] = duration[0] if duration else None
    timelines = {}
    for video_id, timed in frames.items():
        times, ids = zip(*sorted(timed))
        timelines[video_id] = (list(times), list(ids), durations[video_id])
    return timelines


def _segments_around(record, ident, start, end):
    """``(segments, j)``: the video's segments and this one's index; the
    span alone when the record does not hold it (a record rewritten since)."""
    segments = record.get("segments") or []
    n = segment_number(ident)
    if n is not None and n < len(segments):
        stored = segments[n]
        if math.isclose(stored["start"], start, abs_tol=1e-6) and math.isclose(
            stored["end"], end, abs_tol=1e-6
        ):
            return segments, n
    return [{"start": start, "end": end, "text": ""}], 0


def _reach(segments, j, duration):
    """``(low, high)``: when segment ``j`` counts as being spoken. Its
    neighbours here are the segments next to it, else the video's ends."""
    start, end = segments[j]["start"], segments[j]["end"]
    before = segments[j - 1]["end"] if j > 0 else 0.0
    after = segments[j + 1]["start"] if j + 1 < len(segments) else duration
    graze = min(GRAZE_S, (end - start) / 2)
    low, high = start + graze, end - graze
    if start - before < MAX_PAUSE_S:
        low = min(start, before)
    if after is not None and after - end < MAX_PAUSE_S:
        high = max(end, after)
    return low, high


def _overlaps(start, end, window_start, window_end):
    """At least half the shorter of the segment and the window overlap."""
    overlap = min(end, window_end) - max(start, window_start)
    shorter = min(end - start, window_end - window_start)
    return overlap > 0 and overlap >= shorter / 2


def _nearest(times, start, end):
    def distance(i):
        return max(start - times[i], times[i] - end, 0.0)

    return min(range(len(times)), key=lambda i: (distance(i), i))


def _join(segments, indexes):
    return " ".join(segments[j]["text"].strip() for j in indexes).strip()
