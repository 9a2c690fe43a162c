"""What a request costs in tokens (the plan that fits it: :mod:`.plan`).

A vLLM server rejects a prompt longer than its ``--max-model-len`` (minus the
answer's ``max_tokens``) and more images than its ``--limit-mm-per-prompt``.
Before sending, :func:`plugin.answer.plan.make_plan` decides what goes, from
these costs:

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
