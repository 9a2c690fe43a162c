"""One call to build every index a dataset's fields support, or sync it.

:func:`build_indexes` looks at what the frames carry and, for each signal of
hybrid search (:mod:`plugin.retrieval.fusion`):

- ``frames``: the frame index (brain key ``frame_sim``): every dataset of
  images has one; the image-text model is the default one, or the offline
  model when its weights cannot be had (it says so);
- ``transcripts``: when the videos' records hold transcript segments;
- ``screen_text``: when frames carry ``screen_text`` (read at import with
  ``screen_text=True``, or later by ``add_screen_text``).

An index that exists is synced (new frames or videos added, deleted ones
removed), one that does not is built, one the fields do not support is
skipped with the reason. A failure of one index is reported and the others
still run.
"""

import dataclasses

from plugin.errors import InvalidInputError, VideoRagError
from plugin.models.image_text import load_model_or_offline
from plugin.progress import report
from plugin.retrieval.frame_index import build_frame_index, sync_frame_index
from plugin.retrieval.frame_store import DEFAULT_BRAIN_KEY
from plugin.retrieval.fusion import FRAMES, SCREEN_TEXT, SIGNALS, TRANSCRIPTS
from plugin.retrieval.screen_text_index import SCREEN_TEXT as SCREEN_SOURCE
from plugin.retrieval.transcript_index import (
    build_transcript_index,
    sync_transcript_index,
    transcript_index_info,
)
from plugin.settings import Settings

BUILT, SYNCED, SKIPPED, FAILED = "built", "synced", "skipped", "failed"


@dataclasses.dataclass
class IndexOutcome:
    """What happened to one index: ``status`` (built, synced, skipped,
    failed) and a sentence for the user."""

    status: str
    message: str

    def to_dict(self):
        return dataclasses.asdict(self)


def build_indexes(
    dataset,
    image_model=None,
    text_model=None,
    brain_key=DEFAULT_BRAIN_KEY,
    signals=SIGNALS,
    progress=None,
    settings=None,
):
    """Builds, or syncs, every index ``dataset``'s fields support.

    Args:
        dataset: a dataset of imported frames (the whole dataset is indexed)
        image_model (None): the frame index's model when it is built (a
            name of :mod:`plugin.models.image_text` or a spec); default
            CLIP, else the offline model
        text_model (None): the text model of new text indexes (default MiniLM)
        brain_key ("frame_sim"): the frame index
        signals: which of ``frames``, ``transcripts``, ``screen_text``
        progress (None): a callable ``progress(fraction, label)``
        settings (None): a :class:`~plugin.settings.Settings`

    Returns:
        ``{signal: IndexOutcome}`` in the order of ``signals``
    """
    unknown = set(signals) - set(SIGNALS)
    if unknown:
        raise InvalidInputError(
            f"Unknown signals {sorted(unknown)}. Signals: {', '.join(SIGNALS)}"
        )
    dataset = dataset._root_dataset
    if len(dataset) == 0:
        raise InvalidInputError(
            f"Dataset {dataset.name!r} is empty: import videos first"
        )
    settings = Settings.coerce(settings)
    steps = {
        FRAMES: lambda part: _frames(dataset, image_model, brain_key, part, settings),
        TRANSCRIPTS: lambda part: _transcripts(dataset, text_model, part, settings),
        SCREEN_TEXT: lambda part: _screen_text(dataset, text_model, part, settings),
    }
    wanted = [s for s in SIGNALS if s in signals]
    outcomes = {}
    for n, signal in enumerate(wanted):
        part = _part(progress, n, len(wanted), signal)
        try:
            outcomes[signal] = steps[signal](part)
        except VideoRagError as e:
            outcomes[signal] = IndexOutcome(FAILED, e.message)
    report(progress, 1.0, "; ".join(f"{s}: {o.status}" for s, o in outcomes.items()))
    return outcomes


def _part(progress, n, count, signal):
    """The progress callable of step ``n`` of ``count``."""
    if progress is None:
        return None
    return lambda f, label: progress((n + f) / count, f"{signal}: {label}")


def _frames(dataset, image_model, brain_key, progress, settings):
    if brain_key in dataset.list_brain_runs():
        counts = sync_frame_index(
            dataset, brain_key, settings=settings, progress=progress
        )
        return IndexOutcome(
            SYNCED, f"frame index {brain_key!r} synced: {_counts(counts)}"
        )
    notes = []
    spec, _ = load_model_or_offline(image_model, announce=notes.append)
    index = build_frame_index(
        dataset, model=spec, brain_key=brain_key, settings=settings, progress=progress
    )
    message = (
        f"frame index {brain_key!r} built: {index.total_index_size} frames "
        f"with {spec.name}"
    )
    return IndexOutcome(BUILT, " ".join([message, *notes]))


def _transcripts(dataset, text_model, progress, settings):
    if transcript_index_info(dataset):
        counts = sync_transcript_index(dataset, progress=progress, settings=settings)
        return IndexOutcome(SYNCED, f"transcript index synced: {_counts(counts)}")
    return _build_text(
        "transcript",
        lambda: build_transcript_index(
            dataset, text_model=text_model, progress=progress, settings=settings
        ),
    )


def _screen_text(dataset, text_model, progress, settings):
    if SCREEN_SOURCE.info(dataset):
        counts = SCREEN_SOURCE.sync(dataset, progress=progress, settings=settings)
        return IndexOutcome(SYNCED, f"on-screen text index synced: {_counts(counts)}")
    return _build_text(
        "on-screen text",
        lambda: SCREEN_SOURCE.build(
            dataset, text_model=text_model, progress=progress, settings=settings
        ),
    )


def _build_text(what, build):
    try:
        info = build()
    except InvalidInputError as e:  # nothing of this kind to index
        return IndexOutcome(SKIPPED, e.message)
    return IndexOutcome(
        BUILT,
        f"{what} index built: {info['num_segments']} rows with "
        f"{info['text_model']} in {info['collection_name']!r}",
    )


def _counts(counts):
    return ", ".join(f"{n} {what}" for what, n in counts.items())
