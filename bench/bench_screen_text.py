"""Benchmark of on-screen text (not a test): import time with and without it.

Two videos, imported twice each in ONE run (without, then with
``screen_text=True``), at the importer's default 0.2 FPS:

- the import benchmark's 10-minute narrated video (bench/bench_import.py):
  120 CIFAR-10 scenes of 5 s, no text on screen, every frame differs, so
  every frame is read: the worst case for the cost;
- a generated 8-minute slide talk: 24 slides of 20 s (title + bullets drawn
  with PIL, narration that never reads them), so 4 frames per slide and 3 of
  4 take the text of an unchanged slide.

Reports seconds, the ratio with/without, frames read and reused, and the
character error rate on the slides. The default of ``ImportOptions.screen_text``
follows from the first ratio (on if at most 1.25). Results go to
``bench/results/screen_text.json`` and ``.md``. Run from the repo root:
``.venv/bin/python bench/bench_screen_text.py``.
"""

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_import import CACHE_DIR, make_bench_video  # noqa: E402

from bench.results_io import save_results  # noqa: E402
from tests.support.slides import slide_image, slide_text  # noqa: E402
from tests.support.synth import Scene, make_narrated_video  # noqa: E402

RESULTS_DIR = REPO / "bench" / "results"
SLIDE_S, FPS = 20.0, 0.2
TOPICS = [
    "Bayes Theorem", "Gradient Descent", "Markov Chains", "Fourier Series",
    "Linear Regression", "Decision Trees", "Hash Tables", "Binary Search",
    "Dynamic Programming", "Graph Traversal", "Convolution Kernels",
    "Attention Heads", "Entropy and Information", "Eigenvalues",
    "Monte Carlo Methods", "Bloom Filters", "Public Key Cryptography",
    "Garbage Collection", "Virtual Memory", "Consensus Protocols",
    "Transformers", "Dropout", "Batch Normalization", "Learning Rate Schedules",
]  # fmt: skip
BULLETS = ["Why it matters in practice", "A worked example", "Common pitfalls"]
NARRATION = "Here we look at the idea on screen, step by step, with an example."


def make_slide_video():
    """The 8-minute slide talk (cached: generation is not measured)."""
    path = CACHE_DIR / f"slides_{len(TOPICS)}x{int(SLIDE_S)}s_854x480.mp4"
    if path.is_file():
        return path
    scenes = [Scene(slide_image(t, BULLETS), NARRATION, SLIDE_S) for t in TOPICS]
    part = path.with_suffix(".part.mp4")
    make_narrated_video(part, scenes, size=(854, 480), fps=25)
    part.rename(path)
    return path


def time_import(video, screen_text):
    """Imports ``video`` into a fresh dataset; returns the figures."""
    import fiftyone as fo

    from plugin.video import screen_text as module
    from plugin.video.importer import import_videos
    from plugin.video.screen_text import TEXT_FIELD, add_screen_text

    name = f"vrag-bench-screen-{int(screen_text)}"
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    reads, real = [], module.read_lines
    module.read_lines = lambda image: reads.append(1) or real(image)  # counts
    started = time.perf_counter()
    try:
        report = import_videos([video], dataset=name, fps=FPS, screen_text=screen_text)
    finally:
        module.read_lines = real
    dataset = fo.load_dataset(name)
    how = "import option"
    counts = None
    if screen_text and not dataset.has_sample_field(TEXT_FIELD):
        # An importer without the option wired in: read after the import
        counts = add_screen_text(dataset)
        how = "add_screen_text after import (importer not wired yet)"
    wall = time.perf_counter() - started
    result = report.videos[0]
    if result.status != "imported":
        raise RuntimeError(f"import failed: {result.message}")
    texts = dataset.values(["timestamp", TEXT_FIELD]) if screen_text else None
    fo.delete_dataset(name)
    return {
        "seconds": wall,
        "frames": result.num_frames,
        "stages_s": result.seconds,
        "how": how if screen_text else "",
        "counts": counts or {"read": len(reads)},
        "texts": texts,
    }


def slide_cer(texts):
    """Character error rate of the slides' text, one frame per slide."""
    import jiwer

    read = {}
    for timestamp, text in zip(*texts):
        read.setdefault(int(timestamp // SLIDE_S), text or "")
    truth = [slide_text(t, BULLETS) for t in TOPICS]
    return jiwer.cer(truth, [read.get(n, "") for n in range(len(TOPICS))])


def measure(video):
    off = time_import(video, False)
    on = time_import(video, True)
    extra = on["seconds"] - off["seconds"]
    stages = on["stages_s"]
    reads = (on["counts"] or {}).get("read", stages.get("screen_text_reads"))
    return {
        "video": str(video),
        "frames": off["frames"],
        "without_s": round(off["seconds"], 2),
        "with_s": round(on["seconds"], 2),
        "ratio": round(on["seconds"] / off["seconds"], 3),
        "screen_text_s": round(stages.get("screen_text", extra), 2),
        "frames_read": reads,
        "how": on["how"],
        "texts": on["texts"],
    }


def to_markdown(results):
    lines = [
        f"Machine: {results['machine']['cpus']} CPU cores (shared), load "
        f"{results['machine']['load_before']}. Import at {FPS} FPS, faster-whisper "
        "tiny.en; on-screen text by RapidOCR (PP-OCRv4, onnxruntime).",
        "",
        "| Video | Frames | Frames read | Import without (s) | With (s) | Ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, row in (("Benchmark video (10 min, CIFAR scenes, no text)", results["bench"]),
                       ("Slide talk (8 min, 24 slides)", results["slides"])):  # fmt: skip
        lines.append(
            f"| {label} | {row['frames']} | {row['frames_read']} | "
            f"{row['without_s']:.1f} | {row['with_s']:.1f} | **{row['ratio']:.2f}** |"
        )
    default = "on" if results["bench"]["ratio"] <= 1.25 else "off"
    lines += [
        "",
        f"Slide text character error rate: **{results['slides']['cer']:.3f}**. "
        f"Default of `ImportOptions.screen_text`: **{default}** (on only if the "
        "benchmark video's ratio is at most 1.25).",
    ]
    how = results["bench"]["how"]
    if how != "import option":
        lines.append(f"\nMeasured with: {how}.")
    return "\n".join(lines) + "\n"


def main():
    bench_video, slides = make_bench_video(), make_slide_video()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("VRAG_HOME", tmp)
        load_before = round(os.getloadavg()[0], 2)
        results = {
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "load_before": load_before,
            },
            "bench": measure(bench_video),
            "slides": measure(slides),
        }
    results["slides"]["cer"] = round(slide_cer(results["slides"].pop("texts")), 4)
    results["bench"].pop("texts")
    save_results("screen_text", results, to_markdown)


if __name__ == "__main__":
    main()
