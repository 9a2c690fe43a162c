"""The stored vectors of a frame index, as curation reads them.

A frame index (:mod:`plugin.retrieval.frame_index`) keeps each frame's vector
in the sample field ``<brain_key>_embedding`` as well as in Milvus; frames
imported since the last sync have none yet.
"""

import numpy as np
from fiftyone import ViewField as F

from plugin.errors import IndexConfigError, IndexNotFoundError, InvalidInputError
from plugin.retrieval.frame_index import embeddings_field_for


def frame_index_keys(dataset):
    """The brain keys of ``dataset``'s frame indexes (similarity runs)."""
    return dataset._root_dataset.list_brain_runs(type="similarity")


def index_field(samples, brain_key):
    """The embeddings field of the frame index ``brain_key``.

    Raises:
        IndexNotFoundError: no such index
        IndexConfigError: the index keeps no vectors on the samples
    """
    dataset = samples._root_dataset
    keys = frame_index_keys(dataset)
    if brain_key not in keys:
        raise IndexNotFoundError(
            f"Dataset {dataset.name!r} has no frame index {brain_key!r}. "
            f"Existing: {', '.join(keys) or 'none'} (build one with 'index frames')"
        )
    field = embeddings_field_for(brain_key)
    if not dataset.has_sample_field(field):
        raise IndexConfigError(
            f"Frame index {brain_key!r} keeps no vectors in the field {field!r}: "
            "it was not built by the workbench. Rebuild it with 'index frames'."
        )
    return field


def index_metric(dataset, brain_key):
    """The index's metric (``cosine``, ``euclidean`` or ``dotproduct``)."""
    config = dataset._root_dataset.get_brain_info(brain_key).config
    return getattr(config, "metric", None) or "cosine"


def embedded_frames(samples, brain_key, minimum=1):
    """``(view, field)``: the frames of ``samples`` that have a vector.

    Raises :class:`InvalidInputError` when fewer than ``minimum`` have one.
    """
    field = index_field(samples, brain_key)
    view = samples.exists(field)
    count = len(view)
    if count < minimum:
        missing = len(samples) - count
        hint = (
            f" ({missing} have no vector yet: sync the index first)" if missing else ""
        )
        raise InvalidInputError(
            f"Only {count} frames have a vector in index {brain_key!r}{hint}; "
            f"at least {minimum} are needed."
        )
    return view, field


def unembedded_count(samples, brain_key):
    """How many frames of ``samples`` the index has no vector for yet."""
    return samples.exists(embeddings_field_for(brain_key), False).count()


def vectors_of(samples, field, ids=None):
    """``(ids, vectors)``: the sample ids and their vectors as one array."""
    view = samples if ids is None else samples.select(ids, ordered=True)
    ids, vectors = view.values(["id", field])
    return list(ids), np.asarray(vectors, dtype=np.float32)


def per_video(samples):
    """``{video_id: view}``: the frames of each video, in time order."""
    if not samples.has_sample_field("video_id"):
        raise InvalidInputError(
            "These samples carry no video_id: import videos with the workbench"
        )
    return {
        video_id: samples.match(F("video_id") == video_id).sort_by("timestamp")
        for video_id in sorted(v for v in samples.distinct("video_id") if v)
    }
