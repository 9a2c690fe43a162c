"""Helpers of the fault suite (tests/test_faults_*.py): a small indexed
dataset on a store of its own, and the bad values operators are fed.

The fault tests stop, kill and freeze stores: each gets its OWN Milvus Lite
server (another root, another port), never the session's store.
"""

import os
import signal
import uuid

import fiftyone as fo

from plugin.process import free_port
from plugin.settings import Settings

SECRET = "s3cr3t-pw-0123"  # must never show in any message or log
COLORS = [(200, 30, 30), (30, 160, 60), (40, 70, 200), (220, 200, 40)]
TEXTS = [
    "a red apple lies on the kitchen table",
    "a green frog jumps into the pond",
    "blue water flows under the old bridge",
    "a yellow school bus waits at the corner",
]


def make_frames_dataset(folder, frames_per_video=3, name=None):
    """A dataset of frames of two "videos" with transcript records (as the
    importer writes them), so both kinds of index can be built without
    decoding or transcribing anything. The frames go to
    ``folder/<dataset name>/<video id>/`` (as the importer's
    ``<home>/frames/<dataset>/<video id>/`` when ``folder`` is that)."""
    from plugin.video.transcripts import save_video_record
    from support.synth import solid_image

    dataset = fo.Dataset(name or f"vrag-faults-{uuid.uuid4().hex[:8]}")
    samples = []
    for v in range(2):
        video_id = f"video{v}"
        frames_dir = folder / dataset.name / video_id
        frames_dir.mkdir(parents=True, exist_ok=True)
        segments = []
        for i in range(frames_per_video):
            n = (v * frames_per_video + i) % len(COLORS)
            path = frames_dir / f"frame_{i:06d}.jpg"
            solid_image(COLORS[n], size=(64, 48)).save(path)
            samples.append(
                fo.Sample(
                    filepath=str(path),
                    video_id=video_id,
                    video_path=f"/videos/{video_id}.mp4",
                    timestamp=5.0 * i,
                    frame_index=i,
                    transcript=TEXTS[n],
                )
            )
            segments.append({"start": 5.0 * i, "end": 5.0 * i + 4.0, "text": TEXTS[n]})
        record = {
            "video_id": video_id,
            "video_path": f"/videos/{video_id}.mp4",
            "status": "ok",
            "num_frames": frames_per_video,
            "complete": True,
            "transcript_window": None,
            "frames_dir": str(frames_dir),
            "segments": segments,
        }
        save_video_record(dataset, record)
    dataset.add_samples(samples)
    dataset.persistent = True
    return dataset


def managed_settings(home):
    """Settings of a managed local store of its own (own home, own port)."""
    return Settings.load(
        milvus_uri="local", home=str(home), milvus_lite_port=free_port()
    )


def with_credentials(uri, user="vrag"):
    """``http://host:port`` -> ``http://user:SECRET@host:port``."""
    return uri.replace("http://", f"http://{user}:{SECRET}@", 1)


def signal_group(pid, sig):
    os.killpg(pid, sig)


def freeze(pid):
    signal_group(pid, signal.SIGSTOP)


def thaw(pid):
    signal_group(pid, signal.SIGCONT)


_TINY = {}


def tiny_clip(tmp_path_factory):
    """The registry spec of a tiny random OpenCLIP model (made once per session)."""
    if "spec" not in _TINY:
        from plugin.models.image_text import resolve_image_text_model
        from support.tiny_models import TINY_OPEN_CLIP, make_tiny_open_clip_checkpoint

        path = make_tiny_open_clip_checkpoint(tmp_path_factory.mktemp("tiny-clip"))
        _TINY["spec"] = resolve_image_text_model(
            f"open_clip:{TINY_OPEN_CLIP}", pretrained=path
        )
    return _TINY["spec"]


def restart_real_milvus(timeout=180):
    """Restarts this session's real Milvus server in place (same data, same
    port) and waits until it answers: SIGHUP to its runner
    (tests/support/run_milvus_standalone.py). Returns the seconds it took."""
    import json
    import time
    from pathlib import Path

    from plugin import process
    from support.milvus_server import PIDS_DIR

    runners = []
    for pid_file in PIDS_DIR.glob("*.json"):
        owner = json.loads(pid_file.read_text())
        if owner.get("session") == os.getpid() and process.pid_alive(owner["server"]):
            runners.append(owner["server"])
    assert len(runners) == 1, f"this session's Milvus server runner? {runners}"
    runner = runners[0]
    args = [a for a in Path(f"/proc/{runner}/cmdline").read_bytes().split(b"\0") if a]
    port_file = Path(args[-1].decode()) / "port"  # runner's argv: ... BASE_DIR
    port = int(port_file.read_text())
    started = time.monotonic()
    os.kill(runner, signal.SIGHUP)
    deadline = started + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if port_file.exists() and process.accepts_connections(port):
            assert int(port_file.read_text()) == port, "it came back on another port"
            return time.monotonic() - started
    raise AssertionError(f"the real Milvus server did not come back in {timeout} s")
