"""Realistic vectors for the scale benchmarks (not random ones).

The offline LiT model's (plugin/models/lit.py) 384-d embeddings of all
60,000 CIFAR-10 images (``../shared/data/cifar10``: ``test/`` and
``train.tar.gz``), computed once and cached as ``.npy``. Larger sets are the
60,000 tiled with a small perturbation (each copy = the vector plus Gaussian
noise, renormalised), so that copies are near their source but distinct,
like near-duplicate frames of one scene. Queries are held-out test images
(not in the base set), perturbed the same way.
"""

import io
import os
import tarfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CIFAR_DIR = REPO.parent / "shared" / "data" / "cifar10"
CACHE_DIR = Path(
    os.environ.get("VRAG_BENCH_CACHE", Path.home() / ".cache" / "vrag-bench")
)
NOISE = 0.015  # per-dimension sigma of a copy (cosine ~0.96 to its source)
HELD_OUT = 1000  # test images kept out of the base set, for queries


def cifar_embeddings():
    """``(60000, 384)`` float32 unit vectors: test images first, then train."""
    path = CACHE_DIR / "lit_cifar10_60k.npy"
    if path.is_file():
        return np.load(path)
    images = _cifar_images()
    vectors = _embed(images)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def base_and_queries(size, num_queries=200, seed=0):
    """``(base, queries)``: ``size`` base vectors and held-out queries."""
    vectors = cifar_embeddings()
    held_out, pool = vectors[:HELD_OUT], vectors[HELD_OUT:]
    rng = np.random.default_rng(seed)
    copies = -(-size // len(pool))
    tiles = [pool] + [_perturb(pool, rng) for _ in range(copies - 1)]
    base = np.concatenate(tiles)[:size]
    picks = rng.choice(len(held_out), num_queries, replace=False)
    return base, _perturb(held_out[picks], rng)


def exact_top_k(base, queries, k):
    """Ids of the ``k`` nearest base vectors per query (cosine, exact)."""
    scores = queries @ base.T
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(top, order, axis=1)


def recall_at_k(found, exact):
    """Mean share of the exact top-k that ``found`` (lists of ids) holds."""
    hits = [len(set(f) & set(e)) / len(e) for f, e in zip(found, exact)]
    return float(np.mean(hits))


def _perturb(vectors, rng):
    noisy = vectors + rng.normal(0, NOISE, vectors.shape).astype(np.float32)
    return (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)


def _cifar_images():
    from PIL import Image

    images = [
        np.asarray(Image.open(p).convert("RGB"))
        for p in sorted((CIFAR_DIR / "test").rglob("*.jpg"))
    ]
    with tarfile.open(CIFAR_DIR / "train.tar.gz") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".jpg"):
                data = tar.extractfile(member).read()
                images.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    return np.stack(images)


def _embed(images, batch=1000):
    import torch

    from plugin.models import lit

    tower = lit.load_image_tower(lit.DEFAULT_WEIGHTS)
    out = []
    with torch.no_grad():
        for first in range(0, len(images), batch):
            x = lit.normalize_batch(images[first : first + batch])
            out.append(tower(x).numpy().astype(np.float32))
    return np.concatenate(out)
