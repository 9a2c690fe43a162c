"""Storyboards: the k most representative frames of each video.

A storyboard is k frames that together stand for a video: its frames'
vectors (from a frame index) are split into k clusters (k-means) and the
frame nearest each cluster's centre is picked, so the k frames are distinct
scenes, not k views of the longest one. Each picked frame gets
``storyboard``: the share of its video's frames its cluster holds. The
saved view ``storyboard`` lists them by video, then time, and
:func:`storyboard_ids` returns them: the default evidence for "what is this
video about" (``ask(dataset, question, sample_ids=storyboard_ids(...))``).

Why not ``fob.compute_representativeness``: in fiftyone-brain 0.27 it fits
20 clusters over the whole collection (a video of fewer than 20 frames
fails) and scores a frame by its distance to its cluster's centre, scaled
to 1 in each cluster, so the highest scores go to the frames FARTHEST from
the centres. Uniqueness favours outliers too. A storyboard needs the
opposite: the centres.
"""

import warnings

import numpy as np
from fiftyone import ViewField as F

from plugin.curation.vectors import embedded_frames, index_metric, per_video, vectors_of
from plugin.errors import InvalidInputError
from plugin.inputs import require_int
from plugin.progress import report
from plugin.retrieval.frame_index import DEFAULT_BRAIN_KEY

FIELD = "storyboard"
SAVED_VIEW = "storyboard"
DEFAULT_K = 6  # the Ask default's image budget order of magnitude
MAX_K = 50
SEED = 51


def build_storyboard(samples, brain_key=DEFAULT_BRAIN_KEY, k=DEFAULT_K, progress=None):
    """Picks the ``k`` most representative frames of each video of ``samples``.

    Args:
        samples: a dataset or view of imported frames
        brain_key ("frame_sim"): the frame index whose vectors are used
        k (6): frames per video (a video with fewer frames gives them all)
        progress (None): a callable ``progress(fraction, label)``

    Returns:
        a dict: ``videos``, ``frames`` (picked in all), ``view`` (the saved
        view's name)
    """
    check_k(k)
    dataset = samples._root_dataset
    view, field = embedded_frames(samples, brain_key)
    normalize = index_metric(dataset, brain_key) != "euclidean"
    videos = per_video(view)
    _clear(dataset, list(videos))
    shares = {}
    for n, frames in enumerate(videos.values()):
        report(progress, n / len(videos), f"Storyboard of video {n + 1}/{len(videos)}")
        ids, vectors = vectors_of(frames, field)
        for i, share in pick_representatives(vectors, k, normalize):
            shares[ids[i]] = share
    dataset.set_values(FIELD, shares, key_field="id")
    dataset.save_view(SAVED_VIEW, storyboard_view(dataset), overwrite=True)
    report(progress, 1.0, "Done")
    return {"videos": len(videos), "frames": len(shares), "view": SAVED_VIEW}


def check_k(k):
    """``k`` as frames per video: an integer from 1 to :data:`MAX_K`."""
    require_int("Frames per video", k)
    if k > MAX_K:
        raise InvalidInputError(f"Frames per video must be at most {MAX_K}, got {k}")
    return k


def storyboard_view(samples):
    """The storyboard frames of ``samples``, by video then time."""
    if not samples.has_sample_field(FIELD):
        return samples.limit(0)
    return samples.exists(FIELD).sort_by([("video_id", 1), ("timestamp", 1)])


def storyboard_ids(samples, video_ids=None):
    """Sample ids of the storyboard frames (of ``video_ids`` only, if
    given), by video then time: evidence for a question about the videos."""
    view = storyboard_view(samples)
    if video_ids is not None:
        view = view.match(F("video_id").is_in(list(video_ids)))
    return view.values("id")


def pick_representatives(vectors, k, normalize=True):
    """``[(index, share)]``: ``k`` distinct rows of ``vectors`` standing
    for all of them, in row order; ``share`` is the fraction of rows each
    one stands for. With ``k`` rows or fewer: all of them."""
    count = len(vectors)
    if count <= k:
        return [(i, 1.0 / count) for i in range(count)]
    points = np.asarray(vectors, dtype=np.float64)
    if normalize:
        points = points / np.maximum(
            np.linalg.norm(points, axis=1, keepdims=True), 1e-12
        )
    labels, centres = _clusters(points, k)
    picked = {}
    for cluster in np.unique(labels):
        members = np.flatnonzero(labels == cluster)
        gaps = np.linalg.norm(points[members] - centres[cluster], axis=1)
        picked[int(members[np.argmin(gaps)])] = len(members) / count
    _fill(points, picked, k)  # identical frames can leave clusters empty
    return sorted(picked.items())


def _clusters(points, k):
    from sklearn.cluster import KMeans

    with warnings.catch_warnings():  # "fewer distinct points than clusters"
        warnings.simplefilter("ignore")
        fitted = KMeans(n_clusters=k, n_init=4, random_state=SEED).fit(points)
    return fitted.labels_, fitted.cluster_centers_


def _fill(points, picked, k):
    """Adds the rows farthest from those picked until there are ``k``."""
    while len(picked) < k:
        chosen = points[list(picked)]
        gaps = np.min(np.linalg.norm(points[:, None] - chosen[None], axis=2), axis=1)
        gaps[list(picked)] = -1.0
        picked[int(np.argmax(gaps))] = 0.0


def _clear(dataset, video_ids):
    """Forgets the earlier storyboards of ``video_ids``."""
    if not dataset.has_sample_field(FIELD):
        return
    old = dataset.match(F("video_id").is_in(video_ids)).exists(FIELD)
    if len(old):
        old.set_values(FIELD, [None] * len(old))
