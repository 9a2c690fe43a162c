"""The token plan of a request: what goes as image, as text, or not at all.

:func:`make_plan` takes each evidence item's cost (:mod:`.budget` counts
them) and the server's limits, and decides, most relevant first, which items
go as text + image, which as text only and which are dropped, and at what
size each image goes, so that the request always fits the server's context
(``max_model_len - max_tokens``) and image limit. The :class:`Plan` keeps
the tokens per item and the totals, for the answer and the panel's preview.
"""

import dataclasses

from plugin.answer.budget import MIN_LONG_SIDE, SAFETY_TOKENS, SIDE_STEP, downscaled
from plugin.errors import AnswerError


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
        for p in self.items:  # the planner's reasons (not "no frame" ones)
            if p.mode == "text" and p.reason.startswith(_PLANNER_REASONS):
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


_PLANNER_REASONS = ("at most", "no room")


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
    used = fixed_tokens + _take_history(
        plan, turn_tokens, budget - fixed_tokens, reserve
    )
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
