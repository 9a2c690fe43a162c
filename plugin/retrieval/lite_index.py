"""Milvus Lite collections indexed by size: FLAT while small, IVF_FLAT after.

Milvus Lite (the managed local store, ``.db`` files) searches FLAT exactly,
in time linear in the rows: ~16 ms at 10k and ~100 ms at 100k 384-d vectors
on 2 cores. IVF_FLAT with ``nlist`` ~ 4 sqrt(rows) and ``nprobe`` = nlist/32
answered in ~4 ms and ~30 ms with recall@10 >= 0.997 of FLAT on realistic
vectors (bench/results/scale_milvus.md). So a Lite collection is FLAT below
:data:`LITE_IVF_ABOVE` rows and IVF_FLAT from there; the row count is known
only after writes, so writers call a fitter after each flushed write batch:
:func:`plugin.retrieval.brain_fixes.fit_lite_index` for brain's frame
collections, :func:`fit_collection` here for pymilvus ones (transcripts).
A real Milvus server gets HNSW, built as :data:`SERVER_HNSW_BUILD` (frame
and text collections alike): these size rules are for Lite only.
"""

import json
import logging
import math

logger = logging.getLogger(__name__)

#: Rows from which a Milvus Lite collection gets IVF_FLAT instead of FLAT.
LITE_IVF_ABOVE = 20_000
FLAT = "FLAT"
IVF_FLAT = "IVF_FLAT"
_MIN_NLIST, _MAX_NLIST = 256, 4096
# A server's HNSW, chosen by recall on realistic vectors at 1M rows
# (bench/results/scale_server*.md): at ef 64, brain's M=8/efC=64 gives
# recall@10 0.993 on the harder set, this 0.9965 for a 1.6x longer build and
# the same latency (~3 ms p50, the round trip dominates); at ef 32, 0.978 vs
# 0.991. M=32 / efC=256 gained nothing more at ef 64 for a 2.4x build.
SERVER_HNSW_BUILD = {"M": 16, "efConstruction": 128}


def lite_index_params(metric_type, rows):
    """The index of a Lite collection of ``rows`` vectors: FLAT below
    :data:`LITE_IVF_ABOVE`, else IVF_FLAT with ``nlist`` ~ 4 sqrt(rows)
    (Milvus' rule of thumb), a power of two in 256-4096."""
    if rows < LITE_IVF_ABOVE:
        return {"metric_type": metric_type, "index_type": FLAT, "params": {}}
    nlist = 2 ** round(math.log2(4 * math.sqrt(rows)))
    nlist = min(max(nlist, _MIN_NLIST), _MAX_NLIST)
    return {
        "metric_type": metric_type,
        "index_type": IVF_FLAT,
        "params": {"nlist": nlist},
    }


def lite_nprobe(nlist):
    """Lists searched per query: 1/32 of them, at least 16 (recall@10
    >= 0.999 of FLAT at 100k, for ~1 ms more than 16)."""
    return max(16, int(nlist) // 32)


def nprobe_of(params):
    """``nprobe`` for a search on an index described by ``params`` (None
    unless it is an IVF index)."""
    nlist = (params.get("params") or {}).get("nlist")
    if str(params.get("index_type", "")).startswith("IVF") and nlist:
        return lite_nprobe(nlist)
    return None


def is_due(current, wanted, rows):
    """Whether an index ``current`` should become ``wanted`` for ``rows``:
    FLAT -> IVF at the threshold; IVF again when ``nlist`` should double;
    back to FLAT only below half the threshold (no flapping at the line)."""
    kind, want_kind = current.get("index_type"), wanted["index_type"]
    if kind == want_kind == FLAT:
        return False
    if kind == want_kind:  # nlist 0 if not described (built before add_index)
        now = int((current.get("params") or {}).get("nlist") or 0)
        return int(wanted["params"]["nlist"]) >= 2 * now
    if want_kind == FLAT:
        return rows < LITE_IVF_ABOVE // 2
    return True


_BUILD_KEYS = ("nlist", "M", "efConstruction", "m", "nbits")


def normalized(params):
    """An index description with its build parameters under ``params`` as a
    dict of numbers (servers give them as JSON text, or beside the type)."""
    params = dict(params or {})
    inner = params.get("params") or {}
    inner = json.loads(inner) if isinstance(inner, str) else dict(inner)
    for key in _BUILD_KEYS:
        if key in params and key not in inner:
            inner[key] = params[key]
    params["params"] = {k: _number(v) for k, v in inner.items()}
    return params


def _number(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def add_index(index_params, field, wanted):
    """Adds the index ``wanted`` (``{"index_type", "metric_type", "params"}``)
    of ``field`` to a MilvusClient ``prepare_index_params()``, its build
    parameters kept under ``params``: pymilvus passes ``params`` flat, and
    Milvus Lite drops flat ones (IVF_FLAT built with its default nlist,
    described without one, so no search got its ``nprobe``)."""
    index_params.add_index(
        field_name=field,
        index_type=wanted["index_type"],
        metric_type=wanted["metric_type"],
        params={"params": dict(wanted.get("params") or {})},  # kept nested
    )


def describe(client, collection, field="vector"):
    """The index of ``field`` in ``collection`` (a pymilvus MilvusClient)."""
    for name in client.list_indexes(collection, field_name=field):
        return normalized(client.describe_index(collection, name))
    return {}


def fit_collection(client, collection, field="vector"):
    """Flushes ``collection`` and re-indexes it for its size if it is due.

    Only FLAT and IVF_FLAT indexes are refitted (the ones Lite gets from
    us); any other index (HNSW on a server) is left alone. Returns the
    index description now in force.
    """
    client.flush(collection)
    current = describe(client, collection, field)
    if current.get("index_type") not in (FLAT, IVF_FLAT):
        return current
    rows = int(client.get_collection_stats(collection)["row_count"])
    wanted = lite_index_params(current["metric_type"], rows)
    if not is_due(current, wanted, rows):
        return current
    logger.info(
        "Re-indexing %s (%d rows): %s -> %s",
        collection,
        rows,
        current["index_type"],
        wanted["index_type"],
    )
    client.release_collection(collection)
    client.drop_index(collection, current.get("index_name") or field)
    index = client.prepare_index_params()
    add_index(index, field, wanted)
    client.create_index(collection, index)
    client.load_collection(collection)
    return wanted
