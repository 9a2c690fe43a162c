"""Fan the indexing of many frames out over FiftyOne's delegated execution.

:func:`fan_out_index` creates the index once, before any worker writes:
:func:`~plugin.retrieval.frame_index.build_frame_index` on the first few
frames (every check of a build, the brain run, which brain registers on the
whole dataset, and its collection: brain creates one at its first insert,
and workers racing to create it would collide). Then it records a job of one
part per ``frames_per_operation`` frames (its input: their ids), one delegated
operation each (:mod:`plugin.jobs`: progress in one place, parts claimed
atomically, a failed part retried alone).

A part (:func:`run_index_batch`, in a worker) embeds those of its frames
that have no vector yet into ``<brain_key>_embedding`` with the run's own
model, then adds to the index those that are not in it yet. It asks Milvus
first because brain's ``add_to_index`` inserts blindly: a Milvus server then
holds two rows for one id (Milvus Lite keeps one), and a part cut off
half-way, or retried, must not add its frames twice. On Milvus Lite the
writes of a job take turns: brain's Lite index is refitted after each write
(:func:`~plugin.retrieval.brain_fixes.fit_lite_index`), and two refits at
once collide. A frame whose image cannot be read is left out and fails its
part, which is retried alone and embeds only what is still missing.
"""

import contextlib
from urllib.parse import urlsplit

from plugin import jobs
from plugin.inputs import require_int
from plugin.milvus.resolver import is_milvus_lite
from plugin.progress import report
from plugin.retrieval.frame_index import (
    as_vector_array,
    build_frame_index,
    embeddings_field_for,
    stored_embeddings,
    validate_request,
)
from plugin.retrieval.frame_store import (
    DEFAULT_BRAIN_KEY,
    load_frame_index,
    with_frame_index,
)
from plugin.settings import Settings

KIND = "index"
FRAMES_PER_OPERATION = 2000
_FIRST_FRAMES = 8  # the index is created from these, by build_frame_index
_QUERY_IDS = 1000  # ids per "which of these are indexed" query


def fan_out_index(
    samples,
    child_operator,
    frames_per_operation=FRAMES_PER_OPERATION,
    max_attempts=jobs.MAX_ATTEMPTS,
    batch_size=16,
    progress=None,
    settings=None,
    **request,
):
    """Creates the frame index of ``samples`` from its first few frames and
    queues one delegated operation per ``frames_per_operation`` frames to
    index them all.

    Args:
        samples: a FiftyOne dataset or view of frame samples
        child_operator: the URI of the operator that indexes a part
            (``@vrag/video-rag/index_frame_batch``)
        frames_per_operation (2000): frames per part (one operation each)
        max_attempts (2): tries per part before it stays failed
        batch_size (16): embedding batch size in the parts
        progress (None): a callable ``progress(fraction, label)``
        settings (None): a :class:`~plugin.settings.Settings` (the Milvus
            store; its URI is passed to the workers unless it holds a password)
        **request: ``model``, ``brain_key``, ``metric``, ``consistency_level``,
            ``collection_name`` and ``overwrite`` of
            :func:`~plugin.retrieval.frame_index.build_frame_index`

    Returns:
        the job record (``job_id``, ``total`` parts, ``operations``)
    """
    step = require_int("Frames per operation", frames_per_operation)
    settings = Settings.coerce(settings)
    brain_key = request.setdefault("brain_key", DEFAULT_BRAIN_KEY)
    validate_request(
        samples,
        brain_key,
        request.get("metric", "cosine"),
        request.get("consistency_level", "Session"),
        request.get("overwrite", False),
    )
    report(progress, 0.0, f"Creating index {brain_key!r} from the first frames")
    # Frame by frame: a data-loader batch with one unreadable image fails whole
    first = samples.limit(_FIRST_FRAMES)
    build_frame_index(first, batch_size=1, settings=settings, **request)
    report(progress, 0.5, "Queuing the parts")
    ids = samples.values("id")
    parts = [
        {"label": _label(start, len(ids), step), "input": ids[start : start + step]}
        for start in range(0, len(ids), step)
    ]
    params = {
        "brain_key": brain_key,
        "milvus_uri": _shareable_uri(settings),
        "batch_size": batch_size,
        "frames": len(ids),
    }
    job = jobs.create_job(
        samples._root_dataset,
        KIND,
        child_operator,
        parts,
        params,
        max_attempts=max_attempts,
    )
    report(progress, 1.0, f"Queued {len(parts)} part(s) of job {job['job_id']}")
    return job


def run_index_batch(dataset, job_id, numbers, settings=None):
    """Indexes the parts ``numbers`` of a job (in a delegated operation);
    returns their records."""
    import fiftyone as fo

    if isinstance(dataset, str):
        dataset = fo.load_dataset(dataset)
    settings = Settings.coerce(settings)

    def work(job, record, ids):
        return _index_part(dataset, job, record, ids, settings)

    return jobs.run_parts(dataset, job_id, numbers, work)


def frame_counts(status):
    """``(indexed, frames)`` of an index job's :func:`plugin.jobs.job_status`:
    its frames in the index (each part counts its own) and all its frames."""
    indexed = sum(part.get("indexed", 0) for part in status["parts"])
    return indexed, status["params"].get("frames", 0)


def _index_part(dataset, job, record, ids, settings):
    params = job["params"]
    brain_key = params["brain_key"]
    settings = settings.replace(milvus_uri=params.get("milvus_uri"))
    field = embeddings_field_for(brain_key)
    frames = dataset.select(ids)
    index = load_frame_index(dataset, brain_key, settings)
    _embed_missing(frames, index.get_model(), field, params["batch_size"])
    with _writes_of(dataset, index):
        present, added = with_frame_index(
            dataset,
            brain_key,
            settings,
            f"adding {record['label']} to frame index {brain_key!r}",
            lambda index: _add_missing(index, frames, field),
        )
    return _outcome(frames, field, len(ids), present + added, added)


def _embed_missing(frames, model, field, batch_size):
    """Embeds the frames without a vector; those a failed data-loader batch
    left out are tried one by one, so only the unreadable ones stay out."""
    for size in (batch_size, 1):
        todo = frames.select(frames.exists(field, False).values("id"))  # frozen
        if len(todo):
            todo.compute_embeddings(model, embeddings_field=field, batch_size=size)


def _add_missing(index, frames, field):
    """Adds the embedded frames not in the index yet; returns how many were
    there already and how many were added."""
    ids, vectors = stored_embeddings(frames, field)
    present = _indexed(index, ids)
    new = [(i, v) for i, v in zip(ids, vectors) if i not in present]
    if new:
        index.add_to_index(as_vector_array([v for _, v in new]), [i for i, _ in new])
    return len(present), len(new)


def _indexed(index, ids):
    """Which of ``ids`` the index holds (asked with Strong consistency: a
    write another worker just flushed counts)."""
    found = set()
    for first in range(0, len(ids), _QUERY_IDS):
        quoted = ",".join(f'"{i}"' for i in ids[first : first + _QUERY_IDS])
        rows = index.collection.query(
            f"pk in [{quoted}]", output_fields=["pk"], consistency_level="Strong"
        )
        found.update(row["pk"] for row in rows)
    return found


def _writes_of(dataset, index):
    """This worker's turn to write (Milvus Lite only: see the module's notes)."""
    if not is_milvus_lite(index.config.uri):
        return contextlib.nullcontext()
    return jobs.exclusive(dataset, f"index-writes:{index.config.collection_name}")


def _outcome(frames, field, count, indexed, added):
    unread = frames.exists(field, False)
    gone = count - len(frames)  # deleted since the job began
    note = f"; {gone} frame(s) deleted since" if gone else ""
    if len(unread):
        paths = ", ".join(unread.limit(3).values("filepath"))
        return {
            "status": jobs.FAILED,
            "indexed": indexed,
            "message": f"{len(unread)} frame(s) could not be embedded (missing or "
            f"unreadable image?): {paths}{note}",
        }
    return {
        "status": "indexed",
        "indexed": indexed,
        "message": f"{indexed} frame(s) in the index, {added} added{note}",
    }


def _label(first, total, step):
    return f"frames {first + 1}-{min(first + step, total)}"


def _shareable_uri(settings):
    """The Milvus URI the workers use: not written to the job when it
    carries a password (workers then use their own VRAG_MILVUS_URI)."""
    uri = settings.milvus_uri or ""
    try:
        return "" if urlsplit(uri).password else uri
    except ValueError:  # malformed: the workers' own setting decides
        return ""
