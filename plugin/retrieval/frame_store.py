"""A loaded frame index (fiftyone-brain on Milvus) that survives store restarts.

FiftyOne caches loaded brain results per dataset (``dataset._brain_cache``)
and brain loads a collection into memory once, when the results are loaded.
A process that outlives a store restart (the App server) then holds a stale
connection and a collection the server has "released". :func:`with_frame_index`
runs an operation through :func:`plugin.milvus.guard.call`: a dead store
fails fast, and after a restart-type failure the cached index is dropped
(:func:`forget_index`), loaded again (brain reconnects and loads the
collection) and the operation runs once more.
"""

import logging
import warnings

from plugin.clients import forget_milvus_client
from plugin.errors import IndexConfigError, IndexNotFoundError
from plugin.milvus import guard
from plugin.milvus.schema import FRAME_SHAPE, fields_of
from plugin.runtime import prepare_process
from plugin.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_BRAIN_KEY = "frame_sim"


def load_frame_index(dataset, brain_key=DEFAULT_BRAIN_KEY, settings=None):
    """Loads an existing index, connected to the store of ``settings``."""
    prepare_process(settings)
    require_run(dataset, brain_key)
    return with_frame_index(
        dataset, brain_key, settings, f"loading frame index {brain_key!r}", None
    )


def with_frame_index(dataset, brain_key, settings, doing, operation):
    """``operation(index)`` on the loaded index ``brain_key``, through
    :func:`plugin.milvus.guard.call`: after a store restart the index is
    reloaded (brain reconnects and loads the collection) and run once more.
    With ``operation=None``, returns the index."""
    prepare_process(settings)
    require_run(dataset, brain_key)
    settings = Settings.coerce(settings)

    def run(connection):
        index = _load(dataset, brain_key, connection)
        return index if operation is None else operation(index)

    return guard.call(
        settings,
        doing,
        run,
        recover=lambda connection: forget_index(dataset, brain_key, connection),
    )


def require_run(dataset, brain_key):
    if brain_key not in dataset.list_brain_runs():
        raise IndexNotFoundError(
            f"Dataset {dataset.name!r} has no index {brain_key!r}. "
            f"Existing: {', '.join(dataset.list_brain_runs()) or 'none'}"
        )


def _load(dataset, brain_key, connection):
    index = _cached_index(dataset, brain_key, connection)
    if index is not None and not _still_loaded(index, connection):
        forget_index(dataset, brain_key)  # the store restarted: load again
        index = None
    if index is None:
        # A timed call first: brain's own connect waits ~10 s on a frozen server
        name = dataset.get_brain_info(brain_key).config.collection_name
        connection.client().has_collection(name)
        index = dataset.load_brain_results(brain_key, **connection.credentials())
    if index is None:  # registered, never completed (an interrupted build)
        raise IndexConfigError(
            f"The index {brain_key!r} of dataset {dataset.name!r} was never "
            "completed (its build was interrupted). Delete it "
            "(delete_frame_index) or rebuild it with overwrite=True."
        )
    if index.collection is None:
        dataset._brain_cache.pop(brain_key, None)  # retry the load next time
        raise IndexNotFoundError(
            f"The collection {index.config.collection_name!r} of index "
            f"{brain_key!r} is not in Milvus at {connection.display_uri}. Point "
            "the workbench at the store the index was built on (VRAG_MILVUS_URI "
            "or the form's Milvus field), or rebuild the index."
        )
    return bound_index(index, connection)


def _still_loaded(index, connection):
    """Whether the collection of a cached index is still loaded in the store
    (one cheap call; after a restart it is "released")."""
    if index.collection is None:
        return False
    client = connection.client()
    state = client.get_load_state(
        index.config.collection_name, timeout=connection.call_timeout
    )
    return "Loaded" in str(state.get("state"))


def bound_index(index, connection):
    """Bounds the waits of the collection brain holds (brain passes no
    timeout, so pymilvus would retry for minutes). Brain's private name."""
    index._collection = guard.bound(index._collection, connection.call_timeout)
    return index


def _cached_index(dataset, brain_key, connection):
    """FiftyOne caches loaded brain results per dataset and ignores the
    credentials of later loads: reuse the cached index only when it points at
    ``connection``'s store, else drop it so it is loaded against that store."""
    cache = dataset._brain_cache  # FiftyOne's own results cache (private)
    index = cache.get(brain_key)
    if index is not None and getattr(index.config, "uri", None) != connection.uri:
        forget_index(dataset, brain_key, None)
        return None
    return index


def forget_index(dataset, brain_key, connection=None):
    """Drops the loaded index from FiftyOne's cache (and, with
    ``connection``, the shared client): the next use reconnects and loads
    the collection again, as needed after the store restarted."""
    index = dataset._brain_cache.pop(brain_key, None)
    alias = getattr(index, "_alias", None)  # brain's pymilvus connection
    if alias and alias != "default":
        try:
            from pymilvus import connections

            with warnings.catch_warnings():  # brain's ORM API: deprecated in 3.x
                warnings.simplefilter("ignore")
                connections.disconnect(alias)
        except Exception:  # already broken: nothing to close
            pass
    if connection is not None:
        forget_milvus_client(connection)


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


def drop_frame_collection(connection, name):
    """Drops collection ``name`` if it is a frame collection (never another
    kind of collection a broken run may point at)."""
    client = connection.client()
    timeout = connection.call_timeout
    if not client.has_collection(name, timeout=timeout):
        return False
    if fields_of(client.describe_collection(name, timeout=timeout)) != FRAME_SHAPE:
        return False
    client.drop_collection(name, timeout=timeout)
    return True
