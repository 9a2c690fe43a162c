"""Ingest that uses the machine: Whisper's device and decoding from the
settings, and the worker pool (plugin/video/pool.py) on the CPU. The GPU
branch is measured by bench/bench_scale_ingest.py on the GPU machine."""

import fiftyone as fo
import numpy as np
import pytest
from fiftyone import ViewField as F
from support.synth import Scene, make_narrated_video, solid_image

from plugin.models import speech
from plugin.settings import Settings
from plugin.video import pool, transcribe
from plugin.video.transcribe import (
    audio_windows,
    fixed_clips,
    load_audio,
    quiet_cuts,
    transcribe_audio,
)

GB = 1_000_000_000


@pytest.mark.parametrize(
    "overrides, expected",
    [
        # the CPU default: sequential beam 5, 2 streams (of 4 threads here)
        ({"whisper_device": "cpu"}, speech.Decoding(0, False, 5, streams=2)),
        ({"whisper_device": "cuda"}, speech.Decoding(16, True, 5, streams=1)),
        (
            {"whisper_device": "cpu", "whisper_streams": "1"},
            speech.Decoding(0, False, 5, streams=1),
        ),
        (
            {"whisper_device": "cpu", "whisper_beam_size": "3"},
            speech.Decoding(0, False, 3, streams=2),
        ),
        (
            {"whisper_device": "cpu", "whisper_batch_size": "8"},
            speech.Decoding(8, True),
        ),
        (
            {"whisper_device": "cpu", "whisper_batch_size": 8, "whisper_vad": "off"},
            speech.Decoding(8, False),
        ),
        (
            {"whisper_device": "cuda", "whisper_batch_size": "0"},
            speech.Decoding(0, False),
        ),
        (
            {"whisper_device": "cpu", "whisper_vad": "on"},
            speech.Decoding(0, True, 5, streams=2),
        ),
    ],
)
def test_decoding_follows_the_device_and_the_settings_override_it(
    overrides, expected, monkeypatch
):
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert speech.whisper_decoding(Settings.load(**overrides)) == expected


def test_one_cpu_thread_means_one_stream(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    decoding = speech.whisper_decoding(Settings.load(whisper_device="cpu"))
    assert decoding == speech.Decoding(0, False, 5, streams=1)


def test_the_cpu_model_lets_each_stream_decode_at_once(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    settings = Settings.load(whisper_device="cpu")
    name = ("faster-whisper", "tiny.en")
    two = speech.load_speech_model(name, settings, streams=2)
    assert two.model.device == "cpu" and two.model.num_workers == 2
    one = speech.load_speech_model(name, settings)  # all the threads in one
    assert one is not two and one.model.num_workers == 1


def test_decoding_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("VRAG_WHISPER_DEVICE", "cpu")
    monkeypatch.setenv("VRAG_WHISPER_BATCH_SIZE", "4")
    monkeypatch.setenv("VRAG_WHISPER_VAD", "false")
    assert speech.whisper_decoding() == speech.Decoding(4, False)


def test_cpu_threads_are_the_workers_share_when_set(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert speech.whisper_cpu_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert 1 <= speech.whisper_cpu_threads() <= speech.DEFAULT_CPU_THREADS


def test_fixed_clips_cover_the_audio_in_30_s_windows():
    assert fixed_clips(65.0) == [
        {"start": 0.0, "end": 30.0},
        {"start": 30.0, "end": 60.0},
        {"start": 60.0, "end": 65.0},
    ]
    assert fixed_clips(12.5) == [{"start": 0.0, "end": 12.5}]


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"whisper_batch_size": "4"},
        {"whisper_batch_size": "4", "whisper_vad": "off"},
    ],
)
def test_each_decoding_path_transcribes_the_narration(narrated, overrides):
    settings = Settings.load(whisper_device="cpu", **overrides)
    transcript = transcribe_audio(load_audio(narrated), settings=settings)
    text = " ".join(s.text for s in transcript.segments).lower()
    assert "ship" in text and "airplane" in text
    assert transcript.segments[0].start < 1.5  # timestamps kept
    assert transcript.segments[-1].end > 3.0


def test_two_streams_transcribe_each_part_at_its_own_time(narrated, monkeypatch):
    """The CPU default on a short clip made long enough to be cut in two."""
    monkeypatch.setattr(transcribe, "MIN_STREAM_S", 2.0)
    audio = load_audio(narrated)
    cuts = quiet_cuts(audio, 2)
    assert 1.2 < cuts[1] / transcribe.SAMPLE_RATE < 2.5  # between the sentences
    settings = Settings.load(whisper_device="cpu", whisper_streams="2")
    transcript = transcribe_audio(audio, settings=settings)
    by_word = {
        word: s
        for s in transcript.segments
        for word in ("ship", "plane")
        if word in s.text.lower()
    }
    assert sorted(by_word) == ["plane", "ship"]  # tiny.en: (air)plane
    assert by_word["ship"].end <= cuts[1] / transcribe.SAMPLE_RATE
    assert by_word["plane"].start >= cuts[1] / transcribe.SAMPLE_RATE


def test_quiet_cuts_fall_in_the_silence_nearest_an_even_split():
    rate = transcribe.SAMPLE_RATE
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, 100 * rate).astype(np.float32)
    noise[41 * rate : 43 * rate] = 0.0  # silence 8 s before the middle
    noise[70 * rate : 72 * rate] = 0.0  # and one too far from it
    cuts = quiet_cuts(noise, 2)
    assert cuts[0] == 0 and cuts[-1] == len(noise) and len(cuts) == 3
    assert 41 * rate < cuts[1] < 43 * rate
    assert quiet_cuts(noise, 1) == [0, len(noise)]


def test_audio_windows_are_the_whole_track_cut_in_order(narrated):
    """The windows join back into faster-whisper's own decoding of the track."""
    whole = load_audio(narrated)
    windows = list(audio_windows(narrated, window_s=1.5))
    assert [offset for offset, _ in windows] == [1.5 * n for n in range(len(windows))]
    assert all(len(w) == 24000 for _, w in windows[:-1])
    assert 0 < len(windows[-1][1]) <= 24000 and windows[-1][1].dtype == np.float32
    np.testing.assert_array_equal(np.concatenate([w for _, w in windows]), whole)


def test_auto_falls_back_to_the_cpu_when_cuda_cannot_run(narrated, monkeypatch):
    """A visible GPU whose CUDA libraries CTranslate2 cannot load (seen on the
    GPU machine: libcublas.so.12 missing) must not fail every transcription."""
    monkeypatch.setattr(speech, "_gpu_visible", lambda: True)  # no GPU here
    monkeypatch.setattr(speech, "_CUDA_FAILED", [])
    settings = Settings.load(whisper_device="auto")
    assert speech.whisper_device(settings) == ("cuda", "float16")
    transcript = transcribe_audio(load_audio(narrated), settings=settings)
    assert "ship" in " ".join(s.text for s in transcript.segments).lower()
    assert "CUDA" in speech.cuda_failed()
    assert speech.whisper_device(settings) == ("cpu", "int8")
    # a device the user chose is not overridden
    with pytest.raises(RuntimeError, match="CUDA"):
        transcribe_audio(
            load_audio(narrated), settings=Settings.load(whisper_device="cuda")
        )


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        # one per two cores on CPUs
        (dict(num_videos=40, cores=16, device="cpu"), (8, 2, "cpu default")),
        (dict(num_videos=10, cores=2, device="cpu"), (1, 2, "cpu default")),
        # never more workers than videos; the cores go to those there are
        (dict(num_videos=3, cores=16, device="cpu"), (3, 5, "videos")),
        # a few per GPU
        (dict(num_videos=10, cores=16, device="cuda"), (4, 4, "cuda default")),
        # memory: 4 GB available, 0.7 of it, 2 GB a worker -> 1
        (
            dict(num_videos=10, cores=16, device="cpu", available_bytes=4 * GB),
            (1, 8, "memory"),
        ),
        # a 3-hour video's audio counts: 100 GB -> 70 / (2 + 2.07) -> 17
        (
            dict(num_videos=40, cores=64, device="cpu", longest_s=3 * 3600.0),
            (17, 3, "memory"),
        ),
        (dict(num_videos=10, cores=8, device="cpu", workers=2), (2, 4, "asked")),
    ],
)
def test_plan_workers_is_bounded_by_cores_videos_and_memory(kwargs, expected):
    kwargs.setdefault("available_bytes", 100 * GB)
    plan = pool.plan_workers(**kwargs)
    assert (plan.workers, plan.threads, plan.why) == expected


@pytest.fixture(scope="module")
def narrated(tmp_path_factory):
    path = tmp_path_factory.mktemp("scale") / "narrated.mp4"
    scenes = [
        Scene(solid_image((200, 40, 40)), "Here we see a ship.", 2.5),
        Scene(solid_image((40, 40, 200)), "Here we see an airplane.", 2.5),
    ]
    make_narrated_video(path, scenes, size=(96, 64))
    return path


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """Four short narrated videos (different content) and one that is not a video."""
    folder = tmp_path_factory.mktemp("library")
    words = ["horse", "ship", "truck", "frog"]
    for n, word in enumerate(words):
        scenes = [
            Scene(solid_image((60 * n, 90, 30)), f"Video {n}. A {word}.", 2.5),
            Scene(solid_image((30, 60 * n, 90)), f"Then a {word} again.", 2.5),
        ]
        make_narrated_video(folder / f"v{n}.mp4", scenes, size=(96, 64))
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    return folder


def test_the_pool_imports_each_video_once_with_one_model_load_per_worker(
    library, dataset_name
):
    seen = []
    report = pool.import_in_parallel(
        [library],
        dataset=dataset_name,
        workers=2,
        progress=lambda fraction, label: seen.append((fraction, label)),
        settings=Settings.load(whisper_device="cpu"),
    )
    by_name = {v.path.rsplit("/", 1)[-1]: v for v in report.videos}
    assert sorted(by_name) == ["broken.mp4", "v0.mp4", "v1.mp4", "v2.mp4", "v3.mp4"]
    assert by_name["broken.mp4"].status == "failed"
    good = [by_name[f"v{n}.mp4"] for n in range(4)]
    assert [v.status for v in good] == ["imported"] * 4
    assert all(v.num_frames >= 1 and v.num_segments >= 1 for v in good)
    assert report.plan.workers == 2 and report.plan.why == "asked"
    # two worker processes; each loaded Whisper at most once, for all its videos
    assert len(report.workers) == 2
    assert sum(w["videos"] for w in report.workers.values()) == 5
    assert all(w["model_loads"] <= 1 for w in report.workers.values())
    assert any(
        w["videos"] >= 2 and w["model_loads"] == 1 for w in report.workers.values()
    )
    dataset = fo.load_dataset(dataset_name)
    for v in good:  # each video's frames once
        assert len(dataset.match(F("video_id") == v.video_id)) == v.num_frames
    assert len(dataset) == sum(v.num_frames for v in good)
    assert seen[-1][0] == 1.0 and "5/5 done" in seen[-1][1]

    again = pool.import_in_parallel([library], dataset=dataset_name, workers=2)
    statuses = sorted(v.status for v in again.videos)
    assert statuses == ["failed"] + ["unchanged"] * 4
    assert len(fo.load_dataset(dataset_name)) == len(dataset)
