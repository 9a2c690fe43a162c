"""Fan-out on FiftyOne's delegated execution, with two REAL workers.

Two ``fiftyone delegated launch`` processes (the plugin found through
FIFTYONE_PLUGINS_DIR, this session's MongoDB through FIFTYONE_DATABASE_URI)
run an import job of generated videos into one dataset: every video once,
counts exact, the job's progress in one place, a failed video retried alone,
and two copies of one video racing on the two workers imported once.
"""

import shutil
import sys
import time
from pathlib import Path

import fiftyone as fo
import fiftyone.operators as foo
import pytest
from fiftyone import ViewField as F
from fiftyone.operators.delegated import DelegatedOperationService
from support.synth import Scene, make_narrated_video, solid_image

from plugin import jobs, process
from plugin.video.importer import import_videos

REPO = Path(__file__).resolve().parents[1]
WORDS = ["horse", "ship", "truck", "frog", "plane"]
JOB_TIMEOUT_S = 300


def _video(path, n, word):
    scenes = [
        Scene(solid_image((50 * n, 100, 40)), f"Video {n}, a {word}.", 2.5),
        Scene(solid_image((40, 50 * n, 100)), f"Again a {word}.", 2.5),
    ]
    make_narrated_video(path, scenes, size=(96, 64))


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fanout")
    for n, word in enumerate(WORDS):
        _video(folder / f"v{n}.mp4", n, word)
    shutil.copyfile(folder / "v0.mp4", folder / "v0_copy.mp4")  # same content
    (folder / "broken.mp4").write_bytes(b"not a video yet")
    return folder


@pytest.fixture
def workers(tmp_path, plugin_loaded):
    """Two delegated-operation workers sharing this session's MongoDB."""
    fo.list_datasets()  # connects: the database's port is known from here on
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "video-rag").symlink_to(REPO, target_is_directory=True)
    env = {
        **__import__("os").environ,
        "FIFTYONE_PLUGINS_DIR": str(plugins),
        "FIFTYONE_DATABASE_URI": jobs.database_uri(),
    }
    cli = Path(sys.executable).with_name("fiftyone")
    logs = [tmp_path / f"worker{n}.log" for n in range(2)]
    procs = [
        process.start_process([cli, "delegated", "launch"], log, env=env)
        for log in logs
    ]
    try:
        deadline = time.monotonic() + 120
        while not all("service running" in log.read_text() for log in logs):
            assert all(p.poll() is None for p in procs), [
                log.read_text() for log in logs
            ]
            assert time.monotonic() < deadline, [log.read_text() for log in logs]
            time.sleep(0.5)
        yield logs
    finally:
        for proc in procs:
            process.stop_group(proc.pid, grace=5)


def wait_for_job(dataset_name, job_id, logs):
    """The job's status once none of its parts is pending."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        status = jobs.job_status(dataset_name, job_id)
        if status["pending"] == 0:
            return status
        assert time.monotonic() < deadline, (
            status,
            [log.read_text()[-3000:] for log in logs],
        )
        time.sleep(1.0)


def job_of(dataset_name, logs, kind):
    """The dataset's one job of ``kind``, once all its operations are queued."""
    deadline = time.monotonic() + 120
    while True:
        found = jobs.list_jobs(dataset_name, kind)
        if found and "operations" in found[0]:
            (job,) = found
            return job
        assert time.monotonic() < deadline, [log.read_text()[-3000:] for log in logs]
        time.sleep(0.5)


def test_two_workers_import_a_fanned_out_job_once_each(
    library, workers, plugin_loaded, dataset_name
):
    dataset = fo.load_dataset(import_videos([], dataset=dataset_name).dataset_name)
    # The App's way: the import itself is queued, a worker fans it out
    foo.execute_operator(
        f"{plugin_loaded}/import_videos",
        ctx={
            "dataset": dataset,
            "params": {
                "paths": str(library),
                "dataset_name": dataset_name,
                "fan_out": True,
            },
        },
        request_delegation=True,
    )
    job = job_of(dataset_name, workers, "import")
    assert job["total"] == 7 and len(job["operations"]) == 7
    status = wait_for_job(dataset_name, job["job_id"], workers)

    by_name = {Path(v["path"]).name: v for v in status["parts"]}
    assert status["done"] == 7 and status["fraction"] == 1.0
    assert status["failed"] == 1 and by_name["broken.mp4"]["status"] == "failed"
    assert by_name["broken.mp4"]["attempts"] == 2  # retried, alone
    good = [by_name[f"v{n}.mp4"] for n in range(len(WORDS))]
    assert all(v["attempts"] == 1 for v in good), status["parts"]
    assert all(v["status"] == "imported" for v in good[1:]), status["parts"]
    pids = {t["pid"] for v in status["parts"] for t in v["tries"]}
    assert len(pids) == 2  # both workers worked
    # the copy raced the original on the other worker: one import between them
    pair = {by_name["v0.mp4"]["status"], by_name["v0_copy.mp4"]["status"]}
    assert pair <= {"imported", "unchanged"} and "imported" in pair
    assert by_name["v0_copy.mp4"]["video_id"] == by_name["v0.mp4"]["video_id"]

    dataset.reload()
    video_ids = set(dataset.distinct("video_id"))
    assert video_ids == {v["video_id"] for v in good}
    for v in good:  # every video's frames once
        assert len(dataset.match(F("video_id") == v["video_id"])) == v["num_frames"]
    frames_before = len(dataset)
    assert frames_before == sum(v["num_frames"] for v in good)

    shown = foo.execute_operator(  # the job's progress, in one place
        f"{plugin_loaded}/import_status",
        ctx={"dataset": dataset, "params": {"job_id": job["job_id"]}},
    ).result
    assert shown["fraction"] == 1.0
    assert "7/7 done** (1 failed, 0 pending)" in shown["summary"]

    child = f"{plugin_loaded}/import_video_batch"
    ops = DelegatedOperationService().list_operations(
        operator=child, dataset_name=dataset_name
    )
    assert len(ops) == 8  # 7 videos + the broken one's retry
    assert all(op.run_state == "completed" for op in ops)

    # The file is fixed; its video alone is queued again
    _video(library / "broken.mp4", 9, "dog")
    assert len(jobs.retry_failed(dataset_name, job["job_id"])) == 1
    status = wait_for_job(dataset_name, job["job_id"], workers)
    fixed = {Path(v["path"]).name: v for v in status["parts"]}["broken.mp4"]
    assert status["failed"] == 0 and fixed["status"] == "imported"
    dataset.reload()
    assert len(dataset) == frames_before + fixed["num_frames"]
    assert len(set(dataset.distinct("video_id"))) == len(WORDS) + 1
    DelegatedOperationService().delete_for_dataset(dataset._doc.id)
