"""Make short narrated videos from still images: espeak-ng speech + PyAV.

Test tooling, not core: used by the tests (``from support.synth import ...``),
and, as ``tests.support.synth`` from the repo root, by the benchmark and
``samples/make_sample_video.py``, to get videos whose narration (and so whose
transcript) is known in advance. Needs the Debian ``espeak-ng`` program; everything else is in the
wheels.
"""

import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

AUDIO_RATE = 22050  # espeak-ng's native rate; no resampling needed
_AAC_FRAME = 1024  # samples per AAC frame


@dataclass
class Scene:
    """One scene: a still image shown for ``duration`` s while ``narration`` is read."""

    image: Image.Image
    narration: str = ""
    duration: float = 5.0


def speak(text, speed_wpm=160):
    """Returns ``text`` spoken by espeak-ng as float32 samples at ``AUDIO_RATE``."""
    if not text.strip():
        return np.zeros(0, dtype=np.float32)
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise RuntimeError(
            "espeak-ng is not installed: `apt-get install -y espeak-ng` "
            "(scripts/setup_test_services.sh does it)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        wav_path = Path(tmp) / "speech.wav"
        subprocess.run(
            [espeak, "-s", str(speed_wpm), "-w", str(wav_path), text],
            check=True,
            capture_output=True,
        )
        with wave.open(str(wav_path)) as wav:
            if wav.getframerate() != AUDIO_RATE:
                raise RuntimeError(f"espeak-ng gave {wav.getframerate()} Hz audio")
            pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    return pcm.astype(np.float32) / 32768.0


def speech_seconds(text, speed_wpm=160):
    """How long espeak-ng takes to say ``text``, in seconds."""
    return len(speak(text, speed_wpm)) / AUDIO_RATE


def make_narrated_video(
    path,
    scenes,
    size=(320, 240),
    fps=25,
    audio="speech",
    speed_wpm=160,
    crf=28,
    faststart=False,
):
    """Writes an H.264/AAC MP4 of ``scenes`` to ``path``; returns the scene start times.

    Args:
        path: the output ``.mp4``
        scenes: a list of :class:`Scene`; each narration starts with its scene
            and must fit in it
        size ((320, 240)): the frame size (width, height)
        fps (25): frames per second
        audio ("speech"): ``"speech"`` (the narration), ``"silence"`` (an audio
            track of zeros), or ``None`` (no audio track)
        speed_wpm (160): espeak-ng's speaking rate
        crf (28): x264 quality (higher is smaller)
        faststart (False): put the index first (a truncated copy stays playable)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    starts, pcm_parts, elapsed = [], [], 0.0
    for scene in scenes:
        starts.append(elapsed)
        elapsed += scene.duration
        speech = speak(scene.narration, speed_wpm) if audio == "speech" else None
        pcm_parts.append(_scene_audio(scene, speech))
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.options = {"crf": str(crf), "preset": "veryfast"}
        sound = None
        if audio is not None:
            sound = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
            sound.bit_rate = 48000  # speech: keeps sample files small
        _encode_video(container, video, scenes, size, fps)
        if sound is not None:
            _encode_audio(container, sound, np.concatenate(pcm_parts))
    return starts


def _scene_audio(scene, speech):
    """The scene's audio: its speech (or silence) padded to the scene's length."""
    n_samples = int(round(scene.duration * AUDIO_RATE))
    pcm = np.zeros(n_samples, dtype=np.float32)
    if speech is not None and len(speech):
        if len(speech) > n_samples:
            raise ValueError(
                f"Narration ({len(speech) / AUDIO_RATE:.1f} s) is longer than "
                f"its scene ({scene.duration} s): {scene.narration!r}"
            )
        pcm[: len(speech)] = speech
    return pcm


def _encode_video(container, stream, scenes, size, fps):
    index = 0
    for scene in scenes:
        still = scene.image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
        frame = av.VideoFrame.from_image(still).reformat(format="yuv420p")
        for _ in range(int(round(scene.duration * fps))):
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            container.mux(stream.encode(frame))
            index += 1
    container.mux(stream.encode(None))


def _encode_audio(container, stream, pcm):
    for start in range(0, len(pcm), _AAC_FRAME):
        chunk = np.zeros((1, _AAC_FRAME), dtype=np.float32)
        part = pcm[start : start + _AAC_FRAME]
        chunk[0, : len(part)] = part
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = start
        frame.time_base = Fraction(1, AUDIO_RATE)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def solid_image(color, size=(64, 48)):
    """A plain image of one colour, e.g. ``(200, 30, 30)``."""
    return Image.new("RGB", size, color)
