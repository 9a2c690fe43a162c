"""Speech to text: an audio track -> a :class:`Transcript` of timed sentences.

The Whisper backends and models (which names exist, where their weights come
from, how they load) live in the registry :mod:`plugin.models.speech`.

Timestamps (seconds from the start of the audio) are kept; segments are
Whisper's words regrouped into sentences (see :func:`split_into_sentences`).
How faster-whisper decodes (sequential or batched, VAD) is chosen per device
by :func:`plugin.models.speech.whisper_decoding`.
"""

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from plugin.models.speech import (
    DEFAULT_SPEECH_BACKEND,
    DEFAULT_SPEECH_MODEL,
    MIN_STREAM_S,
    batched_pipeline,
    cuda_failed,
    is_auto_cuda,
    load_speech_model,
    resolve_speech_model,
    whisper_decoding,
    whisper_device,
)
from plugin.settings import Settings

SAMPLE_RATE = 16000  # what Whisper models expect
AUDIO_WINDOW_S = 600.0  # audio decoded and transcribed this much at a time
# Peak amplitude under which an audio track counts as silence: Whisper tends
# to invent text ("Thank you.") on silence, so we do not ask it.
SILENCE_PEAK = 1e-3
PAUSE_SPLIT_S = 0.8  # a pause this long ends a segment
SENTENCE_ENDS = (".", "?", "!", "。", "？", "！")


@dataclass
class Segment:
    start: float
    end: float
    text: str


@dataclass
class Transcript:
    language: str | None
    segments: list[Segment] = field(default_factory=list)


def load_audio(path):
    """The audio of ``path`` as mono float32 at 16 kHz (decoded by PyAV)."""
    from faster_whisper.audio import decode_audio

    return decode_audio(str(path), sampling_rate=SAMPLE_RATE)


def is_silent(audio):
    return audio.size == 0 or float(np.max(np.abs(audio))) < SILENCE_PEAK


def transcribe_audio(
    audio,
    backend=DEFAULT_SPEECH_BACKEND,
    model=DEFAULT_SPEECH_MODEL,
    language=None,
    settings=None,
):
    """Transcribes 16 kHz mono float32 ``audio``; returns a :class:`Transcript`.

    Args:
        audio: samples, e.g. from :func:`load_audio`
        backend ("faster-whisper"): one of :data:`plugin.models.speech.BACKENDS`
        model ("tiny.en"): a packaged model name, a local path, or a hub name
        language (None): a language code, or None to detect it
        settings (None): a :class:`~plugin.settings.Settings` (Whisper's device)
    """
    settings = Settings.coerce(settings)
    spec = resolve_speech_model(backend, model, settings)
    if backend == "faster-whisper":
        try:  # CUDA errors come at load or, lazily, while decoding
            words, found = _faster_whisper(spec, audio, language, settings)
        except RuntimeError as e:
            if not (is_auto_cuda(settings) and _is_cuda_error(e)):
                raise
            cuda_failed(f"{type(e).__name__}: {e}")  # auto picks the CPU now
            return transcribe_audio(audio, backend, model, language, settings)
        return Transcript(found, split_into_sentences(words))
    whisper_model = load_speech_model(spec, settings)
    fp16 = whisper_device(settings)[1] == "float16"
    result = whisper_model.transcribe(
        audio, language=language or None, fp16=fp16, verbose=None, word_timestamps=True
    )
    words = [
        (float(w["start"]), float(w["end"]), w["word"])
        for s in result["segments"]
        for w in s.get("words", [])
    ]
    return Transcript(result.get("language"), split_into_sentences(words))


def _is_cuda_error(error):
    text = str(error).lower()
    return any(word in text for word in ("cuda", "cublas", "cudnn"))


def _faster_whisper(spec, audio, language, settings):
    """Runs faster-whisper as :func:`whisper_decoding` says: sequential (in
    parallel parts cut at quiet moments), or the batched pipeline (cut by
    VAD, or into fixed 30-s clips without it). Returns ``(words, language)``,
    words as ``(start, end, text)``."""
    decoding = whisper_decoding(settings)
    kwargs = {
        "language": language or None,
        "beam_size": decoding.beam_size,
        "word_timestamps": True,
    }
    if decoding.batch_size:
        clips = None if decoding.vad else fixed_clips(len(audio) / SAMPLE_RATE)
        pipeline = batched_pipeline(load_speech_model(spec, settings))
        segments, info = pipeline.transcribe(
            audio,
            batch_size=decoding.batch_size,
            vad_filter=decoding.vad,
            clip_timestamps=clips,
            **kwargs,
        )
        return _words(segments), info.language
    cuts = quiet_cuts(audio, stream_count(len(audio) / SAMPLE_RATE, decoding))
    whisper_model = load_speech_model(spec, settings, streams=len(cuts) - 1)

    def decode(n):  # the segments are lazy: decoding happens here
        part = audio[cuts[n] : cuts[n + 1]]
        segments, info = whisper_model.transcribe(
            part, vad_filter=decoding.vad, **kwargs
        )
        return _words(segments, cuts[n] / SAMPLE_RATE), info.language

    if len(cuts) == 2:
        results = [decode(0)]
    else:
        with ThreadPoolExecutor(len(cuts) - 1) as pool:
            results = list(pool.map(decode, range(len(cuts) - 1)))
    return [w for words, _ in results for w in words], results[0][1]


def stream_count(seconds, decoding):
    """How many parts sequential decoding cuts ``seconds`` of audio into
    (each at least ``MIN_STREAM_S`` long, at most ``decoding.streams``)."""
    return max(1, min(decoding.streams, int(seconds // MIN_STREAM_S)))


def _words(segments, offset=0.0):
    return [
        (w.start + offset, w.end + offset, w.word)
        for s in segments
        for w in s.words or []
    ]


def quiet_cuts(audio, parts, search_s=15.0, frame_s=0.02):
    """Sample indices ``[0, ..., len(audio)]`` cutting ``audio`` into
    ``parts`` of about equal length, so that no word is cut: each cut is the
    middle of the longest quiet stretch (frames of ``frame_s`` within 10 dB
    of the quietest one) found within ``search_s`` of an equal cut."""
    hop, cuts = int(frame_s * SAMPLE_RATE), [0]
    for k in range(1, parts):
        target = len(audio) * k // parts
        low = max(target - int(search_s * SAMPLE_RATE), cuts[-1] + hop)
        frames = (min(target + int(search_s * SAMPLE_RATE), len(audio)) - low) // hop
        if frames < 1:
            continue
        power = (audio[low : low + frames * hop].reshape(frames, hop) ** 2).mean(1)
        start, length = _longest_run(power <= 10 * power.min() + 1e-10)
        cuts.append(low + (2 * start + length) * hop // 2)
    return cuts + [len(audio)]


def _longest_run(flags):
    """``(start, length)`` of the longest run of True in ``flags`` (the first
    of equals)."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(int), [0]])))
    starts, ends = edges[::2], edges[1::2]
    best = int(np.argmax(ends - starts))
    return int(starts[best]), int(ends[best] - starts[best])


def transcribe_video(video_path, info, options, window_s=None):
    """Transcribes a video file's audio for the importer, never raising:
    returns ``(segments, status, language, seconds, audio seconds)``, with
    ``status`` one of ``ok | no_speech | silent | no_audio | off | failed: ...``
    (a failed transcript still leaves the frames worth keeping).

    The audio is decoded and transcribed in windows of ``window_s`` seconds
    (default :data:`AUDIO_WINDOW_S`), so a 3-hour track never sits whole in
    memory; a word cut by a window's edge may be lost (one per 10 minutes).
    """
    started = time.perf_counter()
    if not options.transcribe:
        return [], "off", None, 0.0, None
    if not info.has_audio:
        return [], "no_audio", None, 0.0, None
    segments, language, samples, heard = [], None, 0, False
    try:
        for offset, audio in audio_windows(video_path, window_s or AUDIO_WINDOW_S):
            samples += len(audio)
            if is_silent(audio):
                continue
            heard = True
            transcript = transcribe_audio(
                audio, options.backend, options.model, options.language_code
            )
            language = language or transcript.language
            segments += [
                {"start": s.start + offset, "end": s.end + offset, "text": s.text}
                for s in transcript.segments
            ]
    except Exception as e:  # frames are still worth keeping
        status = f"failed: {type(e).__name__}: {e}"
        return [], status, None, time.perf_counter() - started, samples / SAMPLE_RATE
    audio_s = samples / SAMPLE_RATE
    seconds = time.perf_counter() - started
    if not heard:
        return [], "silent", None, seconds, audio_s
    return segments, "ok" if segments else "no_speech", language, seconds, audio_s


def audio_windows(path, window_s=None):
    """Yields ``(offset seconds, samples)``: the audio of ``path`` as mono
    float32 at 16 kHz, ``window_s`` seconds at a time, decoded piece by piece.

    Written by hand because faster-whisper's ``decode_audio`` returns the
    whole track at once (a 3-hour track is 691 MB as float32, and the import
    peaked at 2.3 GB with it); this is the same PyAV resampling, in windows.
    """
    import av

    size = int((window_s or AUDIO_WINDOW_S) * SAMPLE_RATE)
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    # Decoded frames are kept in a list and joined once per window: joining
    # the window so far with each new ~1024-sample frame copied it every
    # time (quadratic: 16-33 s of CPU for a 10-minute track, now ~1 s).
    chunks, pending, offset = [], 0, 0
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        for frame in _frames_and_flush(container.decode(stream)):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
                pending += chunks[-1].size
                while pending >= size:
                    window, chunks = _cut(chunks, size)
                    yield offset / SAMPLE_RATE, window
                    pending, offset = pending - size, offset + size
    if pending or not offset:
        yield offset / SAMPLE_RATE, _cut(chunks, pending)[0]


def _cut(chunks, size):
    """``(the first size samples as float32, the rest as a list of chunks)``."""
    joined = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    window = joined[:size].astype(np.float32) / 32768.0
    return window, [joined[size:]] if joined.size > size else []


def _frames_and_flush(frames):
    yield from frames
    yield None  # flushes the resampler's last samples


def fixed_clips(duration, length=30.0):
    """``[{"start", "end"}]`` (seconds) cutting ``duration`` into windows of
    ``length`` s: how the batched pipeline cuts audio when VAD is off."""
    starts = np.arange(0.0, max(duration, 1e-3), length)
    return [
        {"start": float(t), "end": float(min(t + length, duration))} for t in starts
    ]


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
