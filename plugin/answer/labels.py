"""Answers as labels: an answer saved on the videos it cites.

Each citation of an answer becomes a ``fo.TemporalDetection`` on its video
sample (the companion video dataset of :mod:`plugin.video.videos`), in the
field ``answers`` (``TemporalDetections``): label = the question, support =
the cited moment (:mod:`plugin.video.moments`), attributes ``answer`` (the
answer's text), ``citation`` (its number), ``start``/``end`` (seconds) and
``model``. In the App, the video's timeline shows what was asked about each
moment, and ``to_clips("answers")`` lists them as clips to jump to.

Saving the same answer again adds nothing.
"""

import fiftyone as fo

from plugin.errors import InvalidInputError
from plugin.video import videos
from plugin.video.moments import DEFAULT_PAD_S, moments_from_answer

ANSWERS_FIELD = "answers"


def save_answer_labels(dataset, answer, field=ANSWERS_FIELD, pad_s=DEFAULT_PAD_S):
    """Saves ``answer`` on the video samples of the videos it cites.

    Args:
        dataset: the frames dataset the answer was asked on
        answer: a :class:`plugin.answer.ask.Answer`
        field ("answers"): the video samples' ``TemporalDetections`` field
        pad_s (5.0): seconds either side of a cited frame without transcript

    Returns:
        ``{video_id: number of labels added}``
    """
    if not field or not field.replace("_", "").isalnum():
        raise InvalidInputError(f"Field {field!r} must be letters, digits and _")
    moments = [m for m in moments_from_answer(dataset, answer, pad_s=pad_s)]
    samples = videos.video_samples(dataset._root_dataset, [m.video_id for m in moments])
    added = {}
    for moment in moments:
        sample = samples.get(moment.video_id)
        if sample is None:
            continue  # a video imported before video samples existed
        label = _label(answer, moment, sample.metadata)
        if _add(sample, field, label):
            added[moment.video_id] = added.get(moment.video_id, 0) + 1
    for video_id in added:
        samples[video_id].save()
    return added


def _label(answer, moment, metadata):
    return fo.TemporalDetection(
        label=answer.question,
        support=videos.frame_support(moment.start, moment.end, metadata),
        answer=answer.text,
        citation=int(moment.label.strip("[]")),
        start=float(moment.start),
        end=float(moment.end),
        model=answer.model or "",
    )


def _add(sample, field, label):
    """Appends ``label`` unless the same question, answer and citation is there."""
    existing = sample[field] if sample.has_field(field) else None
    if existing is None:
        existing = fo.TemporalDetections(detections=[])
    for other in existing.detections:
        same = (other.label, other["answer"], other["citation"]) == (
            label.label,
            label["answer"],
            label["citation"],
        )
        if same:
            return False
    existing.detections.append(label)
    sample[field] = existing
    return True
