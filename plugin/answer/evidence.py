"""What an answer is grounded in: numbered evidence items (frames, transcript).

Evidence comes from the frames the user selected, or else from hybrid
retrieval (frames + transcript hits). Each item is numbered ``n`` (1-based):
the prompt shows it as ``[n]`` and the model cites it the same way.
"""

import dataclasses
import os

#: Frame fields read from the dataset (see plugin/video/importer.py)
FRAME_FIELDS = (
    "filepath",
    "video_id",
    "video_path",
    "video_title",
    "timestamp",
    "transcript",
)


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


def frames_evidence(dataset, sample_ids, source="selected"):
    """Evidence items for frame samples, in the given order, numbered from 1.

    Ids not in the dataset are skipped.
    """
    rows = _frame_rows(dataset, sample_ids)
    items = []
    for sample_id in sample_ids:
        row = rows.get(sample_id)
        if row is None:
            continue
        items.append(_frame_item(len(items) + 1, sample_id, row, source))
    return items


def _frame_rows(dataset, sample_ids):
    root = dataset._root_dataset if hasattr(dataset, "_root_dataset") else dataset
    names = [n for n in FRAME_FIELDS if root.has_sample_field(n)]
    values = root.select(list(sample_ids)).values(["id"] + names)
    return {row[0]: dict(zip(names, row[1:])) for row in zip(*values)}


def _frame_item(n, sample_id, row, source):
    return Evidence(
        n=n,
        sample_id=sample_id,
        filepath=row.get("filepath") or "",
        video_id=row.get("video_id") or "",
        video_path=row.get("video_path") or "",
        video_title=row.get("video_title") or "",
        timestamp=row.get("timestamp"),
        transcript=(row.get("transcript") or "").strip(),
        source=source,
    )


def fused_evidence(dataset, fused_hits):
    """Evidence items from hybrid retrieval's fused hits (best first).

    A hit's transcript text is that of its transcript hits when it has any
    (they are what matched the question), else the frame's own transcript.
    """
    ids = [hit.sample_id for hit in fused_hits if hit.sample_id]
    items = frames_evidence(dataset, ids, source="retrieved")
    by_id = {item.sample_id: item for item in items}
    for hit in fused_hits:
        item = by_id.get(hit.sample_id)
        texts = _unique(t.text.strip() for t in (hit.text_hits or []) if t.text)
        if item is not None and texts:
            item.transcript = " ".join(texts)
    return items


def renumber(items):
    """Numbers items 1..N in order (after the user dropped some)."""
    for n, item in enumerate(items, start=1):
        item.n = n
    return items


def _unique(texts):
    seen = []
    for text in texts:
        if text and text not in seen:
            seen.append(text)
    return seen
