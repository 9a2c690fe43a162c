"""Ask a question about the videos: evidence -> ONE chat completion -> answer.

from plugin.answer import ask
answer = ask(dataset, "What animal is shown?", sample_ids=[...])
print(answer.text, [c.label for c in answer.citations])

stream = ask(dataset, "What animal is shown?", stream=True)
for chunk in stream:
    print(chunk, end="")
answer = stream.answer
"""

import dataclasses
import time

import fiftyone as fo

from plugin.answer import client as C
from plugin.answer import history
from plugin.answer.citations import invalid_numbers, parse_citations
from plugin.answer.evidence import frames_evidence, fused_evidence, renumber
from plugin.answer.images import DEFAULT_LONG_SIDE, frame_data_url
from plugin.answer.prompt import (
    DEFAULT_MAX_IMAGES,
    DEFAULT_MAX_TOKENS,
    build_request,
    plan_images,
    validate_question,
)
from plugin.errors import AnswerError, IndexNotFoundError, InvalidInputError

DEFAULT_K = 6  # retrieved evidence items when nothing is selected


@dataclasses.dataclass
class Answer:
    question: str
    text: str
    citations: list
    evidence: list
    usage: dict
    model: str
    warnings: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self):
        return {
            "question": self.question,
            "text": self.text,
            "citations": [c.to_dict() for c in self.citations],
            "evidence": [e.to_dict() for e in self.evidence],
            "usage": self.usage,
            "model": self.model,
            "warnings": self.warnings,
            "seconds": self.seconds,
        }


def gather_evidence(
    dataset, question, sample_ids=None, k=DEFAULT_K, brain_key=None, settings=None
):
    """The evidence for a question: the given frames, else hybrid retrieval.

    Args:
        dataset: the frames dataset (or a view)
        question: the question (the retrieval query)
        sample_ids (None): selected frame ids; when given, no retrieval
        k: how many retrieved items
        brain_key (None): the frame index (default: hybrid search's)
        settings (None): a :class:`~plugin.settings.Settings`

    Raises:
        AnswerError: ``no_evidence`` when nothing is selected and the dataset
        has no search index, or retrieval finds nothing
        VideoRagError: any other retrieval failure (unreachable store, an
        index that no longer matches its model...), as it is
    """
    if sample_ids:
        items = frames_evidence(dataset, list(sample_ids))
        if not items:
            raise AnswerError(
                "no_evidence", "None of the selected samples is in the dataset."
            )
        return items
    hits = _retrieve(dataset, validate_question(question), k, brain_key, settings)
    items = fused_evidence(hits)
    if not items:
        raise AnswerError(
            "no_evidence",
            "Retrieval found no frames for this question. Select frames in the "
            "grid, or rephrase the question.",
        )
    return items


def _retrieve(dataset, question, k, brain_key, settings):
    from plugin.retrieval.hybrid import hybrid_search

    options = {"brain_key": brain_key} if brain_key else {}
    try:
        return hybrid_search(dataset, question, k=k, settings=settings, **options)
    except IndexNotFoundError as e:  # only "no index" means "no usable index"
        raise _no_index(e.message) from None


def _no_index(reason):
    return AnswerError(
        "no_evidence",
        "Nothing is selected and the dataset has no usable search index "
        f"({reason}). Select some frames in the grid, or index the dataset "
        "first (frame and transcript indexes).",
    )


def attach_images(evidence, max_images=DEFAULT_MAX_IMAGES, long_side=DEFAULT_LONG_SIDE):
    """``([(n, data_url), ...], warnings)`` for the frames to send.

    A frame whose file is missing or unreadable is sent as text only (its
    metadata and transcript), with a warning.
    """
    warnings = []
    for item in evidence:
        if item.attach_image and item.sample_id and not item.has_image_file:
            warnings.append(
                f"[{item.n}] frame file missing on disk: {item.filepath} "
                "(sent as text only)"
            )
    urls = []
    for item in plan_images(evidence, max_images):
        try:
            url, _ = frame_data_url(item.filepath, long_side)
        except OSError as e:
            warnings.append(f"[{item.n}] frame unreadable: {e} (sent as text only)")
            continue
        urls.append((item.n, url))
    return urls, warnings


class AnswerStream:
    """Iterate to get the answer's text chunks; then ``.answer`` is set."""

    def __init__(self, chunks, finish):
        self._chunks = chunks
        self._finish = finish
        self._parts = []
        self.answer = None

    def __iter__(self):
        for chunk in self._chunks:
            self._parts.append(chunk)
            yield chunk
        self.answer = self._finish("".join(self._parts))

    def text_so_far(self):
        return "".join(self._parts)


def ask(
    dataset,
    question,
    sample_ids=None,
    evidence=None,
    k=DEFAULT_K,
    max_images=DEFAULT_MAX_IMAGES,
    long_side=DEFAULT_LONG_SIDE,
    stream=False,
    answer_field=None,
    max_tokens=DEFAULT_MAX_TOKENS,
    save_history=True,
    brain_key=None,
    settings=None,
):
    """Answers ``question`` from frames and transcripts with ONE chat call.

    Args:
        dataset: the frames dataset
        question: the question
        sample_ids (None): frames to use as evidence (else hybrid retrieval)
        evidence (None): ready :class:`Evidence` items (e.g. edited in the
            panel); wins over ``sample_ids``
        k (6): retrieved items when nothing is selected
        max_images (4): frames sent as images (vLLM's --limit-mm-per-prompt)
        long_side (768): frames are downscaled to this long side (px)
        stream (False): return an :class:`AnswerStream` instead
        answer_field (None): also write the answer text to this field of
            the evidence frames
        max_tokens (300): the answer's length limit
        save_history (True): keep the Q&A in the dataset's history
        brain_key (None): the frame index for retrieval
        settings (None): a :class:`~plugin.settings.Settings`: the vLLM
            endpoint, key, model and timeout, and the Milvus store

    Returns:
        an :class:`Answer`, or an :class:`AnswerStream` if ``stream``

    Raises:
        AnswerError: with a message for the user
    """
    try:
        question = validate_question(question)
    except InvalidInputError as e:
        kind = "empty_question" if not (question or "").strip() else "bad_question"
        raise AnswerError(kind, e.message) from None
    settings = C.require_endpoint(settings)
    if evidence is None:
        evidence = gather_evidence(
            dataset, question, sample_ids, k, brain_key=brain_key, settings=settings
        )
    evidence = renumber(list(evidence))
    if not evidence:
        raise AnswerError(
            "no_evidence", "There is no evidence to send: select or retrieve frames."
        )
    urls, warnings = attach_images(evidence, max_images, long_side)
    request = build_request(question, evidence, urls, settings.vllm_model, max_tokens)
    started = time.monotonic()

    def finish(text, usage):
        answer = _make_answer(question, text, evidence, usage, settings, warnings)
        answer.seconds = time.monotonic() - started
        _save(dataset, answer, answer_field, save_history, settings)
        return answer

    if stream:
        usage = {}
        return AnswerStream(
            C.stream(settings, request, usage), lambda text: finish(text, usage)
        )
    text, usage = C.complete(settings, request)
    return finish(text, usage)


def _make_answer(question, text, evidence, usage, settings, warnings):
    warnings = list(warnings)
    bad = invalid_numbers(text, evidence)
    if bad:
        warnings.append(
            "The answer cites evidence that does not exist: "
            + ", ".join(f"[{n}]" for n in bad)
        )
    return Answer(
        question=question,
        text=text,
        citations=parse_citations(text, evidence),
        evidence=evidence,
        usage=usage,
        model=settings.vllm_model,
        warnings=warnings,
    )


def _save(dataset, answer, answer_field, save_history, settings):
    if save_history and dataset is not None:
        history.add_entry(dataset, answer, redact=settings.secret_values())
    if answer_field and dataset is not None:
        write_answer_field(dataset, answer, answer_field)


def write_answer_field(dataset, answer, field):
    """Writes the answer text to ``field`` of the evidence frames."""
    ids = [e.sample_id for e in answer.evidence if e.sample_id]
    if not ids:
        return
    root = getattr(dataset, "_root_dataset", dataset)
    if not root.has_sample_field(field):
        # declared, so that an empty answer still makes a string field
        root.add_sample_field(field, fo.StringField)
    view = root.select(ids)
    view.set_values(field, [answer.text or ""] * len(view))
