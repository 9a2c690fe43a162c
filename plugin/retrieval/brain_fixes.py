"""Fixes around fiftyone-brain 0.27's Milvus backend, and our only door to
its private names.

Its HNSW search params are malformed (``{"HNSW": {"params": {"ef": 10}}}``
passed whole), so Milvus falls back to a small ``ef`` and returns FEWER than
``k`` hits for k > ~10 (seen on Milvus Lite with L2), and newer servers
reject ef < k outright. We make the search params well-formed with
``ef = max(k, 64)``: the index records the k of each query on its config.

On Milvus Lite (the managed local store or a ``.db`` file), brain's HNSW
collections returned only 41 of k=50 hits for dotproduct on unnormalised
CLIP-like vectors in our tests, whatever the ef; we index Lite collections
with FLAT instead (exact search; Lite is meant for small data anyway).

Nothing happens on import: :func:`plugin.runtime.prepare_process` calls
:func:`apply` (from the plugin's ``register()``, so the App server's search
bar gets it too, and from the Python entry points). Every use of brain's
private names (``_SUPPORTED_METRICS``, ``_kneighbors``, ``_parse_query``)
lives in this module; ``tests/test_brain_fixes.py`` pins them to
:data:`WRITTEN_FOR`, the brain version they were checked against.
"""

import threading

from fiftyone.brain.internal.core import milvus as brain_milvus

from plugin.milvus.resolver import is_milvus_lite

WRITTEN_FOR = "0.27.0"  # re-check this module before changing it

_MIN_EF = 64
_MAX_EF = 32768  # Milvus' upper bound for HNSW ef
_HNSW_BUILD = {"M": 8, "efConstruction": 64}  # brain's own values
_LOCK = threading.Lock()


def milvus_metric(metric):
    """Milvus' name (``COSINE``, ``L2``, ``IP``) of a brain metric name."""
    return brain_milvus._SUPPORTED_METRICS[metric]


def _search_params(config):
    ef = getattr(config, "_vrag_ef", _MIN_EF)
    return {"metric_type": milvus_metric(config.metric), "params": {"ef": ef}}


def _index_params(config):
    metric = milvus_metric(config.metric)
    if is_milvus_lite(config.uri):
        return {"metric_type": metric, "index_type": "FLAT", "params": {}}
    return {"metric_type": metric, "index_type": "HNSW", "params": _HNSW_BUILD}


def _wrap_kneighbors(original):
    def _kneighbors(self, query=None, k=None, **kwargs):
        # Private attribute: not serialized with the brain run's config.
        self.config._vrag_ef = min(max(k or 0, _MIN_EF), _MAX_EF)
        return original(self, query=query, k=k, **kwargs)

    _kneighbors._vrag_fixed = True
    return _kneighbors


def is_applied():
    """True once :func:`apply` patched brain's Milvus backend here."""
    kneighbors = brain_milvus.MilvusSimilarityIndex._kneighbors
    return getattr(kneighbors, "_vrag_fixed", False)


def apply():
    """Patches brain's Milvus backend in this process. Idempotent."""
    with _LOCK:  # the App server may load plugins from several threads
        if is_applied():
            return
        config_cls = brain_milvus.MilvusSimilarityConfig
        config_cls.search_params = property(_search_params)
        config_cls.index_params = property(_index_params)
        index_cls = brain_milvus.MilvusSimilarityIndex
        index_cls._kneighbors = _wrap_kneighbors(index_cls._kneighbors)


def nearest(index, text, k):
    """The ``k`` nearest samples of a text query: ``(ids, scores)``.

    Brain's public ``sort_by_similarity()`` returns scores only by writing
    them into a dataset field; these are the two calls it runs, without
    writes. Applies the fixes first: without them k > ~10 returns fewer hits.
    """
    apply()
    vector = index._parse_query(text)[0]  # one prompt -> one vector
    ids, _, scores = index._kneighbors(query=vector, k=k, return_dists=True)
    return ids, scores
