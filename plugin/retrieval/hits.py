"""What retrieval returns: frame hits, transcript hits, fused hits."""

import dataclasses


@dataclasses.dataclass
class FrameHit:
    """A frame found by the image index."""

    sample_id: str
    score: float  # the backend's similarity/distance, see ``metric``
    rank: int
    filepath: str = ""
    video_id: str = ""
    video_path: str = ""
    timestamp: float | None = None


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
    frame_ids: list = dataclasses.field(default_factory=list)  # frames in span


@dataclasses.dataclass
class FusedHit:
    """A frame in the hybrid ranking, with the evidence that put it there."""

    sample_id: str
    score: float  # fused score (reciprocal rank fusion)
    frame_hit: FrameHit | None = None
    text_hits: list = dataclasses.field(default_factory=list)
