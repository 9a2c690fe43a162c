"""``python -m plugin.milvus migrate --dataset NAME --to URI``: moves a
dataset's vectors to another Milvus store (e.g. Milvus Lite -> a server).

For each of the dataset's collections (frame indexes, and every text index
it has: transcripts, screen text, any
:func:`plugin.retrieval.text_index.text_sources` kind; see
:func:`plugin.milvus.doctor.dataset_collections`): create the collection at
the target with the same schema and the target's index (HNSW on a server,
by size on Lite), copy the rows in pages, flush, and VERIFY: the same row
count, and the same top-10 ids for a few stored vectors. Only when every
collection verified are the dataset's records re-pointed (each text index
record names the target's kind; ``dataset.info["vrag_milvus_store"]``
names the store holding its vectors). The source is left intact, unless
``--drop-source`` asks to drop it after verification.

fiftyone-brain keeps no URI in a brain run (only the collection name, which
is kept), so after a move the workbench finds the vectors once its settings
name the target: the command ends by printing the ``VRAG_MILVUS_URI`` to set.
"""

import json

from plugin.errors import IndexConfigError
from plugin.milvus.doctor import (
    FRAMES,
    count_rows,
    dataset_collections,
    sample_vectors,
)
from plugin.settings import Settings

STORE_KEY = "vrag_milvus_store"
PAGE = 1000
CHECKS = 5  # stored vectors searched on both stores


def migrate_dataset(
    dataset, target, source=None, overwrite=False, drop_source=False, progress=None
):
    """Copies ``dataset``'s collections from ``source`` to ``target``.

    Args:
        dataset: a FiftyOne dataset
        target: :class:`~plugin.settings.Settings` naming the target store
        source (None): Settings naming the source (default: the environment's)
        overwrite (False): replace collections already at the target
        drop_source (False): drop the source collections once all verified
        progress (None): ``progress(fraction, label)``

    Returns:
        ``{"collections": [...], "verified": bool, "target": display URI}``
    """
    from plugin.progress import report

    source = Settings.coerce(source).milvus()
    target = Settings.coerce(target).milvus()
    if source.uri == target.uri:
        raise IndexConfigError("The source and the target are the same Milvus store")
    entries = dataset_collections(dataset)
    results = []
    for n, entry in enumerate(entries):
        report(progress, n / max(len(entries), 1), f"Copying {entry['collection']}")
        results.append(_migrate_one(entry, source, target, overwrite))
    verified = all(r["verified"] for r in results)
    if verified:
        _repoint(dataset, source, target)
        if drop_source:
            for r in results:
                source.client().drop_collection(r["collection"])
    report(progress, 1.0, "Verified" if verified else "NOT verified: source kept")
    return {
        "dataset": dataset.name,
        "source": source.display_uri,
        "target": target.display_uri,
        "collections": results,
        "verified": verified,
        "source_dropped": verified and drop_source,
    }


def copy_collection(src, dst, name, index_params):
    """Creates ``name`` at ``dst`` (a MilvusClient) with ``src``'s schema and
    ``index_params``, and copies every row. Returns the rows copied."""
    from pymilvus import DataType

    from plugin.retrieval import lite_index

    described = src.describe_collection(name)
    schema = dst.create_schema(
        auto_id=described.get("auto_id", False),
        enable_dynamic_field=described.get("enable_dynamic_field", False),
    )
    vector_field = None
    for field in described["fields"]:
        extra = dict(field.get("params") or {})
        if field["type"] == DataType.FLOAT_VECTOR:
            vector_field = field["name"]
        schema.add_field(
            field["name"],
            field["type"],
            is_primary=field.get("is_primary", False),
            **{k: int(v) for k, v in extra.items() if k in ("dim", "max_length")},
        )
    index = dst.prepare_index_params()
    lite_index.add_index(index, vector_field, index_params)
    dst.create_collection(name, schema=schema, index_params=index)
    fields = [f["name"] for f in described["fields"]]
    src.load_collection(name)
    iterator = src.query_iterator(name, batch_size=PAGE, output_fields=fields)
    copied = 0
    while batch := iterator.next():
        dst.insert(name, [{k: row[k] for k in fields} for row in batch])
        copied += len(batch)
    iterator.close()
    dst.flush(name)
    return copied


def main(argv=None):
    import argparse

    import fiftyone as fo

    parser = argparse.ArgumentParser(prog="python -m plugin.milvus migrate")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--to", required=True, help="the target Milvus URI")
    parser.add_argument("--token", help="the target's token (Zilliz Cloud)")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--from", dest="source", help="default: VRAG_MILVUS_URI")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--drop-source", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    target = Settings.load(
        milvus_uri=args.to,
        milvus_token=args.token,
        milvus_user=args.user,
        milvus_password=args.password,
    )
    source = Settings.load(milvus_uri=args.source)
    result = migrate_dataset(
        fo.load_dataset(args.dataset),
        target,
        source=source,
        overwrite=args.overwrite,
        drop_source=args.drop_source,
        progress=lambda fraction, label: print(f"{fraction:4.0%} {label}"),
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_result(result))
    return 0 if result["verified"] else 1


def format_result(result):
    lines = [f"{result['dataset']}: {result['source']} -> {result['target']}"]
    for r in result["collections"]:
        lines.append(
            f"  {r['collection']}: {r['source_rows']:,} -> {r['target_rows']:,} rows, "
            f"top-1 same {r['same_top1']}/{r['checks']}, top-10 overlap "
            f"{r['overlap_at_10']:.2f}: {'verified' if r['verified'] else 'NOT VERIFIED'}"
        )
    if result["verified"]:
        lines.append(
            f"Verified. Point the workbench at the target: "
            f"export VRAG_MILVUS_URI={result['target']} (and VRAG_MILVUS_TOKEN)."
        )
        if not result["source_dropped"]:
            lines.append("The source collections are kept (--drop-source drops them).")
    else:
        lines.append("Not verified: nothing was re-pointed; the source is intact.")
    return "\n".join(lines)


def _migrate_one(entry, source, target, overwrite):
    name = entry["collection"]
    src, dst = source.client(), target.client()
    source_rows = count_rows(src, name)
    if dst.has_collection(name):
        if not overwrite:
            raise IndexConfigError(
                f"Collection {name!r} already exists at {target.display_uri}; "
                "pass --overwrite to replace it"
            )
        dst.drop_collection(name)
    copy_collection(src, dst, name, _index_params(entry, target, source_rows))
    dst.load_collection(name)
    target_rows = count_rows(dst, name)
    same, overlap, checks = _compare_searches(src, dst, name, entry["metric"])
    return {
        "kind": entry["kind"],
        "key": entry["key"],
        "collection": name,
        "source_rows": source_rows,
        "target_rows": target_rows,
        "checks": checks,
        "same_top1": same,
        "overlap_at_10": overlap,
        "verified": source_rows == target_rows and same == checks,
    }


def _index_params(entry, target, rows):
    """The target's index for ``rows`` rows: by size on Lite, HNSW on a
    server (brain's build values for frames, ours for text indexes)."""
    if entry["kind"] == FRAMES:
        from plugin.retrieval.brain_fixes import frame_index_params

        return frame_index_params(entry["metric"], target.uri, rows)
    from plugin.retrieval.text_collection import index_params

    return index_params(target, entry["metric"], rows)


def _compare_searches(src, dst, name, metric):
    """Searches ``CHECKS`` stored vectors on both stores: how many find the
    same top-1, the mean overlap of their top-10, and how many were searched."""
    field, vectors = sample_vectors(src, name, CHECKS)
    fields = src.describe_collection(name)["fields"]
    pk = next(f["name"] for f in fields if f.get("is_primary"))
    same, overlaps = 0, []
    for vector in vectors:
        src_ids, dst_ids = (
            [_hit_id(hit, pk) for hit in _search(client, name, field, vector, metric)]
            for client in (src, dst)
        )
        same += bool(src_ids) and src_ids[:1] == dst_ids[:1]
        overlaps.append(len(set(src_ids) & set(dst_ids)) / max(len(src_ids), 1))
    return same, (sum(overlaps) / len(overlaps) if overlaps else 1.0), len(vectors)


def _hit_id(hit, pk):
    """A hit's primary key: Lite names it by its field, servers ``id``."""
    for key in (pk, "id"):
        try:
            return hit[key]
        except KeyError:
            continue
    raise KeyError(f"no primary key in search hit {dict(hit)!r}")


def _search(client, name, field, vector, metric):
    from plugin.retrieval import lite_index
    from plugin.retrieval.frame_index import MILVUS_METRICS
    from plugin.retrieval.text_collection import search_params

    index = lite_index.describe(client, name, field)
    return client.search(
        name,
        data=[vector],
        anns_field=field,
        limit=10,
        search_params=search_params(MILVUS_METRICS[metric], 10, index),
        consistency_level="Strong",
    )[0]


def _repoint(dataset, source, target):
    """Records the move on the dataset (after verification only)."""
    from plugin.retrieval.text_index import text_sources

    for text_source in text_sources():  # every text index the dataset has
        text_source.moved_to(dataset, target)
    dataset.info[STORE_KEY] = {
        "uri": target.display_uri,
        "kind": target.kind,
        "moved_from": source.display_uri,
    }
    dataset.save()
