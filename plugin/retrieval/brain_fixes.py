"""Fixes around fiftyone-brain 0.27's Milvus backend, where they bite.

Its HNSW search params are malformed (``{"HNSW": {"params": {"ef": 10}}}``
passed whole), so Milvus falls back to a small ``ef`` and returns FEWER than
``k`` hits for k > ~10 (seen on Milvus Lite with L2), and newer servers
reject ef < k outright. We make the search params well-formed with
``ef = max(k, 64)``: the index records the k of each query on its config.

On Milvus Lite (the managed local store or a ``.db`` file), brain's HNSW
collections returned only 41 of k=50 hits for dotproduct on unnormalised
CLIP-like vectors in our tests, whatever the ef; we index Lite collections
with FLAT instead (exact search; Lite is meant for small data anyway).

Applied on import of :mod:`plugin.retrieval` and by the plugin's
``register()``, so the App server's search bar gets it too. Idempotent.
"""

from fiftyone.brain.internal.core import milvus as brain_milvus

from plugin.milvus.resolver import is_milvus_lite

_MIN_EF = 64
_MAX_EF = 32768  # Milvus' upper bound for HNSW ef


def _search_params(config):
    ef = getattr(config, "_vrag_ef", _MIN_EF)
    metric = brain_milvus._SUPPORTED_METRICS[config.metric]
    return {"metric_type": metric, "params": {"ef": ef}}


def _index_params(config):
    metric = brain_milvus._SUPPORTED_METRICS[config.metric]
    if is_milvus_lite(config.uri):
        return {"metric_type": metric, "index_type": "FLAT", "params": {}}
    return {"metric_type": metric, "index_type": "HNSW", "params": _HNSW_BUILD}


_HNSW_BUILD = {"M": 8, "efConstruction": 64}  # brain's own values


def _wrap_kneighbors(original):
    def _kneighbors(self, query=None, k=None, **kwargs):
        # Private attribute: not serialized with the brain run's config.
        self.config._vrag_ef = min(max(k or 0, _MIN_EF), _MAX_EF)
        return original(self, query=query, k=k, **kwargs)

    _kneighbors._vrag_fixed = True
    return _kneighbors


def apply():
    """Patches brain's Milvus backend in this process (once)."""
    index_cls = brain_milvus.MilvusSimilarityIndex
    if getattr(index_cls._kneighbors, "_vrag_fixed", False):
        return
    config_cls = brain_milvus.MilvusSimilarityConfig
    config_cls.search_params = property(_search_params)
    config_cls.index_params = property(_index_params)
    index_cls._kneighbors = _wrap_kneighbors(index_cls._kneighbors)
