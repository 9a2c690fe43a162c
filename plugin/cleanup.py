"""Cleanup that follows the user's deletions: frames on disk, Milvus collections.

FiftyOne's own ``fo.delete_dataset`` knows nothing of what the workbench
keeps outside MongoDB: the frame JPEGs (``<home>/frames/<dataset>/``) and
the Milvus collections of its frame and text indexes stay behind. Two ways
out:

- :func:`delete_dataset` (ours) removes a dataset with everything it owns:
  its indexes' collections, its frame folders, its companion video dataset.
- :func:`find_orphans` / :func:`remove_orphans` (``python -m plugin.cleanup
  [--dry-run]``) find what no existing dataset owns any more:

  * collections named ``vrag_<dataset>_*`` (our default names) or recorded
    in the ledger, that no existing dataset's index uses and whose dataset
    is gone;
  * frame folders ``<home>/frames/<name>`` of datasets that are gone, and
    video folders inside an existing dataset's folder that no video record
    or frame sample uses (older than a grace period: an import writes its
    frames before its record).

The ledger (a FiftyOne execution store not scoped to any dataset, so it
outlives them) records each collection a build creates, with its dataset's
id: a custom collection name is found too. Only the store the settings name
is looked at; collections of other stores are left alone.
"""

import argparse
import dataclasses
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import fiftyone as fo

from plugin.errors import InvalidInputError, StoreUnreachableError, VideoRagError
from plugin.milvus import LOCAL, guard
from plugin.milvus.schema import FRAME_SHAPE, TRANSCRIPT_SHAPE, fields_of
from plugin.settings import Settings

logger = logging.getLogger(__name__)

LEDGER = "vrag_milvus_collections"
PREFIX = "vrag_"
GRACE_S = 3600.0  # video folders younger than this may belong to a running import
_OURS = (FRAME_SHAPE, TRANSCRIPT_SHAPE)  # the shapes we ever create


@dataclasses.dataclass
class Orphans:
    """What :func:`find_orphans` found (or :func:`remove_orphans` removed)."""

    store: str = ""
    collections: list = dataclasses.field(default_factory=list)
    frame_dirs: list = dataclasses.field(default_factory=list)

    def __bool__(self):
        return bool(self.collections or self.frame_dirs)

    def to_dict(self):
        return dataclasses.asdict(self)

    def lines(self, verb="orphan"):
        out = [
            f"{verb} collection {name!r} at {self.store}" for name in self.collections
        ]
        out += [f"{verb} frame folder {path}" for path in self.frame_dirs]
        return out or ["nothing to clean up"]


# -- the ledger ---------------------------------------------------------------


def _ledger():
    from fiftyone.operators.store import ExecutionStore

    return ExecutionStore.create(LEDGER)  # global: outlives the datasets


def store_label(settings, connection):
    """Names a store stably: the managed local store moves between ports."""
    if connection.kind == LOCAL:
        return f"local:{settings.home_path}"
    return connection.display_uri


def record_collection(dataset, collection_name, settings, connection, kind):
    """Notes that ``dataset`` owns ``collection_name`` (called by the builds)."""
    try:
        _ledger().set(
            f"{store_label(settings, connection)}|{collection_name}",
            {
                "collection": collection_name,
                "dataset": dataset.name,
                "dataset_id": str(dataset._doc.id),
                "kind": kind,
                "at": time.time(),
            },
        )
    except Exception as e:  # the ledger is a help, never a reason to fail a build
        logger.warning("Could not record collection %r: %s", collection_name, e)


def _ledger_entries(label):
    store = _ledger()
    entries = {}
    for key in store.list_keys():
        if key.startswith(f"{label}|"):
            entries[key] = store.get(key) or {}
    return entries


# -- what exists --------------------------------------------------------------


def _datasets():
    """``{name: dataset}`` of every existing dataset."""
    found = {}
    for name in fo.list_datasets():
        try:
            found[name] = fo.load_dataset(name)
        except Exception as e:  # deleted meanwhile, or unreadable: skip it
            logger.info("Skipping dataset %r: %s", name, e)
    return found


def collections_of(dataset):
    """The Milvus collections ``dataset``'s indexes use: frame indexes
    (brain runs on Milvus) and text indexes (records in ``dataset.info``)."""
    names = set()
    for key in dataset.list_brain_runs(type="similarity"):
        config = dataset.get_brain_info(key).config
        if getattr(config, "method", None) == "milvus" and config.collection_name:
            names.add(config.collection_name)
    for value in (dataset.info or {}).values():
        if isinstance(value, dict) and isinstance(value.get("collection_name"), str):
            names.add(value["collection_name"])
    return names


def _sanitized(text):
    return "".join(c if c.isalnum() else "_" for c in text)


def _prefix_owner(collection, names):
    """The existing dataset whose default collection names start like
    ``collection`` (``vrag_<dataset>_``), if any."""
    for name in names:
        if collection.startswith(f"{PREFIX}{_sanitized(name)}_"):
            return name
    return None


# -- finding and removing orphans ---------------------------------------------


def find_orphans(settings=None, grace_s=GRACE_S):
    """What no existing dataset owns any more (see the module doc); nothing
    is removed. Raises :class:`StoreUnreachableError` if the store is down."""
    settings = Settings.coerce(settings)
    datasets = _datasets()
    in_use = set().union(*(collections_of(d) for d in datasets.values()))
    ids = {str(d._doc.id) for d in datasets.values()}

    def look(connection):
        label = store_label(settings, connection)
        recorded = {
            e.get("collection"): e
            for e in _ledger_entries(label).values()
            if e.get("dataset_id") not in ids
        }
        found = []
        client = connection.client()
        for name in sorted(client.list_collections()):
            if name in in_use:
                continue
            ours = name in recorded or (
                name.startswith(PREFIX) and _prefix_owner(name, datasets) is None
            )
            if ours and _shape(client, name) in _OURS:
                found.append(name)
        return Orphans(connection.display_uri, found)

    orphans = guard.call(settings, "looking for orphan collections", look)
    orphans.frame_dirs = [
        str(p) for p in _orphan_frame_dirs(settings, datasets, grace_s)
    ]
    return orphans


def _shape(client, name):
    return fields_of(client.describe_collection(name))


def _orphan_frame_dirs(settings, datasets, grace_s):
    root = settings.home_path / "frames"
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        dataset = datasets.get(folder.name)
        if dataset is None:
            found.append(folder)
        else:
            found += _orphan_video_dirs(folder, dataset, grace_s)
    return found


def _orphan_video_dirs(folder, dataset, grace_s):
    from plugin.video.transcripts import load_video_records

    records = load_video_records(dataset)
    used = {
        Path(r["frames_dir"]).name
        for r in records.values()
        if r and r.get("frames_dir")
    }
    if dataset.has_sample_field("video_id"):
        used |= {v for v in dataset.distinct("video_id") if v}
    old = time.time() - grace_s
    return [
        p
        for p in sorted(folder.iterdir())
        if p.is_dir() and p.name not in used and p.stat().st_mtime < old
    ]


def remove_orphans(orphans, settings=None):
    """Removes what :func:`find_orphans` found; returns what was removed."""
    settings = Settings.coerce(settings)
    removed = Orphans(orphans.store)

    def drop(connection):
        client = connection.client()
        for name in orphans.collections:
            if client.has_collection(name) and _shape(client, name) in _OURS:
                client.drop_collection(name)
                removed.collections.append(name)
        _forget_ledger(settings, connection, orphans.collections)

    if orphans.collections:
        guard.call(settings, "removing orphan collections", drop)
    for path in orphans.frame_dirs:
        shutil.rmtree(path, ignore_errors=True)
        if not Path(path).exists():
            removed.frame_dirs.append(path)
    return removed


def _forget_ledger(settings, connection, names):
    label = store_label(settings, connection)
    store = _ledger()
    for name in names:
        store.delete(f"{label}|{name}")


# -- our delete_dataset -------------------------------------------------------


def delete_dataset(name, settings=None, force=False):
    """Deletes dataset ``name`` with its indexes' Milvus collections, its
    frame folders and its companion video dataset.

    The store is checked first: if it cannot be reached nothing is deleted
    (:class:`StoreUnreachableError`), unless ``force`` (the collections are
    then left for ``python -m plugin.cleanup``). Collections another existing
    dataset also uses are kept.

    Returns:
        a dict: ``dataset``, ``collections`` dropped, ``frame_dirs``
        removed, ``datasets`` deleted
    """
    from plugin.video.transcripts import load_video_records

    if not isinstance(name, str) or not fo.dataset_exists(name):
        raise InvalidInputError(f"There is no dataset named {name!r}")
    settings = Settings.coerce(settings)
    dataset = fo.load_dataset(name)
    companions = _companions(dataset)
    others = {n: d for n, d in _datasets().items() if n not in {name, *companions}}
    shared = set().union(*(collections_of(d) for d in others.values()))
    collections = sorted(collections_of(dataset) - shared)
    folders = {settings.home_path / "frames" / name}
    for record in load_video_records(dataset).values():
        if record and record.get("frames_dir"):
            folders.add(Path(record["frames_dir"]))
    dropped = _drop_for_delete(dataset, collections, settings, force)
    deleted = []
    for dataset_name in (*companions, name):
        if fo.dataset_exists(dataset_name):
            fo.delete_dataset(dataset_name)
            deleted.append(dataset_name)
    removed = []
    for folder in sorted(folders):
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(str(folder))
    return {
        "dataset": name,
        "datasets": deleted,
        "collections": dropped,
        "frame_dirs": removed,
    }


def _companions(dataset):
    from plugin.video.videos import VIDEOS_LINK

    linked = (dataset.info or {}).get(VIDEOS_LINK)
    return [linked] if isinstance(linked, str) and fo.dataset_exists(linked) else []


def _drop_for_delete(dataset, collections, settings, force):
    if not collections:
        return []

    def drop(connection):
        client = connection.client()
        done = []
        for collection in collections:
            if (
                client.has_collection(collection)
                and _shape(client, collection) in _OURS
            ):
                client.drop_collection(collection)
                done.append(collection)
        _forget_ledger(settings, connection, done)
        return done

    try:
        return guard.call(settings, f"deleting the indexes of {dataset.name!r}", drop)
    except StoreUnreachableError as e:
        if not force:
            raise StoreUnreachableError(
                f"{e.message} Nothing was deleted. Start the store and try again, "
                "or pass force=True (--force) to delete the dataset now and "
                "remove its collections later with `python -m plugin.cleanup`."
            ) from None
        logger.warning(
            "Deleting %r without its collections: %s", dataset.name, e.message
        )
        return []


# -- command line -------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m plugin.cleanup",
        description="Remove the frames and Milvus collections of deleted datasets.",
    )
    parser.add_argument("--dry-run", action="store_true", help="only list them")
    parser.add_argument(
        "--grace-minutes",
        type=float,
        default=GRACE_S / 60,
        help="keep unused video frame folders younger than this (a running import)",
    )
    parser.add_argument("--milvus-uri", help="the store (default: the settings')")
    parser.add_argument(
        "--delete-dataset", metavar="NAME", help="delete this dataset and all it owns"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="with --delete-dataset: even if Milvus is down",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    settings = Settings.load(milvus_uri=args.milvus_uri)
    try:
        if args.delete_dataset:
            result = delete_dataset(args.delete_dataset, settings, force=args.force)
            print(json.dumps(result, indent=2))
            return 0
        orphans = find_orphans(settings, grace_s=args.grace_minutes * 60)
        if not args.dry_run:
            orphans = remove_orphans(orphans, settings)
        verb = "orphan" if args.dry_run else "removed"
        print(
            json.dumps(orphans.to_dict(), indent=2)
            if args.json
            else "\n".join(orphans.lines(verb))
        )
    except VideoRagError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
