"""Fixes around fiftyone-brain 0.27's Milvus backend, and our only door to
its private names.

Its HNSW search params are malformed (``{"HNSW": {"params": {"ef": 10}}}``
passed whole), so Milvus falls back to a small ``ef`` and returns FEWER than
``k`` hits for k > ~10 (seen on Milvus Lite with L2), and newer servers
reject ef < k outright. We make the search params well-formed with
``ef = max(k, 64)``: the index records the k of each query on its config.

On Milvus Lite (the managed local store or a ``.db`` file), brain's HNSW
collections returned only 41 of k=50 hits for dotproduct on unnormalised
CLIP-like vectors in our tests, whatever the ef. Lite collections are
indexed by SIZE instead (:mod:`plugin.retrieval.lite_index`): FLAT (exact)
while small, IVF_FLAT with ``nlist`` by size past a measured threshold.
Brain creates the index at the first insert, before the size is known, so
every write (brain's ``add_to_index``, which flushes after its inserts) ends
with :func:`fit_lite_index`: a Lite collection past the threshold is
re-indexed (drop + create, a second or two at 100k rows; searches from
other processes fail meanwhile). A search on Lite reads the collection's
index type first (another process may have re-indexed it) and passes
``nprobe`` for IVF.
Measured on realistic vectors in bench/results/scale_milvus.md.

Inserts: brain's ``add_to_index`` turns every vector into a Python list
(``tolist()``) and inserts 100 rows per call. On a Milvus server that is the
bottleneck of a build (bench/results/scale_server.md); its plain path (new
ids, no label ids, nothing to check or overwrite: every call we make) is
replaced by :func:`_insert`, the same rows as numpy arrays in calls of
:data:`INSERT_BATCH`, then brain's flush. Other calls go to brain with the
larger batch. (On Milvus Lite the batch made no difference:
bench/results/scale_milvus.md.)

Nothing happens on import: :func:`plugin.runtime.prepare_process` calls
:func:`apply` (from the plugin's ``register()``, so the App server's search
bar gets it too, and from the Python entry points). Every use of brain's
private names (``_SUPPORTED_METRICS``, ``_kneighbors``, ``_parse_query``)
lives in this module; ``tests/test_brain_fixes.py`` pins them to
:data:`WRITTEN_FOR`, the brain version they were checked against.
"""

import functools
import logging
import threading

import numpy as np
from fiftyone.brain.internal.core import milvus as brain_milvus

from plugin.milvus.resolver import is_milvus_lite
from plugin.retrieval import lite_index

WRITTEN_FOR = "0.27.0"  # re-check this module before changing it

_MIN_EF = 64
_MAX_EF = 32768  # Milvus' upper bound for HNSW ef
HNSW_BUILD = lite_index.SERVER_HNSW_BUILD  # a server's frame collections
INSERT_BATCH = 1000  # rows per insert call (brain's: 100)
_LOCK = threading.Lock()
logger = logging.getLogger(__name__)


def milvus_metric(metric):
    """Milvus' name (``COSINE``, ``L2``, ``IP``) of a brain metric name."""
    return brain_milvus._SUPPORTED_METRICS[metric]


def _search_params(config):
    metric = milvus_metric(config.metric)
    nprobe = getattr(config, "_vrag_nprobe", None)
    if nprobe:  # an IVF index (Milvus Lite past LITE_IVF_ABOVE rows)
        return {"metric_type": metric, "params": {"nprobe": nprobe}}
    ef = getattr(config, "_vrag_ef", _MIN_EF)
    return {"metric_type": metric, "params": {"ef": ef}}


def _index_params(config):
    metric = milvus_metric(config.metric)
    if is_milvus_lite(config.uri):  # created empty: FLAT until it grows
        return lite_index.lite_index_params(metric, 0)
    return {"metric_type": metric, "index_type": "HNSW", "params": HNSW_BUILD}


def frame_index_params(metric, uri, rows=0):
    """The index a brain frame collection of ``rows`` vectors gets at
    ``uri`` (what a migration creates): by size on Milvus Lite, else HNSW."""
    config = brain_milvus.MilvusSimilarityConfig(metric=metric, uri=uri)
    if is_milvus_lite(uri):
        return lite_index.lite_index_params(milvus_metric(metric), rows)
    return _index_params(config)


def fit_lite_index(index):
    """Re-indexes a brain Milvus Lite collection for its size if it is due
    (:func:`plugin.retrieval.lite_index.is_due`). Returns the index params
    now in force (None when it is not a Lite collection)."""
    collection = index.collection
    if collection is None or not is_milvus_lite(index.config.uri):
        return None
    current = _current_index(collection)
    metric = current.get("metric_type") or milvus_metric(index.config.metric)
    wanted = lite_index.lite_index_params(metric, collection.num_entities)
    if not lite_index.is_due(current, wanted, collection.num_entities):
        _remember_search(index, current)
        return current
    logger.info(
        "Re-indexing %s (%d rows): %s -> %s",
        collection.name,
        collection.num_entities,
        current.get("index_type"),
        wanted["index_type"],
    )
    collection.release()
    collection.drop_index()
    collection.create_index("vector", index_params=wanted)
    collection.load()
    _remember_search(index, wanted)
    return wanted


def _current_index(collection):
    return (
        lite_index.normalized(collection.indexes[0].params)
        if collection.indexes
        else {}
    )


def _remember_search(index, params):
    """Makes the index's searches fit its index type (not serialized)."""
    index.config._vrag_nprobe = lite_index.nprobe_of(params)


def _wrap_kneighbors(original):
    def _kneighbors(self, query=None, k=None, **kwargs):
        # Private attribute: not serialized with the brain run's config.
        self.config._vrag_ef = min(max(k or 0, _MIN_EF), _MAX_EF)

        def search():
            if is_milvus_lite(self.config.uri) and self.collection is not None:
                # Another process may have re-indexed it since: ~1 ms to ask
                _remember_search(self, _current_index(self.collection))
            return original(self, query=query, k=k, **kwargs)

        return _recovering(self, search)

    _kneighbors._vrag_fixed = True
    return _kneighbors


def _recovering(index, search):
    """``search()``; after a store restart ("released" collection, lost
    connection) brain's index reconnects and loads its collection, and the
    search runs once more. Here, not only in plugin.retrieval.frame_store:
    the App's own search bar calls brain directly (issue #16)."""
    from plugin.milvus import guard

    try:
        return search()
    except Exception as e:
        if not (guard.is_store_error(e) and guard.is_recoverable(e)):
            raise
    from plugin.settings import DEFAULT_MILVUS_TIMEOUT

    timeout = getattr(index._collection, "_vrag_timeout", DEFAULT_MILVUS_TIMEOUT)
    index._initialize()  # brain's own connect + collection.load()
    index._collection = guard.bound(index._collection, timeout)
    return search()


def _wrap_add_to_index(original):
    @functools.wraps(original)
    def add_to_index(self, embeddings, sample_ids, label_ids=None, **kwargs):
        kwargs.setdefault("batch_size", INSERT_BATCH)
        if label_ids is None and _plain_insert(kwargs):
            _insert(self, embeddings, sample_ids, kwargs["batch_size"])
            if kwargs.get("reload", True):
                self.reload()
        else:
            original(self, embeddings, sample_ids, label_ids=label_ids, **kwargs)
        fit_lite_index(self)  # flushed: the row count is exact

    add_to_index._vrag_fixed = True
    return add_to_index


def _plain_insert(kwargs):
    """brain's defaults: no lookup of existing ids (brain inserts them as is)."""
    return (
        kwargs.get("overwrite", True)
        and kwargs.get("allow_existing", True)
        and not kwargs.get("warn_existing", False)
    )


def _insert(index, embeddings, sample_ids, batch_size):
    """What brain's add_to_index does on its plain path, with numpy arrays
    (pymilvus packs them without a Python float per element)."""
    vectors = np.asarray(embeddings, dtype=np.float32)
    if index._collection is None:
        index._create_collection(vectors.shape[1])
    ids = [str(i) for i in sample_ids]
    for first in range(0, len(ids), batch_size):
        part = ids[first : first + batch_size]
        index._collection.insert([part, vectors[first : first + batch_size], part])
    index._collection.flush()


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
        index_cls.add_to_index = _wrap_add_to_index(index_cls.add_to_index)


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
