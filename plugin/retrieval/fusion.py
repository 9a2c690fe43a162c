"""Weighted reciprocal rank fusion of the signals' frame rankings.

Pure ranking arithmetic (no index, no I/O): :mod:`plugin.retrieval.hybrid`
searches the indexes and calls :func:`fuse`. Three signals rank frames:

- ``frames``: the frame (image) index; a hit is a frame;
- ``transcripts``: the transcript index; each frame of a segment hit takes
  that hit's rank (its best one, if several hits cover it; frames of one
  segment tie);
- ``screen_text``: the on-screen text index, the same way (a hit is a span
  of frames showing one text).

Reciprocal rank fusion (RRF, Cormack et al. 2009) with a weight per signal::

    score(frame) = sum over signals s that found it of  w_s / (rrf_k + r_s + 1)

ranks 0-based. RRF uses ranks, not scores, so CLIP similarities and text
similarities need no calibration; a weight says how much one signal's
ranking counts (0 turns it off). Each fused hit records, per signal that
found it, the rank, the index's score and what it added
(:class:`~plugin.retrieval.hits.SignalMatch`).

**Only confident text hits count.** An index always returns its top k, so
for a slide title nobody speaks, the transcript still ranks every segment,
and a frame that three signals rank mediocrely (1/62 + 1/63 + 1/64) beats
the one frame that shows the title (1/61 from the screen text alone). So a
transcript or screen-text hit counts only when its similarity is at least
``min_share`` (0.5) of the best hit's of its index for that query: on the
slide talk of tests/test_screen_text.py, "Gradient Descent" keeps its
slide's text (0.69) and narration (0.29) and drops the other slides (0.13,
0.12) and speech (0.07, 0.05). Frame hits are not gated: image-text
similarities of unrelated frames are close together, so a share says
little there. (Text indexes measure cosine similarity by default; for a
distance metric, pass ``min_share=0``.)
"""

from collections import defaultdict

from plugin.errors import InvalidInputError
from plugin.retrieval.hits import FusedHit, SignalMatch

FRAMES, TRANSCRIPTS, SCREEN_TEXT = "frames", "transcripts", "screen_text"
SIGNALS = (FRAMES, TRANSCRIPTS, SCREEN_TEXT)
DEFAULT_WEIGHTS = dict.fromkeys(SIGNALS, 1.0)
DEFAULT_RRF_K = 60  # the constant of the RRF paper; damps the top ranks
DEFAULT_MIN_SHARE = 0.5  # of the best text hit's similarity (see above)


def check_weights(weights=None):
    """Every signal's weight: ``weights`` (a partial dict) over the defaults.

    Raises :class:`~plugin.errors.InvalidInputError` for an unknown signal
    or a weight that is not a number >= 0.
    """
    merged = dict(DEFAULT_WEIGHTS)
    for name, weight in (weights or {}).items():
        if name not in SIGNALS:
            raise InvalidInputError(
                f"Unknown signal {name!r} in weights. Signals: {', '.join(SIGNALS)}"
            )
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise InvalidInputError(f"The weight of {name} must be a number")
        if not weight >= 0:  # also refuses NaN
            raise InvalidInputError(f"The weight of {name} must be >= 0, not {weight}")
        merged[name] = float(weight)
    return merged


def fuse(
    frame_hits,
    text_hits,
    k=10,
    rrf_k=DEFAULT_RRF_K,
    screen_hits=(),
    weights=None,
    min_share=DEFAULT_MIN_SHARE,
):
    """The fused ranking of frames, best first (see the module docstring).

    Args:
        frame_hits: :class:`~plugin.retrieval.hits.FrameHit` list (rank order)
        text_hits: transcript :class:`~plugin.retrieval.hits.TextHit` list
        k (10): how many fused hits
        rrf_k (60): the RRF constant
        screen_hits (()): on-screen text ``TextHit`` list
        weights (None): ``{signal: weight}``, missing ones 1.0
        min_share (0.5): a text hit counts if its score is at least this
            share of its index's best (0: every hit counts)

    Returns:
        a list of :class:`~plugin.retrieval.hits.FusedHit`; a frame that only
        zero-weighted signals found is left out
    """
    weights = check_weights(weights)
    text_hits = confident(text_hits, min_share)
    screen_hits = confident(screen_hits, min_share)
    rankings = {
        FRAMES: {h.sample_id: (h.rank, h.score) for h in frame_hits},
        TRANSCRIPTS: _frame_ranks(text_hits),
        SCREEN_TEXT: _frame_ranks(screen_hits),
    }
    matches = defaultdict(dict)
    for signal, ranking in rankings.items():
        if weights[signal] <= 0:
            continue
        for sample_id, (rank, score) in ranking.items():
            share = weights[signal] / (rrf_k + rank + 1)
            matches[sample_id][signal] = SignalMatch(rank, score, share)
    scores = {
        i: sum(m.contribution for m in found.values()) for i, found in matches.items()
    }

    def order(sample_id):  # ties: the better single rank, then a stable id
        best = min(m.rank for m in matches[sample_id].values())
        return (-scores[sample_id], best, sample_id)

    frames = _frames(frame_hits, text_hits, screen_hits)
    by_id = {hit.sample_id: hit for hit in frame_hits}
    texts, screens = _hits_by_frame(text_hits), _hits_by_frame(screen_hits)
    return [
        FusedHit(
            sample_id=sample_id,
            score=scores[sample_id],
            frame_hit=by_id.get(sample_id),
            text_hits=texts.get(sample_id, []),
            frame=frames.get(sample_id),
            screen_hits=screens.get(sample_id, []),
            signals=dict(
                sorted(matches[sample_id].items(), key=lambda kv: -kv[1].contribution)
            ),
        )
        for sample_id in sorted(scores, key=order)[:k]
    ]


def confident(text_hits, min_share=DEFAULT_MIN_SHARE):
    """The hits whose score is at least ``min_share`` of the best one's
    (all of them when the best is not a positive similarity)."""
    best = max((h.score for h in text_hits), default=0.0)
    if min_share <= 0 or best <= 0:
        return list(text_hits)
    return [h for h in text_hits if h.score >= min_share * best]


def _frame_ranks(text_hits):
    """``{sample_id: (rank, score)}``: each frame's best-ranked text hit."""
    ranks = {}
    for hit in sorted(text_hits, key=lambda h: h.rank):
        for sample_id in hit.frame_ids:
            ranks.setdefault(sample_id, (hit.rank, hit.score))
    return ranks


def _hits_by_frame(text_hits):
    found = defaultdict(list)
    for hit in sorted(text_hits, key=lambda h: h.rank):
        for sample_id in hit.frame_ids:
            found[sample_id].append(hit)
    return found


def _frames(frame_hits, text_hits, screen_hits):
    """Each frame's fields, from whichever hit read them (evidence reads no
    more); a frame hit's own fields win."""
    frames = {i: f for hit in screen_hits for i, f in hit.frames.items()}
    frames.update({i: f for hit in text_hits for i, f in hit.frames.items()})
    frames.update({hit.sample_id: hit for hit in frame_hits})
    return frames
