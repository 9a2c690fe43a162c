"""Questions and answers kept per dataset, in FiftyOne's execution store.

Store ``vrag_ask_history`` scoped to the dataset; one key per entry
(``qa-<time>-<rand>``, sortable by time). An entry holds the question, the
answer text (a partial one marked ``incomplete``), its citations, the
evidence's sample ids and labels, the model name and the usage: never a base
URL, an API key or any other setting. FiftyOne deletes the store with the dataset.
"""

import secrets
import time

from fiftyone.operators.store import ExecutionStore

STORE_NAME = "vrag_ask_history"
MAX_ENTRIES = 100


def history_store(dataset):
    root = getattr(dataset, "_root_dataset", dataset)
    return ExecutionStore.create(STORE_NAME, dataset_id=root._doc.id)


def entry_from_answer(answer):
    """The stored form of an :class:`~plugin.answer.ask.Answer` (no secrets)."""
    return {
        "time": time.time(),
        "question": answer.question,
        "answer": answer.text,
        "model": answer.model,
        "citations": [c.to_dict() for c in answer.citations],
        "evidence": [
            {
                "n": e.n,
                "sample_id": e.sample_id,
                "video_id": e.video_id,
                "video_title": e.video_title,
                "timestamp": e.timestamp,
            }
            for e in answer.evidence
        ],
        "usage": dict(answer.usage or {}),
        "warnings": list(answer.warnings),
        "incomplete": bool(getattr(answer, "incomplete", False)),
    }


def add_entry(dataset, answer, redact=()):
    """Stores an answer; returns its key. ``redact``: strings (e.g. the API
    key) that must not appear in the entry, replaced by ``***``."""
    entry = _redact(entry_from_answer(answer), [r for r in redact if r])
    key = f"qa-{time.time():017.6f}-{secrets.token_hex(3)}"
    store = history_store(dataset)
    store.set(key, entry)
    _trim(store)
    return key


def list_entries(dataset, limit=20):
    """The latest ``limit`` entries, newest first, each with its ``key``."""
    store = history_store(dataset)
    keys = sorted(store.list_keys(), reverse=True)[:limit]
    entries = []
    for key in keys:
        entry = store.get(key)
        if entry:
            entries.append({"key": key, **entry})
    return entries


def clear_history(dataset):
    history_store(dataset).clear()


def _trim(store):
    keys = sorted(store.list_keys())
    for key in keys[: max(0, len(keys) - MAX_ENTRIES)]:
        store.delete(key)


def _redact(value, secrets_):
    if not secrets_:
        return value
    if isinstance(value, str):
        for s in secrets_:
            value = value.replace(s, "***")
        return value
    if isinstance(value, dict):
        return {k: _redact(v, secrets_) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, secrets_) for v in value]
    return value
