"""Benchmark of two reliability figures (not a test).

1. Peak memory of importing long videos: 3 minutes, 30 minutes and 3 hours
   (generated cheaply: one solid colour per 10-minute scene at 1 frame per
   second, 160x120, with a silent AAC track the length of the video). Each
   import runs in a child process whose peak RSS (``ru_maxrss``) is read
   when it ends; with and without transcription (the audio is decoded for
   it). Bounded memory means the peak does not grow with the length.
2. How fast the workbench gets over a store fault, on a Milvus Lite store
   of its own: the first search after the managed store was restarted
   (reconnect + reload), after it was killed (-9), and how fast a search
   fails when the store is down or frozen.

Results go to ``bench/results/faults.json`` and ``bench/results/faults.md``.
Run from the repo root: ``.venv/bin/python bench/bench_faults.py``
(``--quick`` skips the 3-hour video).
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

CACHE_DIR = Path(
    os.environ.get("VRAG_BENCH_CACHE", Path.home() / ".cache" / "vrag-bench")
)
RESULTS_DIR = REPO / "bench" / "results"
#: (label, seconds, frame size, transcribe options): small frames, with and
#: without transcription, then HD frames (downscaled to the default 1024 px)
CASES = [
    ("3 min", 180, (160, 120), (False, True)),
    ("30 min", 1800, (160, 120), (False, True)),
    ("3 h", 10800, (160, 120), (False, True)),
    ("30 min HD", 1800, (1280, 720), (False,)),
    ("3 h HD", 10800, (1280, 720), (False,)),
]
AUDIO_RATE, SCENE_S = 16000, 600
COLORS = [(200, 30, 30), (30, 160, 60), (40, 70, 200), (220, 200, 40)]


def make_long_video(seconds, size):
    """A ``seconds``-long MP4: 1 fps H.264 of ``size``, silent mono AAC (cached)."""
    import av
    import numpy as np

    path = CACHE_DIR / f"long2_{seconds}s_{size[0]}x{size[1]}.mp4"
    if path.is_file():
        return path
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    part = path.with_suffix(".part.mp4")
    with av.open(str(part), "w") as container:
        video = container.add_stream("libx264", rate=1)
        video.width, video.height, video.pix_fmt = *size, "yuv420p"
        video.options = {"g": "600", "crf": "35", "preset": "ultrafast"}
        audio = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        frames = {}
        for t in range(seconds):
            color = COLORS[(t // SCENE_S) % len(COLORS)]
            if color not in frames:
                pixels = np.zeros((size[1], size[0], 3), np.uint8) + np.uint8(color)
                frames[color] = pixels
            frame = av.VideoFrame.from_ndarray(frames[color], format="rgb24")
            frame.pts = t
            container.mux(video.encode(frame))
        container.mux(video.encode())
        _silence(container, audio, seconds)
    part.rename(path)
    return path


def _silence(container, stream, seconds, block=1024 * 64):
    import av
    import numpy as np

    total = seconds * AUDIO_RATE
    for start in range(0, total, block):
        zeros = np.zeros((1, min(block, total - start)), np.float32)
        frame = av.AudioFrame.from_ndarray(zeros, format="fltp", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = start
        frame.time_base = Fraction(1, AUDIO_RATE)
        container.mux(stream.encode(frame))
    container.mux(stream.encode())


def child_import(video, transcribe):
    """Runs in the child: imports ``video`` into a dataset of its own."""
    import uuid

    import fiftyone as fo

    from plugin.video.importer import import_videos

    name = f"bench-faults-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    report = import_videos([video], dataset=name, transcribe=transcribe)
    seconds = time.perf_counter() - started
    result = report.videos[0]
    print(
        json.dumps(
            {
                "status": result.status,
                "frames": result.num_frames,
                "message": result.message,
                "seconds": round(seconds, 1),
            }
        )
    )
    fo.delete_dataset(name)


def measure_import(video, transcribe, home):
    """Imports in a child process; returns its figures and peak RSS (MB).
    Run in a process of its own (``--measure``): ``RUSAGE_CHILDREN`` then
    holds this one child's peak."""
    env = {**os.environ, "VRAG_HOME": str(home)}
    cmd = [sys.executable, __file__, "--child", str(video)]
    cmd += ["--transcribe"] if transcribe else []
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if out.returncode != 0:  # e.g. killed for memory: that is the figure
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1][:200]
        figures = {"status": f"failed (exit {out.returncode}): {tail}"}
        figures.update(frames=None, message="", seconds=None)
    else:
        figures = json.loads(out.stdout.strip().splitlines()[-1])
    figures["peak_rss_mb"] = round(peak_kb / 1024, 1)
    return figures


def memory_rows(quick, home):
    rows = []
    for label, seconds, size, options in CASES:
        if quick and seconds > 1800:
            continue
        video = make_long_video(seconds, size)
        for transcribe in options:
            figures = _isolated(video, transcribe, home)
            rows.append(
                {
                    "video": label,
                    "size": "x".join(map(str, size)),
                    "transcribe": transcribe,
                    **figures,
                }
            )
            print(rows[-1], flush=True)
    return rows


def _isolated(video, transcribe, home):
    """``measure_import`` in a fresh parent, so ``ru_maxrss`` is this child's."""
    cmd = [sys.executable, __file__, "--measure", str(video), str(home)]
    cmd += ["--transcribe"] if transcribe else []
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"measuring {video} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def recovery_rows(home):
    """Seconds to get over store faults, on a store of its own."""
    import signal

    import fiftyone as fo
    from support.faults import freeze, make_frames_dataset, thaw, with_credentials
    from support.tiny_models import TINY_OPEN_CLIP, make_tiny_open_clip_checkpoint

    from plugin.errors import StoreUnreachableError
    from plugin.milvus import LocalMilvusServer
    from plugin.models.image_text import resolve_image_text_model
    from plugin.process import free_port
    from plugin.retrieval.frame_index import build_frame_index
    from plugin.retrieval.frame_search import search_frames
    from plugin.settings import Settings

    model = resolve_image_text_model(
        f"open_clip:{TINY_OPEN_CLIP}",
        pretrained=make_tiny_open_clip_checkpoint(home / "oc"),
    )
    managed = Settings.load(
        milvus_uri="local", home=str(home), milvus_lite_port=free_port()
    )
    dataset = make_frames_dataset(home / "images")
    build_frame_index(dataset, model=model, brain_key="b", settings=managed)
    server = LocalMilvusServer(settings=managed)

    def timed(call, settings):
        started = time.perf_counter()
        try:
            call(settings)
            outcome = "hits"
        except StoreUnreachableError:
            outcome = "StoreUnreachableError"
        return round(time.perf_counter() - started, 2), outcome

    def search(settings):
        return search_frames(dataset, "a red apple", 3, "b", settings)

    rows = []
    search(managed)
    server.stop()
    server.ensure_running()
    rows.append(("first search after a restart of the store", *timed(search, managed)))
    os.killpg(server.status()["pid"], signal.SIGKILL)
    rows.append(("first search after kill -9 (restarts it)", *timed(search, managed)))
    remote = LocalMilvusServer(root=home / "remote", port=free_port())
    settings = Settings.load(milvus_uri=with_credentials(remote.ensure_running()))
    build_frame_index(dataset, model=model, brain_key="r", settings=settings)

    def search_remote(s):
        return search_frames(dataset, "a red apple", 3, "r", s)

    remote.stop()
    rows.append(("search, the server stopped", *timed(search_remote, settings)))
    remote.ensure_running()
    rows.append(("first search once it is back", *timed(search_remote, settings)))
    pid = remote.status()["pid"]
    freeze(pid)
    try:
        rows.append(
            (
                "search, the server frozen (milvus_timeout=2)",
                *timed(search_remote, settings.replace(milvus_timeout=2)),
            )
        )
    finally:
        thaw(pid)
    remote.stop()
    server.stop()
    fo.delete_dataset(dataset.name)
    return [{"fault": f, "seconds": s, "outcome": o} for f, s, o in rows]


def write_results(memory, recovery):
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"
    data = {"machine": machine, "memory": memory, "recovery": recovery}
    (RESULTS_DIR / "faults.json").write_text(json.dumps(data, indent=2))
    lines = [
        "# Reliability figures (bench/bench_faults.py)",
        "",
        f"Machine: {machine}.",
        "",
        "## Peak memory of importing long videos",
        "",
        "1 fps H.264 with a silent AAC track; import at the default 0.2 fps and "
        "1024-px long side.",
        "",
        "| video | size | transcribe | status | frames | seconds | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in memory:
        lines.append(
            f"| {r['video']} | {r['size']} | {'yes' if r['transcribe'] else 'no'} "
            f"| {r['status']} | {r['frames']} | {r['seconds']} | {r['peak_rss_mb']} |"
        )
    lines += ["", "## Getting over store faults", "", "| fault | seconds | outcome |"]
    lines += ["|---|---|---|"]
    lines += [f"| {r['fault']} | {r['seconds']} | {r['outcome']} |" for r in recovery]
    (RESULTS_DIR / "faults.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--child")
    parser.add_argument("--measure", nargs=2)
    parser.add_argument("--transcribe", action="store_true")
    parser.add_argument("--quick", action="store_true", help="skip the 3-hour video")
    args = parser.parse_args()
    if args.child:
        return child_import(args.child, args.transcribe)
    if args.measure:
        video, home = args.measure
        print(json.dumps(measure_import(video, args.transcribe, home)))
        return None
    with tempfile.TemporaryDirectory(prefix="vrag-bench-faults-") as tmp:
        home = Path(tmp)
        os.environ.setdefault("FIFTYONE_DATABASE_DIR", str(home / "mongo"))
        os.environ["VRAG_HOME"] = str(home)
        memory = memory_rows(args.quick, home)
        recovery = recovery_rows(home)
    write_results(memory, recovery)
    return None


if __name__ == "__main__":
    main()
