"""``python -m plugin.milvus doctor``: what the Milvus store holds, how fast it
answers now, and when to move to a Milvus server (with the exact command).

Per dataset: its frame indexes (brain similarity runs on Milvus) and its
text indexes (transcripts, screen text: every
:func:`plugin.retrieval.text_index.text_sources` kind), each collection's rows, index type and search latency
measured now (p50/p99 of :data:`PROBES` searches, k=10, with stored vectors).

When to move (Milvus Lite only): a collection past :data:`LITE_MOVE_ABOVE`
rows or a p50 over :data:`LATENCY_GOAL_MS` (measured in
bench/results/scale_milvus.md: IVF_FLAT on Lite answers in ~30 ms at 100k
rows on 2 cores, FLAT in ~100 ms), or when several machines need the vectors
(Lite serves the machine it runs on). The next command is
``python -m plugin.milvus migrate`` (:mod:`plugin.milvus.migrate`).
"""

import json
import time

import numpy as np

from plugin.milvus.resolver import is_lite_connection
from plugin.settings import Settings

LITE_MOVE_ABOVE = 100_000  # rows in one collection
LATENCY_GOAL_MS = 30.0
PROBES = 20
TARGET_HINT = "http://HOST:19530"
FRAMES = "frames"  # the kind of brain's frame collections


def dataset_collections(dataset):
    """The Milvus collections of ``dataset``'s indexes:
    ``[{"kind", "key", "collection", "metric"}]``: its frame indexes (brain
    similarity runs on Milvus, kind ``frames``, key the brain key), then each
    text index it has (every
    :func:`~plugin.retrieval.text_index.text_sources` kind: transcripts,
    screen text, ...; key its ``dataset.info`` record)."""
    from plugin.retrieval.text_index import text_sources

    found = []
    for key in dataset.list_brain_runs(type="similarity"):
        config = dataset.get_brain_info(key).config
        if getattr(config, "method", None) == "milvus":
            found.append(
                {
                    "kind": FRAMES,
                    "key": key,
                    "collection": config.collection_name,
                    "metric": config.metric,
                }
            )
    entries = (source.store_entry(dataset) for source in text_sources())
    return found + [entry for entry in entries if entry]


def examine(settings=None, datasets=None, probes=PROBES):
    """The doctor's findings, as a dict (see :func:`format_report`).

    Args:
        settings (None): the :class:`~plugin.settings.Settings` naming the store
        datasets (None): dataset names (default: every dataset)
        probes (20): searches timed per collection
    """
    import fiftyone as fo

    settings = Settings.coerce(settings)
    connection = settings.milvus()
    client = connection.client()
    stored = set(client.list_collections())
    report = {
        "store": connection.display_uri,
        "kind": connection.kind,
        "is_lite": is_lite_connection(connection),
        "datasets": [],
    }
    claimed = set()
    for name in datasets or fo.list_datasets():
        entries = []
        for entry in dataset_collections(fo.load_dataset(name)):
            claimed.add(entry["collection"])
            if entry["collection"] in stored:
                entry.update(_measure(client, entry["collection"], probes))
            else:
                entry["missing"] = True
            entries.append(entry)
        if entries:
            report["datasets"].append({"name": name, "collections": entries})
    report["other_collections"] = sorted(stored - claimed)
    report["advice"] = advise(report)
    return report


def advise(report):
    """``{"move": bool, "why": [...], "next": [commands]}`` for a report."""
    why, move_sets = [], []
    for dataset in report["datasets"]:
        for entry in dataset["collections"]:
            if entry.get("missing"):
                why.append(
                    f"{dataset['name']}: collection {entry['collection']} is not "
                    f"in this store: is VRAG_MILVUS_URI the store it was built on?"
                )
                continue
            if not report["is_lite"]:
                continue
            if entry["rows"] > LITE_MOVE_ABOVE or entry["p50_ms"] > LATENCY_GOAL_MS:
                why.append(
                    f"{dataset['name']}: {entry['collection']} holds "
                    f"{entry['rows']:,} rows, p50 {entry['p50_ms']:.1f} ms (Lite "
                    f"meets {LATENCY_GOAL_MS:.0f} ms up to ~{LITE_MOVE_ABOVE:,} rows)"
                )
                move_sets.append(dataset["name"])
    commands = [
        f"python -m plugin.milvus migrate --dataset {name} --to {TARGET_HINT}"
        for name in sorted(set(move_sets))
    ]
    if report["is_lite"] and not move_sets:
        why.append(
            "Milvus Lite is fine at this size. Move when several machines need "
            "the vectors (delegated workers elsewhere, a shared App): Lite serves "
            "only the machine it runs on."
        )
    return {"move": bool(move_sets), "why": why, "next": commands}


def format_report(report):
    """The report as text for a terminal."""
    lines = [f"Milvus store: {report['store']} ({report['kind']})", ""]
    for dataset in report["datasets"]:
        lines.append(f"Dataset {dataset['name']}:")
        for e in dataset["collections"]:
            if e.get("missing"):
                lines.append(f"  {e['kind']} {e['key']}: {e['collection']} MISSING")
                continue
            lines.append(
                f"  {e['kind']} {e['key']}: {e['collection']}: {e['rows']:,} rows, "
                f"{e['index_type']}, search p50 {e['p50_ms']:.1f} ms, "
                f"p99 {e['p99_ms']:.1f} ms"
            )
    if not report["datasets"]:
        lines.append("No dataset has an index in this store.")
    if report["other_collections"]:
        lines.append(
            "Collections of no dataset: " + ", ".join(report["other_collections"])
        )
    advice = report["advice"]
    lines += [
        "",
        "Move to a Milvus server: " + ("YES" if advice["move"] else "not yet"),
    ]
    lines += [f"  - {line}" for line in advice["why"]]
    if advice["next"]:
        lines += ["Next (start a server first, e.g. Milvus standalone):"]
        lines += [f"  {command}" for command in advice["next"]]
    return "\n".join(lines)


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m plugin.milvus doctor")
    parser.add_argument("--dataset", action="append", help="only these datasets")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    report = examine(datasets=args.dataset)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def _measure(client, collection, probes):
    """Rows, index type and search latency of ``collection`` now."""
    from plugin.retrieval import lite_index
    from plugin.retrieval.text_collection import search_params

    client.load_collection(collection)
    index = lite_index.describe(client, collection)
    rows = count_rows(client, collection)
    found = {"rows": rows, "index_type": index.get("index_type"), "p50_ms": 0.0}
    found["p99_ms"] = 0.0
    if not rows:
        return found
    field, vectors = sample_vectors(client, collection, min(probes, rows))
    params = search_params(index.get("metric_type"), 10, index)
    times = []
    for n in range(probes):
        started = time.perf_counter()
        client.search(
            collection,
            data=[vectors[n % len(vectors)]],
            anns_field=field,
            limit=10,
            search_params=params,
        )
        times.append((time.perf_counter() - started) * 1000)
    found["p50_ms"] = float(np.percentile(times, 50))
    found["p99_ms"] = float(np.percentile(times, 99))
    return found


def count_rows(client, collection):
    """Rows in ``collection`` (a strong count: unflushed rows too)."""
    client.load_collection(collection)
    rows = client.query(
        collection, filter="", output_fields=["count(*)"], consistency_level="Strong"
    )
    return int(rows[0]["count(*)"])


def sample_vectors(client, collection, n):
    """The vector field's name and ``n`` stored vectors."""
    from pymilvus import DataType

    fields = client.describe_collection(collection)["fields"]
    field = next(f["name"] for f in fields if f["type"] == DataType.FLOAT_VECTOR)
    rows = client.query(collection, filter="", output_fields=[field], limit=n)
    return field, [list(map(float, row[field])) for row in rows]
