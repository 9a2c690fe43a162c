"""What an answer is grounded in: numbered evidence items (frames, transcript,
on-screen text).

Evidence comes from the frames the user selected (read from the dataset
once), or else from hybrid retrieval's hits, which carry their frames'
fields (nothing is read again). Each item is numbered ``n`` (1-based): the
prompt shows it as ``[n]`` and the model cites it the same way.
"""

import dataclasses
import os

from plugin.retrieval.hits import Frame, read_frames


@dataclasses.dataclass
class Evidence:
    """One numbered piece of evidence: a frame and/or transcript text."""

    n: int
    sample_id: str | None = None  # the frame sample; None for transcript-only
    filepath: str = ""
    video_id: str = ""
    video_path: str = ""
    video_title: str = ""
    timestamp: float | None = None
    end: float | None = None  # for a transcript span
    transcript: str = ""
    screen_text: str = ""  # text shown on the frame (plugin/video/screen_text.py)
    source: str = "selected"  # selected | retrieved
    attach_image: bool = True  # send the frame as an image

    @property
    def has_image_file(self):
        return bool(self.filepath) and os.path.isfile(self.filepath)

    @property
    def video_label(self):
        """The video's title, else its file name, else its id."""
        if self.video_title:
            return self.video_title
        if self.video_path:
            return os.path.basename(self.video_path)
        return self.video_id or "unknown video"

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def from_frame(cls, n, frame, source="selected"):
        """Item ``n`` for a :class:`~plugin.retrieval.hits.Frame` (or a hit)."""
        return cls(
            n=n,
            sample_id=frame.sample_id,
            filepath=frame.filepath or "",
            video_id=frame.video_id or "",
            video_path=frame.video_path or "",
            video_title=frame.video_title or "",
            timestamp=frame.timestamp,
            transcript=(frame.transcript or "").strip(),
            screen_text=" ".join((frame.screen_text or "").split()),
            source=source,
        )

    @classmethod
    def from_hit(cls, n, hit):
        """Item ``n`` for a fused hit; its text is that of its transcript hits
        when it has any (they are what matched the question), else the
        frame's own transcript; the same for on-screen text."""
        item = cls.from_frame(n, hit.frame, source="retrieved")
        texts = _unique(t.text.strip() for t in hit.text_hits if t.text)
        if texts:
            item.transcript = " ".join(texts)
        shown = _unique(t.text.strip() for t in hit.screen_hits if t.text)
        if shown:
            item.screen_text = " ".join(shown)
        return item


def frames_evidence(dataset, sample_ids, source="selected"):
    """Evidence items for frame samples, in the given order, numbered from 1.

    Ids not in the dataset are skipped.
    """
    rows = read_frames(dataset, sample_ids)
    frames = [Frame(i, **rows[i]) for i in sample_ids if i in rows]
    return [Evidence.from_frame(n, f, source) for n, f in enumerate(frames, 1)]


def fused_evidence(fused_hits):
    """Evidence items from hybrid retrieval's fused hits (best first), built
    from the fields the hits carry (hits without a frame are skipped)."""
    hits = [hit for hit in fused_hits if hit.frame is not None]
    return [Evidence.from_hit(n, hit) for n, hit in enumerate(hits, 1)]


def renumber(items, start=1):
    """Numbers items ``start``.. in order (after the user dropped some; a
    conversation's follow-up continues after the earlier turns' numbers)."""
    for n, item in enumerate(items, start=start):
        item.n = n
    return items


def _unique(texts):
    seen = []
    for text in texts:
        if text and text not in seen:
            seen.append(text)
    return seen
