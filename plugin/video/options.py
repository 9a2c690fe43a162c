"""The options of a video import, with their checks (shared by core and App form)."""

import math
from dataclasses import asdict, dataclass, fields
from importlib.util import find_spec

from plugin.errors import InvalidInputError, UnknownModelError
from plugin.models.speech import (
    BACKENDS,
    DEFAULT_SPEECH_BACKEND,
    DEFAULT_SPEECH_MODEL,
    resolve_speech_model,
)

DEFAULT_FPS = 0.2  # the seed design's rate: one frame every 5 s
#: Highest sampling rate: videos rarely have more frames per second, and a
#: rate above the video's own only repeats frames (1 fps is plenty to search)
MAX_FPS = 60.0


def _number(value):
    """``value`` as a float if it is a finite real number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _within(low, high, whole=False, optional=False):
    """A check: a number in ``[low, high]`` (an integer if ``whole``; None
    allowed if ``optional``)."""

    def check(value):
        if value is None:
            return optional
        number = _number(value)
        if number is None or (whole and not number.is_integer()):
            return False
        return low <= number <= high

    return check


def _positive(high, optional=False):
    def check(value):
        number = _number(value)
        if value is None:
            return optional
        return number is not None and 0 < number <= high

    return check


def _text(optional=True):
    return lambda value: (value is None and optional) or isinstance(value, str)


#: option -> (check, message when it fails)
_CHECKS = {
    "fps": (
        _positive(MAX_FPS),
        f"Frame rate must be a number above 0 and at most {MAX_FPS:g} frames "
        "per second",
    ),
    "scene_threshold": (
        _within(1, 64, whole=True, optional=True),
        "Scene threshold is a hash distance in 1-64",
    ),
    "scene_probe_fps": (
        _positive(MAX_FPS),
        f"Scene probing rate must be above 0 and at most {MAX_FPS:g} per second",
    ),
    "max_frames": (
        _within(1, 10**9, whole=True, optional=True),
        "Maximum frames must be a whole number, at least 1",
    ),
    "dedup_distance": (
        _within(0, 64, whole=True, optional=True),
        "Duplicate distance is a hash distance in 0-64",
    ),
    "long_side": (
        _within(16, 16384, whole=True),
        "Frame size (long side) must be a whole number of pixels in 16-16384",
    ),
    "jpeg_quality": (_within(1, 95, whole=True), "JPEG quality must be in 1-95"),
    "transcript_window": (
        _positive(24 * 3600, optional=True),
        "Transcript window must be a positive number of seconds",
    ),
    "frames_dir": (_text(), "Frames folder must be a path"),
    "backend": (_text(optional=False), "Speech backend must be a name"),
    "model": (_text(optional=False), "Speech model must be a name"),
    "language": (_text(), "Language must be a language code or 'auto'"),
}


@dataclass
class ImportOptions:
    """How to import videos. See :func:`plugin.video.importer.import_videos`.

    Attributes:
        fps: frames per second of fixed-rate sampling
        scene_threshold: if set, sample on scene changes instead (perceptual
            hash distance between probes ``scene_probe_fps`` apart; 0-64)
        scene_probe_fps: probing rate of scene sampling
        max_frames: at most this many frames per video (None: no limit)
        dedup_distance: skip frames within this hash distance of the last kept
        long_side: frames are downscaled to this long side (pixels)
        jpeg_quality: JPEG quality of the written frames (1-95)
        frames_dir: where frames go (None: ``<workbench home>/frames/<dataset>``)
        transcribe: transcribe the audio
        backend, model, language: the Whisper backend, model, language
            (None/"" or "auto": detect)
        transcript_window: seconds of transcript per frame, centred on the
            frame (None: the frame's own interval, up to the next frame)
        screen_text: read the text shown on frames (slides, captions) into
            ``screen_text`` / ``screen_text_boxes`` (:mod:`plugin.video.screen_text`).
            Off by default: it costs more than 25% of the import time on the
            import benchmark (1.76x, bench/results/screen_text.md); on slide
            videos unchanged slides are read once (1.15x on a slide talk).
    """

    fps: float = DEFAULT_FPS
    scene_threshold: int | None = None
    scene_probe_fps: float = 1.0
    max_frames: int | None = None
    dedup_distance: int | None = None
    long_side: int = 1024
    jpeg_quality: int = 90
    frames_dir: str | None = None
    transcribe: bool = True
    backend: str = DEFAULT_SPEECH_BACKEND
    model: str = DEFAULT_SPEECH_MODEL
    language: str | None = None
    transcript_window: float | None = None
    screen_text: bool = False

    @classmethod
    def from_dict(cls, values):
        """Options from a dict, ignoring unknown keys and None for defaults."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names and v is not None})

    def to_dict(self):
        return asdict(self)

    @property
    def language_code(self):
        language = (self.language or "").strip()
        return None if language.lower() in ("", "auto") else language

    def problems(self):
        """``{option name: message}`` for each invalid option (empty when valid).

        Values of the wrong type (text, NaN, infinity, booleans for numbers)
        are problems too, never a TypeError.
        """
        problems = {}
        for name, (check, message) in _CHECKS.items():
            if not check(getattr(self, name)):
                problems[name] = message
        if not isinstance(self.transcribe, bool):
            problems["transcribe"] = "Transcribe must be true or false"
        elif self.transcribe and not {"backend", "model"} & set(problems):
            problems.update(self._model_problems())
        if self.screen_text and find_spec("rapidocr_onnxruntime") is None:
            problems["screen_text"] = (
                "Reading on-screen text needs rapidocr-onnxruntime "
                "(see requirements-post.txt)"
            )
        return problems

    def _model_problems(self):
        if self.backend not in BACKENDS:  # (both are strings here)
            return {"backend": f"Choose one of {list(BACKENDS)}"}
        try:  # looks the model up only: nothing is assembled or downloaded
            resolve_speech_model(self.backend, self.model)
        except UnknownModelError as e:
            return {"model": str(e)}
        except ImportError as e:
            return {"backend": f"{self.backend} is not installed ({e})"}
        return {}

    def validate(self):
        """Raises :class:`~plugin.errors.InvalidInputError` naming every
        invalid option."""
        problems = self.problems()
        if problems:
            raise InvalidInputError("; ".join(f"{k}: {v}" for k, v in problems.items()))
