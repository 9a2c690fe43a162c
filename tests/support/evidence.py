"""Evidence items with real JPEG frame files, for the answer path's tests."""

from pathlib import Path

from PIL import Image, ImageDraw

from plugin.answer.evidence import Evidence


def frame_evidence(folder, n, size=(1280, 720), **fields):
    """``n`` evidence items numbered 1 to ``n``, each with a JPEG frame of its
    own in ``folder`` (``size``; a colour of its own and a white box).

    ``fields``: the items' other Evidence fields; a callable is called with
    the item's 0-based index, e.g. ``timestamp=lambda i: 5.0 * i``.
    """
    width, height = size
    items = []
    for i in range(n):
        path = Path(folder) / f"frame{i:02d}.jpg"
        image = Image.new("RGB", size, ((37 * i) % 255, 90, 160))
        box = [width // 10, height // 10, width // 2, height // 2]
        ImageDraw.Draw(image).rectangle(box, outline="white")
        image.save(path, quality=85)
        values = {k: v(i) if callable(v) else v for k, v in fields.items()}
        items.append(Evidence(n=i + 1, filepath=str(path), **values))
    return items
