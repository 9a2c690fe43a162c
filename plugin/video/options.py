"""The options of a video import, with their checks (shared by core and App form)."""

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
            import benchmark (bench/results/screen_text.md); on slide videos
            unchanged slides are read once, so it costs far less there.
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
        """``{option name: message}`` for each invalid option (empty when valid)."""
        problems = {}
        if not self.fps or self.fps <= 0:
            problems["fps"] = "Frame rate must be positive"
        if self.scene_threshold is not None and not 0 < self.scene_threshold <= 64:
            problems["scene_threshold"] = "Scene threshold is a hash distance in 1-64"
        if self.max_frames is not None and self.max_frames < 1:
            problems["max_frames"] = "Maximum frames must be at least 1"
        if self.long_side < 16:
            problems["long_side"] = "Frame size (long side) must be at least 16 px"
        if not 1 <= self.jpeg_quality <= 95:
            problems["jpeg_quality"] = "JPEG quality must be in 1-95"
        if self.transcript_window is not None and self.transcript_window <= 0:
            problems["transcript_window"] = "Transcript window must be positive"
        if self.transcribe:
            problems.update(self._model_problems())
        if self.screen_text and find_spec("rapidocr_onnxruntime") is None:
            problems["screen_text"] = (
                "Reading on-screen text needs rapidocr-onnxruntime "
                "(see requirements-post.txt)"
            )
        return problems

    def _model_problems(self):
        if self.backend not in BACKENDS:
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
