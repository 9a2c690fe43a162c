"""What a request costs in tokens, and a plan of evidence that fits the server.

A vLLM server rejects a prompt longer than its ``--max-model-len`` (minus the
answer's ``max_tokens``) and more images than its ``--limit-mm-per-prompt``.
Before sending, :func:`make_plan` decides, most relevant evidence first,
which items go as text + image, which as text only and which are dropped, and
at what size each image goes, so that the request we build always fits:

- **Image tokens** follow the model's rule (:func:`image_rule`). Pixtral's is
  exact: the image is scaled into 1024 x 1024, then one token per 16 x 16
  patch plus one per row (``[IMG_BREAK]``/``[IMG_END]``): 1024x1024 -> 4160,
  768x432 -> 1323. Other families get a documented estimate with a margin.
- **Text tokens** are counted with the model's own tokenizer where it is
  installed (``mistral_common``'s Tekken for Pixtral), else estimated from
  the text's pieces (words, digits, symbols) with a margin; measured on
  Tekken the estimate is 1.15-1.8x the real count for prose, JSON, code,
  German, Chinese and emoji. The project venv has no ``mistral_common``
  (it is only in vLLM's), so there the estimate is used.
- **The context length** comes from the server (vLLM's ``/v1/models`` lists
  ``max_model_len`` per model); the image limit is the setting
  ``VRAG_VLLM_MAX_IMAGES``.
"""

import dataclasses
import functools
import math
import re

from plugin.errors import AnswerError

DEFAULT_MAX_MODEL_LEN = 32768  # when the server does not say (not vLLM)
MIN_LONG_SIDE = 256  # px: smaller frames are not worth their tokens
SIDE_STEP = 16  # px: Pixtral's patch; sizes are tried in these steps
SAFETY_TOKENS = 32  # kept free besides the margins
# The chat template's own tokens: per message (role markers), per content
# part (separators), once (BOS...). Mistral uses ~2 / 1 / 1; ChatML ~5 / 1 / 3.
TEMPLATE_PER_MESSAGE = 6
TEMPLATE_PER_PART = 2
TEMPLATE_BASE = 8


@dataclasses.dataclass(frozen=True)
class ImageRule:
    """How a model family turns an image into tokens.

    ``fixed``: a constant count per image; else a ``patch`` x ``patch`` grid
    of the image scaled into ``max_side`` x ``max_side`` (if set), plus one
    token per row if ``row_break``; ``extra`` tokens per image; times
    ``margin`` (1.0 for an exact rule).
    """

    family: str
    patch: int = 16
    max_side: int | None = None
    row_break: bool = False
    fixed: int | None = None
    extra: int = 0
    margin: float = 1.0

    @property
    def exact(self):
        return self.margin == 1.0

    def grid(self, width, height):
        """(columns, rows) of patches, as mistral_common computes them."""
        ratio = max(width, height) / self.max_side if self.max_side else 1.0
        if ratio > 1:
            width = max(round(width / ratio), 1)
            height = max(round(height / ratio), 1)
        return (width - 1) // self.patch + 1, (height - 1) // self.patch + 1

    def tokens(self, width, height):
        """Tokens of one ``width`` x ``height`` image."""
        if self.fixed is not None:
            count = self.fixed
        else:
            cols, rows = self.grid(width, height)
            count = cols * rows + (rows if self.row_break else 0)
        return math.ceil((count + self.extra) * self.margin)


PIXTRAL = ImageRule("pixtral", patch=16, max_side=1024, row_break=True)
#: by model-name substring, first match wins (see docs/ask.md)
IMAGE_RULES = (
    ("pixtral", PIXTRAL),
    # Mistral Small 3.x: 14 px patches merged 2 x 2, images into 1540 px
    ("mistral-small-3", ImageRule("mistral-small-3", 28, 1540, True, margin=1.1)),
    # Qwen2/2.5-VL: 14 px patches merged 2 x 2, plus vision start/end
    ("qwen", ImageRule("qwen-vl", patch=28, extra=2, margin=1.1)),
    ("gemma-3", ImageRule("gemma-3", fixed=256, extra=4)),
    ("llava-1.5", ImageRule("llava-1.5", fixed=576, extra=2)),
    # LLaVA-NeXT tiles: up to 5 x 576 + row newlines
    ("llava", ImageRule("llava-next", fixed=2928, extra=2)),
)
#: anything else: an unmerged 14 px ViT grid + 25 %, more than most families use
GENERIC = ImageRule("generic", patch=14, extra=2, margin=1.25)


def image_rule(model):
    """The :class:`ImageRule` for a served model name."""
    name = (model or "").lower()
    for key, rule in IMAGE_RULES:
        if key in name:
            return rule
    return GENERIC


def downscaled(size, long_side):
    """The size :func:`plugin.answer.images.downscale` makes (never upscaled)."""
    width, height = size
    scale = long_side / max(width, height)
    if scale >= 1:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


# -- text ---------------------------------------------------------------------

_PIECE = re.compile(r"\d| ?[A-Z]*[a-z]+| ?[A-Z]+| ?[^\W\d_A-Za-z]+|\s+|.", re.S)
TEXT_MARGIN = 1.15


def estimate_text_tokens(text):
    """An estimate of a BPE tokenizer's count, erring high: a token per digit,
    per ASCII word (+1 per 6 letters), per punctuation mark and per other
    letter; a byte per other symbol (emoji); then +15 %."""
    count = 0
    for match in _PIECE.finditer(text or ""):
        piece = match.group().lstrip(" ")
        if not piece or piece.isdigit() or piece.isspace():
            count += 1
        elif piece.isascii() and piece.isalpha():
            count += 1 + len(piece) // 6
        elif piece.isalpha():
            count += len(piece)
        elif piece.isascii():
            count += 1
        else:
            count += len(piece.encode())
    return math.ceil(count * TEXT_MARGIN)


@dataclasses.dataclass(frozen=True)
class TextCounter:
    """Counts a text's tokens: ``name`` says how (``exact`` or an estimate)."""

    name: str
    count: object  # str -> int
    exact: bool = False


ESTIMATE = TextCounter("estimate (+15 % margin)", estimate_text_tokens)


@functools.lru_cache(maxsize=1)
def _tekken():
    # Pixtral-12B-2409's tokenizer, packaged in mistral_common
    from pathlib import Path

    import mistral_common
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    path = Path(mistral_common.__file__).parent / "data" / "tekken_240911.json"
    return Tekkenizer.from_file(str(path))


def text_counter(model):
    """Pixtral's own tokenizer when ``mistral_common`` is installed, else
    :data:`ESTIMATE`."""
    if "pixtral" in (model or "").lower():
        try:
            tekken = _tekken()
        except (ImportError, OSError, ValueError):
            return ESTIMATE
        return TextCounter(
            "mistral_common (Pixtral's Tekken)",
            lambda text: len(tekken.encode(text or "", bos=False, eos=False)),
            exact=True,
        )
    return ESTIMATE


# -- the plan -------------------------------------------------------------------


@dataclasses.dataclass
class Candidate:
    """One evidence item as the planner sees it.

    ``size``: its frame's (width, height) when it may go as an image, else
    None and ``no_image`` says why. ``earlier``: a frame of an earlier turn
    (its text is in the history already)."""

    n: int
    text_tokens: int
    size: tuple | None = None
    no_image: str = ""
    earlier: bool = False


@dataclasses.dataclass
class PlannedItem:
    n: int
    mode: str  # image | text | dropped
    text_tokens: int
    image_tokens: int = 0
    size: tuple | None = None  # (w, h) of the image sent
    reason: str = ""
    earlier: bool = False

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Limits:
    max_model_len: int
    max_tokens: int
    max_images: int
    long_side: int
    min_side: int = MIN_LONG_SIDE
    context_source: str = "server"  # server | assumed | given

    @property
    def prompt_budget(self):
        """What the prompt may use: the context minus the answer and a margin."""
        return self.max_model_len - self.max_tokens - SAFETY_TOKENS


@dataclasses.dataclass
class Plan:
    """What goes into the request, and what it costs (see :func:`make_plan`)."""

    items: list
    limits: Limits
    fixed_tokens: int  # system prompt, instructions, question, template
    history_tokens: int = 0
    history_turns: int = 0  # earlier turns sent
    history_dropped: int = 0  # earlier turns left out (oldest)
    wanted_image_tokens: int = 0  # the images at the requested size
    rule: str = ""
    counter: str = ""
    exact: bool = False

    def mode_of(self, n):
        return next((p.mode for p in self.items if p.n == n and not p.earlier), None)

    def size_of(self, n):
        return next(
            (p.size for p in self.items if p.n == n and p.mode == "image"), None
        )

    def numbers(self, mode, earlier=False):
        return [p.n for p in self.items if p.mode == mode and p.earlier == earlier]

    @property
    def text_tokens(self):
        kept = sum(p.text_tokens for p in self.items if p.mode != "dropped")
        return self.fixed_tokens + self.history_tokens + kept

    @property
    def image_tokens(self):
        return sum(p.image_tokens for p in self.items if p.mode == "image")

    @property
    def total_tokens(self):
        return self.text_tokens + self.image_tokens

    @property
    def image_budget(self):
        """Tokens left for images once the text is placed."""
        return max(0, self.limits.prompt_budget - self.text_tokens)

    @property
    def image_fill(self):
        """Image tokens used / what images could use (the budget, or what the
        images want at the requested size when that is less): 1.0 is full."""
        room = min(self.image_budget, self.wanted_image_tokens)
        return self.image_tokens / room if room else 1.0

    def to_dict(self):
        return {
            "items": [p.to_dict() for p in self.items],
            "max_model_len": self.limits.max_model_len,
            "context_source": self.limits.context_source,
            "max_tokens": self.limits.max_tokens,
            "max_images": self.limits.max_images,
            "long_side": self.limits.long_side,
            "prompt_budget": self.limits.prompt_budget,
            "fixed_tokens": self.fixed_tokens,
            "history_tokens": self.history_tokens,
            "history_turns": self.history_turns,
            "history_dropped": self.history_dropped,
            "text_tokens": self.text_tokens,
            "image_tokens": self.image_tokens,
            "total_tokens": self.total_tokens,
            "image_budget": self.image_budget,
            "image_fill": round(self.image_fill, 4),
            "rule": self.rule,
            "counter": self.counter,
            "exact": self.exact,
        }

    def summary(self):
        """One line: the total against the budget, and what goes how."""
        approx = "" if self.exact else "~"
        parts = [
            f"{len(self.numbers('image'))} as images",
            f"{len(self.numbers('text'))} as text",
            f"{len(self.numbers('dropped'))} dropped",
        ]
        if self.history_turns:
            parts.append(f"{self.history_turns} earlier turns")
        return (
            f"Prompt {approx}{self.total_tokens:,} of {self.limits.prompt_budget:,} "
            f"tokens (max_model_len {self.limits.max_model_len:,} "
            f"[{self.limits.context_source}] - {self.limits.max_tokens} for the "
            f"answer): " + ", ".join(parts) + f"; images {self.image_tokens:,} tokens."
        )

    def notices(self):
        """What the user must be told: frames not sent as images, items
        dropped, images shrunk, turns left out."""
        out = []
        by_reason = {}
        for p in self.items:
            if p.mode == "text" and not p.earlier and p.reason:
                by_reason.setdefault(p.reason, []).append(p.n)
        for reason, numbers in by_reason.items():
            out.append(f"{_labels(numbers)} sent as text only: {reason}.")
        dropped = self.numbers("dropped")
        if dropped:
            out.append(
                f"{_labels(dropped)} dropped: they do not fit the server's context "
                f"(max_model_len {self.limits.max_model_len:,})."
            )
        shrunk = [
            p.n
            for p in self.items
            if p.mode == "image" and p.reason == "shrunk to fit" and not p.earlier
        ]
        if shrunk:
            out.append(
                f"{_labels(shrunk)} sent smaller than {self.limits.long_side} px "
                "to fit the server's context."
            )
        if self.history_dropped:
            out.append(
                f"{self.history_dropped} earlier turn(s) of the conversation left "
                "out to fit the server's context."
            )
        return out


def _labels(numbers):
    return ", ".join(f"[{n}]" for n in numbers)


def make_plan(candidates, fixed_tokens, limits, rule, turn_tokens=(), counter=None):
    """Decides what the request carries, most relevant first.

    Order of claims on ``limits.prompt_budget``: the fixed text (question,
    instructions); the images of the first ``max_images`` frames at their
    smallest size (``min_side``); earlier turns, newest first, up to half of
    what is left; each item's text in relevance order (an item that does not
    fit is dropped); then the images grow, all alike, then one by one, up to
    ``long_side``; frames of earlier turns get leftover slots and tokens.

    Args:
        candidates: :class:`Candidate` items, current ones by relevance, then
            earlier turns' frames (newest turn first)
        fixed_tokens: tokens of everything that is always sent
        limits: :class:`Limits`
        rule: the :class:`ImageRule`
        turn_tokens: tokens of each earlier turn, oldest first
        counter (None): the :class:`TextCounter` used (for the record)

    Raises:
        AnswerError: ``too_long`` when the question alone does not fit
    """
    budget = limits.prompt_budget
    if fixed_tokens > budget:
        raise AnswerError(
            "too_long",
            f"The question and instructions alone take {fixed_tokens:,} tokens; "
            f"the server's context ({limits.max_model_len:,} tokens, minus "
            f"{limits.max_tokens} for the answer) cannot hold them. Shorten the "
            "question, lower max_tokens, or serve with a larger --max-model-len.",
        )
    plan = Plan([], limits, fixed_tokens, rule=rule.family)
    if counter is not None:
        plan.counter, plan.exact = counter.name, counter.exact and rule.exact
    current = [c for c in candidates if not c.earlier]
    slots = _image_slots(current, fixed_tokens, limits, rule)
    reserve = {c.n: _cost(c, limits.min_side, rule) for c in slots}
    used = fixed_tokens + _take_history(plan, turn_tokens, budget - fixed_tokens, reserve)
    planned = {}
    for c in current:
        others = sum(reserve.values())
        if used + c.text_tokens + others <= budget:
            used += c.text_tokens
            planned[c.n] = PlannedItem(c.n, "text", c.text_tokens, reason=c.no_image)
        else:
            reserve.pop(c.n, None)
            planned[c.n] = PlannedItem(c.n, "dropped", c.text_tokens, reason="budget")
    chosen = [c for c in slots if c.n in reserve]
    for c in current:
        if c.size and c.n not in reserve and planned[c.n].mode == "text":
            planned[c.n].reason = _why_not_image(c, slots, limits)
    plan.wanted_image_tokens = sum(_cost(c, limits.long_side, rule) for c in chosen)
    left = _size_images(chosen, planned, budget - used, limits, rule)
    plan.items = [planned[c.n] for c in current]
    earlier = [c for c in candidates if c.earlier and c.size]
    free = limits.max_images - len(chosen)
    plan.items += _earlier_images(earlier[: max(0, free)], left, limits, rule)
    return plan


def _cost(candidate, side, rule):
    return rule.tokens(*downscaled(candidate.size, side))


def _image_slots(current, fixed_tokens, limits, rule):
    """The first ``max_images`` frames, fewer if even their smallest images
    do not fit next to the fixed text."""
    slots = [c for c in current if c.size][: max(0, limits.max_images)]
    while slots and fixed_tokens + sum(
        _cost(c, limits.min_side, rule) for c in slots
    ) > (limits.prompt_budget):
        slots.pop()
    return slots


def _why_not_image(candidate, slots, limits):
    if len(slots) >= limits.max_images:
        return (
            f"at most {limits.max_images} images per request "
            "(VRAG_VLLM_MAX_IMAGES / the server's --limit-mm-per-prompt)"
        )
    return "no room for more images in the server's context"


def _take_history(plan, turn_tokens, room, reserve):
    """Keeps the newest earlier turns within half the room left; returns
    their tokens."""
    cap = (room - sum(reserve.values())) // 2
    kept = 0
    for tokens in reversed(list(turn_tokens)):
        if kept + tokens > cap:
            break
        kept += tokens
        plan.history_turns += 1
    plan.history_tokens = kept
    plan.history_dropped = len(turn_tokens) - plan.history_turns
    return kept


def _sides(candidate, limits):
    """Long sides to try, largest first: ``long_side`` down to ``min_side``
    (never above the frame's own size)."""
    top = min(limits.long_side, max(candidate.size))
    low = min(limits.min_side, top)
    sides = list(range(top, low - 1, -SIDE_STEP))
    return sides if sides[-1] == low else sides + [low]


def _size_images(chosen, planned, room, limits, rule):
    """Gives each chosen frame the largest size that fits ``room``: first one
    size for all, then each (most relevant first) grows into what is left.
    Returns the tokens left."""
    if not chosen:
        return room
    steps = {c.n: _sides(c, limits) for c in chosen}
    level = {c.n: len(steps[c.n]) - 1 for c in chosen}  # smallest: reserved
    depth = max(len(s) for s in steps.values())
    for k in range(depth):  # uniform: the same rank of size for all
        trial = {c.n: min(k, len(steps[c.n]) - 1) for c in chosen}
        cost = sum(_cost(c, steps[c.n][trial[c.n]], rule) for c in chosen)
        if cost <= room:
            level = trial
            break
    left = room - sum(_cost(c, steps[c.n][level[c.n]], rule) for c in chosen)
    for c in chosen:  # grow one by one into what is left
        now = _cost(c, steps[c.n][level[c.n]], rule)
        for k in range(level[c.n]):
            extra = _cost(c, steps[c.n][k], rule) - now
            if extra <= left:
                left -= extra
                level[c.n] = k
                break
    for c in chosen:
        side = steps[c.n][level[c.n]]
        item = planned[c.n]
        item.mode, item.size = "image", downscaled(c.size, side)
        item.image_tokens = rule.tokens(*item.size)
        item.reason = "shrunk to fit" if side < steps[c.n][0] else ""
    return left


def _earlier_images(earlier, room, limits, rule):
    """Frames of earlier turns in the slots and tokens left (as large as fit)."""
    items = []
    for c in earlier:
        for side in _sides(c, limits):
            cost = _cost(c, side, rule)
            if cost <= room:
                room -= cost
                size = downscaled(c.size, side)
                items.append(PlannedItem(c.n, "image", 0, cost, size, earlier=True))
                break
    return items
