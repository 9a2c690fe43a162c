"""Text indexes: rows of text embedded into a Milvus collection of their own.

What the transcript index and the on-screen text index share. Their rows are
not samples (a transcript segment or a screen-text span covers several
frames), so they do not go through fiftyone-brain: each index is a pymilvus
collection, one row per piece of text::

    segment_id (VARCHAR pk) | vector | dataset | video_id | start | end | text

A :class:`TextSource` says what is indexed: where its rows come from, how a
hit maps back to frames, and where its settings are recorded in
``dataset.info`` (text model, dimension, metric, collection, Milvus kind;
never credentials), so that search and sync embed with the model the index
was built with (the collection calls: :mod:`plugin.retrieval.text_collection`).
:func:`text_sources` lists every kind of text index (what the store doctor
and migrate examine and copy). Every store call goes through
:mod:`plugin.milvus.guard`: a dead store fails fast, a restarted one is
reconnected; a build checks an existing collection's shape and owner before
it writes, and drops what it created if the writing fails.
"""

import dataclasses
import json
from collections.abc import Callable

from plugin.cleanup import record_collection
from plugin.errors import IndexConfigError, IndexNotFoundError, InvalidInputError
from plugin.inputs import validate_query
from plugin.milvus import guard
from plugin.milvus.schema import check_existing
from plugin.models.text import canonical_name, load_text_embedder
from plugin.progress import report
from plugin.retrieval.frame_index import MILVUS_METRICS
from plugin.retrieval.frame_search import require_k
from plugin.retrieval.text_collection import (
    FIELDS,
    TEXT_SHAPE,
    create_collection,
    current_search_params,
    drop_quietly,
    embed_rows,
    fit_text,
    indexed_texts,
    insert_rows,
    refuse_foreign_rows,
    store_call,
    text_hit,
)
from plugin.settings import Settings


@dataclasses.dataclass(frozen=True)
class TextSource:
    """One kind of text index.

    Attributes:
        what: its name in messages ("transcript", "on-screen text")
        items: what its rows are, in messages ("transcript segments")
        info_key: where ``dataset.info`` records its settings
        collection_suffix: default collection ``vrag_<dataset>_<suffix>``
            (also its kind in the cleanup ledger)
        builder: what builds it, for messages
        rows: ``rows(dataset, video_ids)``: dicts ``{segment_id, video_id,
            start, end, text}`` of those videos
        attach_frames: ``attach_frames(samples, hits)`` sets each hit's
            ``frame_ids`` and ``frames``
        nothing_to_index: ``(dataset, video_ids) -> reason`` when there are
            no rows to build from
    """

    what: str
    items: str
    info_key: str
    collection_suffix: str
    builder: str
    rows: Callable
    attach_frames: Callable
    nothing_to_index: Callable

    def default_collection_name(self, dataset_name):
        raw = f"vrag_{dataset_name}_{self.collection_suffix}"
        return "".join(c if c.isalnum() else "_" for c in raw)[:255]  # Milvus' limit

    def info(self, dataset):
        """The recorded settings of ``dataset``'s index, or None."""
        return (dataset._root_dataset.info or {}).get(self.info_key)

    def require_info(self, dataset):
        info = self.info(dataset)
        if not info:
            raise IndexNotFoundError(
                f"Dataset {dataset.name!r} has no {self.what} index. Build one "
                f"with {self.builder}."
            )
        return info

    @property
    def kind(self):
        """Its kind in the store doctor's report and the cleanup ledger."""
        return self.collection_suffix

    def store_entry(self, dataset):
        """What the store doctor examines and migrate copies of ``dataset``'s
        index: ``{"kind", "key", "collection", "metric"}`` (``key``: where
        ``dataset.info`` records it), or None without an index."""
        info = self.info(dataset)
        if not info:
            return None
        return {
            "kind": self.kind,
            "key": self.info_key,
            "collection": info["collection_name"],
            "metric": info["metric"],
        }

    def moved_to(self, dataset, connection):
        """Records that ``dataset``'s index now lives on ``connection``'s
        store (after a verified migration)."""
        info = self.info(dataset)
        if info:
            self._record(
                dataset._root_dataset, {**info, "milvus_kind": connection.kind}
            )

    def build(
        self,
        dataset,
        text_model=None,
        collection_name=None,
        overwrite=False,
        progress=None,
        metric="cosine",
        settings=None,
    ):
        """Embeds all rows of ``dataset`` into a new Milvus collection.

        Args:
            dataset: a FiftyOne dataset of imported video frames
            text_model (None): ``"minilm"`` (default) or ``"openai:<model>"``,
                see :mod:`plugin.models.text`
            collection_name (None): default derived from the dataset name
            overwrite (False): replace the dataset's existing index
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
        existing = self.info(dataset)
        if existing and not overwrite:
            raise IndexConfigError(
                f"Dataset {dataset.name!r} already has a {self.what} index "
                f"(collection {existing['collection_name']!r}). Use sync to add "
                "new videos, or pass overwrite=True to rebuild it."
            )
        # Unknown models, empty datasets, unreachable Milvus fail before any work
        model_name = canonical_name(text_model, settings)
        rows = self._live_rows(dataset, require=True)
        connection = guard.reachable(settings)
        embedder = load_text_embedder(model_name, settings)
        report(progress, 0.05, f"Embedding {len(rows)} {self.items}")
        vectors = embed_rows(embedder, rows, progress, 0.05, 0.8)
        dimension = len(vectors[0])
        name = collection_name or self.default_collection_name(dataset.name)
        replaced = existing["collection_name"] if existing else None
        report(progress, 0.85, f"Writing vectors to Milvus ({connection.kind})")
        created = set()  # a retry after a reconnect may find our partial collection
        record_collection(dataset, name, settings, connection, self.collection_suffix)

        def write(connection):
            target = (name, dimension, metric, overwrite, created)
            self._write_collection(connection, dataset, target, replaced, rows, vectors)

        store_call(settings, f"writing {self.what} index {name!r}", write)
        info = {
            "text_model": embedder.name,
            "dimension": dimension,
            "metric": metric,
            "collection_name": name,
            "milvus_kind": connection.kind,
            "num_segments": len(rows),
        }
        self._record(dataset, info)
        report(progress, 1.0, "Done")
        return info

    def sync(self, dataset, progress=None, settings=None):
        """Embeds rows that are new or whose text changed, removes those of
        deleted videos; existing vectors are not recomputed. Returns
        ``{"added": n, "updated": u, "removed": m}``."""
        dataset = dataset._root_dataset
        info = self.require_info(dataset)
        settings = Settings.coerce(settings)
        name = info["collection_name"]
        doing = f"syncing {self.what} index {name!r}"
        indexed = store_call(
            settings,
            doing,
            lambda c: indexed_texts(self._open(c, info), name),
        )
        rows = self._live_rows(dataset, require=False)
        live_ids = {r["segment_id"] for r in rows}
        todo = [r for r in rows if indexed.get(r["segment_id"]) != fit_text(r["text"])]
        stale = sorted(set(indexed) - live_ids)
        if todo:
            embedder = load_text_embedder(info["text_model"], settings)
            report(progress, 0.05, f"Embedding {len(todo)} new {self.items}")
            vectors = embed_rows(embedder, todo, progress, 0.05, 0.9)
            self._check_dimension(info, vectors, embedder)

        def write(connection):
            client = self._open(connection, info)
            if todo:
                insert_rows(client, name, dataset.name, todo, vectors, upsert=True)
            if stale:
                client.delete(name, ids=stale)

        if todo or stale:
            store_call(settings, doing, write)
        self._record(dataset, {**info, "num_segments": len(rows)})
        report(progress, 1.0, "Done")
        updated = sum(1 for r in todo if r["segment_id"] in indexed)
        return {"added": len(todo) - updated, "updated": updated, "removed": len(stale)}

    def delete(self, dataset, settings=None):
        """Drops the collection (if it is there) and forgets the settings."""
        dataset = dataset._root_dataset
        info = self.require_info(dataset)
        name = info["collection_name"]

        def drop(connection):
            client = connection.client()
            if client.has_collection(name):
                client.drop_collection(name)

        store_call(
            Settings.coerce(settings), f"deleting {self.what} index {name!r}", drop
        )
        dataset.info.pop(self.info_key, None)
        dataset.save()

    def search(self, dataset, query, k=10, settings=None):
        """The top-``k`` rows for ``query``, best first, as
        :class:`~plugin.retrieval.hits.TextHit` with their frames.

        ``dataset`` may be a view: only the videos with frames in it count.
        """
        text = validate_query(query)
        require_k(k)
        info = self.require_info(dataset._root_dataset)
        settings = Settings.coerce(settings)
        name = info["collection_name"]
        doing = f"searching {self.what} index {name!r}"
        store_call(settings, doing, lambda c: self._open(c, info, load=False))
        live = sorted(video_ids(dataset))
        if not live:
            return []
        embedder = load_text_embedder(info["text_model"], settings)
        vector = embedder.embed([text])[0]
        self._check_dimension(info, [vector], embedder)

        def search(connection):
            client = self._open(connection, info)
            params = current_search_params(client, connection, name, info["metric"], k)
            return client.search(
                name,
                data=[vector],
                limit=k,
                # Only videos still here (a deleted video's rows stay until
                # the next sync) and, for a view, in the view.
                filter=f"video_id in {json.dumps(live)}",
                output_fields=FIELDS,
                search_params=params,
                consistency_level="Strong",
            )[0]

        found = store_call(settings, doing, search)
        hits = [text_hit(row, rank) for rank, row in enumerate(found)]
        self.attach_frames(dataset, hits)
        return hits

    # -- helpers --------------------------------------------------------------

    def _write_collection(self, connection, dataset, target, replaced, rows, vectors):
        """Checks the target collection, drops the replaced one, writes the
        new one (dropped again if the writing fails)."""
        name, dimension, metric, overwrite, created = target
        client = connection.client()
        if name != replaced and name not in created:  # the replaced one may differ
            exists = check_existing(
                connection,
                name,
                dimension,
                metric,
                shape=TEXT_SHAPE,
                what=f"this {self.what} index",
            )
            if exists and not overwrite:
                raise IndexConfigError(
                    f"Milvus collection {name!r} already exists at "
                    f"{connection.display_uri}. Choose another collection name, "
                    "or pass overwrite=True to replace it."
                )
            if exists:
                refuse_foreign_rows(client, connection, name, dataset.name, self.what)
        for old in {replaced, name} - {None}:
            if client.has_collection(old):
                client.drop_collection(old)
        if replaced is not None:  # gone now: no record may point at it
            dataset.info.pop(self.info_key, None)
            dataset.save()
        create_collection(client, connection, name, dimension, metric)
        created.add(name)
        try:
            insert_rows(client, name, dataset.name, rows, vectors)
        except BaseException:
            drop_quietly(client, name)
            raise

    def _live_rows(self, dataset, require):
        """Rows with text of the videos that still have frames in ``dataset``.

        A video counts as deleted when its frames are gone, whether the
        importer removed it or a user deleted its frames in the App.
        """
        if require and len(dataset) == 0:
            raise InvalidInputError(
                f"Dataset {dataset.name!r} is empty: import videos first"
            )
        live = video_ids(dataset)
        rows = [r for r in self.rows(dataset, live) if (r["text"] or "").strip()]
        if require and not rows:
            raise InvalidInputError(
                f"Dataset {dataset.name!r} has no {self.items} to index "
                f"({self.nothing_to_index(dataset, live)})"
            )
        return rows

    def _check_dimension(self, info, vectors, embedder):
        if len(vectors[0]) != info["dimension"]:
            raise IndexConfigError(
                f"Text model {embedder.name!r} now returns {len(vectors[0])}-d "
                f"vectors; the {self.what} index holds {info['dimension']}-d "
                "ones. Rebuild the index (overwrite=True)."
            )

    def _open(self, connection, info, load=True):
        client = connection.client()
        if not client.has_collection(info["collection_name"]):
            raise IndexNotFoundError(
                f"The {self.what} collection {info['collection_name']!r} is not "
                f"in Milvus at {connection.display_uri}; the index was built on "
                f"a {info['milvus_kind']!r} Milvus store. Pass that store's URI "
                "(or set VRAG_MILVUS_URI), or rebuild the index with "
                "overwrite=True."
            )
        if load:  # a restarted Milvus (Lite) server keeps collections released
            client.load_collection(info["collection_name"])
        return client

    def _record(self, dataset, info):
        dataset.info[self.info_key] = info
        dataset.save()


def video_ids(samples):
    """The ids of the videos with frames in ``samples``."""
    if not samples.has_sample_field("video_id"):  # not imported videos
        return set()
    return {v for v in samples.distinct("video_id") if v}


def text_sources():
    """Every kind of text index, in one place: the store doctor examines,
    and migrate copies, each one a dataset has. A new text index is a
    :class:`TextSource` listed here."""
    from plugin.retrieval.screen_text_index import SCREEN_TEXT
    from plugin.retrieval.transcript_index import TRANSCRIPTS

    return (TRANSCRIPTS, SCREEN_TEXT)
