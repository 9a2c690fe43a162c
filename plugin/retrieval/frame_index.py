"""Frame similarity indexes on Milvus, through fiftyone-brain.

fiftyone-brain owns the index (``compute_similarity(backend="milvus")``); we
add what it lacks for this workbench:

- embeddings are also kept in a sample field (``<brain_key>_embedding``):
  brain's Milvus backend cannot return all vectors, and plots need them
- checks BEFORE anything is written: metric, consistency level, empty view,
  an existing brain key (never silently replaced), an existing collection
  with another dimension or metric (left untouched)
- incremental sync: new frames are embedded and added, deleted ones removed
"""

import logging

import fiftyone.brain as fob

from plugin.errors import IndexConfigError, IndexNotFoundError, InvalidInputError
from plugin.models.image_text import load_image_text_model as load_model
from plugin.models.image_text import resolve_image_text_model as resolve_model
from plugin.progress import report
from plugin.runtime import prepare_process
from plugin.settings import Settings

logger = logging.getLogger(__name__)

METRICS = ("cosine", "euclidean", "dotproduct")
CONSISTENCY_LEVELS = ("Strong", "Session", "Bounded", "Eventually")
MILVUS_METRICS = {"cosine": "COSINE", "euclidean": "L2", "dotproduct": "IP"}
DEFAULT_BRAIN_KEY = "frame_sim"


def embeddings_field_for(brain_key):
    return f"{brain_key}_embedding"


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
    if not brain_key or not brain_key.replace("_", "").isalnum():
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


def check_collection_compatible(connection, collection_name, dimension, metric):
    """Raises :class:`IndexConfigError` if ``collection_name`` exists in Milvus
    with another vector dimension or metric. The collection is not touched."""
    client = connection.client()
    if not client.has_collection(collection_name):
        return
    info = client.describe_collection(collection_name)
    dims = [
        f.get("params", {}).get("dim")
        for f in info.get("fields", [])
        if f.get("name") == "vector"
    ]
    existing_dim = int(dims[0]) if dims and dims[0] is not None else None
    existing_metric = _collection_metric(client, collection_name)
    wanted_metric = MILVUS_METRICS[metric]
    if existing_dim not in (None, dimension) or existing_metric not in (
        None,
        wanted_metric,
    ):
        raise IndexConfigError(
            f"Milvus collection {collection_name!r} at {connection.display_uri} "
            f"already exists with dimension {existing_dim} and metric "
            f"{existing_metric}; this index needs dimension {dimension} and "
            f"metric {wanted_metric}. Choose another collection name. The "
            "existing collection was left untouched."
        )


def _collection_metric(client, collection_name):
    for index_name in client.list_indexes(collection_name):
        info = client.describe_index(collection_name, index_name)
        if info.get("metric_type"):
            return info["metric_type"]
    return None


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
    num_workers=None,
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
        num_workers (None): image-loading workers of the embedding's data
            loader (None: FiftyOne's choice, half the cores); the model runs
            on the GPU when there is one

    Returns:
        the fiftyone-brain similarity index
    """
    prepare_process(settings)
    validate_request(samples, brain_key, metric, consistency_level, overwrite)
    settings = Settings.coerce(settings)
    connection = settings.milvus()
    spec = resolve_model(model)
    dataset = samples._root_dataset
    collection_name = collection_name or default_collection_name(
        dataset.name, brain_key
    )
    report(progress, 0.0, f"Loading model {spec.name}")
    embedder = load_model(spec)
    field = embeddings_field_for(brain_key)
    report(progress, 0.1, f"Embedding {len(samples)} frames")
    samples.compute_embeddings(
        embedder, embeddings_field=field, batch_size=batch_size, num_workers=num_workers
    )
    dimension = len(samples.first()[field])
    replaced = _replaced_collection(dataset, brain_key, overwrite)
    if replaced != collection_name:  # the one being replaced may differ
        check_collection_compatible(connection, collection_name, dimension, metric)
    if replaced is not None:
        delete_frame_index(dataset, brain_key, settings, keep_embeddings=True)
    report(progress, 0.8, f"Writing vectors to Milvus ({connection.kind})")
    index = fob.compute_similarity(
        samples,
        backend="milvus",
        brain_key=brain_key,
        model=spec.zoo_name,
        model_kwargs=spec.model_kwargs or None,
        embeddings=field,
        metric=metric,
        consistency_level=consistency_level,
        collection_name=collection_name,
        **connection.credentials(),
    )
    report(progress, 1.0, "Done")
    return index


def load_frame_index(dataset, brain_key=DEFAULT_BRAIN_KEY, settings=None):
    """Loads an existing index, connected to the store of ``settings``."""
    prepare_process(settings)
    if brain_key not in dataset.list_brain_runs():
        raise IndexNotFoundError(
            f"Dataset {dataset.name!r} has no index {brain_key!r}. "
            f"Existing: {', '.join(dataset.list_brain_runs()) or 'none'}"
        )
    connection = Settings.coerce(settings).milvus()
    index = _cached_index(dataset, brain_key, connection)
    if index is None:
        index = dataset.load_brain_results(brain_key, **connection.credentials())
    if index.collection is None:
        raise IndexNotFoundError(
            f"The collection {index.config.collection_name!r} of index "
            f"{brain_key!r} is not in Milvus at {connection.display_uri}. Point "
            "the workbench at the store the index was built on (VRAG_MILVUS_URI "
            "or the form's Milvus field), or rebuild the index."
        )
    return index


def _cached_index(dataset, brain_key, connection):
    """FiftyOne caches loaded brain results per dataset and ignores the
    credentials of later loads: reuse the cached index only when it points at
    ``connection``'s store, else drop it so it is loaded against that store."""
    cache = dataset._brain_cache  # FiftyOne's own results cache (private)
    index = cache.get(brain_key)
    if index is not None and getattr(index.config, "uri", None) != connection.uri:
        cache.pop(brain_key, None)
        return None
    return index


def sync_frame_index(
    dataset,
    brain_key=DEFAULT_BRAIN_KEY,
    settings=None,
    batch_size=16,
    progress=None,
    num_workers=None,
):
    """Adds frames that are not indexed yet, removes deleted ones.

    Existing vectors are not recomputed: only samples without a stored
    embedding are embedded. Returns ``{"added": n, "removed": m}``.
    """
    index = load_frame_index(dataset, brain_key, settings)
    field = embeddings_field_for(brain_key)
    # Freeze the ids: once embedded, the frames no longer match exists(False)
    missing = dataset.select(dataset.exists(field, False).values("id"))
    added = len(missing)
    report(progress, 0.1, f"Embedding {added} new frames")
    if added:
        missing.compute_embeddings(
            index.get_model(),
            embeddings_field=field,
            batch_size=batch_size,
            num_workers=num_workers,
        )
        ids, vectors = missing.values(["id", field])
        index.add_to_index(_as_array(vectors), ids)
    stale = sorted(set(index_ids(index)) - set(dataset.values("id")))
    if stale:
        index.remove_from_index(sample_ids=stale)
    report(progress, 1.0, "Done")
    return {"added": added, "removed": len(stale)}


def index_ids(index, page=16384):
    """All sample ids stored in a brain Milvus index.

    Written by hand because brain's Milvus backend cannot list its vectors
    (``get_embeddings()`` without ids raises); we page through the pks.
    """
    collection = index.collection
    if collection is None:
        return []
    iterator = collection.query_iterator(
        batch_size=page, output_fields=["pk"], consistency_level="Strong"
    )
    ids = []
    while True:
        batch = iterator.next()
        if not batch:
            iterator.close()
            return ids
        ids.extend(row["pk"] for row in batch)


def delete_frame_index(dataset, brain_key, settings=None, keep_embeddings=False):
    """Deletes the brain run, its Milvus collection and (unless asked to keep
    them) the embeddings field."""
    index = load_frame_index(dataset, brain_key, settings)
    index.cleanup()
    dataset.delete_brain_run(brain_key)
    field = embeddings_field_for(brain_key)
    if not keep_embeddings and dataset.has_sample_field(field):
        dataset.delete_sample_field(field)


def _replaced_collection(dataset, brain_key, overwrite):
    """The collection of the index that ``overwrite`` will replace, if any."""
    if not overwrite or brain_key not in dataset.list_brain_runs():
        return None
    return dataset.get_brain_info(brain_key).config.collection_name


def _as_array(vectors):
    import numpy as np

    return np.asarray(vectors, dtype=np.float32)
