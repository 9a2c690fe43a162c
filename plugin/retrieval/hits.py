"""What retrieval returns: frame hits, transcript hits, fused hits.

Hits carry the fields of their frames (:class:`Frame`), read once by the
search that found them, so what comes after (evidence, the panels) reads
nothing more from the dataset.
"""

import dataclasses

from plugin.inputs import require_sample_ids

#: The frame sample fields a hit carries (written by plugin/video/importer.py)
FRAME_FIELDS = (
    "filepath",
    "video_id",
    "video_path",
    "video_title",
    "timestamp",
    "transcript",
    "screen_text",  # plugin/video/screen_text.py (when read)
)


@dataclasses.dataclass
class Frame:
    """A frame sample: its id and the fields results and evidence show."""

    sample_id: str
    _: dataclasses.KW_ONLY
    filepath: str = ""
    video_id: str = ""
    video_path: str = ""
    video_title: str = ""
    timestamp: float | None = None
    transcript: str = ""
    screen_text: str = ""


@dataclasses.dataclass
class FrameHit(Frame):
    """A frame found by the image index."""

    score: float  # the backend's similarity/distance, see ``metric``
    rank: int


@dataclasses.dataclass
class TextHit:
    """A transcript segment found by the transcript index."""

    segment_id: str
    score: float
    rank: int
    text: str
    video_id: str
    start: float
    end: float
    #: the frames that carry the segment (see plugin/video/alignment.py)
    frame_ids: list = dataclasses.field(default_factory=list)
    frames: dict = dataclasses.field(default_factory=dict)  # id -> Frame


@dataclasses.dataclass
class SignalMatch:
    """How one signal (index) ranked a fused frame: its 0-based ``rank`` in
    that signal's list, the index's ``score`` there, and what it added to
    the fused score (``contribution``: weight / (rrf_k + rank + 1))."""

    rank: int
    score: float
    contribution: float


@dataclasses.dataclass
class FusedHit:
    """A frame in the hybrid ranking, with the evidence that put it there."""

    sample_id: str
    score: float  # fused score (weighted reciprocal rank fusion)
    frame_hit: FrameHit | None = None
    text_hits: list = dataclasses.field(default_factory=list)  # transcript
    frame: Frame | None = None  # the frame's fields, from any kind of hit
    screen_hits: list = dataclasses.field(default_factory=list)  # on-screen text
    #: signal name ("frames", "transcripts", "screen_text") -> SignalMatch,
    #: for each signal that put the frame there, largest contribution first
    signals: dict = dataclasses.field(default_factory=dict)

    def explain(self):
        """``"screen_text #1 (0.71) + transcripts #4 (0.38)"``: the signals
        that found this frame, their 1-based ranks and index scores."""
        return " + ".join(
            f"{name} #{m.rank + 1} ({m.score:.2f})" for name, m in self.signals.items()
        )


def read_frames(samples, sample_ids):
    """``{sample_id: {field: value}}`` of :data:`FRAME_FIELDS` for the frames
    of ``samples`` with these ids, in one query; ids not there are left out.
    The values fit ``Frame(sample_id, **fields)``."""
    root = samples._root_dataset
    names = [n for n in FRAME_FIELDS if root.has_sample_field(n)]
    ids = require_sample_ids(sample_ids)  # not bson's raw InvalidId
    values = root.select(ids).values(["id", *names])
    rows = {}
    for sample_id, *row in zip(*values):
        fields = {n: v for n, v in zip(names, row) if v is not None}
        rows[sample_id] = fields
    return rows
