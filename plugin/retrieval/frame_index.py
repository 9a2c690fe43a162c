"""Frame similarity indexes on Milvus, through fiftyone-brain.

fiftyone-brain owns the index (``compute_similarity(backend="milvus")``); we
add what it lacks for this workbench:

- embeddings are also kept in a sample field (``<brain_key>_embedding``):
  brain's Milvus backend cannot return all vectors, and plots need them
- checks BEFORE anything is written: metric, consistency level, empty view,
  an existing brain key (never silently replaced), an existing collection
  of another shape, dimension or metric, or holding other vectors (left
  untouched); the dimension is read from ONE embedded frame first, and all
  frames are embedded into a staging field that replaces
  ``<brain_key>_embedding`` only once every check passed
- a build that fails half-way removes the brain run and collection it left
- incremental sync: new frames are embedded and added, deleted ones removed
- every store call goes through :mod:`plugin.milvus.guard`: a dead store
  fails fast, a restarted one is reconnected and the collection reloaded
"""

import logging

import fiftyone.brain as fob
import fiftyone.core.brain as fcb

from plugin.cleanup import record_collection
from plugin.errors import (
    IndexConfigError,
    InvalidInputError,
    ModelLoadError,
    VideoRagError,
)
from plugin.milvus import guard
from plugin.milvus.schema import FRAME_SHAPE, check_existing
from plugin.models.image_text import OFFLINE_MODEL
from plugin.models.image_text import load_image_text_model as load_model
from plugin.models.image_text import resolve_image_text_model as resolve_model
from plugin.progress import report
from plugin.retrieval.frame_store import (
    DEFAULT_BRAIN_KEY,
    bound_index,
    drop_frame_collection,
    forget_index,
    index_ids,
    load_frame_index,
    require_run,
    with_frame_index,
)
from plugin.runtime import prepare_process
from plugin.settings import Settings

logger = logging.getLogger(__name__)

METRICS = ("cosine", "euclidean", "dotproduct")
CONSISTENCY_LEVELS = ("Strong", "Session", "Bounded", "Eventually")
MILVUS_METRICS = {"cosine": "COSINE", "euclidean": "L2", "dotproduct": "IP"}


def embeddings_field_for(brain_key):
    return f"{brain_key}_embedding"


def staging_field_for(brain_key):
    """Where a build embeds first; it becomes the embeddings field only once
    every check passed (an interrupted build leaves it: cleanup removes it)."""
    return f"vrag_staging_{brain_key}_embedding"


def default_collection_name(dataset_name, brain_key):
    raw = f"vrag_{dataset_name}_{brain_key}"
    return "".join(c if c.isalnum() else "_" for c in raw)


def validate_request(samples, brain_key, metric, consistency_level, overwrite):
    """Raises :class:`InvalidInputError` (or :class:`IndexConfigError`) for a
    request that must not start."""
    if metric not in METRICS:
        raise InvalidInputError(
            f"Unknown metric {metric!r}. Choices: {', '.join(METRICS)}"
        )
    if consistency_level not in CONSISTENCY_LEVELS:
        raise InvalidInputError(
            f"Unknown consistency level {consistency_level!r}. "
            f"Choices: {', '.join(CONSISTENCY_LEVELS)}"
        )
    if (
        not isinstance(brain_key, str)
        or not brain_key
        or not brain_key.isascii()
        or not brain_key.replace("_", "").isalnum()
    ):
        raise InvalidInputError(
            f"Brain key {brain_key!r} must be letters, digits and _"
        )
    if len(samples) == 0:
        raise InvalidInputError(
            "The dataset or view is empty: there is nothing to index"
        )
    dataset = samples._root_dataset
    if brain_key in dataset.list_brain_runs() and not overwrite:
        raise IndexConfigError(
            f"Brain key {brain_key!r} already exists on dataset {dataset.name!r}. "
            "Choose another key, or pass overwrite=True to replace it."
        )


def check_collection_compatible(
    connection, collection_name, dimension, metric, shape=None, empty=False
):
    """Raises :class:`IndexConfigError` if ``collection_name`` exists in Milvus
    with other fields than ``shape``, another vector dimension or metric, or
    (``empty=True``) vectors in it. The collection is not touched."""
    return check_existing(
        connection, collection_name, dimension, metric, shape=shape, empty=empty
    )


def build_frame_index(
    samples,
    model=None,
    brain_key=DEFAULT_BRAIN_KEY,
    metric="cosine",
    consistency_level="Session",
    collection_name=None,
    overwrite=False,
    batch_size=16,
    progress=None,
    settings=None,
):
    """Embeds ``samples`` with ``model`` and indexes them in Milvus.

    Args:
        samples: a FiftyOne dataset or view of frame samples
        model (None): a model name from :mod:`plugin.models.image_text`
        brain_key ("frame_sim"): the brain key of the index
        metric ("cosine"): ``cosine``, ``euclidean`` or ``dotproduct``
        consistency_level ("Session"): Strong, Session, Bounded or Eventually
        collection_name (None): the Milvus collection; default derived from
            the dataset name and brain key
        overwrite (False): replace an existing index under ``brain_key``
        batch_size (16): embedding batch size
        progress (None): a callable ``progress(fraction, label)``
        settings (None): a :class:`~plugin.settings.Settings` (the Milvus store)

    Returns:
        the fiftyone-brain similarity index
    """
    prepare_process(settings)
    validate_request(samples, brain_key, metric, consistency_level, overwrite)
    settings = Settings.coerce(settings)
    connection = guard.reachable(settings)
    spec = resolve_model(model)
    dataset = samples._root_dataset
    collection_name = collection_name or default_collection_name(
        dataset.name, brain_key
    )
    replaced = _replaced_collection(dataset, brain_key, overwrite)
    report(progress, 0.0, f"Loading model {spec.name}")
    embedder = _load_embedder(spec)

    def check(dimension):  # the one being replaced may differ: it goes anyway
        if replaced != collection_name:
            _check_target(settings, collection_name, dimension, metric)

    dimension = _probe_dimension(samples, embedder)
    if dimension:
        check(dimension)  # before embedding everything
    report(progress, 0.1, f"Embedding {len(samples)} frames")
    staging = _embed(samples, embedder, staging_field_for(brain_key), batch_size)
    check(len(samples.first()[staging]))
    # Every check passed and every frame is embedded: now replace
    if replaced is not None:
        delete_frame_index(dataset, brain_key, settings, keep_embeddings=True)
    field = _swap_in(dataset, staging, embeddings_field_for(brain_key))
    report(progress, 0.8, f"Writing vectors to Milvus ({connection.kind})")
    record_collection(dataset, collection_name, settings, connection, "frames")
    index = _write_index(
        samples,
        settings,
        replaced,
        brain_key=brain_key,
        model=spec.zoo_name,
        model_kwargs=spec.model_kwargs or None,
        embeddings=field,
        metric=metric,
        consistency_level=consistency_level,
        collection_name=collection_name,
    )
    report(progress, 1.0, "Done")
    return index


def _load_embedder(spec):
    try:
        return load_model(spec)
    except VideoRagError:
        raise
    except Exception as e:  # weights that cannot be had (offline), a bad file
        raise ModelLoadError(
            f"Could not load the model {spec.name!r}: {type(e).__name__}: {e}. "
            "Nothing was written. Pick a model whose weights are on this machine "
            f"(the offline {OFFLINE_MODEL!r} model works anywhere) or connect to the internet."
        ) from None


def _check_target(settings, collection_name, dimension, metric):
    guard.call(
        settings,
        f"checking collection {collection_name!r}",
        lambda c: check_collection_compatible(
            c, collection_name, dimension, metric, shape=FRAME_SHAPE, empty=True
        ),
    )


def _probe_dimension(samples, embedder):
    """The dimension of the model's vectors, from ONE frame (None if that
    frame cannot be embedded: the full run will say why)."""
    try:
        vectors = samples.limit(1).compute_embeddings(embedder)
    except Exception as e:  # a bad first frame: the full run reports it
        logger.debug("Could not embed the first frame: %s", e)
        return None
    if vectors is None or len(vectors) == 0 or vectors[0] is None:
        return None
    return len(vectors[0])


def _embed(samples, embedder, staging, batch_size):
    dataset = samples._root_dataset
    _drop_field(dataset, staging)  # an interrupted build's values must not stay
    try:
        samples.compute_embeddings(
            embedder, embeddings_field=staging, batch_size=batch_size
        )
    except BaseException:
        _drop_field(dataset, staging)
        raise
    if samples.exists(staging).count() == 0:
        _drop_field(dataset, staging)
        raise InvalidInputError(
            "No frame could be embedded (missing or unreadable image files?)"
        )
    return staging


def _swap_in(dataset, staging, field):
    _drop_field(dataset, field)
    dataset.rename_sample_field(staging, field)
    return field


def _drop_field(dataset, field):
    if dataset.has_sample_field(field):
        dataset.delete_sample_field(field)


def _write_index(samples, settings, replaced, brain_key, collection_name, **kwargs):
    """brain's ``compute_similarity``; if it fails, the run and collection
    it left behind are removed (a broken run breaks search and delete)."""
    dataset = samples._root_dataset

    def write(connection):
        return fob.compute_similarity(
            samples,
            backend="milvus",
            brain_key=brain_key,
            collection_name=collection_name,
            **kwargs,
            **connection.credentials(),
        )

    try:
        index = guard.call(settings, f"writing frame index {brain_key!r}", write)
    except BaseException as e:
        _remove_broken_build(dataset, brain_key, settings, collection_name)
        if replaced is not None and isinstance(e, VideoRagError):
            e.message += (
                f" The previous index {brain_key!r} had already been replaced "
                "and its partial replacement was removed: run the build again."
            )
            e.args = (e.message,)
        raise
    return bound_index(index, settings.milvus())


def _remove_broken_build(dataset, brain_key, settings, collection_name):
    if brain_key in dataset.list_brain_runs():
        fcb.BrainMethod.delete_run(dataset, brain_key, cleanup=False)
    try:
        guard.call(
            settings,
            f"removing the partial collection {collection_name!r}",
            lambda c: drop_frame_collection(c, collection_name),
        )
    except VideoRagError as e:  # the store is gone: cleanup finds it later
        logger.warning(
            "Could not remove the partial collection %r (%s); "
            "`python -m plugin.cleanup` removes it later",
            collection_name,
            e.message,
        )


def sync_frame_index(
    dataset, brain_key=DEFAULT_BRAIN_KEY, settings=None, batch_size=16, progress=None
):
    """Adds frames that are not indexed yet, removes deleted ones.

    Existing vectors are not recomputed: only samples without a stored
    embedding are embedded. What is added is every frame NOT IN THE INDEX
    (not every frame without an embedding): a sync cut off after embedding,
    before writing, is completed by the next one. Returns
    ``{"added": n, "removed": m}``.
    """
    settings = Settings.coerce(settings)
    index = load_frame_index(dataset, brain_key, settings)
    field = embeddings_field_for(brain_key)
    # Freeze the ids: once embedded, the frames no longer match exists(False)
    missing = dataset.select(dataset.exists(field, False).values("id"))
    report(progress, 0.1, f"Embedding {len(missing)} new frames")
    if len(missing):
        missing.compute_embeddings(
            index.get_model(), embeddings_field=field, batch_size=batch_size
        )
    live = set(dataset.values("id"))

    def write(index):
        indexed = set(index_ids(index))
        ids, vectors = stored_embeddings(dataset.select(sorted(live - indexed)), field)
        if ids:
            index.add_to_index(as_vector_array(vectors), ids)
        stale = sorted(indexed - live)
        if stale:
            index.remove_from_index(sample_ids=stale)
        return {"added": len(ids), "removed": len(stale)}

    counts = with_frame_index(
        dataset, brain_key, settings, f"syncing frame index {brain_key!r}", write
    )
    report(progress, 1.0, "Done")
    return counts


def stored_embeddings(samples, field):
    """``(ids, vectors)`` of the samples that have an embedding (a frame
    whose image could not be read has none: it is not indexed)."""
    pairs = [(i, v) for i, v in zip(*samples.values(["id", field])) if v is not None]
    return [i for i, _ in pairs], [v for _, v in pairs]


def delete_frame_index(dataset, brain_key, settings=None, keep_embeddings=False):
    """Deletes the brain run, its Milvus collection and (unless asked to keep
    them) the embeddings field. Works for a broken run too (an interrupted
    build, a run pointed at a collection of another kind, which is kept)."""
    require_run(dataset, brain_key)
    settings = Settings.coerce(settings)
    collection_name = dataset.get_brain_info(brain_key).config.collection_name

    def drop(connection):
        forget_index(dataset, brain_key)
        return drop_frame_collection(connection, collection_name)

    guard.call(settings, f"deleting frame index {brain_key!r}", drop)
    fcb.BrainMethod.delete_run(dataset, brain_key, cleanup=False)  # dropped above
    field = embeddings_field_for(brain_key)
    if not keep_embeddings:
        _drop_field(dataset, field)


def _replaced_collection(dataset, brain_key, overwrite):
    """The collection of the index that ``overwrite`` will replace, if any."""
    if not overwrite or brain_key not in dataset.list_brain_runs():
        return None
    return dataset.get_brain_info(brain_key).config.collection_name


def as_vector_array(vectors):
    import numpy as np

    return np.asarray(vectors, dtype=np.float32)
