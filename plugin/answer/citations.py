"""Citations: the ``[n]`` markers in an answer, resolved to evidence frames."""

import dataclasses
import re

from plugin.answer.prompt import format_timestamp

# [1], [1, 3], [1;2], [frame 2], [image 2], [#2], [1-3]
_MARKER = re.compile(
    r"\[\s*(?:(?:frame|image|evidence|item)\s*|#)?"
    r"(\d+(?:\s*(?:,|;|-|–|and)\s*\d+)*)\s*\]",
    re.IGNORECASE,
)
_MAX_RANGE = 50


@dataclasses.dataclass
class Citation:
    """An evidence item the answer cites."""

    n: int
    sample_id: str | None
    video_id: str
    video_path: str
    timestamp: float | None
    video_title: str = ""

    @property
    def label(self):
        """``video.mp4 @ 00:35`` (what the panel shows)."""
        title = self.video_title or self.video_path.rsplit("/", 1)[-1]
        return (
            f"[{self.n}] {title or self.video_id} @ {format_timestamp(self.timestamp)}"
        )

    def to_dict(self):
        return dataclasses.asdict(self)


def cited_numbers(text):
    """All numbers cited in ``text``, in order of first appearance, without
    duplicates (``[1-3]`` -> 1, 2, 3)."""
    numbers = []
    for match in _MARKER.finditer(text or ""):
        for n in _expand(match.group(1)):
            if n not in numbers:
                numbers.append(n)
    return numbers


def _expand(group):
    numbers = []
    for part in re.split(r"\s*(?:,|;|and)\s*", group):
        bounds = re.split(r"\s*[-–]\s*", part)
        if len(bounds) == 2 and bounds[0] and bounds[1]:
            lo, hi = int(bounds[0]), int(bounds[1])
            if lo <= hi and hi - lo <= _MAX_RANGE:
                numbers.extend(range(lo, hi + 1))
        elif part.strip().isdigit():
            numbers.append(int(part))
    return numbers


def parse_citations(text, evidence):
    """The citations in ``text`` that name an evidence item.

    Out-of-range numbers (the model made them up) are dropped; each item is
    cited once, in order of first appearance.

    Returns:
        a list of :class:`Citation`
    """
    by_n = {item.n: item for item in evidence}
    citations = []
    for n in cited_numbers(text):
        item = by_n.get(n)
        if item is None:
            continue
        citations.append(
            Citation(
                n=n,
                sample_id=item.sample_id,
                video_id=item.video_id,
                video_path=item.video_path,
                timestamp=item.timestamp,
                video_title=item.video_title,
            )
        )
    return citations


def invalid_numbers(text, evidence):
    """Cited numbers that name no evidence item."""
    known = {item.n for item in evidence}
    return [n for n in cited_numbers(text) if n not in known]
