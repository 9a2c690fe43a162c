"""Relevance judgments: which frames (or time spans) answer which query.

Stored with the dataset, in FiftyOne's execution store ``vrag_lab`` scoped
to the dataset (deleted with it), one key per query::

    {"query": "a horse in a field",
     "relevant": [target, ...],       # what answers the query
     "not_relevant": [target, ...]}   # marked wrong: never counted relevant

A target is one of:

- ``{"sample_id": "..."}``: a frame (what marking in the App stores)
- ``{"video": "talk.mp4", "start": 12.0, "end": 40.0}``: a time span of a
  video, named by its ``video_id``, file name or title; the frames with
  ``start <= timestamp < end`` are relevant, and a hit inside the span counts
  for the "hit inside a relevant time span" metric
- ``{"field": "ground_truth.label", "value": "cat"}``: every frame (or
  image) whose field has that value (e.g. CIFAR-10 class prompts)

Files (``import_judgments``): JSON ``{"name", "description", "queries": [
{"query", "relevant", "not_relevant"}]}``, or TSV with a header row and the
columns ``query``, then per row ONE target (``sample_id``; or ``video``,
``start``, ``end``; or ``field``, ``value``) and an optional ``relevant``
(1, default, or 0).
"""

import csv
import dataclasses
import hashlib
import json
import os
from pathlib import Path

from fiftyone import ViewField as F
from fiftyone.operators.store import ExecutionStore

from plugin.errors import InvalidInputError
from plugin.inputs import require_sample_ids, require_text, validate_query

STORE_NAME = "vrag_lab"
_PREFIX = "judgment:"
REPORT_KEY = "last_report"  # plugin/lab/evaluate.py


def lab_store(dataset):
    """The execution store of ``dataset``'s lab (judgments, last report)."""
    return ExecutionStore.create(STORE_NAME, dataset_id=dataset._root_dataset._doc.id)


def query_key(query):
    """The store key of a query (its text, case and spacing ignored)."""
    norm = " ".join(query.lower().split())
    return _PREFIX + hashlib.sha1(norm.encode("utf-8")).hexdigest()[:16]


def load_judgments(dataset):
    """All judgments of ``dataset``: ``[{query, relevant, not_relevant}]``,
    sorted by query."""
    store = lab_store(dataset)
    keys = [k for k in store.list_keys() if k.startswith(_PREFIX)]
    entries = [store.get(k) for k in keys]
    return sorted((e for e in entries if e), key=lambda e: e["query"].lower())


def save_judgment(dataset, entry, merge=True):
    """Stores one query's judgment (merged with the stored one by default);
    returns what is stored."""
    entry = check_entry(entry)
    store = lab_store(dataset)
    key = query_key(entry["query"])
    old = store.get(key) if merge else None
    if old:
        entry = _merged(old, entry)
    store.set(key, entry)
    return entry


def delete_judgment(dataset, query):
    lab_store(dataset).delete(query_key(query))


def mark(dataset, query, sample_ids, relevant=True):
    """Marks frames relevant (or not relevant) to ``query``; a frame marked
    one way is taken out of the other list. Returns the stored judgment."""
    query = validate_query(query)
    ids = require_sample_ids(sample_ids, "frame ids")
    if not ids:
        raise InvalidInputError("Select the frames to mark first")
    store = lab_store(dataset)
    key = query_key(query)
    entry = store.get(key) or {"query": query, "relevant": [], "not_relevant": []}
    add, drop = (
        ("relevant", "not_relevant") if relevant else ("not_relevant", "relevant")
    )
    marked = {i for i in ids}
    entry[drop] = [t for t in entry[drop] if t.get("sample_id") not in marked]
    have = {t.get("sample_id") for t in entry[add]}
    entry[add] += [{"sample_id": i} for i in ids if i not in have]
    store.set(key, entry)
    return entry


def import_judgments(dataset, path, replace=False):
    """Reads judgments from a JSON or TSV file (see the module docstring)
    into ``dataset``'s store; ``replace`` drops the stored ones first.
    Returns the number of queries read."""
    entries = read_judgments_file(path)
    if replace:
        for entry in load_judgments(dataset):
            delete_judgment(dataset, entry["query"])
    for entry in entries:
        save_judgment(dataset, entry, merge=not replace)
    return len(entries)


def read_judgments_file(path):
    """The judgments in a JSON or TSV file, checked."""
    path = Path(os.path.expanduser(str(path)))
    if not path.is_file():
        raise InvalidInputError(f"No judgments file at {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".tsv", ".txt"):
        entries = _from_tsv(text.splitlines())
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidInputError(f"{path.name} is not valid JSON: {e}") from None
        entries = data.get("queries", []) if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise InvalidInputError(f"{path.name} holds no judged queries")
    return [check_entry(e) for e in entries]


def _from_tsv(lines):
    rows = list(csv.DictReader(lines, delimiter="\t"))
    if not rows or "query" not in rows[0]:
        raise InvalidInputError("A TSV of judgments needs a header row with 'query'")
    entries = {}
    for n, row in enumerate(rows, 2):
        query = (row.get("query") or "").strip()
        entry = entries.setdefault(
            query_key(query) if query else n,
            {"query": query, "relevant": [], "not_relevant": []},
        )
        target = _tsv_target(row, n)
        relevant = (row.get("relevant") or "1").strip() not in ("0", "false", "no")
        entry["relevant" if relevant else "not_relevant"].append(target)
    return list(entries.values())


def _tsv_target(row, n):
    cell = {k: (v or "").strip() for k, v in row.items() if k}
    if cell.get("sample_id"):
        return {"sample_id": cell["sample_id"]}
    if cell.get("video"):
        try:
            return {
                "video": cell["video"],
                "start": float(cell["start"]),
                "end": float(cell["end"]),
            }
        except (KeyError, ValueError):
            raise InvalidInputError(
                f"Row {n}: a video span needs start and end"
            ) from None
    if cell.get("field"):
        return {"field": cell["field"], "value": cell.get("value", "")}
    raise InvalidInputError(f"Row {n}: no target (sample_id, video or field)")


def check_entry(entry):
    """One judgment, checked and normalised (raises InvalidInputError)."""
    if not isinstance(entry, dict):
        raise InvalidInputError(f"A judgment is an object with a query, not {entry!r}")
    query = require_text(entry.get("query"), "judged query", 1000)
    return {
        "query": query,
        "relevant": [_check_target(t, query) for t in entry.get("relevant") or []],
        "not_relevant": [
            _check_target(t, query) for t in entry.get("not_relevant") or []
        ],
    }


def _check_target(target, query):
    where = f"Judgment of {query!r}"
    if not isinstance(target, dict):
        raise InvalidInputError(f"{where}: a target is an object, not {target!r}")
    if "sample_id" in target:
        require_sample_ids([target["sample_id"]], "sample id")
        return {"sample_id": target["sample_id"]}
    if "video" in target:
        try:
            start, end = float(target["start"]), float(target["end"])
        except (KeyError, TypeError, ValueError):
            raise InvalidInputError(
                f"{where}: a video span needs start and end"
            ) from None
        if not end > start >= 0:
            raise InvalidInputError(f"{where}: span {start}-{end} is empty or negative")
        return {"video": str(target["video"]), "start": start, "end": end}
    if "field" in target:
        return {"field": str(target["field"]), "value": target.get("value")}
    raise InvalidInputError(f"{where}: unknown target {target!r}")


def _merged(old, new):
    out = {"query": new["query"]}
    for name in ("relevant", "not_relevant"):
        seen, items = set(), []
        for target in old.get(name, []) + new[name]:
            key = json.dumps(target, sort_keys=True)
            if key not in seen:
                seen.add(key)
                items.append(target)
        out[name] = items
    return out


@dataclasses.dataclass
class Resolved:
    """A judgment resolved against the dataset: the relevant frame ids, the
    relevant spans ``(video_id, start, end)`` and the frames marked wrong."""

    query: str
    relevant: set
    spans: list
    not_relevant: set

    @property
    def judged(self):
        return bool(self.relevant or self.spans)


def resolve_all(dataset, entries):
    """Each judgment resolved against ``dataset`` (a list of :class:`Resolved`)."""
    root = dataset._root_dataset
    videos = _video_names(root)
    return [resolve(root, entry, videos) for entry in entries]


def resolve(dataset, entry, videos=None):
    """Resolves one judgment's targets to frames of ``dataset``."""
    root = dataset._root_dataset
    videos = _video_names(root) if videos is None else videos
    relevant, spans = set(), []
    for target in entry["relevant"]:
        ids, span = _target_frames(root, target, videos)
        relevant |= ids
        spans += span
    wrong = set()
    for target in entry["not_relevant"]:
        wrong |= _target_frames(root, target, videos)[0]
    return Resolved(entry["query"], relevant - wrong, spans, wrong)


def _target_frames(dataset, target, videos):
    """``(frame ids, spans)`` of one target."""
    if "sample_id" in target:
        found = dataset.select([target["sample_id"]]).values("id")
        return set(found), []
    if "field" in target:
        if not dataset.has_field(target["field"].split(".")[0]):
            return set(), []
        view = dataset.match(F(target["field"]) == target["value"])
        return set(view.values("id")), []
    spans = [
        (video_id, target["start"], target["end"])
        for video_id in videos.get(target["video"], [])
    ]
    ids = set()
    for video_id, start, end in spans:
        view = dataset.match(
            (F("video_id") == video_id)
            & (F("timestamp") >= start)
            & (F("timestamp") < end)
        )
        ids |= set(view.values("id"))
    return ids, spans


def _video_names(dataset):
    """``{name: [video_id]}``: each video by its id, file name and title."""
    if not dataset.has_sample_field("video_id"):
        return {}
    names = {}
    fields = ["video_id", "video_path"]
    if dataset.has_sample_field("video_title"):
        fields.append("video_title")
    for video_id, path, *title in zip(*dataset.values(fields)):
        for name in {video_id, os.path.basename(path or ""), *(t for t in title if t)}:
            if name and video_id not in names.setdefault(name, []):
                names[name].append(video_id)
    return names
