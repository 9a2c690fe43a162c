"""Slide images with known text (PIL), for narrated slide videos.

Test tooling, like :mod:`support.synth` (imported as ``tests.support.slides``
from the repo root by the benchmark): a talk whose on-screen titles are
known in advance, so OCR can be scored and on-screen search checked. Text is
drawn with Pillow's bundled scalable font (``ImageFont.load_default(size)``),
so no system font is needed.
"""

from PIL import Image, ImageDraw, ImageFont

SLIDE_SIZE = (854, 480)
TITLE_PX, BULLET_PX = 44, 30


def slide_image(
    title, bullets=(), size=SLIDE_SIZE, background=(248, 248, 242), ink=(20, 24, 60)
):
    """A slide: ``title`` at the top, then one line per bullet."""
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    scale = size[1] / SLIDE_SIZE[1]
    title_font = ImageFont.load_default(size=round(TITLE_PX * scale))
    bullet_font = ImageFont.load_default(size=round(BULLET_PX * scale))
    draw.text((round(40 * scale), round(32 * scale)), title, fill=ink, font=title_font)
    for n, bullet in enumerate(bullets):
        y = round((130 + 56 * n) * scale)
        draw.text((round(60 * scale), y), bullet, fill=ink, font=bullet_font)
    return image


def slide_text(title, bullets=()):
    """The text a perfect reader returns for :func:`slide_image`."""
    return "\n".join([title, *bullets])
