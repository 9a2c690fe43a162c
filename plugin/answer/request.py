"""From evidence to the ONE request: token plan, images, messages.

:func:`prepare` asks the server what it serves and its context length,
counts what each piece of the prompt costs (:mod:`.budget`), plans which
items go as images, as text or not at all and at what size, encodes the
chosen frames at the planned size, and builds the messages (:mod:`.prompt`).
:func:`preview` does the planning only (no image encoding), for the panel;
without a reachable server it assumes :data:`~.budget.DEFAULT_MAX_MODEL_LEN`.
"""

import dataclasses
import time

from PIL import Image

from plugin.answer import budget as B
from plugin.answer import client as C
from plugin.answer import plan as P
from plugin.answer.images import frame_data_url
from plugin.answer.prompt import (
    INTRO,
    SYSTEM_PROMPT,
    build_request,
    evidence_block,
    question_text,
    turn_text,
)
from plugin.errors import AnswerError

_UNREACHABLE = {}  # base URL -> when a preview last failed to reach it


@dataclasses.dataclass
class Prepared:
    """A request ready to send, the plan it follows, and the user's notices."""

    request: dict
    plan: P.Plan
    evidence: list  # the items sent (dropped ones left out)
    turns: list  # the earlier turns sent
    warnings: list
    timings: dict = dataclasses.field(default_factory=dict)  # s per step


@dataclasses.dataclass
class Options:
    max_images: int
    long_side: int
    max_tokens: int
    max_model_len: int | None = None  # None: the server's


def prepare(question, evidence, settings, options, turns=(), info=None):
    """The request for ``question`` (see the module docstring).

    Args:
        question: the validated question
        evidence: numbered :class:`Evidence`, most relevant first
        settings: endpoint :class:`~plugin.settings.Settings`
        options: :class:`Options`
        turns (()): earlier turns of the conversation, oldest first
        info (None): the :class:`~.client.ServerInfo` to plan for (default:
            ask the server)

    Raises:
        AnswerError: server unreachable, model not served, question too long
    """
    clock = _Clock()
    info = info or C.server_info(settings)
    C.require_model(settings, info)
    limits = _limits(options, info.context_length(settings.vllm_model))
    clock.lap("server_info")
    plan, warnings, frames = _plan(question, evidence, settings, limits, turns)
    clock.lap("plan")
    images, turn_images = {}, {}
    for item in plan.items:
        if item.mode != "image":
            continue
        try:
            url, _ = frame_data_url(frames[item.n], max(item.size))
        except OSError as e:  # vanished since planned: send its text only
            item.mode, item.image_tokens, item.reason = "text", 0, "frame unreadable"
            warnings.append(f"[{item.n}] frame unreadable: {e} (sent as text only)")
            continue
        (turn_images if item.earlier else images)[item.n] = url
    clock.lap("images")
    sent = [e for e in evidence if plan.mode_of(e.n) in ("image", "text")]
    kept_turns = list(turns)[len(turns) - plan.history_turns :]
    request = build_request(
        question,
        sent,
        images,
        settings.vllm_model,
        options.max_tokens,
        turns=kept_turns,
        turn_images=turn_images,
    )
    clock.lap("build")
    return Prepared(
        request, plan, sent, kept_turns, warnings + plan.notices(), clock.laps
    )


class _Clock:
    """Seconds per named step, for the answer's timings (and bench/)."""

    def __init__(self):
        self.laps, self._last = {}, time.perf_counter()

    def lap(self, name):
        now = time.perf_counter()
        self.laps[name] = now - self._last
        self._last = now


def preview(question, evidence, settings, options, turns=()):
    """The :class:`~.plan.Plan` Ask would follow (no image is encoded).

    The server is asked for its context length when an endpoint is set and
    answers; otherwise the default is assumed (``context_source``)."""
    context, source = None, "assumed"
    failed = _UNREACHABLE.get(settings.vllm_base_url, -1e9)
    if settings.vllm_base_url and time.monotonic() - failed > C.SERVER_INFO_TTL_S:
        try:
            context = C.server_info(settings).context_length(settings.vllm_model)
        except AnswerError:  # not asked again for a while: previews stay quick
            _UNREACHABLE[settings.vllm_base_url] = time.monotonic()
    if settings.vllm_base_url and context is None:
        source = "assumed: server not reachable"
    limits = _limits(options, context, source)
    return _plan(question or "?", evidence, settings, limits, turns)[0]


def _limits(options, server_context, unknown="assumed"):
    if options.max_model_len:
        context, source = options.max_model_len, "given"
    elif server_context:
        context, source = server_context, "server"
    else:
        context, source = B.DEFAULT_MAX_MODEL_LEN, unknown
    if options.max_images < 0:
        raise AnswerError("bad_request", "max_images must be >= 0.")
    return P.Limits(
        context,
        options.max_tokens,
        options.max_images,
        options.long_side,
        context_source=source,
    )


def _plan(question, evidence, settings, limits, turns):
    """``(plan, warnings, {n: frame path})``."""
    count = B.text_counter(settings.vllm_model)
    rule = B.image_rule(settings.vllm_model)
    per_part, per_message = B.TEMPLATE_PER_PART, B.TEMPLATE_PER_MESSAGE
    fixed = (
        B.TEMPLATE_BASE
        + per_message * (2 + 2 * len(turns))
        + count.count(SYSTEM_PROMPT)
        + count.count(INTRO)
        + count.count(question_text(question))
        + 2 * per_part
    )
    warnings, frames, candidates = [], {}, []
    for item in evidence:
        size, why = _frame_size(item, warnings)
        text = count.count(evidence_block(item, attached=True)) + 2 * per_part
        candidates.append(P.Candidate(item.n, text, size, why))
        if size:
            frames[item.n] = item.filepath
    turn_tokens = [
        count.count(turn_text(t)) + count.count(t.answer or "") + 2 * per_part
        for t in turns
    ]
    for turn in reversed(list(turns)):  # earlier frames: newest turn first
        for item in turn.evidence:
            size, _ = _frame_size(item, None)
            if size:
                candidates.append(P.Candidate(item.n, 0, size, earlier=True))
                frames[item.n] = item.filepath
    plan = P.make_plan(candidates, fixed, limits, rule, turn_tokens, count)
    return plan, warnings, frames


def _frame_size(item, warnings):
    """``((w, h), "")`` of the item's frame file, or ``(None, why not)``."""
    if not item.sample_id:
        return None, "a transcript line (no frame)"
    if not item.attach_image:
        return None, "set to text only"
    if not item.has_image_file:
        if warnings is not None:
            warnings.append(
                f"[{item.n}] frame file missing on disk: {item.filepath} "
                "(sent as text only)"
            )
        return None, "frame file missing on disk"
    try:
        with Image.open(item.filepath) as image:  # reads the header only
            return image.size, ""
    except OSError as e:
        if warnings is not None:
            warnings.append(f"[{item.n}] frame unreadable: {e} (sent as text only)")
        return None, "frame unreadable"
