"""Jobs fanned out over FiftyOne's delegated execution, and their progress.

A job is work split into parts (a video to import, a batch of frames to
index), run by delegated operations (``child_operator``, a few parts each),
so K workers (``fiftyone delegated launch``, on this machine or on several
that share MongoDB and a Milvus server) share it. FiftyOne hands each queued
operation to ONE worker (it claims it atomically: QUEUED -> RUNNING), and an
operation claims each of its parts atomically too (``compare_and_set``:
queued/retrying -> running), so a part queued twice (a retry while the first
try still runs) is worked on once.

The whole job's progress lives in one place: the execution store
``vrag_jobs`` of the dataset, one key for the job and one per part::

    job:<job_id>        {"job_id", "kind", "dataset", "params", "total", ...}
    part:<job_id>:<n>   {"label", "status", "attempts", "message", "pid", ...}
    input:<job_id>:<n>  what the part works on, when it is large (frame ids)

A part's key is written only by the operation holding it. :func:`job_status`
reads them (the ``import_status`` operator shows them). A part that fails is
queued again, alone, up to ``max_attempts`` times; :func:`retry_failed`
queues the failed ones once more (say after fixing the files).
"""

import contextlib
import os
import socket
import time
import uuid

STORE_NAME = "vrag_jobs"
MAX_ATTEMPTS = 2
PENDING = ("queued", "running", "retrying")  # every other status is final
FAILED = "failed"
_CLAIMABLE = ("queued", "retrying")
LOCK_STALE_S = 300.0  # a lock held this long was left by a dead process


def create_job(
    dataset,
    kind,
    child_operator,
    parts,
    params=None,
    per_operation=1,
    max_attempts=MAX_ATTEMPTS,
    problems=(),
):
    """Records a job and queues one delegated operation per ``per_operation``
    parts.

    Args:
        dataset: the dataset (or its name) the job works on
        kind: what the job does (``"import"``, ``"index"``)
        child_operator: the URI of the operator that runs some parts; it gets
            the params ``dataset_name``, ``job_id`` and ``parts`` (numbers)
        parts: one dict per part: its ``label``, what its work needs and,
            under ``input``, anything large it needs (kept apart from its
            record, so that reading the job's status stays light)
        params (None): what every part's work needs (JSON-able)
        per_operation (1): parts per delegated operation
        max_attempts (2): tries per part before it stays failed
        problems (()): ``{"path", "message"}`` of inputs left out

    Returns:
        the job record, with the ids of the queued ``operations``
    """
    dataset = _dataset(dataset)
    store = job_store(dataset)
    job = {
        "job_id": uuid.uuid4().hex[:12],
        "kind": kind,
        "dataset": dataset.name,
        "params": params or {},
        "total": len(parts),
        "max_attempts": max(1, int(max_attempts)),
        "child_operator": child_operator,
        "created": time.time(),
        "problems": list(problems),
    }
    store.set(_job_key(job["job_id"]), job)
    for n, part in enumerate(parts):
        record = dict(part)
        if "input" in record:
            store.set(_input_key(job["job_id"], n), record.pop("input"))
        record.update(status="queued", attempts=0, message="")
        store.set(_part_key(job["job_id"], n), record)
    step = max(1, int(per_operation))
    job["operations"] = [
        _queue(job, list(range(first, min(first + step, len(parts)))))
        for first in range(0, len(parts), step)
    ]
    store.set(_job_key(job["job_id"]), job)
    return job


def run_parts(dataset, job_id, numbers, work):
    """Runs ``work(job, record, input) -> outcome`` for the parts ``numbers``
    of a job (in a delegated operation); ``input``: the part's, or None. Each part is claimed first: one held by
    another operation, or already done, is left alone. The outcome (a dict
    with a final ``status``; an exception counts as ``failed``) is recorded;
    a failed part is queued again alone while it has attempts left.

    Returns the records of the parts this call worked on.
    """
    store = job_store(dataset)
    job = _load_job(store, job_id)
    records = []
    for n in numbers:
        key = _part_key(job_id, n)
        record = _claim(store, key)
        if record is None:
            continue
        try:
            outcome = work(job, record, store.get(_input_key(job_id, n)))
        except Exception as e:  # recorded, and retried below
            outcome = {"status": FAILED, "message": f"{type(e).__name__}: {e}"}
        record.update(outcome, finished=time.time())
        retry = record["status"] == FAILED and record["attempts"] < job["max_attempts"]
        record["tries"] = record.get("tries", []) + [_try(record)]
        if retry:
            record["status"] = "retrying"
        store.set(key, record)  # before the retry is queued: it claims this
        if retry:
            _queue(job, [n])
        records.append(record)
    return records


def job_status(dataset, job_id):
    """The job's progress: counts per status, the fraction done and each
    part's record (in job order)."""
    store = job_store(dataset)
    job = _load_job(store, job_id)
    parts = [store.get(_part_key(job_id, n)) for n in range(job["total"])]
    counts = {}
    for part in parts:
        counts[part["status"]] = counts.get(part["status"], 0) + 1
    pending = sum(counts.get(s, 0) for s in PENDING)
    done = job["total"] - pending
    return {
        "job_id": job_id,
        "kind": job.get("kind"),
        "dataset": job["dataset"],
        "params": job["params"],
        "total": job["total"],
        "done": done,
        "failed": counts.get(FAILED, 0),
        "pending": pending,
        "fraction": done / job["total"] if job["total"] else 1.0,
        "counts": counts,
        "parts": parts,
        "problems": job.get("problems", []),
    }


def list_jobs(dataset, kind=None):
    """The jobs of ``dataset`` (of one ``kind``, or all), newest first."""
    store = job_store(dataset)
    jobs = [store.get(k) for k in store.list_keys() if k.startswith("job:")]
    jobs = [j for j in jobs if j and (kind is None or j.get("kind") == kind)]
    return sorted(jobs, key=lambda j: -j["created"])


def retry_failed(dataset, job_id):
    """Queues the job's failed parts again, each alone (with a fresh
    allowance of attempts). Returns the operation ids."""
    store = job_store(dataset)
    job = _load_job(store, job_id)
    operations = []
    for n in range(job["total"]):
        key = _part_key(job_id, n)
        record = store.get(key)
        if record["status"] != FAILED:
            continue
        record.update(status="queued", attempts=0, message="")
        store.set(key, record)
        operations.append(_queue(job, [n]))
    return operations


@contextlib.contextmanager
def exclusive(dataset, name, stale_s=LOCK_STALE_S, poll_s=0.1):
    """Holds the lock ``name`` of ``dataset`` for the ``with`` block: one
    holder at a time across processes and machines. A lock older than
    ``stale_s`` (its holder died) is taken over."""
    store, key = job_store(dataset), f"lock:{name}"
    mine = {"pid": os.getpid(), "token": uuid.uuid4().hex, "at": time.time()}
    while not store.set_if_absent(key, mine):
        held = store.get(key)
        if held is not None and time.time() - held["at"] > stale_s:
            if store.compare_and_set(key, held, mine):
                break
        time.sleep(poll_s)
    try:
        yield
    finally:
        if (store.get(key) or {}).get("token") == mine["token"]:
            store.delete(key)


def job_store(dataset):
    """The execution store holding the jobs of ``dataset`` (a name or a
    dataset)."""
    from fiftyone.operators.store import ExecutionStore

    return ExecutionStore.create(STORE_NAME, dataset_id=_dataset(dataset)._doc.id)


def _dataset(dataset):
    import fiftyone as fo

    return fo.load_dataset(dataset) if isinstance(dataset, str) else dataset


def database_uri():
    """The MongoDB URI this process's FiftyOne uses, for workers elsewhere
    (``FIFTYONE_DATABASE_URI``)."""
    import fiftyone as fo
    from fiftyone.core.odm.database import get_db_client

    if fo.config.database_uri:
        return fo.config.database_uri
    host, port = get_db_client().address
    return f"mongodb://{host}:{port}"


def _load_job(store, job_id):
    job = store.get(_job_key(job_id))
    if job is None:
        raise KeyError(f"No job {job_id!r} on this dataset")
    return job


def _claim(store, key):
    """The part's record, now ``running`` here; None when it is not ours to
    run (another operation holds it, or it is done)."""
    record = store.get(key)
    if record is None or record["status"] not in _CLAIMABLE:
        return None
    mine = {**record, "status": "running", "attempts": record["attempts"] + 1}
    mine.update(host=socket.gethostname(), pid=os.getpid(), started=time.time())
    return mine if store.compare_and_set(key, record, mine) else None


def _try(record):
    """What one try of a part left: where it ran and how it ended."""
    return {key: record.get(key) for key in ("host", "pid", "status", "message")}


def _queue(job, numbers):
    """Queues one delegated operation running the parts ``numbers``."""
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionContext

    params = {"dataset_name": job["dataset"], "job_id": job["job_id"]}
    context = ExecutionContext(
        request_params={
            "dataset_name": job["dataset"],
            "params": {**params, "parts": list(numbers)},
            "delegated": True,
        }
    )
    label = f"{job['kind'].capitalize()} job {job['job_id']}: part(s) " + ", ".join(
        map(str, numbers)
    )
    operation = DelegatedOperationService().queue_operation(
        operator=job["child_operator"], label=label, context=context
    )
    return str(operation.id)


def _job_key(job_id):
    return f"job:{job_id}"


def _part_key(job_id, n):
    return f"part:{job_id}:{n}"


def _input_key(job_id, n):
    return f"input:{job_id}:{n}"
