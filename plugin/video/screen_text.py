"""On-screen text: what frames show in writing (slide titles, code, captions).

Read offline with RapidOCR (``rapidocr-onnxruntime``: PP-OCRv4 detection and
recognition ONNX models inside the wheel, run by onnxruntime). Each frame
gets two fields:

- ``screen_text``: its lines of text, top to bottom, joined by newlines;
  ``""`` when it shows none (``None``: never read)
- ``screen_text_boxes``: ``fo.Detections``, one box per line (label: the
  line), to look at in the App

Only frames whose picture changed are read. Talks hold a slide for tens of
seconds, so in one video a frame whose perceptual hash (pHash, 16x16 = 256
bits) is within :data:`UNCHANGED_DISTANCE` of the last frame READ takes that
frame's text. 8x8 pHash is too coarse for this: a slide with a new title
moved it 4 bits, the same as JPEG noise; at 16x16 a new title moves it ~22
bits and one changed word ~14, while re-encoding moves it 0-2.

Engine settings (measured on 854x480 frames, 2 cores): detection at the
frame's own size up to 960 px (RapidOCR's default scales the SHORT side UP
to 736 px: ~2-4x the work, and its recognizer then drops more spaces);
no 180-degree classifier (video text is upright; it is for scanned pages);
lines below :data:`MIN_SCORE` confidence are dropped (on the 120 CIFAR
frames of the import benchmark the only "text" was one glyph at 0.61;
rendered slide text reads at 0.9 and above).
"""

import dataclasses
import functools
import re
import threading
from pathlib import Path

import fiftyone as fo
import imagehash
from fiftyone import ViewField as F
from PIL import Image, ImageFilter

from plugin.errors import ModelLoadError
from plugin.progress import report

TEXT_FIELD = "screen_text"
BOXES_FIELD = "screen_text_boxes"
#: pHash bits (of 256) within which a frame counts as unchanged
UNCHANGED_DISTANCE = 8
HASH_SIZE = 16
MIN_SCORE = 0.75
DETECTION_SIDE = 960
JOINED_MIN = 8  # letters: shorter runs are left as read
_LETTER_RUN = re.compile(rf"[A-Za-z]{{{JOINED_MIN},}}")
LABEL_CHARS = 60  # a box's label: the line, cut to this (the App draws it)
_ENGINE_LOCK = threading.Lock()
_INSTALL_HINT = (
    "On-screen text needs rapidocr-onnxruntime: pip install --no-deps "
    "rapidocr-onnxruntime==1.4.4 pyclipper shapely (see requirements-post.txt)"
)


@dataclasses.dataclass
class TextLine:
    """One line read on a frame; ``box`` is ``[x, y, w, h]`` in [0, 1]."""

    text: str
    score: float
    box: list


@dataclasses.dataclass
class ScreenText:
    """What one frame shows in writing; ``reused``: copied from an
    unchanged earlier frame, not read."""

    lines: list
    reused: bool = False

    @property
    def text(self):
        return "\n".join(line.text for line in self.lines)

    def detections(self):
        return fo.Detections(
            detections=[
                fo.Detection(
                    label=line.text[:LABEL_CHARS],
                    bounding_box=line.box,
                    confidence=line.score,
                    text=line.text,
                )
                for line in self.lines
            ]
        )

    def sample_fields(self):
        """The frame sample's fields: ``{screen_text, screen_text_boxes}``."""
        return {TEXT_FIELD: self.text, BOXES_FIELD: self.detections()}


@functools.lru_cache(maxsize=1)
def ocr_engine():
    """The process's RapidOCR engine (loaded once: ~0.1-0.4 s)."""
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as e:
        raise ModelLoadError(f"{_INSTALL_HINT} ({e})") from None
    return RapidOCR(
        det_limit_type="max",
        det_limit_side_len=DETECTION_SIDE,
        use_cls=False,
        print_verbose=False,
    )


def read_lines(image):
    """The lines of text on ``image`` (a PIL image), top to bottom."""
    # A 3x3 median removes JPEG ringing around letters, which makes the
    # recognizer drop spaces; strokes survive (CER 0.022 -> 0.009 on JPEGs)
    image = image.convert("RGB").filter(ImageFilter.MedianFilter(3))
    engine = ocr_engine()
    with _ENGINE_LOCK:  # one onnxruntime run at a time uses every core anyway
        results, _ = engine(image)
    width, height = image.size
    lines = []
    for quad, text, score in results or []:
        text = respace(" ".join(str(text).split()))
        if text and float(score) >= MIN_SCORE:
            lines.append(
                TextLine(text, round(float(score), 4), _box(quad, width, height))
            )
    return lines


def respace(text):
    """``text`` with the spaces the recognizer dropped put back.

    PP-OCRv4's recognizer (trained mostly on Chinese, which has no spaces)
    often reads "Divided by the evidence" as "Dividedbytheevidence", the more
    so on JPEG-compressed frames. Each run of at least :data:`JOINED_MIN`
    ASCII letters is split into the likeliest English words (wordninja:
    unigram frequencies of English Wikipedia) when every part is a word of
    two letters or more (or "a"); other text (digits, code, CJK) is kept.
    """
    return _LETTER_RUN.sub(_split_run, text)


def _split_run(match):
    run = match.group(0)
    parts = _splitter()(run)
    if len(parts) > 1 and all(len(p) > 1 or p.lower() in "ai" for p in parts):
        return " ".join(parts)
    return run


@functools.lru_cache(maxsize=1)
def _splitter():
    try:
        import wordninja
    except ImportError:  # no splitting: the text as read
        return lambda run: [run]
    return wordninja.split


def _box(quad, width, height):
    xs, ys = [p[0] for p in quad], [p[1] for p in quad]
    x0, y0 = max(0.0, min(xs) / width), max(0.0, min(ys) / height)
    x1, y1 = min(1.0, max(xs) / width), min(1.0, max(ys) / height)
    return [round(x0, 5), round(y0, 5), round(x1 - x0, 5), round(y1 - y0, 5)]


class ChangeReader:
    """Reads the frames of ONE video in time order, only those that changed.

    ``reads`` counts the frames read, ``reused`` those that took the text
    of the last frame read, ``with_text`` those that show some.
    """

    def __init__(self, distance=UNCHANGED_DISTANCE):
        self.distance = distance
        self.reads = self.reused = self.with_text = 0
        self._last = None  # (hash, ScreenText) of the last frame read

    def read(self, image):
        phash = imagehash.phash(image.convert("RGB"), hash_size=HASH_SIZE)
        if self._last is not None and phash - self._last[0] <= self.distance:
            self.reused += 1
            result = ScreenText(self._last[1].lines, reused=True)
        else:
            result = ScreenText(read_lines(image))
            self.reads += 1
            self._last = (phash, result)
        self.with_text += bool(result.lines)
        return result

    def counts(self):
        return {"read": self.reads, "reused": self.reused, "with_text": self.with_text}


def add_screen_text(
    samples, overwrite=False, distance=UNCHANGED_DISTANCE, progress=None
):
    """Reads the on-screen text of already-imported frames (no re-import).

    Frames are read per video in time order (frames without a ``video_id``
    each on their own), from their image files; a frame that already has
    ``screen_text`` is kept unless ``overwrite``.

    Args:
        samples: a dataset or a view (only its frames are read)
        overwrite (False): read frames that already have screen text again
        distance: pHash bits within which a frame counts as unchanged
        progress (None): a callable ``progress(fraction, label)``

    Returns:
        ``{"frames", "read", "reused", "with_text", "kept", "missing"}`` counts
    """
    dataset = samples._root_dataset
    _declare_fields(dataset)
    todo = samples if overwrite else samples.match(F(TEXT_FIELD) == None)  # noqa: E711
    counts = dict.fromkeys(("read", "reused", "with_text", "missing"), 0)
    counts["frames"], counts["kept"] = len(samples), len(samples) - len(todo)
    done = 0
    for frames in _groups(todo):
        images = {i: _open(path) for i, path in frames}
        found = {i: image for i, image in images.items() if image is not None}
        counts["missing"] += len(images) - len(found)
        reader = store_video_text(dataset, list(found), found.values(), distance)
        for name, n in reader.counts().items():
            counts[name] += n
        done += len(frames)
        report(progress, done / max(1, len(todo)), f"Read {done}/{len(todo)} frames")
    return counts


def store_video_text(dataset, sample_ids, images, distance=UNCHANGED_DISTANCE):
    """Reads the frames of ONE video (``images``, PIL, in time order) and
    stores each one's text on its sample (``sample_ids``, same order). The
    importer calls this on the frames it just sampled (still in memory).
    Returns the :class:`ChangeReader` (its counts)."""
    _declare_fields(dataset)
    reader = ChangeReader(distance)
    texts, boxes = {}, {}
    for sample_id, image in zip(sample_ids, images, strict=True):
        result = reader.read(image)
        texts[sample_id], boxes[sample_id] = result.text, result.detections()
    if texts:
        dataset.set_values(TEXT_FIELD, texts, key_field="id")
        dataset.set_values(BOXES_FIELD, boxes, key_field="id")
    return reader


def _declare_fields(dataset):
    """Both fields exist even before any frame is read (a view can then
    filter on them, and set_values has its types)."""
    if not dataset.has_sample_field(TEXT_FIELD):
        dataset.add_sample_field(TEXT_FIELD, fo.StringField)
    if not dataset.has_sample_field(BOXES_FIELD):
        dataset.add_sample_field(
            BOXES_FIELD, fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections
        )


def _groups(samples):
    """``[[(sample_id, filepath)]]``: one list per video, in time order."""
    has = samples._root_dataset.has_sample_field
    names = ["id", "filepath"]
    names += [n for n in ("video_id", "timestamp") if has(n)]
    rows = zip(*samples.values(names))
    by_video = {}
    for row in rows:
        fields = dict(zip(names, row))
        key = fields.get("video_id") or fields["id"]  # no video: on its own
        by_video.setdefault(key, []).append(fields)
    return [
        [(f["id"], f["filepath"]) for f in sorted(v, key=_time)]
        for _, v in sorted(by_video.items())
    ]


def _time(fields):
    return (fields.get("timestamp") is None, fields.get("timestamp") or 0.0)


def _open(filepath):
    if not filepath or not Path(filepath).is_file():
        return None
    with Image.open(filepath) as image:
        return image.convert("RGB")
