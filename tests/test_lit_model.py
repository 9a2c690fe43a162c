"""The offline image-text model ``vrag-lit-minilm-cifar10``.

- its training code learns (loss falls on a tiny subset)
- the shipped weights load offline and reproduce the stored precision@10
- the App's path (zoo name -> Milvus index -> text query) finds horses

The reference numbers come from ``bench/eval_search_quality.py --per-class
100`` (the first 100 test files of each class), stored in
``bench/results/search_quality_vrag-lit-minilm-cifar10_per-class-100.json``;
the full-test-set table in docs/offline_model.md comes from the same script.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
TEST_DIR = REPO.parent / "shared" / "data" / "cifar10" / "test"
MODEL = "vrag-lit-minilm-cifar10"
REFERENCE = REPO / "bench" / "results" / f"search_quality_{MODEL}_per-class-100.json"
P10_TOLERANCE = 0.03


def _load_script(relpath, name):
    """Imports a script (training/, bench/ are not packages)."""
    spec = importlib.util.spec_from_file_location(name, REPO / relpath)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def evaluator():
    return _load_script("bench/eval_search_quality.py", "eval_search_quality")


def _require_test_images():
    if not TEST_DIR.is_dir():
        pytest.fail(f"CIFAR-10 test images not found at {TEST_DIR}", pytrace=False)


def _tiny_subset(per_class):
    """First ``per_class`` test JPEGs of each class, as uint8 arrays."""
    from PIL import Image

    from plugin.models import lit

    images, labels = [], []
    for idx, label in enumerate(lit.CIFAR10_CLASSES):
        for path in sorted((TEST_DIR / label).glob("*.jpg"))[:per_class]:
            images.append(np.asarray(Image.open(path).convert("RGB")))
            labels.append(idx)
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def test_training_loss_falls():
    _require_test_images()
    # caption embeddings come from the content-hashed cache when present
    train_lit = _load_script("training/train_lit.py", "train_lit")
    images, labels = _tiny_subset(per_class=24)
    args = train_lit.parse_args(
        ["--epochs", "3", "--batch-size", "48", "--lr", "3e-3", "--seed", "0"]
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread is faster on a busy 2-core box
    try:
        _, history = train_lit.train(args, images, labels)
    finally:
        torch.set_num_threads(threads)
    losses = [row["loss"] for row in history]
    assert losses[-1] < losses[0] - 0.05, f"loss did not fall: {losses}"


def test_shipped_weights_load_offline():
    from plugin.models import lit

    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    size_mb = lit.DEFAULT_WEIGHTS.stat().st_size / 1e6
    assert size_mb < 5, f"shipped weights are {size_mb:.1f} MB"
    tower = lit.load_image_tower()
    meta = lit.load_metadata()
    assert meta["model"] == MODEL
    vectors = lit.TextTower().encode(["a photo of a horse"])
    assert vectors.shape == (1, tower.proj.out_features)


def test_zoo_name_loads_in_a_fresh_process():
    """The App server re-creates the index's model by name in its process."""
    from plugin.models.zoo import register_zoo_models

    assert MODEL in register_zoo_models()
    code = (
        "import fiftyone.zoo as foz;"
        f"m = foz.load_zoo_model('{MODEL}');"
        "print(m.embed_prompts(['pony']).shape)"
    )
    # register_zoo_models() exported the manifest path and PYTHONPATH
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd="/",
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "(1, 384)" in out.stdout


def test_shipped_weights_reproduce_precision(local_store, dataset_name, evaluator):
    _require_test_images()
    if not REFERENCE.exists():
        pytest.fail(f"reference results missing: {REFERENCE}", pytrace=False)
    reference = json.loads(REFERENCE.read_text())
    from plugin.models.zoo import register_zoo_models

    register_zoo_models()
    dataset = evaluator.load_cifar10_test(dataset_name, TEST_DIR, per_class=100)
    assert len(dataset) == reference["num_images"] == 1000
    results = evaluator.evaluate(MODEL, local_store.milvus(), dataset, "lit_repro")
    got, want = results["mean_p@10"], reference["mean_p@10"]
    assert abs(got - want) <= P10_TOLERANCE, f"P@10 {got} vs stored {want}"
    got100, want100 = results["mean_p@100"], reference["mean_p@100"]
    assert abs(got100 - want100) <= P10_TOLERANCE, f"P@100 {got100} vs {want100}"
    assert abs(results["prompt_accuracy"] - reference["prompt_accuracy"]) <= 0.01


def test_horse_prompt_ranks_horses_first_in_app_path(
    local_store, dataset_name, evaluator
):
    """The App's search: index built from the zoo NAME, queried with text."""
    import fiftyone.brain as fob

    from plugin.models.zoo import register_zoo_models

    _require_test_images()
    register_zoo_models()
    dataset = evaluator.load_cifar10_test(dataset_name, TEST_DIR, per_class=20)
    fob.compute_similarity(
        dataset,
        model=MODEL,
        backend="milvus",
        brain_key="lit_app_path",
        batch_size=64,
        num_workers=0,  # no data-loader processes for 200 tiny images
        **local_store.milvus().credentials(),
    )
    info = dataset.get_brain_info("lit_app_path")
    assert info.config.model == MODEL  # stored by name: the App can reload it
    view = dataset.sort_by_similarity(
        "a photo of a horse", k=10, brain_key="lit_app_path"
    )
    labels = view.values("ground_truth.label")
    assert labels[0] == "horse", labels
    assert labels.count("horse") >= 8, labels
