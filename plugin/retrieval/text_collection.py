"""Text collections in Milvus: the low-level calls of every text index.

One collection per index, one row per piece of text::

    segment_id (VARCHAR pk) | vector | dataset | video_id | start | end | text

Creating it (FLAT on Milvus Lite, refitted by size; HNSW on a server),
writing rows (upserts; long text cut to Milvus' VARCHAR limit), reading
what is indexed, and turning a search row into a
:class:`~plugin.retrieval.hits.TextHit`. Used by
:mod:`plugin.retrieval.text_index`; every call there goes through
:func:`store_call` (:mod:`plugin.milvus.guard`).
"""

import json
import logging

from plugin.clients import forget_milvus_client
from plugin.errors import IndexConfigError
from plugin.milvus import guard
from plugin.milvus.resolver import is_lite_connection
from plugin.milvus.schema import TRANSCRIPT_SHAPE
from plugin.progress import report
from plugin.retrieval import lite_index
from plugin.retrieval.frame_index import MILVUS_METRICS
from plugin.retrieval.hits import TextHit

logger = logging.getLogger(__name__)

#: The fields of every text collection (transcripts, on-screen text)
TEXT_SHAPE = TRANSCRIPT_SHAPE
TEXT_MAX_BYTES = 65535  # Milvus' VARCHAR limit, in UTF-8 bytes
ID_MAX = 512
FIELDS = ["segment_id", "video_id", "start", "end", "text"]
_INSERT_BATCH = 256  # rows per insert: bounds the gRPC message size
_MIN_EF = 64
_EMBED_BATCH = 64


def store_call(settings, doing, operation):
    """``operation(connection)`` through :func:`plugin.milvus.guard.call`;
    after a store restart the shared client is rebuilt and it runs again."""
    return guard.call(settings, doing, operation, recover=forget_milvus_client)


def text_hit(row, rank):
    """A search result row as a :class:`TextHit` (frames not attached yet)."""
    entity = row.get("entity", row)
    return TextHit(
        segment_id=entity.get("segment_id", row.get("id")),
        score=float(row["distance"]),
        rank=rank,
        text=entity["text"],
        video_id=entity["video_id"],
        start=float(entity["start"]),
        end=float(entity["end"]),
    )


def fit_text(text):
    """``text`` cut to Milvus' VARCHAR limit without splitting a character."""
    data = (text or "").encode("utf-8")
    if len(data) <= TEXT_MAX_BYTES:
        return text or ""
    return data[:TEXT_MAX_BYTES].decode("utf-8", errors="ignore")


def drop_quietly(client, name):
    """Drops ``name`` if it can (a partial collection); logs if it cannot."""
    try:
        if client.has_collection(name):
            client.drop_collection(name)
    except Exception as e:  # the store is gone: cleanup finds it later
        logger.warning("Could not drop the partial collection %r: %s", name, e)


def create_collection(client, connection, name, dimension, metric):
    """A new, empty text collection (the shape in the module docstring)."""
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("segment_id", DataType.VARCHAR, is_primary=True, max_length=ID_MAX)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
    schema.add_field("dataset", DataType.VARCHAR, max_length=ID_MAX)
    schema.add_field("video_id", DataType.VARCHAR, max_length=ID_MAX)
    schema.add_field("start", DataType.DOUBLE)
    schema.add_field("end", DataType.DOUBLE)
    schema.add_field("text", DataType.VARCHAR, max_length=TEXT_MAX_BYTES)
    index = client.prepare_index_params()
    lite_index.add_index(index, "vector", index_params(connection, metric))
    client.create_collection(name, schema=schema, index_params=index)


def index_params(connection, metric, rows=0):
    """The vector index of a text collection of ``rows`` on ``connection``'s
    store: by size on Milvus Lite (a new one is empty: FLAT, and
    insert_rows refits it), HNSW on a server."""
    metric_type = MILVUS_METRICS[metric]
    if is_lite_connection(connection):
        return lite_index.lite_index_params(metric_type, rows)
    params = dict(lite_index.SERVER_HNSW_BUILD)
    return {"index_type": "HNSW", "metric_type": metric_type, "params": params}


def search_params(metric_type, k, index=None):
    """Search params for an index described by ``index`` (see
    :func:`plugin.retrieval.lite_index.describe`): ``nprobe`` for IVF (Lite
    past its threshold), else ``ef >= k`` (HNSW needs it, newer servers
    reject less; FLAT ignores it)."""
    index = index or {}
    nprobe = lite_index.nprobe_of(index)
    if not nprobe and str(index.get("index_type", "")).startswith("IVF"):
        nprobe = lite_index.lite_nprobe(0)  # built before nlist was described
    params = {"nprobe": nprobe} if nprobe else {"ef": max(k, _MIN_EF)}
    return {"metric_type": metric_type, "params": params}


def current_search_params(client, connection, collection, metric, k):
    """:func:`search_params` for ``collection``'s index NOW: on Lite another
    process may have refitted it (FLAT -> IVF_FLAT) since it was built, so
    its index is read first (~1 ms), as brain_fixes does for frames."""
    index = (
        lite_index.describe(client, collection)
        if is_lite_connection(connection)
        else None
    )
    return search_params(MILVUS_METRICS[metric], k, index)


def insert_rows(client, collection, dataset_name, rows, vectors, upsert=False):
    """Writes ``rows`` with their ``vectors`` (upserts: replaces same ids)."""
    write = client.upsert if upsert else client.insert
    records = [
        {
            "segment_id": r["segment_id"],
            "vector": vector,
            "dataset": dataset_name[:ID_MAX],
            "video_id": r["video_id"],
            "start": float(r["start"]),
            "end": float(r["end"]),
            "text": fit_text(r["text"]),
        }
        for r, vector in zip(rows, vectors)
    ]
    for first in range(0, len(records), _INSERT_BATCH):
        write(collection, records[first : first + _INSERT_BATCH])
    # Unflushed rows are searched by brute force (~1.2 s a query at 100k);
    # on Milvus Lite the index then follows the size (FLAT -> IVF_FLAT).
    lite_index.fit_collection(client, collection)


def indexed_texts(client, collection, page=1000):
    """``{segment_id: text}`` of every row in ``collection``."""
    iterator = client.query_iterator(
        collection,
        batch_size=page,
        output_fields=["segment_id", "text"],
        consistency_level="Strong",
    )
    texts = {}
    while batch := iterator.next():
        texts.update((row["segment_id"], row["text"]) for row in batch)
    iterator.close()
    return texts


def embed_rows(embedder, rows, progress, start, stop):
    """The vectors of ``rows``' texts, in batches, reporting progress from
    ``start`` to ``stop``."""
    vectors = []
    for first in range(0, len(rows), _EMBED_BATCH):
        batch = rows[first : first + _EMBED_BATCH]
        vectors.extend(embedder.embed([r["text"] for r in batch]))
        done = len(vectors) / len(rows)
        report(progress, start + (stop - start) * done, f"Embedded {len(vectors)}")
    return vectors


def refuse_foreign_rows(client, connection, name, dataset_name, what):
    """Raises if ``name`` holds rows of another dataset than ``dataset_name``
    (overwriting it would delete that dataset's ``what`` index)."""
    found = client.query(
        name,
        filter=f"dataset != {json.dumps(dataset_name[:ID_MAX])}",
        output_fields=["dataset"],
        limit=1,
    )
    if found:
        raise IndexConfigError(
            f"Milvus collection {name!r} at {connection.display_uri} holds the "
            f"{what} index of dataset {found[0]['dataset']!r}; "
            "overwriting it would delete that index. Choose another "
            "collection name. The existing collection was left untouched."
        )
