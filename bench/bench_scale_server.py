"""Benchmark of a real Milvus server (not a test): index parameters by recall
and latency, and insert throughput.

On realistic vectors (bench/scale_vectors.py: the offline LiT model's 384-d
embeddings of all 60,000 CIFAR-10 images, tiled and perturbed to 1M), on the
real Milvus standalone server the tests use (PyPI ``milvus==2.3.5``), in one
run, so the configurations compare as ratios:

- insert throughput through fiftyone-brain's own ``add_to_index`` (its
  collection schema, its ``tolist()`` conversion, its flush) at brain's batch
  of 100 rows per insert call against larger batches;
- per size (100k, 1M): HNSW for several (M, efConstruction), each searched
  at several ``ef``, and IVF_FLAT for comparison: build time, p50/p99 of k=10
  searches one query at a time (200 held-out queries), recall@10 against
  exact search (numpy);
- the chosen configuration through brain's own search (``_kneighbors`` with
  plugin.retrieval.brain_fixes applied), as the App's search bar runs it.

Results: ``bench/results/scale_server.json`` and ``.md``. Run from the repo
root: ``.venv/bin/python bench/bench_scale_server.py [--sizes 100000,1000000]``
(about 40 minutes on 2 cores at 1M).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "bench", REPO / "tests" / "support"):
    sys.path.insert(0, str(path))

import scale_vectors as sv  # noqa: E402

from bench.results_io import save_results  # noqa: E402

QUERIES, K = 200, 10
HNSW_BUILDS = ((8, 64), (16, 128), (16, 256), (32, 256))
EFS = (16, 32, 64, 128, 256)
INSERT_BATCHES = (100, 1000, 5000)
INSERT_ROWS = 100_000
HNSW_CHOSEN = {"M": 16, "efConstruction": 128}  # brain_fixes.HNSW_BUILD


def _pk(i):
    return f"{i:024x}"  # brain's pks are ObjectId strings


def bench_brain_insert(uri, base):
    """Rows/s of brain's add_to_index as shipped per batch size (its
    default: 100) and of ours (plugin.retrieval.brain_fixes), in one run."""
    import fiftyone as fo
    import fiftyone.brain as fob
    from fiftyone.brain.internal.core import milvus as brain_milvus

    from plugin.retrieval import brain_fixes

    brain_fixes.apply()
    shipped = brain_milvus.MilvusSimilarityIndex.add_to_index.__wrapped__
    dataset = fo.Dataset()
    ids = np.array([_pk(i) for i in range(len(base))])
    variants = [(f"brain {b}", shipped, b) for b in INSERT_BATCHES]
    variants.append((f"ours {brain_fixes.INSERT_BATCH}", None, None))
    rates = {}
    try:
        for rep in range(2):  # interleaved: the machine is shared
            for name, add, batch in variants:
                key = f"insert_{rep}_{len(rates)}"
                index = fob.compute_similarity(
                    dataset, embeddings=False, backend="milvus", uri=uri,
                    brain_key=key, metric="cosine", collection_name=f"b_{key}",
                )  # fmt: skip
                started = time.perf_counter()
                if add is None:
                    index.add_to_index(base, ids, reload=False)
                else:
                    add(index, base, ids, batch_size=batch, reload=False)
                rate = round(len(base) / (time.perf_counter() - started))
                assert index.collection.num_entities == len(base)
                rates[name] = max(rates.get(name, 0), rate)
                print(f"insert {name}: {rate} rows/s", flush=True)
                index.cleanup()
                dataset.delete_brain_run(key)
    finally:
        dataset.delete()
    return rates


def create_collection(alias, name, base, batch=1000):
    """A collection with brain's schema holding ``base`` (pk = row number),
    inserted as plugin.retrieval.brain_fixes does (numpy, 1000 per call)."""
    from pymilvus import Collection, CollectionSchema, DataType, FieldSchema

    schema = CollectionSchema(
        [
            FieldSchema("pk", DataType.VARCHAR, is_primary=True, max_length=64),
            FieldSchema("vector", DataType.FLOAT_VECTOR, dim=base.shape[1]),
            FieldSchema("sample_id", DataType.VARCHAR, max_length=64),
        ]
    )
    collection = Collection(name, schema, consistency_level="Session", using=alias)
    started = time.perf_counter()
    for first in range(0, len(base), batch):
        pks = [_pk(i) for i in range(first, min(first + batch, len(base)))]
        collection.insert([pks, base[first : first + batch], pks])
    collection.flush()
    return collection, time.perf_counter() - started


def build(collection, index_params):
    """Seconds to (re)build the index until every row is indexed + loaded."""
    from pymilvus import utility

    collection.release()
    collection.drop_index()
    started = time.perf_counter()
    collection.create_index("vector", index_params=index_params)
    utility.wait_for_index_building_complete(collection.name, using=collection._using)
    collection.load()
    return time.perf_counter() - started


def _wait_indexed(collection):
    from pymilvus import utility

    utility.wait_for_index_building_complete(collection.name, using=collection._using)
    collection.load()


def search(collection, queries, exact, params):
    latencies, found = [], []
    for query in queries:
        started = time.perf_counter()
        hits = collection.search([query], "vector", params, limit=K)[0]
        latencies.append((time.perf_counter() - started) * 1000)
        found.append([int(pk, 16) for pk in hits.ids])
    return {
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p99_ms": round(float(np.percentile(latencies, 99)), 2),
        "recall_at_10": round(sv.recall_at_k(found, exact), 4),
    }


def bench_size(alias, size):
    base, queries = sv.base_and_queries(size, QUERIES)
    exact = _exact(base, queries)
    name = f"bench_server_{size}"
    collection, insert_s = create_collection(alias, name, base)
    print(f"{size}: inserted in {insert_s:.1f} s", flush=True)
    rows = []
    for m, ef_construction in HNSW_BUILDS:
        params = {"M": m, "efConstruction": ef_construction}
        seconds = build(collection, _index("HNSW", params))
        for ef in EFS:
            found = search(collection, queries, exact, _search("ef", ef))
            rows.append(_row(size, "HNSW", params, seconds, {"ef": ef}, found))
    nlist = 4096 if size >= 500_000 else 1024
    seconds = build(collection, _index("IVF_FLAT", {"nlist": nlist}))
    for nprobe in (16, 32, 64):
        found = search(collection, queries, exact, _search("nprobe", nprobe))
        rows.append(
            _row(size, "IVF_FLAT", {"nlist": nlist}, seconds, {"nprobe": nprobe}, found)
        )
    collection.drop()
    return {"size": size, "insert_s": round(insert_s, 1), "rows": rows}


def bench_view_searches(alias, size, view_sizes=(1000, 10_000, 100_000)):
    """A search within a view: brain sends ``pk in [every id of the view]``;
    against it, unrestricted searches as deep as plugin.retrieval.frame_search
    asks for large views (then keeps the view's hits)."""
    base, queries = sv.base_and_queries(size, 20)
    collection, _ = create_collection(alias, f"bench_views_{size}", base)
    build(collection, _index("HNSW", HNSW_CHOSEN))
    rng = np.random.default_rng(0)
    rows = []
    for n in view_sizes:
        ids = rng.choice(size, n, replace=False)
        expr = "pk in [" + ",".join(f'"{_pk(i)}"' for i in ids) + "]"
        rows.append({"view_ids": n, **_timed(collection, queries, expr, K)})
    for depth in (40, 400, 4000):
        rows.append({"depth": depth, **_timed(collection, queries, None, depth)})
    collection.drop()
    for row in rows:
        print(json.dumps(row), flush=True)
    return {"size": size, "rows": rows}


def _timed(collection, queries, expr, limit):
    latencies = []
    for query in queries:
        started = time.perf_counter()
        collection.search([query], "vector", _search("ef", max(64, limit)),
                          limit=limit, expr=expr)  # fmt: skip
        latencies.append((time.perf_counter() - started) * 1000)
    return {
        "p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "p99_ms": round(float(np.percentile(latencies, 99)), 1),
    }


def bench_brain_search(uri, size, build_params):
    """The chosen build through brain's own search (fixes applied)."""
    import fiftyone as fo
    import fiftyone.brain as fob

    from plugin.retrieval import brain_fixes

    brain_fixes.apply()
    base, queries = sv.base_and_queries(size, QUERIES)
    exact = _exact(base, queries)
    dataset = fo.Dataset()
    try:
        index = fob.compute_similarity(
            dataset, embeddings=False, backend="milvus", uri=uri,
            brain_key="brain_search", metric="cosine",
            collection_name=f"bench_brain_{size}",
        )  # fmt: skip
        started = time.perf_counter()
        index.add_to_index(base, np.array([_pk(i) for i in range(size)]))
        insert_s = time.perf_counter() - started
        _wait_indexed(index.collection)
        latencies, found = [], []
        for query in queries:
            started = time.perf_counter()
            ids, _ = index._kneighbors(query=query, k=K)
            latencies.append((time.perf_counter() - started) * 1000)
            found.append([int(pk, 16) for pk in ids])
        index.cleanup()
    finally:
        dataset.delete()
    return {
        "size": size,
        "build": build_params,
        "insert_rows_per_s": round(size / insert_s),
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p99_ms": round(float(np.percentile(latencies, 99)), 2),
        "recall_at_10": round(sv.recall_at_k(found, exact), 4),
    }


def _exact(base, queries, chunk=250_000):
    """Exact top-k by chunks (200 x 1M scores at once is 800 MB)."""
    best_ids, best_scores = None, None
    for first in range(0, len(base), chunk):
        part = base[first : first + chunk]
        ids = sv.exact_top_k(part, queries, K) + first
        scores = np.take_along_axis(queries @ part.T, ids - first, axis=1)
        if best_ids is not None:
            ids = np.concatenate([best_ids, ids], axis=1)
            scores = np.concatenate([best_scores, scores], axis=1)
        order = np.argsort(-scores, axis=1)[:, :K]
        best_ids = np.take_along_axis(ids, order, axis=1)
        best_scores = np.take_along_axis(scores, order, axis=1)
    return best_ids


def _index(kind, params):
    return {"metric_type": "COSINE", "index_type": kind, "params": params}


def _search(key, value):
    return {"metric_type": "COSINE", "params": {key: value}}


def _row(size, kind, build_params, build_s, search_params, found):
    row = {"size": size, "index": kind, "build": build_params}
    row.update(build_s=round(build_s, 1), search=search_params, **found)
    print(json.dumps(row), flush=True)
    return row


def to_markdown(results):
    lines = [
        "Real Milvus standalone server (PyPI milvus==2.3.5), 384-d LiT embeddings "
        "of CIFAR-10 tiled/perturbed, cosine, k=10, "
        f"{QUERIES} held-out queries one at a time; recall@10 against exact "
        f"search. Copies' noise: sigma {results.get('noise', sv.NOISE)} per "
        f"dimension. Machine: {results.get('cores', os.cpu_count())} cores, "
        f"load at start {results.get('load')}. {results.get('note', '')}",
        "",
    ]
    if results.get("insert"):
        lines += [
            "Insert throughput through brain's `add_to_index` as shipped "
            "(by rows per insert call) and ours "
            f"({INSERT_ROWS:,} rows, rows/s, best of 2, interleaved): "
            + ", ".join(f"{b}: {r:,}" for b, r in results["insert"].items()),
            "",
        ]
    if results.get("sizes"):
        lines += [
            "| rows | index | build | build s | search | p50 / p99 ms | recall@10 |",
            "|---:|---|---|---:|---|---:|---:|",
        ]
    for size in results.get("sizes", []):
        rate = round(size["size"] / size["insert_s"])
        lines.append(
            f"| {size['size']:,} | inserted as ours does (numpy, 1000 per call) "
            f"| | {size['insert_s']} | | {rate:,} rows/s | |"
        )
        for r in size["rows"]:
            lines.append(
                f"| {r['size']:,} | {r['index']} | {_kv(r['build'])} | "
                f"{r['build_s']} | {_kv(r['search'])} | "
                f"{r['p50_ms']} / {r['p99_ms']} | {r['recall_at_10']} |"
            )
    if results.get("views"):
        lines += [
            "",
            f"Searches within a view ({results['views']['size']:,} rows,"
            " HNSW M=16 efC=128, 20 queries): brain's `pk in [ids]` for a view"
            " of N frames, and unrestricted searches of top-`depth`:",
            "",
        ]
        for r in results["views"]["rows"]:
            what = (
                f"view of {r['view_ids']:,} frames"
                if "view_ids" in r
                else f"whole index, top-{r['depth']}"
            )
            lines.append(f"- {what}: p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms")
    if results.get("brain_search"):
        lines += ["", "Through brain's own search (fixes applied):", ""]
    for r in results.get("brain_search", []):
        lines.append(
            f"- {r['size']:,} rows, {_kv(r['build'])}: p50 {r['p50_ms']} ms, "
            f"p99 {r['p99_ms']} ms, recall@10 {r['recall_at_10']}, "
            f"insert {r['insert_rows_per_s']:,} rows/s"
        )
    return "\n".join(lines) + "\n"


def _kv(params):
    return " ".join(f"{k}={v}" for k, v in params.items())


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument(
        "--parts",
        default="insert,sweep,brain",
        help="insert: brain's add_to_index vs ours; sweep: index parameters; "
        "views: searches within a view (the first size); "
        "brain: brain's own search with the build brain_fixes uses now "
        "(insert and brain need FiftyOne); parts not run keep their saved "
        "results",
    )
    parser.add_argument(
        "--noise",
        type=float,
        default=sv.NOISE,
        help="per-dimension sigma of the tiled copies (larger: harder)",
    )
    parser.add_argument("--name", default="scale_server", help="results file")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    parts = set(args.parts.split(","))
    sv.NOISE = args.noise
    from milvus_server import RealMilvusServer
    from pymilvus import connections

    saved = REPO / "bench" / "results" / f"{args.name}.json"
    results = json.loads(saved.read_text()) if saved.is_file() else {}
    results.update(
        load=round(os.getloadavg()[0], 2), noise=args.noise, cores=os.cpu_count()
    )
    server = RealMilvusServer()
    uri = server.start()
    try:
        connections.connect(alias="bench", uri=uri)
        if "insert" in parts:
            base, _ = sv.base_and_queries(INSERT_ROWS, 1)
            results["insert"] = bench_brain_insert(uri, base)
        if "sweep" in parts:
            results["sizes"] = []
            for size in sizes:
                results["sizes"].append(bench_size("bench", size))
                save_results(args.name, results, to_markdown)
        if "views" in parts:
            results["views"] = bench_view_searches("bench", sizes[0])
        if "brain" in parts:
            from plugin.retrieval import brain_fixes

            results["brain_search"] = [
                bench_brain_search(uri, size, brain_fixes.HNSW_BUILD) for size in sizes
            ]
    finally:
        server.stop()
    save_results(args.name, results, to_markdown)


if __name__ == "__main__":
    main()
