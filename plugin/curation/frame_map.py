"""The frame map: a frame index's vectors projected to 2-D for the App.

:func:`compute_frame_map` stores a fiftyone-brain visualization run (brain
key ``<index key>_map``) computed from the index's embeddings field, so the
App's Embeddings panel lists it: frames colored by video (or any field), and
a lasso there narrows the grid to the frames inside it.

Re-running after a sync updates the map: new frames are projected through
the fitted reducer when brain can (UMAP and PCA, up to 20 % new frames, none
deleted); otherwise the map is fitted again.

Method: UMAP (``umap-learn``) where installed, else PCA. See
``requirements.txt`` for why UMAP, and :data:`METHODS`.
"""

import importlib.util
import logging

import fiftyone.brain as fob

from plugin.curation.vectors import embedded_frames, frame_index_keys, index_metric
from plugin.errors import IndexConfigError, InvalidInputError
from plugin.progress import report
from plugin.retrieval.frame_index import DEFAULT_BRAIN_KEY, embeddings_field_for

logger = logging.getLogger(__name__)

#: umap: keeps clusters (scenes, videos) apart, ~1.5 s per 1k frames once
#: numba has compiled (the first map in a process: ~10 s more); tsne: ~16 s
#: per 1k frames on 2 cores, and cannot place new frames without a refit;
#: pca: instant, but blurs clusters together.
METHODS = ("umap", "tsne", "pca")
MIN_FRAMES = 4  # UMAP's spectral layout needs 4 points
UPDATE_LIMIT = 0.2  # more new frames than this share: fit again (brain's advice)
SEED = 51  # the same frames give the same map


def default_method():
    """``umap`` when ``umap-learn`` is installed, else ``pca``."""
    return "umap" if importlib.util.find_spec("umap") else "pca"


def map_key_for(brain_key):
    """The brain key of the map of frame index ``brain_key``."""
    return f"{brain_key}_map"


def compute_frame_map(
    samples,
    brain_key=DEFAULT_BRAIN_KEY,
    method=None,
    map_key=None,
    refit=False,
    progress=None,
):
    """Projects the vectors of frame index ``brain_key`` to 2-D.

    Args:
        samples: a dataset or view of frames; frames without a vector in
            the index (imported since its last sync) are left out
        brain_key ("frame_sim"): the frame index
        method (None): ``umap``, ``tsne`` or ``pca``; None keeps the existing
            map's method, else :func:`default_method`
        map_key (None): the visualization's brain key; default
            ``<brain_key>_map``
        refit (False): fit the map again even when it could be updated
        progress (None): a callable ``progress(fraction, label)``

    Returns:
        a dict: ``map_key``, ``method``, ``frames`` (points on the map),
        ``added`` (frames placed by an update), ``refit`` (fitted anew),
        ``unmapped`` (frames of ``samples`` without a vector)
    """
    dataset = samples._root_dataset
    view, field = embedded_frames(samples, brain_key, minimum=MIN_FRAMES)
    map_key = check_map_key(dataset, map_key or map_key_for(brain_key))
    existing = _existing_map(dataset, map_key)
    method = method or (existing.config.method if existing else default_method())
    if method not in METHODS:
        raise InvalidInputError(
            f"Unknown map method {method!r}. Choices: {', '.join(METHODS)}"
        )
    unmapped = len(samples) - len(view)
    if existing is not None and not refit:
        added = _update(existing, view, field, method, progress)
        if added is not None:
            return _summary(map_key, method, existing, added, False, unmapped)
    if existing is not None and existing.config.method != method:
        dataset.delete_brain_run(map_key)  # brain keeps one method per key
    report(progress, 0.1, f"Projecting {len(view)} frames to 2-D ({method})")
    kwargs = _method_kwargs(method, len(view), index_metric(dataset, brain_key))
    results = fob.compute_visualization(
        view, embeddings=field, brain_key=map_key, method=method, **kwargs
    )
    report(progress, 1.0, "Done")
    return _summary(map_key, method, results, len(view), True, unmapped)


def frame_maps(dataset, brain_key=None):
    """Brain keys of the maps drawn from a frame index's vectors (from
    ``brain_key``'s only, when given)."""
    dataset = dataset._root_dataset
    indexes = [brain_key] if brain_key else frame_index_keys(dataset)
    fields = {embeddings_field_for(key) for key in indexes}
    return [
        key
        for key in dataset.list_brain_runs(type="visualization")
        if getattr(dataset.get_brain_info(key).config, "embeddings_field", None)
        in fields
    ]


def index_of_map(dataset, map_key):
    """The brain key of the frame index whose vectors ``map_key`` shows."""
    field = dataset._root_dataset.get_brain_info(map_key).config.embeddings_field
    return field[: -len("_embedding")]


def check_map_key(dataset, map_key):
    """``map_key`` if it can name a map on ``dataset`` (a new key, or a map's)."""
    if not map_key or not map_key.replace("_", "").isalnum():
        raise InvalidInputError(f"Map key {map_key!r} must be letters, digits and _")
    if map_key in dataset.list_brain_runs() and map_key not in dataset.list_brain_runs(
        type="visualization"
    ):
        raise IndexConfigError(
            f"Brain key {map_key!r} is taken by a run that is not a map "
            f"({dataset.get_brain_info(map_key).config.type}): choose another key"
        )
    return map_key


def _existing_map(dataset, map_key):
    if map_key not in dataset.list_brain_runs(type="visualization"):
        return None
    return dataset.load_brain_results(map_key)


def _update(existing, view, field, method, progress):
    """Places the frames new since ``existing`` was fitted on it; returns
    how many, or None when the map must be fitted again."""
    config = existing.config
    if config.method != method or config.embeddings_field != field:
        return None
    known = set(existing.sample_ids.tolist())
    current = set(view.values("id"))
    if known - current:  # deleted frames leave the map only by a refit
        return None
    new = current - known
    if not new:
        return 0
    if method not in ("umap", "pca") or len(new) > UPDATE_LIMIT * len(known):
        return None  # t-SNE cannot place new points; many new ones: refit
    report(progress, 0.2, f"Placing {len(new)} new frames on the map")
    try:
        existing.add_samples(view.select(sorted(new)), embeddings=field)
    except ValueError as e:  # e.g. a map stored without its reducer
        logger.info("Map %s cannot be updated (%s): fitting it again", existing.key, e)
        return None
    return len(new)


def _method_kwargs(method, count, metric):
    """Brain's reducer settings, fitted to small frame sets too."""
    distance = "euclidean" if metric == "euclidean" else "cosine"
    if method == "umap":
        return {
            "num_neighbors": min(15, count - 1),
            "metric": distance,
            "seed": SEED,
            "verbose": False,
        }
    if method == "tsne":
        return {
            "perplexity": min(30.0, max(1.0, (count - 1) / 3)),
            "pca_dims": 50 if count > 50 else None,
            "metric": distance,
            "seed": SEED,
            "verbose": False,
        }
    return {"seed": SEED}


def _summary(map_key, method, results, added, refit, unmapped):
    return {
        "map_key": map_key,
        "method": method,
        "frames": int(results.total_index_size),
        "added": int(added),
        "refit": refit,
        "unmapped": int(unmapped),
    }
