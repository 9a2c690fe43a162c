"""Benchmark: similarity insert throughput and text-to-frame query latency.

Same seeded random unit-norm 512-d float32 vectors, through fiftyone-brain as
users call it (``fob.compute_similarity``, ``index.sort_by_similarity``), on
``milvus-lite`` (the managed local Milvus Lite server), ``milvus-server`` (a
real Milvus 2.3.5 standalone) and ``sklearn`` (FiftyOne's default). Query
vectors stand in for embedded prompts; text-embedding time is not measured.
Each (backend, size) runs in a worker process with a time limit.

    .venv/bin/python -m bench.bench_milvus --sizes 10000 100000 1000000

Results merge into ``bench/results/milvus.json`` and ``milvus.md``.
"""

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from importlib import metadata
from pathlib import Path
from unittest import mock

import fiftyone as fo
import fiftyone.brain as fob
import numpy as np
from fiftyone.brain.internal.core.milvus import MilvusSimilarityIndex
from fiftyone.brain.internal.core.sklearn import SklearnSimilarityIndex

from plugin.milvus import LocalMilvusServer, resolve_milvus, use_for_brain
from plugin.runtime import prepare_process
from tests.support import milvus_server as real_milvus

ROOT = Path(__file__).resolve().parents[1]

BACKENDS = ("sklearn", "milvus-lite", "milvus-server")
DIM, K, RECALL_EF = 512, 10, 128
RESULTS_DIR = ROOT / "bench" / "results"
PACKAGES = ("fiftyone", "fiftyone-brain", "pymilvus", "milvus-lite", "numpy")
PACKAGES += ("scikit-learn", "faiss-cpu")
INDEX_CLASSES = {"sklearn": SklearnSimilarityIndex, "milvus": MilvusSimilarityIndex}


def unit_vectors(n, seed, chunk=100_000):
    """``n`` seeded random unit-norm float32 vectors, generated in chunks."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, chunk):
        block = rng.standard_normal((min(chunk, n - start), DIM), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + len(block)] = block
    return out


def time_calls(fn, queries, budget_s, warmup=5):
    """p50/p99 latency of ``fn(q)``; stops early once ``budget_s`` is spent."""
    for q in queries[-warmup:]:
        fn(q)
    times, deadline = [], time.monotonic() + budget_s
    for q in queries[:-warmup]:
        start = time.perf_counter()
        fn(q)
        times.append(time.perf_counter() - start)
        if time.monotonic() > deadline:
            break
    ms = np.asarray(times) * 1000.0
    p50, p99 = np.percentile(ms, [50, 99])
    return {"n": ms.size, "p50_ms": p50, "p99_ms": p99, "mean_ms": ms.mean()}


def attempt(fn, *args):
    try:
        return {"ok": True, "returned": fn(*args)}
    except Exception as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e}"[:400]}


def timed(fn, sink):
    """``fn``, appending the duration of each call to ``sink``."""

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            sink.append(time.perf_counter() - start)

    return wrapper


def machine_info():
    versions = {name: metadata.version(name) for name in PACKAGES}
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    info = dict(cpu_count=os.cpu_count(), memory_gib=round(mem, 1), versions=versions)
    return info | dict(platform=platform.platform(), python=platform.python_version())


def build_index(dataset, spec, vectors, creds, save):
    """Inserts ``vectors`` as users do; times it end to end and in parts.

    Up to ``insert_chunk`` vectors: one ``compute_similarity(embeddings=...)``.
    Beyond: an empty index, then ``add_to_index`` per chunk (brain makes every
    vector a Python list, ~32 bytes a float: 1M at once would need ~16 GB).
    """
    n, chunk, adds = len(vectors), spec["insert_chunk"], []
    backend = "sklearn" if spec["backend"] == "sklearn" else "milvus"
    kwargs = dict(backend=backend, brain_key=spec["brain_key"], metric="cosine")
    kwargs.update(progress=False, **creds)
    cls = INDEX_CLASSES[backend]
    with mock.patch.object(cls, "add_to_index", timed(cls.add_to_index, adds)):
        start = time.perf_counter()
        if n <= chunk:
            index = fob.compute_similarity(dataset, embeddings=vectors, **kwargs)
        else:
            index = fob.compute_similarity(dataset, embeddings=False, **kwargs)
            ids = dataset.values("id")
            for s in range(0, n, chunk):
                save(f"insert, {s:,} of {n:,} in {time.perf_counter() - start:.0f} s")
                index.add_to_index(vectors[s : s + chunk], ids[s : s + chunk])
        total = time.perf_counter() - start
    mode = "compute_similarity" if n <= chunk else f"add_to_index x{len(adds)}"
    if n > chunk and backend == "sklearn":
        mode += ", in memory, not persisted"
    stats = dict(mode=mode, total_s=total, add_to_index_s=sum(adds))
    stats.update(vectors_per_s=n / total, add_vectors_per_s=n / sum(adds))
    return index, stats


def wait_for_index(client, collection, budget_s):
    """Waits until Milvus reports every row indexed; returns what it said."""
    start, info = time.perf_counter(), {}
    name = client.list_indexes(collection)[0]
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline:
        info = client.describe_index(collection, name)
        done, total = info.get("indexed_rows"), info.get("total_rows")
        if done is None or total is None or done >= total:
            break
        time.sleep(0.5)
    keys = ("index_type", "state", "indexed_rows", "total_rows", "pending_index_rows")
    return {"wait_s": time.perf_counter() - start, **{k: info.get(k) for k in keys}}


def recall_at_k(search, vectors, ids, queries):
    """Mean overlap of ``search(q)``'s ids with the exact (brute force) top-K."""
    hits = 0
    for q in queries:
        exact = np.argpartition(-(vectors @ q), K)[:K]
        hits += len(set(search(q)) & {ids[i] for i in exact})
    return hits / (K * len(queries))


def brain_ids(index, query, k):
    return index.sort_by_similarity(query, k=k).values("id")


def count(search, *args):
    return len(search(*args))


def raw_search(client, collection, query, k, params):
    hits = client.search(collection, [query.tolist()], limit=k, search_params=params)
    return [hit.id for hit in hits[0]]


def k_probe(index, client, collection, query):
    """brain with k=10/50, and raw searches with a well-formed ``ef=10``."""
    ef10 = {"metric_type": "COSINE", "params": {"ef": 10}}
    out = {"brain_search_params": index.config.search_params}
    for k in (10, 50):
        out[f"brain_k{k}"] = attempt(count, brain_ids, index, query, k)
        args = (client, collection, query, k, ef10)
        out[f"raw_ef10_k{k}"] = attempt(count, raw_search, *args)
    return out


def raw_phases(index, client, queries, spec, res):
    """Raw pymilvus search with brain's own params, then the k probe."""
    collection, params = index.config.collection_name, index.config.search_params
    search = lambda q: raw_search(client, collection, q, K, params)  # noqa: E731
    res["raw_query"] = time_calls(search, queries, spec["query_budget"])
    res["k_probe"] = k_probe(index, client, collection, queries[0])


def run_phases(dataset, spec, res, save):
    save("vectors")
    vectors = unit_vectors(spec["size"], spec["seed"])
    queries = unit_vectors(spec["queries"] + 5, spec["seed"] + 1)
    conn = None if spec["backend"] == "sklearn" else resolve_milvus(spec["uri"])
    prepare_process()  # brain fixes + zoo models, as the plugin's register()
    if conn:
        use_for_brain(conn)  # so brain can reload the index, e.g. to clean up
    save("insert")
    creds = conn.credentials() if conn else {}
    index, res["insert"] = build_index(dataset, spec, vectors, creds, save)
    client = conn.client(timeout=60) if conn else None
    if client:
        res["server_version"] = client.get_server_version()
        collection = index.config.collection_name
        res["index"] = wait_for_index(client, collection, spec["timeout"] / 3)
    save("query")
    brain = lambda q: index.sort_by_similarity(q, k=K)  # noqa: E731
    res["query"] = time_calls(brain, queries, spec["query_budget"])
    if client:
        save("raw query")
        raw_phases(index, client, queries, spec, res)
    save("recall")
    recall_phase(dataset, index, client, vectors, queries[:20], res)
    return index


def recall_phase(dataset, index, client, vectors, queries, res):
    """recall@K of brain's search, and of a raw search with a well-formed ef."""
    ids = dataset.values("id")
    search = lambda q: brain_ids(index, q, K)  # noqa: E731
    res["recall_at_10"] = recall_at_k(search, vectors, ids, queries)
    if client:
        collection = index.config.collection_name
        ef = {"metric_type": "COSINE", "params": {"ef": RECALL_EF}}
        raw = lambda q: raw_search(client, collection, q, K, ef)  # noqa: E731
        res["recall_at_10_raw_ef"] = recall_at_k(raw, vectors, ids, queries)


def worker(spec_path):
    warnings.filterwarnings("ignore", message=".*ORM-style PyMilvus API")
    spec = json.loads(Path(spec_path).read_text())
    res = {"backend": spec["backend"], "size": spec["size"], "status": "running"}
    res["loadavg_start"] = os.getloadavg()

    def save(phase):
        res["phase"] = phase
        Path(spec["out"]).write_text(json.dumps(res, indent=1, default=str))

    dataset, index = fo.load_dataset(spec["dataset"]), None
    try:
        index = run_phases(dataset, spec, res, save)
        res["status"] = "ok"
    except Exception as e:
        res["status"] = f"error: {type(e).__name__}: {e}"[:500]
        res["traceback"] = traceback.format_exc()[-3000:]
    finally:
        res["loadavg_end"] = os.getloadavg()
        save("done")
        if index is not None:
            attempt(index.cleanup)  # drops the Milvus collection
        attempt(dataset.delete_brain_run, spec["brain_key"])
    return 0 if res["status"] == "ok" else 1


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def milvus_server(backend, workdir):
    """Yields the URI of a server started for ``backend``; stops it after."""
    if backend == "sklearn":
        yield None
    elif backend == "milvus-lite":
        server = LocalMilvusServer(root=workdir / "milvus-lite", port=free_port())
        try:
            yield server.ensure_running(timeout=120)
        finally:
            server.stop()
    else:
        server = real_milvus.RealMilvusServer()
        try:
            yield server.start()
        finally:
            server.stop()


def make_dataset(size, batch=50_000):
    """A dataset of ``size`` image samples with fake frame paths."""
    dataset = fo.Dataset(f"bench-milvus-{size}-{os.getpid()}", persistent=True)
    kwargs = dict(progress=False, expand_schema=False, validate=False)
    for start in range(0, size, batch):
        ids = range(start, min(size, start + batch))
        samples = [fo.Sample(filepath=f"/frames/{i:07d}.jpg") for i in ids]
        dataset.add_samples(samples, **kwargs)
    return dataset


def run_worker(args, backend, size, uri, dataset, workdir):
    out = workdir / f"{backend}-{size}.out.json"
    spec = vars(args) | {"backend": backend, "size": size, "uri": uri, "out": str(out)}
    spec.update(dataset=dataset.name, brain_key="bench_" + backend.replace("-", "_"))
    spec_path = workdir / f"{backend}-{size}.spec.json"
    spec_path.write_text(json.dumps(spec, default=str))
    start = time.monotonic()
    cmd = [sys.executable, "-m", "bench.bench_milvus", "--worker", str(spec_path)]
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True)
    try:
        rc = proc.wait(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        rc = None
    res = json.loads(out.read_text()) if out.exists() else {}
    res.update(backend=backend, size=size, wall_s=time.monotonic() - start)
    if rc is None:
        res["status"] = f"timed out after {args.timeout} s in {res.get('phase')}"
    elif rc != 0 and not str(res.get("status")).startswith("error"):
        res["status"] = f"worker exited with code {rc} in {res.get('phase')}"
    return res


def run_backend(args, backend, workdir, datasets, report):
    with milvus_server(backend, workdir) as uri:
        for size in args.sizes:
            if size not in datasets:
                datasets[size] = make_dataset(size)
            print(f"== {backend} {size}", file=sys.stderr, flush=True)
            res = run_worker(args, backend, size, uri, datasets[size], workdir)
            print(f"== {res['status']} in {res['wall_s']:.0f} s", file=sys.stderr)
            report(res)


def run_all(args, workdir, report):
    datasets = {}
    try:
        for backend in args.backends:
            try:
                run_backend(args, backend, workdir, datasets, report)
            except Exception as e:
                for size in args.sizes:
                    report({"backend": backend, "size": size, "status": f"error: {e}"})
    finally:
        for dataset in datasets.values():
            dataset.delete()


def fmt(value, spec=".2f"):
    return "–" if value is None else format(value, spec)


def table_row(r):
    ins, q, raw = r.get("insert", {}), r.get("query", {}), r.get("raw_query", {})
    cells = [r["backend"], f"{r['size']:,}", fmt(ins.get("vectors_per_s"), ",.0f")]
    cells += [fmt(ins.get("add_vectors_per_s"), ",.0f")]
    cells += [fmt(r.get("index", {}).get("wait_s"), ".1f")]
    cells += [fmt(q.get("p50_ms")), fmt(q.get("p99_ms")), str(q.get("n", "–"))]
    cells += [f"{fmt(raw.get('p50_ms'))} / {fmt(raw.get('p99_ms'))}"]
    cells += [fmt(r.get("recall_at_10")), fmt(r.get("recall_at_10_raw_ef"))]
    cells += [r["status"], ins.get("mode", "–"), str(r.get("invocation", "–"))]
    return "| " + " | ".join(cells) + " |"


def probe_row(r):
    cells = [r["backend"], f"{r['size']:,}"]
    for key in ("brain_k10", "brain_k50", "raw_ef10_k10", "raw_ef10_k50"):
        p = r["k_probe"].get(key)
        text = f"ok, {p['returned']} hits" if p["ok"] else "…" + p["error"][-110:]
        cells.append(text.replace("|", "/").replace("\n", " "))
    cells.append(str(r.get("invocation", "–")))
    return "| " + " | ".join(cells) + " |"


MAIN_HEAD = (
    "backend | vectors | insert vec/s (compute_similarity) | insert vec/s "
    "(add_to_index only) | index-ready wait s | query p50 ms | query p99 ms | "
    f"queries | raw client.search p50 / p99 ms | recall@10 | recall@10, raw ef={RECALL_EF} | "
    "status | insert mode | invocation"
)
PROBE_HEAD = (
    "backend | vectors | brain k=10 | brain k=50 | raw ef=10, k=10 | raw ef=10, k=50 | "
    "invocation"
)


def markdown(data):
    order = {b: i for i, b in enumerate(BACKENDS)}
    runs = sorted(data["runs"], key=lambda r: (r["size"], order[r["backend"]]))
    lines = ["# Milvus benchmark (512-d, cosine, k=10)", "", f"| {MAIN_HEAD} |"]
    lines += ["|" + "---|" * 14] + [table_row(r) for r in runs]
    if old := data.get("superseded", []):
        lines += ["", "## Earlier runs, replaced by a rerun", "", f"| {MAIN_HEAD} |"]
        lines += ["|" + "---|" * 14] + [table_row(r) for r in old]
    lines += ["", "## k > 10 (brain sends `{'HNSW': {..., 'params': {'ef': 10}}}`)"]
    lines += ["", f"| {PROBE_HEAD} |", "|" + "---|" * 7]
    lines += [probe_row(r) for r in runs + old if r.get("k_probe")]
    m = data["machine"]
    lines += ["", f"Machine: {m['cpu_count']} cores, {m['memory_gib']} GiB RAM, "]
    lines[-1] += f"{m['platform']}, Python {m['python']}"
    lines += ["", f"Versions: `{json.dumps(m['versions'])}`", "", "Invocations:", ""]
    lines += [f"- `{json.dumps(i)}`" for i in data["invocations"]]
    return "\n".join(lines) + "\n"


def make_reporter(args):
    path = args.results / "milvus.json"
    data = {"runs": [], "invocations": []}
    if path.exists() and not args.fresh:
        data = json.loads(path.read_text())
    invocation = {"argv": sys.argv[1:], "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    invocation["loadavg_start"] = os.getloadavg()
    data["invocations"].append(invocation)
    started = time.monotonic()

    def report(res=None):
        if res is not None:
            res["invocation"] = len(data["invocations"])
            same = [r for r in data["runs"] if r["backend"] == res["backend"]]
            old = [r for r in same if r["size"] == res["size"]]
            data.setdefault("superseded", []).extend(old)
            data["runs"] = [r for r in data["runs"] if r not in old] + [res]
        invocation["total_s"] = round(time.monotonic() - started, 1)
        data["machine"] = machine_info()
        args.results.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1, default=str))
        (args.results / "milvus.md").write_text(markdown(data))

    return report


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    add("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    add("--queries", type=int, default=200, help="timed queries per loop")
    add("--query-budget", type=float, default=120.0, help="max s per query loop")
    add("--timeout", type=int, default=600, help="max s per backend and size")
    add("--insert-chunk", type=int, default=100_000, help="max vectors per insert")
    add("--seed", type=int, default=0)
    add("--fresh", action="store_true", help="drop earlier results")
    add("--results", type=Path, default=RESULTS_DIR, help="folder for the results")
    return parser.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return worker(argv[1])
    args = parse_args(argv)
    report = make_reporter(args)
    workdir = Path(tempfile.mkdtemp(prefix="bench-milvus-"))
    try:
        run_all(args, workdir, report)
    finally:
        report()
        shutil.rmtree(workdir, ignore_errors=True)
    print((args.results / "milvus.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
