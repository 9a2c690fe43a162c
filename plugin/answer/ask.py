"""Ask a question about the videos: evidence -> ONE chat completion -> answer.

from plugin.answer import ask
answer = ask(dataset, "What animal is shown?", sample_ids=[...])
print(answer.text, [c.label for c in answer.citations])
print(answer.plan.summary())   # tokens per item, images / text / dropped

stream = ask(dataset, "What animal is shown?", stream=True)
for chunk in stream:
    print(chunk, end="")
answer = stream.answer

Follow-up questions that carry the conversation: :mod:`plugin.answer.chat`.
"""

import dataclasses
import time

import fiftyone as fo

from plugin.answer import client as C
from plugin.answer import history
from plugin.answer.citations import invalid_numbers, parse_citations
from plugin.answer.evidence import frames_evidence, fused_evidence, renumber
from plugin.answer.images import DEFAULT_LONG_SIDE
from plugin.answer.prompt import DEFAULT_MAX_TOKENS, validate_question
from plugin.answer.request import Options, prepare
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
    plan: object = None  # the plan.Plan the request followed
    incomplete: bool = False  # the server stopped mid-answer
    finish_reason: str | None = None  # stop | length (cut at max_tokens)
    timings: dict = dataclasses.field(default_factory=dict)  # s per step

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
            "plan": self.plan.to_dict() if self.plan else None,
            "incomplete": self.incomplete,
            "finish_reason": self.finish_reason,
            "timings": self.timings,
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


class AnswerStream:
    """Iterate to get the answer's text chunks; then ``.answer`` is set.

    If the server stops mid-answer, iterating raises ``AnswerError``
    (``kind="interrupted"``) and ``.answer`` (also the error's ``.answer``)
    holds the partial text, ``incomplete=True``.
    """

    def __init__(self, chunks, finish, plan=None):
        self._chunks = chunks
        self._finish = finish
        self._parts = []
        self.plan = plan
        self.answer = None

    def __iter__(self):
        try:
            for chunk in self._chunks:
                self._parts.append(chunk)
                yield chunk
        except AnswerError as e:
            if e.kind == "interrupted":
                self.answer = e.answer = self._finish(self.text_so_far(), True)
            raise
        self.answer = self._finish(self.text_so_far(), False)

    def text_so_far(self):
        return "".join(self._parts)


def ask(
    dataset,
    question,
    sample_ids=None,
    evidence=None,
    k=DEFAULT_K,
    max_images=None,
    long_side=DEFAULT_LONG_SIDE,
    stream=False,
    answer_field=None,
    max_tokens=DEFAULT_MAX_TOKENS,
    save_history=True,
    brain_key=None,
    settings=None,
    turns=(),
    max_model_len=None,
    on_answer=None,
    extra_body=None,
):
    """Answers ``question`` from frames and transcripts with ONE chat call.

    The request is planned to fit the server (:mod:`plugin.answer.budget`):
    most relevant evidence first, frames as images up to ``max_images`` and
    as large as fit up to ``long_side``, the rest as text or dropped; the
    answer's ``plan`` and ``warnings`` say what went how.

    Args:
        dataset: the frames dataset
        question: the question
        sample_ids (None): frames to use as evidence (else hybrid retrieval)
        evidence (None): ready :class:`Evidence` items (e.g. edited in the
            panel); wins over ``sample_ids``
        k (6): retrieved items when nothing is selected
        max_images (None): frames sent as images (the setting
            ``VRAG_VLLM_MAX_IMAGES``: vLLM's --limit-mm-per-prompt)
        long_side (768): the largest long side of a frame sent (px); the
            plan may send them smaller
        stream (False): return an :class:`AnswerStream` instead
        answer_field (None): also write the answer text to this field of
            the evidence frames
        max_tokens (300): the answer's length limit
        save_history (True): keep the Q&A in the dataset's history
        brain_key (None): the frame index for retrieval
        settings (None): a :class:`~plugin.settings.Settings`: the vLLM
            endpoint, key, model, timeout and image limit, and the Milvus store
        turns (()): earlier turns of a conversation (see
            :class:`plugin.answer.chat.Conversation`); their questions and
            answers are sent first, the new evidence is numbered after theirs
        max_model_len (None): the context to plan for (default: the server's)
        on_answer (None): called with the :class:`Answer` once it is done
            (also an incomplete one)
        extra_body (None): extra request fields for the server, e.g. vLLM's
            sampling parameters (``{"seed": 1}``, ``{"structured_outputs":
            {"regex": ...}}``)

    Returns:
        an :class:`Answer`, or an :class:`AnswerStream` if ``stream``

    Raises:
        AnswerError: with a message for the user; ``interrupted`` (the server
        stopped mid-answer) carries the partial answer as ``.answer``
    """
    try:
        question = validate_question(question)
    except InvalidInputError as e:
        kind = "empty_question" if not (question or "").strip() else "bad_question"
        raise AnswerError(kind, e.message) from None
    settings = C.require_endpoint(settings)
    started = time.perf_counter()
    if evidence is None:
        evidence = gather_evidence(
            dataset, question, sample_ids, k, brain_key=brain_key, settings=settings
        )
    timings = {"evidence": time.perf_counter() - started}
    evidence = renumber(list(evidence), start=_next_number(turns))
    if not evidence:
        raise AnswerError(
            "no_evidence", "There is no evidence to send: select or retrieve frames."
        )
    if max_images is None:
        max_images = settings.vllm_max_images
    options = Options(max_images, long_side, max_tokens, max_model_len)
    prepared = prepare(question, evidence, settings, options, turns)
    if extra_body:
        prepared.request["extra_body"] = dict(extra_body)
    timings.update(prepared.timings)
    meta = {}
    sent_at = time.perf_counter()

    def finish(text, incomplete):
        answer = _make_answer(question, text, prepared, meta, settings)
        answer.incomplete = incomplete
        answer.seconds = time.perf_counter() - sent_at
        answer.timings = dict(timings, server=answer.seconds)
        if "first_chunk" in meta:
            answer.timings["first_chunk"] = meta["first_chunk"] - sent_at
        field = None if incomplete else answer_field  # never a partial answer
        _save(dataset, answer, field, save_history, settings)
        if on_answer is not None:
            on_answer(answer)
        return answer

    chunks = C.stream(settings, prepared.request, meta)
    answer_stream = AnswerStream(chunks, finish, prepared.plan)
    if stream:
        return answer_stream
    for _ in answer_stream:
        pass
    return answer_stream.answer


def _next_number(turns):
    numbers = [item.n for turn in turns for item in turn.evidence]
    return max(numbers, default=0) + 1


def _make_answer(question, text, prepared, meta, settings):
    warnings = list(prepared.warnings)
    known = [e for turn in prepared.turns for e in turn.evidence] + prepared.evidence
    bad = invalid_numbers(text, known)
    if bad:
        warnings.append(
            "The answer cites evidence that does not exist: "
            + ", ".join(f"[{n}]" for n in bad)
        )
    if meta.get("finish_reason") == "length":
        warnings.append(
            f"The answer was cut at max_tokens ({prepared.request['max_tokens']})."
        )
    return Answer(
        question=question,
        text=text,
        citations=parse_citations(text, known),
        evidence=prepared.evidence,
        usage=dict(meta.get("usage") or {}),
        model=settings.vllm_model,
        warnings=warnings,
        plan=prepared.plan,
        finish_reason=meta.get("finish_reason"),
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
