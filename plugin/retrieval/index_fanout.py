"""Fan the indexing of many frames out over FiftyOne's delegated execution.

:func:`fan_out_index` does, once, what must happen before any worker writes:
the checks of :func:`~plugin.retrieval.frame_index.build_frame_index` (the
request, the model, the target collection, from a few frames embedded into
the staging field), the brain run (brain's ``compute_similarity`` with
``embeddings=False``, naming the embeddings field), and its collection,
created by indexing ONE frame (brain creates a collection at its first
insert; workers racing to create it would collide). Then it records a job of
one part per ``frames_per_operation`` frames (their ids), one delegated
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

from urllib.parse import urlsplit

from plugin import jobs
from plugin.cleanup import record_collection
from plugin.errors import InvalidInputError
from plugin.inputs import require_int
from plugin.milvus import guard
from plugin.milvus.resolver import is_milvus_lite
from plugin.models.image_text import resolve_image_text_model
from plugin.progress import report
from plugin.retrieval.frame_index import (
    _as_array,
    _check_target,
    _drop_field,
    _embedded,
    _load_embedder,
    _replaced_collection,
    _swap_in,
    _write_index,
    default_collection_name,
    delete_frame_index,
    embeddings_field_for,
    staging_field_for,
    validate_request,
)
from plugin.retrieval.frame_store import (
    DEFAULT_BRAIN_KEY,
    load_frame_index,
    with_frame_index,
)
from plugin.runtime import prepare_process
from plugin.settings import Settings

KIND = "index"
FRAMES_PER_OPERATION = 2000
_PROBE_FRAMES = 8  # frames tried for the model's dimension
_QUERY_IDS = 1000  # ids per "which of these are indexed" query


def fan_out_index(
    samples,
    child_operator,
    model=None,
    brain_key=DEFAULT_BRAIN_KEY,
    metric="cosine",
    consistency_level="Session",
    collection_name=None,
    overwrite=False,
    frames_per_operation=FRAMES_PER_OPERATION,
    batch_size=16,
    max_attempts=jobs.MAX_ATTEMPTS,
    progress=None,
    settings=None,
):
    """Creates the frame index ``brain_key`` of ``samples`` and queues one
    delegated operation per ``frames_per_operation`` frames to fill it.

    Args: those of :func:`~plugin.retrieval.frame_index.build_frame_index`,
    and ``child_operator``, the URI of the operator that indexes a part
    (``@vrag/video-rag/index_frame_batch``), ``frames_per_operation`` and
    ``max_attempts`` (tries per part before it stays failed).

    Returns:
        the job record (``job_id``, ``total`` parts, ``operations``)
    """
    prepare_process(settings)
    validate_request(samples, brain_key, metric, consistency_level, overwrite)
    step = require_int("Frames per operation", frames_per_operation)
    settings = Settings.coerce(settings)
    connection = guard.reachable(settings)
    spec = resolve_image_text_model(model)
    dataset = samples._root_dataset
    collection_name = collection_name or default_collection_name(
        dataset.name, brain_key
    )
    replaced = _replaced_collection(dataset, brain_key, overwrite)
    report(progress, 0.0, f"Loading model {spec.name}")
    staging = staging_field_for(brain_key)
    first_id, vector = _probe(samples, _load_embedder(spec), staging)
    try:
        if replaced != collection_name:  # the one replaced goes anyway
            _check_target(settings, collection_name, len(vector), metric)
        if replaced is not None:
            delete_frame_index(dataset, brain_key, settings, keep_embeddings=True)
    except BaseException:
        _drop_field(dataset, staging)
        raise
    # Values of another model under this name must not count as embedded
    field = _swap_in(dataset, staging, embeddings_field_for(brain_key))
    report(progress, 0.3, f"Creating the index ({connection.kind})")
    record_collection(dataset, collection_name, settings, connection, "frames")
    index = _write_index(
        samples,
        settings,
        replaced,
        brain_key=brain_key,
        collection_name=collection_name,
        model=spec.zoo_name,
        model_kwargs=spec.model_kwargs or None,
        embeddings=False,
        embeddings_field=field,
        metric=metric,
        consistency_level=consistency_level,
    )
    _add_first(dataset, index, brain_key, settings, first_id, vector)
    report(progress, 0.6, "Queuing the parts")
    ids = samples.values("id")
    parts = [
        {"label": _label(first, len(ids), step), "ids": ids[first : first + step]}
        for first in range(0, len(ids), step)
    ]
    params = {
        "brain_key": brain_key,
        "milvus_uri": _shareable_uri(settings),
        "batch_size": batch_size,
        "frames": len(ids),
    }
    job = jobs.create_job(
        dataset, KIND, child_operator, parts, params, max_attempts=max_attempts
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

    def work(job, record):
        return _index_part(dataset, job, record, settings)

    return jobs.run_parts(dataset, job_id, numbers, work)


def frame_counts(status):
    """``(indexed, frames)`` of an index job's :func:`plugin.jobs.job_status`:
    its frames in the index (each part counts its own) and all its frames."""
    indexed = sum(part.get("indexed", 0) for part in status["parts"])
    return indexed, status["params"].get("frames", 0)


def _probe(samples, embedder, staging):
    """``(id, vector)`` of the first of a few frames that embeds. They are
    embedded one by one (a data-loader batch with one unreadable image
    fails whole) into ``staging``, so their parts need not embed them."""
    dataset = samples._root_dataset
    _drop_field(dataset, staging)
    probe = samples.limit(_PROBE_FRAMES)
    try:
        probe.compute_embeddings(embedder, embeddings_field=staging, batch_size=1)
        ids, vectors = _embedded(probe, staging)
    except BaseException:
        _drop_field(dataset, staging)
        raise
    if not ids:
        _drop_field(dataset, staging)
        raise InvalidInputError(
            f"None of the first {len(probe)} frames could be embedded (missing "
            "or unreadable image files?). Nothing was written."
        )
    return ids[0], vectors[0]


def _add_first(dataset, index, brain_key, settings, first_id, vector):
    """Creates the collection by indexing one frame; on failure the run
    goes too (a run without its collection breaks search and delete)."""
    try:
        guard.call(
            settings,
            f"creating the collection of {brain_key!r}",
            lambda connection: index.add_to_index(_as_array([vector]), [first_id]),
        )
    except BaseException:
        delete_frame_index(dataset, brain_key, settings)
        raise


def _index_part(dataset, job, record, settings):
    params = job["params"]
    brain_key = params["brain_key"]
    settings = settings.replace(milvus_uri=params.get("milvus_uri"))
    field = embeddings_field_for(brain_key)
    frames = dataset.select(record["ids"])
    index = load_frame_index(dataset, brain_key, settings)
    _embed_missing(frames, index.get_model(), field, params["batch_size"])
    with _writes_of(dataset, job, index):
        present, added = with_frame_index(
            dataset,
            brain_key,
            settings,
            f"adding {record['label']} to frame index {brain_key!r}",
            lambda index: _add_missing(index, frames, field),
        )
    return _outcome(frames, field, record, present + added, added)


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
    ids, vectors = _embedded(frames, field)
    present = _indexed(index, ids)
    new = [(i, v) for i, v in zip(ids, vectors) if i not in present]
    if new:
        index.add_to_index(_as_array([v for _, v in new]), [i for i, _ in new])
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


def _writes_of(dataset, job, index):
    """The job's turn to write (Milvus Lite only: see the module's notes)."""
    import contextlib

    if not is_milvus_lite(index.config.uri):
        return contextlib.nullcontext()
    return jobs.exclusive(dataset, f"index-writes:{index.config.collection_name}")


def _outcome(frames, field, record, indexed, added):
    unread = frames.exists(field, False)
    gone = len(record["ids"]) - len(frames)  # deleted since the job began
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
