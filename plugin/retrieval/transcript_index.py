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
from collections import defaultdict

from plugin.errors import IndexConfigError, IndexNotFoundError, InvalidInputError
from plugin.inputs import require_int, validate_query
from plugin.milvus import LITE_FILE, LOCAL, is_milvus_lite
from plugin.models.text import canonical_name, load_text_embedder
from plugin.progress import report
from plugin.retrieval.frame_index import MILVUS_METRICS, check_collection_compatible
from plugin.retrieval.hits import Frame, TextHit, read_frames
from plugin.settings import Settings
from plugin.video.alignment import segment_frame_ids
from plugin.video.transcripts import load_transcript_segments, load_video_records

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
    connection = settings.milvus()
    client = connection.client()
    embedder = load_text_embedder(model_name, settings)
    report(progress, 0.05, f"Embedding {len(segments)} transcript segments")
    vectors = _embed(embedder, segments, progress, 0.05, 0.8)
    dimension = len(vectors[0])
    name = collection_name or default_collection_name(dataset.name)
    replaced = existing["collection_name"] if existing else None
    if name != replaced:  # the collection being replaced may differ
        check_collection_compatible(connection, name, dimension, metric)
        if client.has_collection(name) and not overwrite:
            raise IndexConfigError(
                f"Milvus collection {name!r} already exists at "
                f"{connection.display_uri}. Choose another collection name, or "
                "pass overwrite=True to replace it."
            )
    for old in {replaced, name} - {None}:
        if client.has_collection(old):
            client.drop_collection(old)
    report(progress, 0.85, f"Writing vectors to Milvus ({connection.kind})")
    _create_collection(client, connection, name, dimension, metric)
    _insert(client, name, dataset.name, segments, vectors)
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


def sync_transcript_index(dataset, progress=None, settings=None):
    """Adds segments of newly imported videos and removes those of deleted videos.

    Existing vectors are not recomputed: only segments that are not in the
    collection (or whose text changed) are embedded.
    Returns ``{"added": n, "updated": u, "removed": m}``.
    """
    dataset = dataset._root_dataset
    info = _require_info(dataset)
    settings = Settings.coerce(settings)
    client = _open_collection(settings.milvus(), info)
    indexed = _indexed_texts(client, info["collection_name"])
    segments = _live_segments(dataset, require=False)
    live_ids = {s["segment_id"] for s in segments}
    todo = [s for s in segments if indexed.get(s["segment_id"]) != _fit(s["text"])]
    stale = sorted(set(indexed) - live_ids)
    if todo:
        embedder = load_text_embedder(info["text_model"], settings)
        report(progress, 0.05, f"Embedding {len(todo)} new transcript segments")
        vectors = _embed(embedder, todo, progress, 0.05, 0.9)
        _check_dimension(info, vectors, embedder)
        _insert(
            client, info["collection_name"], dataset.name, todo, vectors, upsert=True
        )
    if stale:
        client.delete(info["collection_name"], ids=stale)
    _record(dataset, {**info, "num_segments": len(segments)})
    report(progress, 1.0, "Done")
    updated = sum(1 for s in todo if s["segment_id"] in indexed)
    return {"added": len(todo) - updated, "updated": updated, "removed": len(stale)}


def delete_transcript_index(dataset, settings=None):
    """Drops the Milvus collection (if it is there) and forgets the settings."""
    dataset = dataset._root_dataset
    info = _require_info(dataset)
    client = Settings.coerce(settings).milvus().client()
    if client.has_collection(info["collection_name"]):
        client.drop_collection(info["collection_name"])
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
    require_int("k", k)
    info = _require_info(dataset._root_dataset)
    settings = Settings.coerce(settings)
    client = _open_collection(settings.milvus(), info)
    video_ids = sorted(_video_ids(dataset))
    if not video_ids:
        return []
    embedder = load_text_embedder(info["text_model"], settings)
    vector = embedder.embed([text])[0]
    _check_dimension(info, [vector], embedder)
    rows = client.search(
        info["collection_name"],
        data=[vector],
        limit=k,
        # Only videos that are still here (a deleted video's segments stay
        # until the next sync) and, for a view, in the view.
        filter=f"video_id in {json.dumps(video_ids)}",
        output_fields=_FIELDS,
        search_params=_search_params(info, k),
        consistency_level="Strong",
    )[0]
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
        return {"index_type": "FLAT", "metric_type": metric_type, "params": {}}
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


def _open_collection(connection, info):
    client = connection.client()
    if not client.has_collection(info["collection_name"]):
        raise IndexNotFoundError(
            f"The transcript collection {info['collection_name']!r} is not in "
            f"Milvus at {connection.display_uri}; the index was built on a "
            f"{info['milvus_kind']!r} Milvus store. Pass that store's URI "
            "(or set VRAG_MILVUS_URI), or rebuild the index with overwrite=True."
        )
    # A restarted Milvus (Lite) server keeps collections released
    client.load_collection(info["collection_name"])
    return client


def _record(dataset, info):
    dataset.info[INFO_KEY] = info
    dataset.save()
