"""Frames as JPEG data URLs, downscaled for the vision-language model."""

import base64
import io

from PIL import Image

DEFAULT_LONG_SIDE = 768  # px; Pixtral tiles 16 px patches, bigger costs tokens
JPEG_QUALITY = 85


def downscale(image, long_side=DEFAULT_LONG_SIDE):
    """A copy of ``image`` whose longer side is at most ``long_side`` px
    (never upscaled), in RGB."""
    if long_side is None or long_side < 16:
        raise ValueError(f"long_side must be at least 16 px, got {long_side}")
    image = image.convert("RGB")
    width, height = image.size
    scale = long_side / max(width, height)
    if scale >= 1:
        return image.copy()
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def jpeg_data_url(image, quality=JPEG_QUALITY):
    """``data:image/jpeg;base64,...`` for a PIL image."""
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def frame_data_url(path, long_side=DEFAULT_LONG_SIDE, quality=JPEG_QUALITY):
    """Reads an image file, downscales it, and returns ``(data_url, (w, h))``.

    Raises ``OSError`` if the file is missing or unreadable.
    """
    with Image.open(path) as image:
        small = downscale(image, long_side)
    return jpeg_data_url(small, quality), small.size


def decode_data_url(url):
    """The PIL image in a ``data:image/...;base64,`` URL (for tests, checks)."""
    header, _, data = url.partition(",")
    if not header.startswith("data:image/") or ";base64" not in header:
        raise ValueError("not a base64 image data URL")
    return Image.open(io.BytesIO(base64.b64decode(data)))
