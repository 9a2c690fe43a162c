"""Transcript indexes: transcript segments embedded into their own Milvus collection.

Why pymilvus directly and not fiftyone-brain: brain's similarity indexes
hold one vector per SAMPLE (here: per frame). Transcript segments are not
samples (they live in the execution store, see
:mod:`plugin.video.transcripts`, and span several frames), so they get a
collection of their own, one row per segment::

    segment_id (VARCHAR pk) | vector | dataset | video_id | start | end | text

The index's settings (text model, dimension, metric, collection, Milvus kind;
never credentials) are recorded in ``dataset.info[INFO_KEY]`` so that search
and sync embed with the model the index was built with.
"""

import json
import logging
from collections import defaultdict

from plugin.cleanup import record_collection
from plugin.clients import forget_milvus_client
from plugin.errors import IndexConfigError, IndexNotFoundError, InvalidInputError
from plugin.inputs import validate_query
from plugin.milvus import LITE_FILE, LOCAL, guard, is_milvus_lite
from plugin.milvus.schema import TRANSCRIPT_SHAPE, check_existing
from plugin.models.text import canonical_name, load_text_embedder
from plugin.progress import report
from plugin.retrieval import lite_index
from plugin.retrieval.frame_index import MILVUS_METRICS
from plugin.retrieval.frame_search import require_k
from plugin.retrieval.hits import Frame, TextHit, read_frames
from plugin.settings import Settings
from plugin.video.alignment import segment_frame_ids
from plugin.video.transcripts import load_transcript_segments, load_video_records

logger = logging.getLogger(__name__)

INFO_KEY = "vrag_transcript_index"
TEXT_MAX_BYTES = 65535  # Milvus' VARCHAR limit, in UTF-8 bytes
_ID_MAX = 512
_INSERT_BATCH = 256  # rows per insert: bounds the gRPC message size
_EMBED_BATCH = 64
_MIN_EF = 64
_FIELDS = ["segment_id", "video_id", "start", "end", "text"]


def default_collection_name(dataset_name):
    raw = f"vrag_{dataset_name}_transcripts"
    return "".join(c if c.isalnum() else "_" for c in raw)[:255]  # Milvus' limit


def transcript_index_info(dataset):
    """The recorded settings of ``dataset``'s transcript index, or None."""
    return (dataset._root_dataset.info or {}).get(INFO_KEY)


def build_transcript_index(
    dataset,
    text_model=None,
    collection_name=None,
    overwrite=False,
    progress=None,
    metric="cosine",
    settings=None,
):
    """Embeds all transcript segments of ``dataset`` into a new Milvus collection.

    Args:
        dataset: a FiftyOne dataset of imported video frames
        text_model (None): ``"minilm"`` (default) or ``"openai:<model>"``, see
            :mod:`plugin.models.text`
        collection_name (None): default derived from the dataset name
        overwrite (False): replace the dataset's existing transcript index
        progress (None): a callable ``progress(fraction, label)``
        metric ("cosine"): ``cosine``, ``euclidean`` or ``dotproduct``
        settings (None): a :class:`~plugin.settings.Settings`: the Milvus
            store, and the endpoint of an ``openai:<model>`` text model

    Returns:
        the recorded settings (a dict)
    """
    dataset = dataset._root_dataset
    settings = Settings.coerce(settings)
    if metric not in MILVUS_METRICS:
        raise InvalidInputError(
            f"Unknown metric {metric!r}. Choices: {', '.join(MILVUS_METRICS)}"
        )
    existing = transcript_index_info(dataset)
    if existing and not overwrite:
        raise IndexConfigError(
            f"Dataset {dataset.name!r} already has a transcript index "
            f"(collection {existing['collection_name']!r}). Use sync to add new "
            "videos, or pass overwrite=True to rebuild it."
        )
    # Unknown models, empty datasets and unreachable Milvus fail before any work
    model_name = canonical_name(text_model, settings)
    segments = _live_segments(dataset, require=True)
    connection = guard.reachable(settings)
    embedder = load_text_embedder(model_name, settings)
    report(progress, 0.05, f"Embedding {len(segments)} transcript segments")
    vectors = _embed(embedder, segments, progress, 0.05, 0.8)
    dimension = len(vectors[0])
    name = collection_name or default_collection_name(dataset.name)
    replaced = existing["collection_name"] if existing else None
    report(progress, 0.85, f"Writing vectors to Milvus ({connection.kind})")
    created = set()  # a retry after a reconnect may find our partial collection
    record_collection(dataset, name, settings, connection, "transcripts")

    def write(connection):
        target = (name, dimension, metric, overwrite, created)
        _write_collection(connection, dataset, target, replaced, segments, vectors)

    _store_call(settings, f"writing transcript index {name!r}", write)
    info = {
        "text_model": embedder.name,
        "dimension": dimension,
        "metric": metric,
        "collection_name": name,
        "milvus_kind": connection.kind,
        "num_segments": len(segments),
    }
    _record(dataset, info)
    report(progress, 1.0, "Done")
    return info


def _write_collection(connection, dataset, target, replaced, segments, vectors):
    """Checks the target collection, drops the replaced one, writes the new
    one (dropped again if the writing fails)."""
    name, dimension, metric, overwrite, created = target
    client = connection.client()
    if name != replaced and name not in created:  # the replaced one may differ
        exists = check_existing(
            connection,
            name,
            dimension,
            metric,
            shape=TRANSCRIPT_SHAPE,
            what="this transcript index",
        )
        if exists and not overwrite:
            raise IndexConfigError(
                f"Milvus collection {name!r} already exists at "
                f"{connection.display_uri}. Choose another collection name, or "
                "pass overwrite=True to replace it."
            )
        if exists:
            _refuse_foreign_rows(client, connection, name, dataset.name)
    for old in {replaced, name} - {None}:
        if client.has_collection(old):
            client.drop_collection(old)
    if replaced is not None:  # gone now: no record may point at it
        dataset.info.pop(INFO_KEY, None)
        dataset.save()
    _create_collection(client, connection, name, dimension, metric)
    created.add(name)
    try:
        _insert(client, name, dataset.name, segments, vectors)
    except BaseException:
        _drop_quietly(client, name)
        raise


def _refuse_foreign_rows(client, connection, name, dataset_name):
    rows = client.query(
        name,
        filter=f"dataset != {json.dumps(dataset_name[:_ID_MAX])}",
        output_fields=["dataset"],
        limit=1,
    )
    if rows:
        raise IndexConfigError(
            f"Milvus collection {name!r} at {connection.display_uri} holds the "
            f"transcript index of dataset {rows[0]['dataset']!r}; overwriting it "
            "would delete that index. Choose another collection name. The "
            "existing collection was left untouched."
        )


def _drop_quietly(client, name):
    try:
        if client.has_collection(name):
            client.drop_collection(name)
    except Exception as e:  # the store is gone: cleanup finds it later
        logger.warning("Could not drop the partial collection %r: %s", name, e)


def _store_call(settings, doing, operation):
    """``operation(connection)`` through :func:`plugin.milvus.guard.call`;
    after a store restart the shared client is rebuilt and it runs again."""
    return guard.call(settings, doing, operation, recover=forget_milvus_client)


def sync_transcript_index(dataset, progress=None, settings=None):
    """Adds segments of newly imported videos and removes those of deleted videos.

    Existing vectors are not recomputed: only segments that are not in the
    collection (or whose text changed) are embedded.
    Returns ``{"added": n, "updated": u, "removed": m}``.
    """
    dataset = dataset._root_dataset
    info = _require_info(dataset)
    settings = Settings.coerce(settings)
    name = info["collection_name"]
    doing = f"syncing transcript index {name!r}"
    indexed = _store_call(
        settings, doing, lambda c: _indexed_texts(_open_collection(c, info), name)
    )
    segments = _live_segments(dataset, require=False)
    live_ids = {s["segment_id"] for s in segments}
    todo = [s for s in segments if indexed.get(s["segment_id"]) != _fit(s["text"])]
    stale = sorted(set(indexed) - live_ids)
    if todo:
        embedder = load_text_embedder(info["text_model"], settings)
        report(progress, 0.05, f"Embedding {len(todo)} new transcript segments")
        vectors = _embed(embedder, todo, progress, 0.05, 0.9)
        _check_dimension(info, vectors, embedder)

    def write(connection):
        client = _open_collection(connection, info)
        if todo:
            _insert(client, name, dataset.name, todo, vectors, upsert=True)
        if stale:
            client.delete(name, ids=stale)

    if todo or stale:
        _store_call(settings, doing, write)
    _record(dataset, {**info, "num_segments": len(segments)})
    report(progress, 1.0, "Done")
    updated = sum(1 for s in todo if s["segment_id"] in indexed)
    return {"added": len(todo) - updated, "updated": updated, "removed": len(stale)}


def delete_transcript_index(dataset, settings=None):
    """Drops the Milvus collection (if it is there) and forgets the settings."""
    dataset = dataset._root_dataset
    info = _require_info(dataset)
    name = info["collection_name"]

    def drop(connection):
        client = connection.client()
        if client.has_collection(name):
            client.drop_collection(name)

    _store_call(Settings.coerce(settings), f"deleting transcript index {name!r}", drop)
    dataset.info.pop(INFO_KEY, None)
    dataset.save()


def search_transcript(dataset, query, k=10, settings=None):
    """Returns the top-``k`` transcript segments for ``query``, best first.

    Args:
        dataset: the dataset (or a view, to search the videos in it)
        query: the search text (empty or very long text is refused)
        k (10): how many segments
        settings (None): a :class:`~plugin.settings.Settings`

    Returns:
        a list of :class:`TextHit`; ``frame_ids`` (and ``frames``, their
        fields) are the frames that carry the segment (plugin/video/alignment.py)
    """
    text = validate_query(query)
    require_k(k)
    info = _require_info(dataset._root_dataset)
    settings = Settings.coerce(settings)
    name = info["collection_name"]
    doing = f"searching transcript index {name!r}"
    _store_call(settings, doing, lambda c: _open_collection(c, info, load=False))
    video_ids = sorted(_video_ids(dataset))
    if not video_ids:
        return []
    embedder = load_text_embedder(info["text_model"], settings)
    vector = embedder.embed([text])[0]
    _check_dimension(info, [vector], embedder)

    def search(connection):
        return _open_collection(connection, info).search(
            name,
            data=[vector],
            limit=k,
            # Only videos that are still here (a deleted video's segments stay
            # until the next sync) and, for a view, in the view.
            filter=f"video_id in {json.dumps(video_ids)}",
            output_fields=_FIELDS,
            search_params=_search_params(info, k),
            consistency_level="Strong",
        )[0]

    rows = _store_call(settings, doing, search)
    hits = [_text_hit(row, rank) for rank, row in enumerate(rows)]
    _attach_frames(dataset, hits)
    return hits


def _attach_frames(samples, hits):
    """Each hit's frames: those carrying its segment (the rule of
    :mod:`plugin.video.alignment`), with their fields read once for all."""
    spans = [(hit.segment_id, hit.video_id, hit.start, hit.end) for hit in hits]
    frame_ids = segment_frame_ids(samples, spans)
    rows = read_frames(samples, {i for ids in frame_ids.values() for i in ids})
    for hit in hits:
        hit.frame_ids = [i for i in frame_ids[hit.segment_id] if i in rows]
        hit.frames = {i: Frame(i, **rows[i]) for i in hit.frame_ids}


def _text_hit(row, rank):
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


def _live_segments(dataset, require):
    """Segments with text of the videos that still have frames in ``dataset``.

    A video counts as deleted when its frames are gone, whether the importer
    removed it or a user deleted its frames in the App.
    """
    if require and len(dataset) == 0:
        raise InvalidInputError(
            f"Dataset {dataset.name!r} is empty: import videos first"
        )
    live = _video_ids(dataset)
    segments = [
        s
        for s in load_transcript_segments(dataset, video_ids=live)
        if (s["text"] or "").strip()
    ]
    if require and not segments:
        raise InvalidInputError(
            f"Dataset {dataset.name!r} has no transcript segments to index "
            f"(transcript status per video: {_statuses(dataset, live)})"
        )
    return segments


def _video_ids(samples):
    """The ids of the videos with frames in ``samples``."""
    if not samples.has_sample_field("video_id"):  # not imported videos
        return set()
    return {v for v in samples.distinct("video_id") if v}


def _statuses(dataset, live):
    records = load_video_records(dataset)
    counts = defaultdict(int)
    for video_id in live:
        record = records.get(video_id) or {}
        counts[record.get("status") or "no record"] += 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none"


def _embed(embedder, segments, progress, start, stop):
    vectors = []
    for first in range(0, len(segments), _EMBED_BATCH):
        batch = segments[first : first + _EMBED_BATCH]
        vectors.extend(embedder.embed([s["text"] for s in batch]))
        done = len(vectors) / len(segments)
        report(progress, start + (stop - start) * done, f"Embedded {len(vectors)}")
    return vectors


def _check_dimension(info, vectors, embedder):
    if len(vectors[0]) != info["dimension"]:
        raise IndexConfigError(
            f"Text model {embedder.name!r} now returns {len(vectors[0])}-d vectors; "
            f"the transcript index holds {info['dimension']}-d ones. Rebuild "
            "the index (overwrite=True)."
        )


def _fit(text):
    """``text`` cut to Milvus' VARCHAR limit without splitting a character."""
    data = (text or "").encode("utf-8")
    if len(data) <= TEXT_MAX_BYTES:
        return text or ""
    return data[:TEXT_MAX_BYTES].decode("utf-8", errors="ignore")


def _create_collection(client, connection, name, dimension, metric):
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field(
        "segment_id", DataType.VARCHAR, is_primary=True, max_length=_ID_MAX
    )
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
    schema.add_field("dataset", DataType.VARCHAR, max_length=_ID_MAX)
    schema.add_field("video_id", DataType.VARCHAR, max_length=_ID_MAX)
    schema.add_field("start", DataType.DOUBLE)
    schema.add_field("end", DataType.DOUBLE)
    schema.add_field("text", DataType.VARCHAR, max_length=TEXT_MAX_BYTES)
    index = client.prepare_index_params()
    index.add_index(field_name="vector", **_index_params(connection, metric))
    client.create_collection(name, schema=schema, index_params=index)


def _index_params(connection, metric):
    metric_type = MILVUS_METRICS[metric]
    if connection.kind in (LOCAL, LITE_FILE) or is_milvus_lite(connection.uri):
        # Created empty: FLAT; _insert refits it by size (lite_index)
        return lite_index.lite_index_params(metric_type, 0)
    params = {"M": 16, "efConstruction": 64}
    return {"index_type": "HNSW", "metric_type": metric_type, "params": params}


def _search_params(info, k):
    # HNSW needs ef >= k (newer servers reject less); FLAT ignores it.
    return {
        "metric_type": MILVUS_METRICS[info["metric"]],
        "params": {"ef": max(k, _MIN_EF)},
    }


def _insert(client, collection, dataset_name, segments, vectors, upsert=False):
    write = client.upsert if upsert else client.insert
    rows = [
        {
            "segment_id": s["segment_id"],
            "vector": vector,
            "dataset": dataset_name[:_ID_MAX],
            "video_id": s["video_id"],
            "start": float(s["start"]),
            "end": float(s["end"]),
            "text": _fit(s["text"]),
        }
        for s, vector in zip(segments, vectors)
    ]
    for first in range(0, len(rows), _INSERT_BATCH):
        write(collection, rows[first : first + _INSERT_BATCH])
    # Unflushed rows are searched by brute force (~1.2 s a query at 100k);
    # on Milvus Lite the index then follows the size (FLAT -> IVF_FLAT).
    lite_index.fit_collection(client, collection)


def _indexed_texts(client, collection, page=1000):
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


def _require_info(dataset):
    info = transcript_index_info(dataset)
    if not info:
        raise IndexNotFoundError(
            f"Dataset {dataset.name!r} has no transcript index. Build one with "
            "build_transcript_index() or the 'index_transcripts' operator."
        )
    return info


def _open_collection(connection, info, load=True):
    client = connection.client()
    if not client.has_collection(info["collection_name"]):
        raise IndexNotFoundError(
            f"The transcript collection {info['collection_name']!r} is not in "
            f"Milvus at {connection.display_uri}; the index was built on a "
            f"{info['milvus_kind']!r} Milvus store. Pass that store's URI "
            "(or set VRAG_MILVUS_URI), or rebuild the index with overwrite=True."
        )
    if load:  # a restarted Milvus (Lite) server keeps collections released
        client.load_collection(info["collection_name"])
    return client


def _record(dataset, info):
    dataset.info[INFO_KEY] = info
    dataset.save()
