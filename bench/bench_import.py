"""Benchmark of the video import (not a test): seconds per stage, real-time factor.

Generates (once, cached) a 10-minute narrated video: 120 scenes of 5 s, each
a CIFAR-10 test image with a spoken sentence. Then, in the same run:

- our import (PyAV seeking, 0.2 FPS, JPEG frames, faster-whisper tiny.en,
  FiftyOne samples): seconds for sampling, transcription, writing, and the
  end-to-end real-time factor (wall seconds / video seconds);
- the seed's sampling: moviepy ``write_images_sequence(fps=0.2)``.

Results go to ``bench/results/import.json`` and ``bench/results/import.md``.
Run from the repo root: ``.venv/bin/python bench/bench_import.py``.
"""

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from PIL import Image  # noqa: E402

from bench.results_io import save_results  # noqa: E402
from plugin.models.lit import CIFAR10_CLASSES  # noqa: E402
from plugin.video.sampling import sample_frames  # noqa: E402
from tests.support.synth import Scene, make_narrated_video  # noqa: E402

CIFAR_DIR = REPO.parent / "shared" / "data" / "cifar10" / "test"
CACHE_DIR = Path(
    os.environ.get("VRAG_BENCH_CACHE", Path.home() / ".cache" / "vrag-bench")
)
RESULTS_DIR = REPO / "bench" / "results"
CLASSES = list(CIFAR10_CLASSES)
SCENES, SCENE_S, SIZE, FPS = 120, 5.0, (854, 480), 25


def make_bench_video():
    """The 10-minute narrated video (cached: generation is not what we measure)."""
    path = CACHE_DIR / f"narrated_{SCENES}x{int(SCENE_S)}s_{SIZE[0]}x{SIZE[1]}.mp4"
    if path.is_file():
        return path
    scenes = []
    for n in range(SCENES):
        cls = CLASSES[n % len(CLASSES)]
        image = Image.open(CIFAR_DIR / cls / f"{n // len(CLASSES):04d}.jpg")
        article = "an" if cls[0] in "aeiou" else "a"
        scenes.append(
            Scene(image, f"Scene {n + 1}. Here we see {article} {cls}.", SCENE_S)
        )
    make_narrated_video(path.with_suffix(".part.mp4"), scenes, size=SIZE, fps=FPS)
    path.with_suffix(".part.mp4").rename(path)
    return path


def time_our_sampling(video, out_dir):
    """PyAV seeking at 0.2 FPS: decode only, then decode + JPEG writing."""
    started = time.perf_counter()
    count = sum(1 for _ in sample_frames(video, fps=0.2))
    decode_s = time.perf_counter() - started
    started = time.perf_counter()
    for frame in sample_frames(video, fps=0.2):
        frame.image.save(out_dir / f"frame_{frame.index:06d}.jpg", quality=90)
    return {
        "frames": count,
        "decode_s": decode_s,
        "decode_and_jpeg_s": time.perf_counter() - started,
    }


def time_moviepy(video, out_dir):
    """The seed's method: moviepy write_images_sequence(fps=0.2) (PNG frames)."""
    from moviepy import VideoFileClip

    started = time.perf_counter()
    with VideoFileClip(str(video), audio=False) as clip:
        files = clip.write_images_sequence(
            str(out_dir / "frame%04d.png"), fps=0.2, logger=None
        )
    return {"frames": len(files), "seconds": time.perf_counter() - started}


def time_import(video):
    import fiftyone as fo

    from plugin.video.importer import import_videos

    name = "vrag-bench-import"
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    started = time.perf_counter()
    report = import_videos([video], dataset=name, fps=0.2)
    wall = time.perf_counter() - started
    result = report.videos[0]
    fo.delete_dataset(name)
    if result.status != "imported":
        raise RuntimeError(f"import failed: {result.message}")
    return {
        "frames": result.num_frames,
        "transcript_segments": result.num_segments,
        "stages_s": result.seconds,
        "end_to_end_s": wall,
    }


def to_markdown(results):
    ours, seed = results["import"], results["moviepy_write_images_sequence"]
    stages = ours["stages_s"]
    rows = [
        ("Sampling: PyAV seek, decode + resize", f"{stages['sampling']:.2f}"),
        (
            "Transcription: faster-whisper tiny.en int8",
            f"{stages['transcription']:.2f}",
        ),
        (
            "Writing: JPEG frames + FiftyOne samples + transcript",
            f"{stages['writing']:.2f}",
        ),
        (
            "**End-to-end import** (incl. hashing, model load)",
            f"{ours['end_to_end_s']:.2f}",
        ),
        (
            "Sampling only, ours: PyAV seek + JPEG write",
            f"{results['pyav_sampling']['decode_and_jpeg_s']:.2f}",
        ),
        (
            "Sampling only, seed: moviepy write_images_sequence(fps=0.2)",
            f"{seed['seconds']:.2f}",
        ),
    ]
    lines = [
        f"Video: {results['video']['duration_s']:.0f} s, {SIZE[0]}x{SIZE[1]} at {FPS} fps, "
        f"H.264/AAC, narrated; {ours['frames']} frames at 0.2 FPS, "
        f"{ours['transcript_segments']} transcript segments. Machine: "
        f"{results['machine']['cpus']} CPU cores (shared), load {results['machine']['load_before']}.",
        "",
        "| Stage | Seconds |",
        "|---|---:|",
        *[f"| {name} | {value} |" for name, value in rows],
        "",
        f"End-to-end real-time factor: **{results['real_time_factor']:.3f}** "
        f"(wall seconds per second of video). Sampling speed-up over moviepy: "
        f"**{results['sampling_speedup_vs_moviepy']:.1f}x**.",
    ]
    return "\n".join(lines) + "\n"


def main():
    video = make_bench_video()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("VRAG_HOME", tmp)
        ours_dir, seed_dir = Path(tmp, "ours"), Path(tmp, "seed")
        ours_dir.mkdir()
        seed_dir.mkdir()
        load_before = round(os.getloadavg()[0], 2)
        results = {
            "video": {
                "path": str(video),
                "duration_s": SCENES * SCENE_S,
                "size": SIZE,
                "fps": FPS,
            },
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "load_before": load_before,
            },
            "pyav_sampling": time_our_sampling(video, ours_dir),
            "moviepy_write_images_sequence": time_moviepy(video, seed_dir),
            "import": time_import(video),
        }
    results["real_time_factor"] = results["import"]["end_to_end_s"] / (SCENES * SCENE_S)
    results["sampling_speedup_vs_moviepy"] = (
        results["moviepy_write_images_sequence"]["seconds"]
        / results["pyav_sampling"]["decode_and_jpeg_s"]
    )
    save_results("import", results, to_markdown)


if __name__ == "__main__":
    main()
