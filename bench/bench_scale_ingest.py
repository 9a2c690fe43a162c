"""Benchmark of ingest on this machine (not a test): real-time factor, each
stage's share, Whisper's decoding choices, and the worker pool.

In one run, on narrated videos whose narration is known (so the word error
rate can be measured):

1. Whisper (faster-whisper tiny.en, int8 on the CPU) on the 10-minute bench
   video and the 25-s sample video, each variant of :data:`DECODING` in
   turn, ``--rounds`` times (the machine is shared: medians, and the load
   when each ran): the CPU default (beam 5, 2 streams of 1 thread), the old
   one (1 stream of 2 threads), 1 stream of 1 thread, beams 3 and 1, the
   BatchedInferencePipeline (batch 8, VAD), sequential with VAD:
   seconds, CPU seconds, WER; then the WER of three of them with the video
   cut to start at 5 places (one cut's WER is partly luck).
2. Imports of the 10-minute video, variants in turn: the defaults
   (transcription while frames are sampled), without that overlap, and the
   old default: seconds per stage, real-time factor ("x real time").
3. A library of 4 distinct 150-s videos (10 minutes in all) imported by the
   worker pool (plugin/video/pool.py) with 1 worker and with one per core:
   x real time, speed-up, peak memory of a worker.

Results: ``bench/results/scale_ingest.json`` and ``.md``. Run from the repo
root: ``.venv/bin/python bench/bench_scale_ingest.py [--quick] [--rounds N]``
(quick: without the slow sequential+VAD variant; rounds: 2 by default).
"""

import contextlib
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

# bench_import (CIFAR classes, torch) is imported where used: the pool's
# spawned workers import this module again, and torch costs each ~0.5 GB
from bench.results_io import save_results  # noqa: E402
from bench.scale_ingest_markdown import to_markdown  # noqa: E402

LIBRARY_VIDEOS, LIBRARY_SCENES, SCENE_S = 4, 30, 5.0
SAMPLE_TEXT = (
    "Here a brown horse stands in a green field. A small blue car drives along "
    "the road. A large white ship sails on the open sea. A small yellow airplane "
    "sits on the grass. A tabby cat sits and looks at the camera."
)
RESULTS = REPO / "bench" / "results"


def bench_narration(scenes=120, offset=0):
    return " ".join(_sentence(n, offset) for n in range(scenes))


def _sentence(n, offset=0):
    from bench_import import CLASSES

    cls = CLASSES[(n + offset) % len(CLASSES)]
    article = "an" if cls[0] in "aeiou" else "a"
    return f"Scene {n + 1}. Here we see {article} {cls}."


def make_library():
    """4 distinct narrated 150-s videos (cached)."""
    from bench_import import CACHE_DIR, CIFAR_DIR, CLASSES
    from PIL import Image

    from tests.support.synth import Scene, make_narrated_video

    paths = []
    for v in range(LIBRARY_VIDEOS):
        path = CACHE_DIR / "library" / f"lib{v}_{LIBRARY_SCENES}x{int(SCENE_S)}s.mp4"
        if not path.is_file():
            scenes = []
            for n in range(LIBRARY_SCENES):
                cls = CLASSES[(n + v) % len(CLASSES)]
                image = Image.open(CIFAR_DIR / cls / f"{(n + 13 * v) % 900:04d}.jpg")
                scenes.append(Scene(image, _sentence(n, v), SCENE_S))
            part = path.with_suffix(".part.mp4")
            make_narrated_video(part, scenes, size=(640, 360), fps=25)
            part.rename(path)
        paths.append(path)
    return paths


def wer(reference, hypothesis):
    """Word error rate (lower-cased words, punctuation dropped)."""
    ref = re.sub(r"[^a-z0-9 ]", " ", reference.lower()).split()
    hyp = re.sub(r"[^a-z0-9 ]", " ", hypothesis.lower()).split()
    row = np.arange(len(hyp) + 1)
    for i in range(1, len(ref) + 1):
        prev, row = row, row.copy()
        row[0] = i
        for j in range(1, len(hyp) + 1):
            row[j] = min(
                prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (ref[i - 1] != hyp[j - 1])
            )
    return float(row[-1] / len(ref))


#: name -> (settings overrides, environment): CPU threads come from
#: OMP_NUM_THREADS (plugin/models/speech.py), 2 on this machine
OLD_DEFAULT = {"whisper_streams": "1"}
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
BEAM_3 = {"whisper_beam_size": "3"}
DECODING = {
    "beam 5, 2 streams of 1 thread (CPU default)": ({}, {}),
    "beam 5, 1 stream of 2 threads (old default)": (OLD_DEFAULT, {}),
    "beam 5, 1 stream of 1 thread": ({}, ONE_THREAD),
    "beam 3, 2 streams": (BEAM_3, {}),
    "beam 3, 1 stream of 1 thread": (BEAM_3, ONE_THREAD),
    "beam 1 (greedy), 2 streams": ({"whisper_beam_size": "1"}, {}),
    "batched 8 + VAD (GPU default's path)": ({"whisper_batch_size": "8"}, {}),
    "sequential beam 5 + VAD": ({"whisper_vad": "on", **OLD_DEFAULT}, {}),
}
#: where the 10-min video is cut to start, for WER less tied to one cut
CUT_STARTS_S = (0, 30, 75, 125, 200)
CUT_VARIANTS = (
    "beam 5, 2 streams of 1 thread (CPU default)",
    "beam 5, 1 stream of 2 threads (old default)",
    "beam 3, 2 streams",
)


@contextlib.contextmanager
def environment(values):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def bench_decoding(video, quick, rounds):
    """Seconds, CPU seconds and WER per decoding variant, on the 10-min and
    25-s clips; variants in turn, ``rounds`` times (reversed every other)."""
    from plugin.demo import SAMPLE_VIDEO
    from plugin.video.transcribe import load_audio

    clips = {
        "10min": (load_audio(video), bench_narration()),
        "sample": (load_audio(SAMPLE_VIDEO), SAMPLE_TEXT),
    }
    names = [n for n in DECODING if not (quick and "VAD" in n and "seq" in n)]
    runs = {name: {clip: [] for clip in clips} for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            for clip, (audio, text) in clips.items():
                runs[name][clip].append(_decode(name, audio, text))
                print(r, name, clip, runs[name][clip][-1], flush=True)
    return {
        name: {clip: _median_row(rows) for clip, rows in by_clip.items()}
        for name, by_clip in runs.items()
    }


def bench_cut_wer(audio, names):
    """WER of each variant on the 10-min video cut to start at each of
    :data:`CUT_STARTS_S` (where streams split and windows fall moves)."""
    rows = {}
    for name in names:
        runs = []
        for start in CUT_STARTS_S:
            first = int(start // SCENE_S)
            text = " ".join(_sentence(n) for n in range(first, 120))
            runs.append(_decode(name, audio[int(first * SCENE_S * 16000) :], text))
        rows[name] = {
            "wers": [r["wer"] for r in runs],
            "mean_wer": round(float(np.mean([r["wer"] for r in runs])), 3),
            "segments": [r["segments"] for r in runs],
            "sentences": [2 * (120 - int(t // SCENE_S)) for t in CUT_STARTS_S],
        }
        print("cuts", name, rows[name], flush=True)
    return rows


def _decode(name, audio, text):
    from plugin.models.speech import load_speech_model, whisper_decoding
    from plugin.settings import Settings
    from plugin.video.transcribe import stream_count, transcribe_audio

    overrides, env = DECODING[name]
    with environment(env):
        settings = Settings.load(whisper_device="cpu", **overrides)
        parts = stream_count(len(audio) / 16000, whisper_decoding(settings))
        load_speech_model(("faster-whisper", "tiny.en"), settings, parts)  # untimed
        load, cpu = os.getloadavg()[0], time.process_time()
        started = time.perf_counter()
        transcript = transcribe_audio(audio, settings=settings)
        seconds = time.perf_counter() - started
    said = " ".join(s.text for s in transcript.segments)
    return {
        "seconds": round(seconds, 2),
        "cpu_s": round(time.process_time() - cpu, 2),
        "x_real_time": round(len(audio) / 16000 / seconds, 1),
        "wer": round(wer(text, said), 3),
        "segments": len(transcript.segments),
        "load": round(load, 1),
    }


def _median_row(rows):
    row = {k: round(statistics.median(r[k] for r in rows), 3) for k in rows[0]}
    row.update(runs=len(rows), wer_max=max(r["wer"] for r in rows))
    return row


OLD_IMPORT = "old default (1 stream of 2 threads, no overlap)"
#: name -> (environment, transcription overlaps frame sampling)
IMPORTS = {
    "defaults (2 streams, transcribing while sampling)": ({}, True),
    "2 streams, no overlap": ({}, False),
    OLD_IMPORT: (
        {"VRAG_WHISPER_STREAMS": "1"},
        False,
    ),
}


def bench_import(video, duration, rounds):
    """Imports of ``video`` per variant of :data:`IMPORTS`, in turn."""
    runs = {name: [] for name in IMPORTS}
    for env in ({}, IMPORTS[OLD_IMPORT][0]):  # loads the models, warms the database
        _import(video, duration, env, False)
    for r in range(max(rounds, 3)):  # quick: a true median
        for name in IMPORTS if r % 2 == 0 else list(IMPORTS)[::-1]:
            runs[name].append(_import(video, duration, *IMPORTS[name]))
            print("import", r, name, runs[name][-1], flush=True)
    return {name: _median_import(rows) for name, rows in runs.items()}


def _import(video, duration, env, overlap):
    import fiftyone as fo

    from plugin.video import importer

    name = "vrag-bench-scale-import"
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    importer.TRANSCRIBE_WHILE_SAMPLING = overlap
    with environment(env):
        load, cpu = os.getloadavg()[0], time.process_time()
        started = time.perf_counter()
        (result,) = importer.import_videos([video], dataset=name).videos
        wall = time.perf_counter() - started
    importer.TRANSCRIBE_WHILE_SAMPLING = True
    fo.delete_dataset(name)
    if result.status != "imported":
        raise RuntimeError(f"import failed: {result.message}")
    stages = {k: round(v, 2) for k, v in result.seconds.items()}
    # with the overlap, sampling and writing frames ran during transcription
    stages["rest (not during transcription)"] = round(wall - stages["transcription"], 2)
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(time.process_time() - cpu, 2),
        "x_real_time": round(duration / wall, 1),
        "load": round(load, 1),
        "stages_s": stages,
        "frames": result.num_frames,
        "segments": result.num_segments,
    }


def _median_import(rows):
    """The run of median wall time (its stages with it), and every wall time."""
    middle = sorted(rows, key=lambda r: r["wall_s"])[(len(rows) - 1) // 2]
    return {**middle, "walls_s": [r["wall_s"] for r in rows]}


def bench_pool(paths, duration):
    import fiftyone as fo

    from plugin.video.pool import import_in_parallel

    rows = {}
    for workers in sorted({1, os.cpu_count() or 1}):
        name = f"vrag-bench-scale-pool-{workers}"
        if fo.dataset_exists(name):
            fo.delete_dataset(name)
        started = time.perf_counter()
        with watch_new_children() as peaks:
            report = import_in_parallel(paths, dataset=name, workers=workers)
        wall = time.perf_counter() - started
        fo.delete_dataset(name)
        bad = [v for v in report.videos if v.status != "imported"]
        if bad:
            raise RuntimeError(f"pool import failed: {bad}")
        rows[str(workers)] = {
            "wall_s": round(wall, 2),
            "x_real_time": round(duration / wall, 1),
            "threads_per_worker": report.plan.threads,
            "worker_peak_rss_bytes": max(peaks.values(), default=0),
        }
        print("pool", workers, rows[str(workers)], flush=True)
    one = rows["1"]["wall_s"]
    for row in rows.values():
        row["speedup"] = round(one / row["wall_s"], 2)
    peak = max(row["worker_peak_rss_bytes"] for row in rows.values())
    return {"workers": rows, "worker_peak_rss_bytes": peak}


@contextlib.contextmanager
def watch_new_children(every_s=0.2):
    """Peak RSS (sampled) of each process started under this one meanwhile:
    the pool's workers (ru_maxrss of children counts every child the bench
    ever waited for)."""
    import threading

    import psutil

    me, stop, peaks = psutil.Process(), threading.Event(), {}
    before = {p.pid for p in me.children(recursive=True)}

    def watch():
        while not stop.wait(every_s):
            for child in me.children(recursive=True):
                if child.pid not in before:
                    with contextlib.suppress(psutil.Error):
                        rss = child.memory_info().rss
                        peaks[child.pid] = max(peaks.get(child.pid, 0), rss)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield peaks
    finally:
        stop.set()
        thread.join()


def main():
    from plugin.video.transcribe import load_audio

    quick = "--quick" in sys.argv
    rounds = (
        int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 2
    )
    from bench_import import make_bench_video

    video = make_bench_video()
    library = make_library()
    with tempfile.TemporaryDirectory() as home:
        os.environ.setdefault("VRAG_HOME", home)
        results = {
            "cpus": os.cpu_count(),
            "rounds": rounds,
            "load_before": round(os.getloadavg()[0], 2),
            "decoding": bench_decoding(video, quick, rounds),
            "cut_wer": bench_cut_wer(load_audio(video), CUT_VARIANTS),
            "import": bench_import(video, 600.0, rounds),
            "cut_starts_s": CUT_STARTS_S,
            "library_videos": LIBRARY_VIDEOS,
            "library_s": LIBRARY_VIDEOS * LIBRARY_SCENES * SCENE_S,
        }
        results["pool"] = bench_pool(library, results["library_s"])
        results["load_after"] = round(os.getloadavg()[0], 2)
    save_results("scale_ingest", results, to_markdown)


if __name__ == "__main__":
    main()
