"""What an existing Milvus collection must look like before we write to it.

A collection name given by the user may point at anything: another
dataset's index, the transcript collection, a collection of another tool.
Writing into it would fail half-way (``DataNotMatchException``) or, worse,
mix vectors. :func:`check_existing` reads its schema, dimension, metric and
size first and refuses with a clear message; the collection is not touched.
"""

from plugin.errors import IndexConfigError

#: fiftyone-brain's Milvus collections: (field, kind) in order
FRAME_SHAPE = (("pk", "VARCHAR"), ("vector", "FLOAT_VECTOR"), ("sample_id", "VARCHAR"))
#: the transcript index's collections (plugin/retrieval/transcript_index.py)
TRANSCRIPT_SHAPE = (
    ("segment_id", "VARCHAR"),
    ("vector", "FLOAT_VECTOR"),
    ("dataset", "VARCHAR"),
    ("video_id", "VARCHAR"),
    ("start", "DOUBLE"),
    ("end", "DOUBLE"),
    ("text", "VARCHAR"),
)
_MILVUS_METRICS = {"cosine": "COSINE", "euclidean": "L2", "dotproduct": "IP"}


def fields_of(info):
    """``((name, type name), ...)`` of a ``describe_collection`` answer."""
    return tuple(
        (f.get("name"), getattr(f.get("type"), "name", str(f.get("type"))))
        for f in info.get("fields", [])
    )


def shape_name(shape):
    if shape == FRAME_SHAPE:
        return "a frame index (fiftyone-brain)"
    if shape == TRANSCRIPT_SHAPE:
        return "a transcript index"
    return "another kind of collection"


def check_existing(
    connection, name, dimension, metric, shape=None, what="this index", empty=False
):
    """Raises :class:`IndexConfigError` if collection ``name`` exists and does
    not fit: other fields than ``shape``, another dimension or metric, or (with
    ``empty=True``) rows already in it. Returns True if it exists and fits."""
    client = connection.client()
    if not client.has_collection(name, timeout=connection.call_timeout):
        return False
    info = client.describe_collection(name, timeout=connection.call_timeout)
    where = f"Milvus collection {name!r} at {connection.display_uri}"
    untouched = "The existing collection was left untouched."
    found = fields_of(info)
    if (
        shape is not None
        and found != shape
        and found in (FRAME_SHAPE, TRANSCRIPT_SHAPE)
    ):
        _refuse_shape(where, found, shape, what)  # another of our kinds: say so
    existing_dim = _dimension(info)
    existing_metric = _metric(client, name, connection.call_timeout)
    wanted_metric = _MILVUS_METRICS[metric]
    if existing_dim not in (None, dimension) or existing_metric not in (
        None,
        wanted_metric,
    ):
        raise IndexConfigError(
            f"{where} already exists with dimension {existing_dim} and metric "
            f"{existing_metric}; {what} needs dimension {dimension} and metric "
            f"{wanted_metric}. Choose another collection name. {untouched}"
        )
    if shape is not None and found != shape:
        _refuse_shape(where, found, shape, what)
    if empty:
        rows = client.get_collection_stats(name, timeout=connection.call_timeout)
        count = int(rows.get("row_count", 0))
        if count:
            raise IndexConfigError(
                f"{where} already holds {count} vectors that are not {what}'s "
                "(another index, or a dataset that was deleted). Choose another "
                "collection name, or remove it first (python -m plugin.cleanup). "
                f"{untouched}"
            )
    return True


def _refuse_shape(where, found, shape, what):
    listed = ", ".join(field for field, _ in found)
    raise IndexConfigError(
        f"{where} already exists and is {shape_name(found)} (fields: {listed}), "
        f"not {shape_name(shape)}: {what} cannot be written there. Choose "
        "another collection name. The existing collection was left untouched."
    )


def _dimension(info):
    for field in info.get("fields", []):
        if field.get("name") == "vector":
            dim = (field.get("params") or {}).get("dim")
            return int(dim) if dim is not None else None
    return None


def _metric(client, name, timeout):
    for index_name in client.list_indexes(name, timeout=timeout):
        info = client.describe_index(name, index_name, timeout=timeout)
        if info.get("metric_type"):
            return info["metric_type"]
    return None
