"""Benchmark of Milvus Lite by size (not a test): p50/p99 and recall@10.

On realistic vectors (bench/scale_vectors.py: the offline LiT model's
embeddings of CIFAR-10, tiled and perturbed), in one run on one Milvus Lite
server (the managed store's engine, over gRPC, as users get it):

- per size (10k, 20k, 50k, 100k): FLAT and the index the workbench chooses
  for that size (plugin/retrieval/lite_index.py), searched with k=10 one
  query at a time, 200 held-out queries; recall@10 against exact search
  (numpy), and the time to re-index FLAT -> the chosen index;
- unflushed rows: the same search before the flush (brute force);
- insert throughput: brain's 100 rows per insert call against ours (1000).

Results: ``bench/results/scale_milvus.json`` and ``.md``. Run from the repo
root: ``.venv/bin/python bench/bench_scale_milvus.py``.
"""

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import scale_vectors as sv  # noqa: E402

from bench.results_io import save_results  # noqa: E402
from plugin.milvus.local_server import LocalMilvusServer  # noqa: E402
from plugin.retrieval import lite_index  # noqa: E402

SIZES = (10_000, 20_000, 50_000, 100_000)
QUERIES, K, DIM = 200, 10, 384
RESULTS = REPO / "bench" / "results"


def _create(client, name):
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type="COSINE")
    client.create_collection(name, schema=schema, index_params=index)


def _insert(client, name, base, batch):
    started = time.perf_counter()
    for first in range(0, len(base), batch):
        rows = [
            {"pk": i, "vector": base[i]}
            for i in range(first, min(first + batch, len(base)))
        ]
        client.insert(name, rows)
    return time.perf_counter() - started


def _search(client, name, queries, exact, params):
    latencies, found = [], []
    for query in queries:
        started = time.perf_counter()
        hits = client.search(
            name, data=[query.tolist()], limit=K, search_params=params
        )[0]
        latencies.append((time.perf_counter() - started) * 1000)
        found.append([hit["pk"] for hit in hits])
    return {
        "p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "p99_ms": round(float(np.percentile(latencies, 99)), 1),
        "recall_at_10": round(sv.recall_at_k(found, exact), 4),
    }


def _reindex(client, name, params):
    started = time.perf_counter()
    client.release_collection(name)
    for index_name in client.list_indexes(name):
        client.drop_index(name, index_name)
    index = client.prepare_index_params()
    index.add_index("vector", **params)
    client.create_index(name, index)
    client.load_collection(name)
    return time.perf_counter() - started


def bench_size(client, size):
    base, queries = sv.base_and_queries(size, QUERIES)
    exact = sv.exact_top_k(base, queries, K)
    name = f"bench_{size}"
    _create(client, name)
    row = {"size": size}
    row["insert_s"] = round(_insert(client, name, base, 1000), 2)
    if size == SIZES[-1]:  # before the flush: brute force over growing rows
        client.load_collection(name)
        row["unflushed"] = _search(
            client, name, queries[:20], exact[:20], _params(None)
        )
    started = time.perf_counter()
    client.flush(name)
    row["flush_s"] = round(time.perf_counter() - started, 2)
    client.load_collection(name)
    row["flat"] = _search(client, name, queries, exact, _params(None))
    chosen = lite_index.lite_index_params("COSINE", size)
    row["chosen"] = {"index": chosen["index_type"], **chosen["params"]}
    if chosen["index_type"] != "FLAT":
        row["reindex_s"] = round(_reindex(client, name, chosen), 2)
        nprobe = lite_index.nprobe_of(chosen)
        row["chosen"]["nprobe"] = nprobe
        row["chosen"].update(_search(client, name, queries, exact, _params(nprobe)))
    else:
        row["chosen"].update(row["flat"])
    client.drop_collection(name)
    print(json.dumps(row), flush=True)
    return row


def bench_insert(client, size=20_000):
    """Rows per second for insert batches of 100 (brain's) and 1000 (ours)."""
    base, _ = sv.base_and_queries(size, 1)
    rates = {}
    for batch in (100, 1000):
        name = f"bench_insert_{batch}"
        _create(client, name)
        seconds = _insert(client, name, base, batch)
        client.flush(name)
        rates[str(batch)] = round(size / seconds)
        client.drop_collection(name)
    return rates


def _params(nprobe):
    return {"metric_type": "COSINE", "params": {"nprobe": nprobe} if nprobe else {}}


def to_markdown(results):
    lines = [
        f"Milvus Lite {results['milvus_lite']} (gRPC server, as the managed store), "
        f"{DIM}-d LiT embeddings of CIFAR-10 tiled/perturbed, cosine, k={K}, "
        f"{QUERIES} held-out queries one at a time; recall@10 against exact search. "
        f"Machine: {results['cpus']} cores (shared), load {results['load_before']}.",
        "",
        "| Rows | FLAT p50 / p99 ms | FLAT recall | Chosen index | p50 / p99 ms | recall@10 | re-index s |",
        "|---:|---:|---:|---|---:|---:|---:|",
    ]
    for row in results["sizes"]:
        flat, chosen = row["flat"], row["chosen"]
        name = chosen["index"] + (
            f" nlist {chosen['nlist']} nprobe {chosen['nprobe']}"
            if "nlist" in chosen
            else ""
        )
        lines.append(
            f"| {row['size']:,} | {flat['p50_ms']} / {flat['p99_ms']} | "
            f"{flat['recall_at_10']} | {name} | {chosen['p50_ms']} / {chosen['p99_ms']} | "
            f"{chosen['recall_at_10']} | {row.get('reindex_s', '-')} |"
        )
    big = results["sizes"][-1]
    lines += [
        "",
        f"Unflushed {big['size']:,} rows: p50 {big['unflushed']['p50_ms']} ms "
        f"(flushed FLAT: {big['flat']['p50_ms']} ms); the flush took {big['flush_s']} s.",
        f"Insert throughput (rows/s, 20k rows): 100 per call (brain's default) "
        f"{results['insert_rows_per_s']['100']:,}; 1000 per call (ours) "
        f"{results['insert_rows_per_s']['1000']:,}.",
    ]
    return "\n".join(lines) + "\n"


def main():
    import milvus_lite

    home = tempfile.mkdtemp(prefix="vrag-bench-lite-")
    server = LocalMilvusServer(root=home, port=0)
    from pymilvus import MilvusClient

    client = MilvusClient(uri=server.ensure_running())
    try:
        results = {
            "milvus_lite": getattr(milvus_lite, "__version__", "?"),
            "cpus": os.cpu_count(),
            "load_before": round(os.getloadavg()[0], 2),
            "sizes": [bench_size(client, size) for size in SIZES],
            "insert_rows_per_s": bench_insert(client),
        }
    finally:
        server.stop()
    save_results("scale_milvus", results, to_markdown)


if __name__ == "__main__":
    main()
