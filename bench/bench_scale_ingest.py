"""Benchmark of ingest on this machine (not a test): real-time factor, each
stage's share, Whisper's decoding choices, and the worker pool.

In one run, on narrated videos whose narration is known (so the word error
rate can be measured):

1. Whisper (faster-whisper tiny.en, int8 on the CPU) on the 10-minute bench
   video and the 25-s sample video: sequential beam 5 (the CPU default),
   the BatchedInferencePipeline (batch 8, VAD), sequential with VAD, and
   sequential greedy (beam 1): seconds and WER.
2. One import of the 10-minute video with the defaults: seconds per stage,
   real-time factor (video seconds per wall second, "x real time").
3. A library of 4 distinct 150-s videos (10 minutes in all) imported by the
   worker pool (plugin/video/pool.py) with 1 worker and with one per core:
   x real time, speed-up, peak memory of a worker.

Results: ``bench/results/scale_ingest.json`` and ``.md``. Run from the repo
root: ``.venv/bin/python bench/bench_scale_ingest.py [--quick]`` (quick:
without the slow sequential+VAD variant).
"""

import json
import os
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_import import CACHE_DIR, CIFAR_DIR, CLASSES, make_bench_video  # noqa: E402

from bench.results_io import save_results  # noqa: E402

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
    cls = CLASSES[(n + offset) % len(CLASSES)]
    article = "an" if cls[0] in "aeiou" else "a"
    return f"Scene {n + 1}. Here we see {article} {cls}."


def make_library():
    """4 distinct narrated 150-s videos (cached)."""
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


def bench_decoding(video, quick):
    """Seconds and WER per decoding variant, on the 10-min and 25-s clips."""
    from plugin.demo import SAMPLE_VIDEO
    from plugin.settings import Settings
    from plugin.video.transcribe import load_audio, transcribe_audio

    clips = {
        "10min": (load_audio(video), bench_narration()),
        "sample": (load_audio(SAMPLE_VIDEO), SAMPLE_TEXT),
    }
    variants = {
        "sequential beam 5 (CPU default)": {},
        "batched 8 + VAD (GPU default's path)": {"whisper_batch_size": 8},
        "sequential beam 5 + VAD": {"whisper_vad": "on"},
    }
    if quick:
        variants.pop("sequential beam 5 + VAD")
    transcribe_audio(clips["sample"][0], settings=Settings.load(whisper_device="cpu"))
    rows = {}
    for name, overrides in variants.items():
        settings = Settings.load(whisper_device="cpu", **overrides)
        row = {}
        for clip, (audio, text) in clips.items():
            started = time.perf_counter()
            transcript = transcribe_audio(audio, settings=settings)
            seconds = time.perf_counter() - started
            said = " ".join(s.text for s in transcript.segments)
            row[clip] = {
                "seconds": round(seconds, 2),
                "x_real_time": round(len(audio) / 16000 / seconds, 1),
                "wer": round(wer(text, said), 3),
                "segments": len(transcript.segments),
            }
        rows[name] = row
        print(name, json.dumps(row), flush=True)
    return rows


def bench_import(video, duration):
    import fiftyone as fo

    from plugin.video.importer import import_videos

    name = "vrag-bench-scale-import"
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    started = time.perf_counter()
    (result,) = import_videos([video], dataset=name).videos
    wall = time.perf_counter() - started
    fo.delete_dataset(name)
    if result.status != "imported":
        raise RuntimeError(f"import failed: {result.message}")
    stages = {k: round(v, 2) for k, v in result.seconds.items()}
    stages["other (hashing, probing, model load)"] = round(
        wall - sum(result.seconds.values()), 2
    )
    return {
        "wall_s": round(wall, 2),
        "x_real_time": round(duration / wall, 1),
        "stages_s": stages,
        "shares": {k: round(v / wall, 3) for k, v in stages.items()},
        "frames": result.num_frames,
        "segments": result.num_segments,
    }


def bench_pool(paths, duration):
    import fiftyone as fo

    from plugin.video.pool import import_in_parallel

    rows = {}
    for workers in sorted({1, os.cpu_count() or 1}):
        name = f"vrag-bench-scale-pool-{workers}"
        if fo.dataset_exists(name):
            fo.delete_dataset(name)
        started = time.perf_counter()
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
        }
        print("pool", workers, rows[str(workers)], flush=True)
    one = rows["1"]["wall_s"]
    for row in rows.values():
        row["speedup"] = round(one / row["wall_s"], 2)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {"workers": rows, "worker_peak_rss_bytes": peak}


def to_markdown(r):
    imp = r["import"]
    lines = [
        f"Machine: {r['cpus']} CPU cores (shared with other work), load "
        f"{r['load_before']} at the start. faster-whisper tiny.en, int8, CPU.",
        "",
        "**Whisper decoding** (seconds; x real time; word error rate against the "
        "known narration):",
        "",
        "| Variant | 10-min video | WER | 25-s sample | WER |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in r["decoding"].items():
        a, b = row["10min"], row["sample"]
        lines.append(
            f"| {name} | {a['seconds']} s ({a['x_real_time']}x) | {a['wer']} | "
            f"{b['seconds']} s | {b['wer']} |"
        )
    lines += [
        "",
        f"**One 10-minute video, defaults**: {imp['wall_s']} s, "
        f"**{imp['x_real_time']}x real time** ({imp['frames']} frames, "
        f"{imp['segments']} transcript segments).",
        "",
        "| Stage | Seconds | Share |",
        "|---|---:|---:|",
        *[
            f"| {k} | {v} | {imp['shares'][k]:.0%} |"
            for k, v in imp["stages_s"].items()
        ],
        "",
        f"**Library of {LIBRARY_VIDEOS} videos ({r['library_s'] / 60:.0f} min), worker pool**:",
        "",
        "| Workers | Threads each | Wall s | x real time | Speed-up |",
        "|---:|---:|---:|---:|---:|",
        *[
            f"| {w} | {row['threads_per_worker']} | {row['wall_s']} | "
            f"{row['x_real_time']}x | {row['speedup']}x |"
            for w, row in r["pool"]["workers"].items()
        ],
        "",
        f"Peak memory of a pool worker: {r['pool']['worker_peak_rss_bytes'] / 1e9:.2f} GB.",
    ]
    return "\n".join(lines) + "\n"


def main():
    quick = "--quick" in sys.argv
    video = make_bench_video()
    library = make_library()
    with tempfile.TemporaryDirectory() as home:
        os.environ.setdefault("VRAG_HOME", home)
        results = {
            "cpus": os.cpu_count(),
            "load_before": round(os.getloadavg()[0], 2),
            "decoding": bench_decoding(video, quick),
            "import": bench_import(video, 600.0),
            "library_s": LIBRARY_VIDEOS * LIBRARY_SCENES * SCENE_S,
        }
        results["pool"] = bench_pool(library, results["library_s"])
    save_results("scale_ingest", results, to_markdown)


if __name__ == "__main__":
    main()
