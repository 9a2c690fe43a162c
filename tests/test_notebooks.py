"""The notebooks run top to bottom, offline, as a user runs them.

Each notebook is executed with nbclient in a kernel on THIS interpreter (a
temporary kernelspec, nothing registered globally). The kernel inherits the
session's environment (conftest: a temp ``VRAG_HOME``, our own MongoDB dir,
hub offline), so it uses the session's managed local Milvus store: the test
process starts that store first and, after the kernel is gone, searches the
notebook's index itself, as the App (another process) would.

A failing cell fails the test with that cell's source and traceback. The
notebooks print machine-readable lines (``RESULTS {json}`` ...); empty search
results fail, and with the offline model the seed's lessons are checked
("pony" finds horses).
"""

import ast
import importlib.util
import json
import os
import sys
import time
import uuid
from pathlib import Path

import fiftyone as fo
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError

from plugin.milvus import LocalMilvusServer
from plugin.models.image_text import OFFLINE_MODEL, register_zoo_models
from plugin.retrieval.frame_search import search_frames
from plugin.runtime import prepare_process

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
CELL_TIMEOUT = 300  # s per cell; a whole notebook takes ~1 min here
KERNEL_NAME = "vrag-notebook-test"
CIFAR_SAMPLES_PER_CLASS = 100  # 1,000 images: the notebook's own default
TAGS = ("RESULTS", "STORE", "MODEL", "DATA", "VIZ", "ANSWER", "EVIDENCE", "SKIPPED")
# Settings that would point the kernel away from the session's managed store
# or at a vLLM server; the notebooks' offline branch is what CI checks.
UNSET = (
    "VRAG_MILVUS_URI",
    "FIFTYONE_BRAIN_SIMILARITY_MILVUS_URI",
    "VRAG_VLLM_BASE_URL",
    "VRAG_VLLM_API_KEY",
)


# Session-scoped; the lead may move it into tests/conftest.py so that every
# module shares one server.
# vllm_server: the session fixture from conftest.py


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory):
    """A kernelspec running this interpreter, in a temp folder only."""
    # This process reloads the notebooks' indexes (as the App does): brain
    # re-creates their model by zoo name, so ours must be registered here.
    register_zoo_models()
    root = tmp_path_factory.mktemp("kernels")
    spec_dir = root / KERNEL_NAME
    spec_dir.mkdir()
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "vrag notebook test",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return root


def run_notebook(name, kernel_dir, env_overrides):
    """Executes ``notebooks/<name>``.

    Returns ``(parsed lines, stdout, seconds, figures)``, ``figures`` being
    the number of images (plots, grids) the notebook displayed.

    Fails the test with the failing cell's source and traceback.
    """
    path = NOTEBOOKS / name
    nb = nbformat.read(path, as_version=4)
    specs = KernelSpecManager(kernel_dirs=[str(kernel_dir)], ensure_native_kernel=False)
    km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)
    client = NotebookClient(
        nb,
        km=km,
        timeout=CELL_TIMEOUT,
        allow_errors=False,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update(env_overrides)
    started = time.monotonic()
    try:
        client.execute(env=env)
    except CellExecutionError as e:  # its text holds the cell source + traceback
        pytest.fail(f"{name}: a cell failed.\n{e}", pytrace=False)
    except CellTimeoutError as e:
        pytest.fail(
            f"{name}: a cell ran past {CELL_TIMEOUT} s.\n{e}\n"
            f"Output so far:\n{_stdout(nb)[-3000:]}",
            pytrace=False,
        )
    finally:
        if km.has_kernel:  # nbclient leaves a kernel it was given running
            km.shutdown_kernel(now=False)
    seconds = time.monotonic() - started
    for index, cell in enumerate(nb.cells):
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        if errors:
            pytest.fail(
                f"{name}: cell {index} has an error output "
                f"({errors[0].ename}: {errors[0].evalue}):\n{cell.source}",
                pytrace=False,
            )
    stdout = _stdout(nb)
    print(f"--- {name}: stdout of its cells ---\n{stdout}")  # shown on failure
    print(f"--- {name}: seconds per code cell: {_cell_seconds(nb)}")
    figures = sum(
        1
        for cell in nb.cells
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    )
    return parse_lines(stdout), stdout, seconds, figures


def _cell_seconds(nb):
    """``[(cell index, seconds)]`` from nbclient's timing metadata."""
    from datetime import datetime

    timings = []
    for index, cell in enumerate(nb.cells):
        timing = cell.get("metadata", {}).get("execution", {})
        start, end = (
            timing.get("iopub.execute_input"),
            timing.get("shell.execute_reply"),
        )
        if start and end:
            seconds = (
                datetime.fromisoformat(end.replace("Z", "+00:00"))
                - datetime.fromisoformat(start.replace("Z", "+00:00"))
            ).total_seconds()
            timings.append((index, round(seconds, 1)))
    return timings


def _stdout(nb):
    return "".join(
        output.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.output_type == "stream" and output.name == "stdout"
    )


def parse_lines(stdout):
    """``{tag: [payload, ...]}`` from the notebook's ``TAG {json}`` lines."""
    parsed = {tag: [] for tag in TAGS}
    for line in stdout.splitlines():
        tag, _, rest = line.partition(" ")
        if tag in parsed and rest.startswith("{"):
            parsed[tag].append(json.loads(rest))
    return parsed


def _one(parsed, tag, stdout):
    assert len(parsed[tag]) == 1, (
        f"expected one {tag} line, got {parsed[tag]}\n{stdout[-3000:]}"
    )
    return parsed[tag][0]


def _delete(name, store):
    if not fo.dataset_exists(name):
        return
    dataset = fo.load_dataset(name)
    prepare_process(store)  # brain reaches the store to drop collections
    from plugin.retrieval.transcript_index import (
        delete_transcript_index,
        transcript_index_info,
    )

    if transcript_index_info(dataset):
        delete_transcript_index(dataset, settings=store)
    for key in dataset.list_brain_runs(type="similarity"):
        dataset.load_brain_results(key).cleanup()  # drops its collection
    dataset.delete()


def _delete_quietly(name, store):
    """Cleanup after a failure: must not hide the failure itself."""
    try:
        _delete(name, store)
    except Exception as e:
        print(f"cleanup of {name} failed: {type(e).__name__}: {e}")


def _collections_of(name, store):
    slug = "".join(c if c.isalnum() else "_" for c in name)
    return [c for c in store.milvus().client().list_collections() if slug in c]


def _assert_deleted(name, store):
    """Deleting the dataset and its indexes leaves nothing in Milvus."""
    assert _collections_of(name, store), f"no Milvus collections for {name}"
    _delete(name, store)
    assert not fo.dataset_exists(name)
    left = _collections_of(name, store)
    assert not left, f"collections left in Milvus after deleting {name}: {left}"


def _assert_managed_store(parsed, stdout, store):
    got = _one(parsed, "STORE", stdout)
    assert got["kind"] == "local", f"notebook used {got}, not the managed store"
    assert got["uri"] == store.milvus().uri == LocalMilvusServer().uri(), (
        f"notebook used {got['uri']}, the session's managed store is {store.milvus().uri}"
    )


def test_notebooks_are_built_and_outputs_free():
    spec = importlib.util.spec_from_file_location(
        "build_notebooks", NOTEBOOKS / "build_notebooks.py"
    )
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    assert builder.main(["--check"]) == 0, (
        "The committed notebooks differ from notebooks/build_notebooks.py: "
        "run `.venv/bin/python notebooks/build_notebooks.py`"
    )
    for name in builder.NOTEBOOKS:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                ast.parse(cell.source)  # a syntax error fails here, at once
                assert cell.outputs == [] and cell.execution_count is None, (
                    f"{name} is committed with outputs:\n{cell.source}"
                )


def test_cifar10_milvus_exploration(kernel_dir, local_store):
    name = f"vrag-test-nb-cifar-{uuid.uuid4().hex[:8]}"
    env = {
        "VRAG_NB_CIFAR_DATASET": name,
        "VRAG_NB_SAMPLES_PER_CLASS": str(CIFAR_SAMPLES_PER_CLASS),
        "VRAG_NB_LAUNCH_APP": "0",
    }
    try:
        parsed, stdout, seconds, figures = run_notebook(
            "cifar10_milvus_exploration.ipynb", kernel_dir, env
        )
        print(f"cifar10_milvus_exploration.ipynb ran in {seconds:.0f} s")
        assert figures >= 4, f"{figures} figures: 3 hit grids + the 2-D plot expected"
        _assert_managed_store(parsed, stdout, local_store)

        data = _one(parsed, "DATA", stdout)
        assert data["samples"] == 10 * CIFAR_SAMPLES_PER_CLASS, data
        model = _one(parsed, "MODEL", stdout)

        results = {(r["index"], r["query"]): r for r in parsed["RESULTS"]}
        for index in ("clip_sim", "clip_euclid"):
            for query in ("ferrari", "pony", "mustang"):
                got = results.get((index, query))
                assert got is not None, f"no RESULTS for {query!r} on {index}"
                assert got["top"], f"{query!r} on {index} found nothing: {got}"
                assert len(got["top"]) == got["k"], got
                print(f"RESULTS {index} {query}: {got['counts']}")
        altclip = [r for r in parsed["RESULTS"] if r["index"] == "altclip_sim"]
        skipped = [s for s in parsed["SKIPPED"] if s["step"] == "altclip"]
        assert altclip or skipped, "the AltCLIP step neither ran nor said why not"
        if skipped:
            assert skipped[0]["reason"], skipped

        viz = _one(parsed, "VIZ", stdout)
        assert viz["points"] == data["samples"], viz

        # Another process (this one, as the App would) searches the
        # notebook's index in the shared store, after the kernel is gone.
        dataset = fo.load_dataset(name)
        prepare_process(local_store)  # what the App's register() does
        hits = search_frames(
            dataset, "pony", k=25, brain_key="clip_sim", settings=local_store
        )
        labels = dataset.select([h.sample_id for h in hits], ordered=True).values(
            "ground_truth.label"
        )
        expected = [label for label, _ in results[("clip_sim", "pony")]["top"]]
        assert labels == expected, (labels, expected)

        if model["used"] == OFFLINE_MODEL:  # the seed's lessons, offline model
            pony = results[("clip_sim", "pony")]
            assert pony["counts"].get("horse", 0) > pony["k"] / 2, pony
            ferrari = results[("clip_sim", "ferrari")]
            vehicles = ferrari["counts"].get("automobile", 0)
            vehicles += ferrari["counts"].get("truck", 0)
            assert vehicles > ferrari["k"] / 2, ferrari
            mustang = results[("clip_sim", "mustang")]["counts"]  # both meanings
            assert mustang.get("horse", 0) and mustang.get("automobile", 0), mustang
            # unit-norm vectors: euclidean ranks as cosine does
            euclid = results[("clip_euclid", "pony")]
            assert euclid["counts"].get("horse", 0) > euclid["k"] / 2, euclid
        _assert_deleted(name, local_store)
    finally:
        _delete_quietly(name, local_store)


def test_video_rag(kernel_dir, local_store):
    name = f"vrag-test-nb-video-{uuid.uuid4().hex[:8]}"
    env = {"VRAG_NB_VIDEO_DATASET": name}
    try:
        parsed, stdout, seconds, figures = run_notebook(
            "video_rag.ipynb", kernel_dir, env
        )
        print(f"video_rag.ipynb ran in {seconds:.0f} s")
        assert figures >= 1, "the frame hits were not shown"
        _assert_managed_store(parsed, stdout, local_store)

        data = _one(parsed, "DATA", stdout)
        assert data["samples"] == 5, data  # one frame per 5 s scene
        model = _one(parsed, "MODEL", stdout)
        results = {r["kind"]: r for r in parsed["RESULTS"]}
        for kind in ("frames", "transcript", "hybrid"):
            assert kind in results, f"no {kind} RESULTS line\n{stdout[-3000:]}"
            assert results[kind]["hits"], f"{kind} search found nothing: {results}"
            print(f"RESULTS {kind} {results[kind]['query']!r}: {results[kind]['hits']}")
        for hit in results["frames"]["hits"]:
            assert hit["t"] is not None, hit  # hits carry their timestamps
        assert "ship" in results["transcript"]["hits"][0]["text"], results
        if model["used"] == OFFLINE_MODEL:
            top = results["frames"]["hits"][0]
            assert top["t"] == 0.0 and "horse" in top["transcript"], top

        # No vLLM endpoint here: the notebook shows the evidence instead
        assert not parsed["ANSWER"], parsed["ANSWER"]
        evidence = _one(parsed, "EVIDENCE", stdout)
        assert evidence["items"] and evidence["images"] >= 1, evidence
        assert "vllm serve" in stdout, "the notebook did not say how to start vLLM"

        dataset = fo.load_dataset(name)
        assert "frame_sim" in dataset.list_brain_runs()
        _assert_deleted(name, local_store)
    finally:
        _delete_quietly(name, local_store)


@pytest.mark.vllm
def test_video_rag_answers_with_vllm(kernel_dir, local_store, vllm_server):
    """With an endpoint configured, the notebook's last step answers (the
    tiny test VLM answers noise: this checks the path, not the answer)."""
    name = f"vrag-test-nb-video-{uuid.uuid4().hex[:8]}"
    env = {
        "VRAG_NB_VIDEO_DATASET": name,
        "VRAG_NB_MODEL": OFFLINE_MODEL,  # the fallback is covered above
        "VRAG_VLLM_BASE_URL": vllm_server.base_url,
        "VRAG_VLLM_API_KEY": vllm_server.api_key,
        "VRAG_VLLM_MODEL": vllm_server.model_name,
    }
    try:
        parsed, stdout, seconds, _ = run_notebook("video_rag.ipynb", kernel_dir, env)
        print(f"video_rag.ipynb with vLLM ran in {seconds:.0f} s")
        answer = _one(parsed, "ANSWER", stdout)
        assert answer["text"].strip() and answer["evidence"] >= 1, answer
        assert answer["model"] == vllm_server.model_name, answer
        assert not parsed["EVIDENCE"], "answered, yet showed the fallback"
        assert vllm_server.api_key not in stdout, "the API key was printed"
    finally:
        _delete_quietly(name, local_store)
