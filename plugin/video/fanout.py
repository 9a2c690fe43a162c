"""Fan an import of many videos out over FiftyOne's delegated execution.

One import job = one delegated operation per video (or per batch of videos),
so K workers (``fiftyone delegated launch``, on this machine or on several
that share MongoDB and a Milvus server) import in parallel. FiftyOne hands
each queued operation to ONE worker (it claims it atomically: QUEUED ->
RUNNING), and the importer's per-video claim (:mod:`plugin.video.claims`)
keeps a video imported once even when two operations name it.

The whole job's progress lives in one place: the execution store
``vrag_import_jobs`` of the dataset, one key for the job and one per video::

    job:<job_id>         {"job_id", "dataset", "options", "total", "created", ...}
    video:<job_id>:<n>   {"path", "status", "attempts", "message", "pid", ...}

Each video's key is written only by the operation importing it, so workers
never write the same key at once. :func:`job_status` reads them (the
``import_status`` operator shows it). A video that fails is queued again,
alone, up to ``max_attempts`` times; :func:`retry_failed` queues the failed
ones once more (say after fixing the files).
"""

import os
import socket
import time
import uuid

from plugin.video.inputs import find_videos
from plugin.video.options import ImportOptions

STORE_NAME = "vrag_import_jobs"
MAX_ATTEMPTS = 2
#: statuses that end a video's part of the job (the importer's, and ours)
FINAL = ("imported", "reimported", "unchanged", "failed")
_PENDING = ("queued", "running", "retrying")


def fan_out_import(
    paths,
    dataset,
    child_operator,
    options=None,
    batch_size=1,
    max_attempts=MAX_ATTEMPTS,
):
    """Queues one delegated operation per ``batch_size`` videos.

    Args:
        paths: files, directories and glob patterns
        dataset: the dataset name (created here if new)
        child_operator: the URI of the operator that imports a batch
            (``@vrag/video-rag/import_video_batch``)
        options (None): an :class:`~plugin.video.options.ImportOptions`
        batch_size (1): videos per delegated operation
        max_attempts (2): tries per video before it stays failed

    Returns:
        the job record (``job_id``, ``total``, ``operations``, ``problems``)
    """
    from plugin.video.importer import import_videos

    options = options or ImportOptions()
    options.validate()
    # Created once, here: workers racing to create it would collide.
    name = import_videos([], dataset=dataset, options=options).dataset_name
    found, problems = find_videos(paths)
    job_id = uuid.uuid4().hex[:12]
    job = {
        "job_id": job_id,
        "dataset": name,
        "options": options.to_dict(),
        "total": len(found),
        "max_attempts": max(1, int(max_attempts)),
        "child_operator": child_operator,
        "created": time.time(),
        "problems": [{"path": p.path, "message": p.message} for p in problems],
    }
    store = job_store(name)
    store.set(f"job:{job_id}", job)
    for n, path in enumerate(found):
        store.set(_video_key(job_id, n), _video_record(str(path)))
    batches = [
        list(range(first, min(first + batch_size, len(found))))
        for first in range(0, len(found), max(1, batch_size))
    ]
    job["operations"] = [_queue(job, numbers) for numbers in batches]
    store.set(f"job:{job_id}", job)
    return job


def run_batch(dataset, job_id, numbers):
    """Imports the videos ``numbers`` of a job (in a delegated operation),
    recording each one's outcome; a failed one is queued again alone while it
    has attempts left. Returns the videos' records."""
    from plugin.video.importer import import_videos

    store = job_store(dataset)
    job = store.get(f"job:{job_id}")
    if job is None:
        raise KeyError(f"No import job {job_id!r} on dataset {dataset!r}")
    options = ImportOptions.from_dict(job["options"])
    records = []
    for n in numbers:
        key = _video_key(job_id, n)
        record = store.get(key)
        record.update(status="running", attempts=record["attempts"] + 1, **_here())
        store.set(key, record)
        try:
            (result,) = import_videos(
                [record["path"]], dataset=dataset, options=options
            ).videos
            outcome = {
                "status": result.status,
                "message": result.message,
                "video_id": result.video_id,
                "num_frames": result.num_frames,
            }
        except Exception as e:  # recorded, and retried below
            outcome = {"status": "failed", "message": f"{type(e).__name__}: {e}"}
        record.update(outcome, finished=time.time())
        if record["status"] == "failed" and record["attempts"] < job["max_attempts"]:
            record["status"] = "retrying"
            store.set(key, record)
            record["operation_id"] = _queue(job, [n])
        store.set(key, record)
        records.append(record)
    return records


def job_status(dataset, job_id):
    """The job's progress: counts per state, the fraction done and each
    video's record (in job order)."""
    store = job_store(dataset)
    job = store.get(f"job:{job_id}")
    if job is None:
        raise KeyError(f"No import job {job_id!r} on dataset {dataset!r}")
    videos = [store.get(_video_key(job_id, n)) for n in range(job["total"])]
    counts = {}
    for video in videos:
        counts[video["status"]] = counts.get(video["status"], 0) + 1
    done = sum(counts.get(s, 0) for s in FINAL)
    return {
        "job_id": job_id,
        "dataset": job["dataset"],
        "total": job["total"],
        "done": done,
        "failed": counts.get("failed", 0),
        "pending": job["total"] - done,
        "fraction": done / job["total"] if job["total"] else 1.0,
        "counts": counts,
        "videos": videos,
        "problems": job.get("problems", []),
    }


def list_jobs(dataset):
    """The import jobs of ``dataset``, newest first."""
    store = job_store(dataset)
    jobs = [store.get(k) for k in store.list_keys() if k.startswith("job:")]
    return sorted((j for j in jobs if j), key=lambda j: -j["created"])


def retry_failed(dataset, job_id):
    """Queues the job's failed videos again, each alone (with a fresh
    allowance of attempts). Returns the operation ids."""
    store = job_store(dataset)
    job = store.get(f"job:{job_id}")
    operations = []
    for n in range(job["total"]):
        key = _video_key(job_id, n)
        record = store.get(key)
        if record["status"] != "failed":
            continue
        record.update(status="queued", attempts=0, message="")
        store.set(key, record)
        operations.append(_queue(job, [n]))
    return operations


def job_store(dataset):
    """The execution store holding the import jobs of ``dataset`` (a name
    or a dataset)."""
    import fiftyone as fo
    from fiftyone.operators.store import ExecutionStore

    if isinstance(dataset, str):
        dataset = fo.load_dataset(dataset)
    return ExecutionStore.create(STORE_NAME, dataset_id=dataset._doc.id)


def database_uri():
    """The MongoDB URI this process's FiftyOne uses, for workers elsewhere
    (``FIFTYONE_DATABASE_URI``)."""
    import fiftyone as fo
    from fiftyone.core.odm.database import get_db_client

    if fo.config.database_uri:
        return fo.config.database_uri
    host, port = get_db_client().address
    return f"mongodb://{host}:{port}"


def _queue(job, numbers):
    """Queues one delegated operation importing the videos ``numbers``."""
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionContext

    params = {
        "dataset_name": job["dataset"],
        "job_id": job["job_id"],
        "videos": list(numbers),
    }
    context = ExecutionContext(
        request_params={
            "dataset_name": job["dataset"],
            "params": params,
            "delegated": True,
        }
    )
    label = f"Import job {job['job_id']}: video(s) {', '.join(map(str, numbers))}"
    operation = DelegatedOperationService().queue_operation(
        operator=job["child_operator"], label=label, context=context
    )
    return str(operation.id)


def _video_key(job_id, n):
    return f"video:{job_id}:{n}"


def _video_record(path):
    return {"path": path, "status": "queued", "attempts": 0, "message": ""}


def _here():
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
