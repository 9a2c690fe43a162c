"""Fan-out of frame indexing on FiftyOne's delegated execution, with two REAL
workers (``fiftyone delegated launch``, as in test_scale_fanout.py) and the
managed Milvus Lite store.

``index frames`` with "One background operation per N frames", queued as
the App queues it: a worker creates the brain run and queues one part per
N frames; both workers index parts into the one collection. Every frame is
indexed once (ids unique, counts exact), the job's progress is in one
place, the part holding a frame whose image is missing fails, is retried
alone and, once the file is back, indexes only that frame; a part queued
twice at once is worked on by one operation; brain's ``sort_by_similarity``
and our search answer afterwards.
"""

import asyncio
import time
from pathlib import Path

import fiftyone as fo
import fiftyone.operators as foo
import numpy as np
import pytest
import test_scale_fanout
from fiftyone.operators.delegated import DelegatedOperationService
from fiftyone.operators.executor import ExecutionError, resolve_type
from fiftyone.operators.registry import OperatorRegistry
from support.tiny_models import make_frame_images
from test_scale_fanout import job_of, wait_for_job

from plugin import jobs
from plugin.errors import InvalidInputError
from plugin.models.image_text import OFFLINE_MODEL
from plugin.retrieval.frame_index import delete_frame_index, embeddings_field_for
from plugin.retrieval.frame_search import search_frames
from plugin.retrieval.frame_store import index_ids, load_frame_index
from plugin.retrieval.index_fanout import (
    fan_out_index,
    frame_counts,
    run_index_batch,
)

N_FRAMES = 240
PER_OPERATION = 60  # 4 parts
BROKEN = 100  # this frame's image is missing at first: part 1 (frames 61-120)
KEY = "fanned"
workers = test_scale_fanout.workers  # the two-worker fixture, shared


@pytest.fixture
def frames(tmp_path, dataset_name):
    paths = make_frame_images(tmp_path / "frames", N_FRAMES)
    dataset = fo.Dataset(dataset_name)
    dataset.add_samples(
        [
            fo.Sample(filepath=p, video_id="v", timestamp=float(i))
            for i, p in enumerate(paths)
        ]
    )
    return dataset, paths


def _part_summaries(plugin, dataset, logs, ids=None):
    """The summaries of the dataset's part operations (or of ``ids``), once
    every one has ended; each one must have completed."""
    service = DelegatedOperationService()
    deadline = time.monotonic() + 60
    while True:
        ops = service.list_operations(
            operator=f"{plugin}/index_frame_batch", dataset_name=dataset.name
        )
        ops = [op for op in ops if ids is None or str(op.id) in ids]
        if all(op.run_state in ("completed", "failed") for op in ops):
            break
        assert time.monotonic() < deadline, [log.read_text()[-3000:] for log in logs]
        time.sleep(0.5)
    assert all(op.run_state == "completed" for op in ops), [op.result for op in ops]
    return [op.result.result["summary"] for op in ops]


def _assert_indexed_once(dataset, store, count):
    dataset.reload()  # the run was created by a worker
    index = load_frame_index(dataset, KEY, store)
    ids = index_ids(index)
    assert len(ids) == len(set(ids)) == index.total_index_size == count
    return set(ids)


def test_two_workers_index_a_fanned_out_job_once_each(
    frames, local_store, workers, plugin_loaded
):
    dataset, paths = frames
    broken = Path(paths[BROKEN])
    image = broken.read_bytes()
    broken.unlink()
    params = {
        "model": OFFLINE_MODEL,
        "brain_key": KEY,
        "fan_out": True,
        "frames_per_operation": PER_OPERATION,
    }
    foo.execute_operator(  # the App's way: a worker fans it out
        f"{plugin_loaded}/index_frames",
        ctx={"dataset": dataset, "params": params},
        request_delegation=True,
    )
    job = job_of(dataset.name, workers, "index")
    assert job["total"] == 4 and len(job["operations"]) == 4
    status = wait_for_job(dataset.name, job["job_id"], workers)

    parts = status["parts"]
    assert (status["done"], status["failed"], status["fraction"]) == (4, 1, 1.0)
    bad = parts[BROKEN // PER_OPERATION]
    assert bad["status"] == "failed" and bad["attempts"] == 2, bad  # alone
    assert str(broken) in bad["message"] and bad["indexed"] == PER_OPERATION - 1
    good = [p for p in parts if p is not bad]
    tries = [(p["label"], p["tries"]) for p in parts]
    assert all(p["status"] == "indexed" and p["attempts"] == 1 for p in good), tries
    assert all(p["indexed"] == PER_OPERATION for p in good), parts
    assert len({t["pid"] for p in parts for t in p["tries"]}) == 2  # both worked
    assert all(len(str(p)) < 2000 for p in parts)  # frame ids kept apart
    assert frame_counts(status) == (N_FRAMES - 1, N_FRAMES)
    indexed = _assert_indexed_once(dataset, local_store, N_FRAMES - 1)
    missing = set(dataset.values("id")) - indexed
    assert missing == {dataset.skip(BROKEN).first().id}
    assert len(_part_summaries(plugin_loaded, dataset, workers)) == 5  # + 1 retry

    shown = foo.execute_operator(  # the job's progress, in one place
        f"{plugin_loaded}/import_status",
        ctx={"dataset": dataset, "params": {"job_id": job["job_id"]}},
    ).result
    assert (
        f"4/4 done** (1 failed, 0 pending); {N_FRAMES - 1}/{N_FRAMES}"
        in (shown["summary"])
    )

    # The image is back: the failed part alone runs again, adding that frame
    broken.write_bytes(image)
    assert len(jobs.retry_failed(dataset.name, job["job_id"])) == 1
    status = wait_for_job(dataset.name, job["job_id"], workers)
    fixed = status["parts"][BROKEN // PER_OPERATION]
    assert status["failed"] == 0 and fixed["status"] == "indexed", fixed
    assert fixed["message"] == f"{PER_OPERATION} frame(s) in the index, 1 added"
    assert _assert_indexed_once(dataset, local_store, N_FRAMES) == set(
        dataset.values("id")
    )
    assert frame_counts(status) == (N_FRAMES, N_FRAMES)

    _race_one_part_twice(dataset, job, local_store, plugin_loaded, workers)

    # The brain run answers brain's own queries and ours
    dataset.reload()
    vectors = dataset.values(embeddings_field_for(KEY))
    assert all(v is not None for v in vectors)
    hits = search_frames(dataset, "a horse", k=10, brain_key=KEY, settings=local_store)
    assert len(hits) == 10 and len({h.sample_id for h in hits}) == 10
    view = dataset.sort_by_similarity(dataset.first().id, k=5, brain_key=KEY)
    assert view.first().id == dataset.first().id
    assert len(dataset.sort_by_similarity("a horse", k=5, brain_key=KEY)) == 5
    assert np.linalg.norm(vectors[0]) > 0
    DelegatedOperationService().delete_for_dataset(dataset._doc.id)


def _race_one_part_twice(dataset, job, store, plugin, workers):
    """Part 0 queued twice at once (its rows and vectors gone): one operation
    claims it and adds its frames, the other leaves it alone."""
    first = dataset.limit(PER_OPERATION)
    load_frame_index(dataset, KEY, store).remove_from_index(
        sample_ids=first.values("id")
    )
    first.set_field(embeddings_field_for(KEY), None).save()
    key = f"part:{job['job_id']}:0"
    part_store = jobs.job_store(dataset)
    part_store.set(key, {**part_store.get(key), "status": "queued", "attempts": 0})
    queued = [jobs._queue(job, [0]) for _ in range(2)]
    new = _part_summaries(plugin, dataset, workers, ids=queued)
    raced = jobs.job_status(dataset.name, job["job_id"])["parts"][0]
    assert raced["status"] == "indexed" and raced["attempts"] == 1, raced
    worked = [s for s in new if "added" in s]
    assert len(worked) == 1 and f"{PER_OPERATION} added" in worked[0], new
    _assert_indexed_once(dataset, store, N_FRAMES)


@pytest.mark.parametrize("size", [0, -5, 2.5, "many"])
def test_a_bad_part_size_is_refused_before_anything_is_written(
    frames, local_store, plugin_loaded, size
):
    dataset, _ = frames
    params = {"fan_out": True, "frames_per_operation": size, "brain_key": KEY}
    form = asyncio.run(
        resolve_type(
            OperatorRegistry(),
            f"{plugin_loaded}/index_frames",
            {"dataset_name": dataset.name, "params": params},
        )
    )
    field = form.type.properties["frames_per_operation"]
    assert field.invalid and "Frames per operation" in field.error_message
    with pytest.raises(ExecutionError, match="Frames per operation"):
        foo.execute_operator(
            f"{plugin_loaded}/index_frames", ctx={"dataset": dataset, "params": params}
        )
    with pytest.raises(InvalidInputError, match="Frames per operation"):
        fan_out_index(dataset, "x", frames_per_operation=size, settings=local_store)
    assert dataset.list_brain_runs() == [] and jobs.list_jobs(dataset) == []


def test_a_part_run_again_adds_nothing_on_a_milvus_server(frames, real_milvus):
    """A Milvus server keeps a second row for an id inserted twice (brain's
    add_to_index inserts blindly): a part that runs again must look first."""
    dataset, _ = frames
    view = dataset.limit(2 * PER_OPERATION)
    job = fan_out_index(
        view,
        "@vrag/video-rag/index_frame_batch",
        frames_per_operation=PER_OPERATION,
        model=OFFLINE_MODEL,
        brain_key=KEY,
        settings=real_milvus,
    )
    DelegatedOperationService().delete_for_dataset(dataset._doc.id)  # no worker
    try:
        records = run_index_batch(dataset, job["job_id"], [0, 1], real_milvus)
        assert [r["status"] for r in records] == ["indexed", "indexed"], records
        part_store = jobs.job_store(dataset)
        key = f"part:{job['job_id']}:0"
        part_store.set(key, {**part_store.get(key), "status": "queued"})
        (again,) = run_index_batch(dataset, job["job_id"], [0], real_milvus)
        assert again["message"] == f"{PER_OPERATION} frame(s) in the index, 0 added"
        index = load_frame_index(dataset, KEY, real_milvus)
        assert index.total_index_size == len(set(index_ids(index))) == len(view)
    finally:
        delete_frame_index(dataset, KEY, real_milvus)
