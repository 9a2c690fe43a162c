"""Moments: hits, frames and citations as clips of their videos.

A :class:`Moment` is a time span of one video. Each kind of result gives one:

- a transcript hit: its segment's span
- a frame (a frame hit, a selected frame, a citation of a frame): the span of
  the transcript segments the frame carries (the rule of
  :mod:`plugin.video.alignment`), stretched to include the frame; a frame
  without transcript gets ``pad_s`` seconds either side of it
- a fused hit: its best transcript hit's span (stretched to include the
  frame), else its frame's
- an answer's citation: the cited evidence item's span, else its frame's

:func:`clips_view` turns moments into a clips view (``to_clips``) of the
companion video dataset (:mod:`plugin.video.videos`): one clip per moment,
best first, each playing from its span's start, with the video's transcript
(``TemporalDetections``) on the player's timeline.
"""

import dataclasses

from fiftyone import ViewField as F

from plugin.errors import InvalidInputError
from plugin.retrieval.hits import FrameHit, FusedHit, TextHit, read_frames
from plugin.video import alignment, videos
from plugin.video.transcripts import load_video_records

DEFAULT_PAD_S = 5.0  # seconds either side of a frame without transcript
MOMENTS_VIEW = "moments"  # the saved view of the latest moments (App)


@dataclasses.dataclass
class Moment:
    """A span of one video, and what it came from."""

    video_id: str
    start: float
    end: float
    source: str  # transcript | frame | fused | citation
    label: str = ""  # the transcript text, or the citation
    sample_id: str | None = None  # the frame it came from, if any
    timestamp: float | None = None  # that frame's time

    def to_dict(self):
        return dataclasses.asdict(self)


def moments_from_hits(dataset, hits, pad_s=DEFAULT_PAD_S):
    """Moments of search hits (frame, transcript or fused hits), in their order."""
    frames = _frame_fields(dataset, hits)
    context = _Context(dataset, {f.get("video_id") for f in frames.values()}, pad_s)
    context.add_videos(h.video_id for h in hits if isinstance(h, TextHit))
    moments = []
    for hit in hits:
        if isinstance(hit, TextHit):
            moments.append(_text_moment(hit))
        elif isinstance(hit, FusedHit):
            moments.append(_fused_moment(context, hit, frames.get(hit.sample_id)))
        elif isinstance(hit, FrameHit):
            moments.append(
                context.frame_moment(hit.sample_id, frames.get(hit.sample_id))
            )
        else:
            raise InvalidInputError(f"Not a search hit: {type(hit).__name__}")
    return [m for m in moments if m is not None]


def moments_from_frames(dataset, sample_ids, pad_s=DEFAULT_PAD_S):
    """Moments of frame samples (e.g. the App's selection), in the given order."""
    frames = read_frames(dataset, sample_ids)
    context = _Context(dataset, {f.get("video_id") for f in frames.values()}, pad_s)
    found = (context.frame_moment(i, frames.get(i)) for i in sample_ids)
    return [m for m in found if m is not None]


def moments_from_answer(dataset, answer, numbers=None, pad_s=DEFAULT_PAD_S):
    """Moments of an answer's citations (those numbered ``numbers``, else all)."""
    items = {item.n: item for item in answer.evidence}
    cited = [c for c in answer.citations if numbers is None or c.n in set(numbers)]
    frame_ids = [c.sample_id for c in cited if c.sample_id]
    frames = read_frames(dataset, frame_ids)
    context = _Context(dataset, {c.video_id for c in cited}, pad_s)
    moments = []
    for citation in cited:
        item = items.get(citation.n)
        moment = _citation_moment(context, citation, item, frames)
        if moment is not None:
            moment.source, moment.label = "citation", f"[{citation.n}]"
            moments.append(moment)
    return moments


def clips_view(dataset, moments):
    """The clips view of ``moments`` on ``dataset``'s video dataset.

    One clip per distinct moment, in the order of the first moment of each
    video (best first) then by rank within the video. Each clip keeps the
    video's fields, its ``transcript`` among them (``other_fields=True``).

    Raises:
        InvalidInputError: if there are no moments, or their videos have no
            video samples (imported before video samples existed: import
            them again, which adds them)
    """
    if not moments:
        raise InvalidInputError("No moments: nothing to show as clips")
    root = dataset._root_dataset
    samples = videos.video_samples(root, [m.video_id for m in moments])
    spans = {}
    for moment in moments:
        sample = samples.get(moment.video_id)
        if sample is None:
            continue
        support = videos.frame_support(moment.start, moment.end, sample.metadata)
        supports = spans.setdefault(sample.id, [])
        if support not in supports:
            supports.append(support)
    if not spans:
        raise InvalidInputError(
            "These videos have no video samples yet: import them again "
            "(an unchanged video gets its video sample added)"
        )
    video_ds = videos.videos_dataset(root)
    ordered = video_ds.select(list(spans), ordered=True)
    return ordered.to_clips(list(spans.values()), other_fields=True)


def clip_spans(clips):
    """``[(video_id, start s, end s)]`` of a clips view, in its order."""
    rows = zip(*clips.values(["video_id", "support", "metadata"]))
    return [
        (video_id, *videos.support_seconds(support, metadata))
        for video_id, support, metadata in rows
    ]


class _Context:
    """What the moments of one call read once: the frames' timelines and the
    videos' transcript records."""

    def __init__(self, dataset, video_ids, pad_s):
        self.dataset, self.pad_s = dataset._root_dataset, pad_s
        self.timelines, self.records = {}, {}
        self.add_videos(video_ids)

    def add_videos(self, video_ids):
        wanted = sorted({v for v in video_ids if v} - set(self.records))
        if not wanted:
            return
        self.records.update(load_video_records(self.dataset, wanted))
        view = self.dataset.match(F("video_id").is_in(wanted))
        names = ["video_id", "timestamp"]
        if self.dataset.has_sample_field("video_duration"):
            names.append("video_duration")
        for video_id, timestamp, *duration in zip(*view.values(names)):
            times, _ = self.timelines.setdefault(
                video_id, ([], (duration or [None])[0])
            )
            if timestamp is not None:
                times.append(timestamp)
        for times, _ in self.timelines.values():
            times.sort()

    def frame_moment(self, sample_id, fields):
        """The moment of a frame: the transcript it carries, else ±pad."""
        if not fields or fields.get("timestamp") is None:
            return None
        video_id, t = fields["video_id"], fields["timestamp"]
        self.add_videos([video_id])
        times, duration = self.timelines.get(video_id, ([t], None))
        record = self.records.get(video_id) or {}
        segments = record.get("segments") or []
        carried = []
        if segments and t in times:
            window = record.get("transcript_window")
            i = times.index(t)
            carried = alignment.segments_for_frame(times, segments, i, duration, window)
        if carried:
            spoken = [segments[j] for j in carried]
            start = min(t, *(s["start"] for s in spoken))
            end = max(t, *(s["end"] for s in spoken))
            label = " ".join(s["text"].strip() for s in spoken)
        else:
            start, end = max(0.0, t - self.pad_s), t + self.pad_s
            end = min(end, duration) if duration else end
            label = fields.get("transcript") or ""
        return Moment(video_id, start, end, "frame", label, sample_id, t)


def _frame_fields(dataset, hits):
    ids = [h.sample_id for h in hits if isinstance(h, FrameHit | FusedHit)]
    return read_frames(dataset, ids)


def _text_moment(hit):
    return Moment(hit.video_id, hit.start, hit.end, "transcript", hit.text)


def _fused_moment(context, hit, fields):
    if hit.text_hits:
        best = min(hit.text_hits, key=lambda h: h.rank)
        moment = _text_moment(best)
        if fields and fields.get("timestamp") is not None:
            moment.start = min(moment.start, fields["timestamp"])
            moment.end = max(moment.end, fields["timestamp"])
            moment.sample_id, moment.timestamp = hit.sample_id, fields["timestamp"]
    else:
        moment = context.frame_moment(hit.sample_id, fields)
    if moment is not None:
        moment.source = "fused"
    return moment


def _citation_moment(context, citation, item, frames):
    if item is not None and item.end is not None and item.timestamp is not None:
        return Moment(
            citation.video_id, item.timestamp, item.end, "citation", item.transcript
        )
    if citation.sample_id:
        return context.frame_moment(citation.sample_id, frames.get(citation.sample_id))
    return None
