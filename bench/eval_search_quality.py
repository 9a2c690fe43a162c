"""Measures text-to-image search quality of a zoo model, through Milvus.

The path is the App's: ``fob.compute_similarity(backend="milvus", model=<zoo
name>)`` builds the index, and each text query runs through
``index.sort_by_similarity(text, k=...)``. On CIFAR-10 test it reports:

- precision@10 and @100 of each class prompt ("a photo of a horse", ...)
- accuracy of nearest-prompt classification (each image -> closest prompt)
- for the seed's words "ferrari", "pony", "mustang": the share of automobiles
  and horses among the top 25

    python bench/eval_search_quality.py --model vrag-lit-minilm-cifar10
    python bench/eval_search_quality.py --model clip-vit-b32   # registry name
    python bench/eval_search_quality.py --model open_clip:ViT-B-32 \
        --pretrained /path/to/checkpoint.pt

Results go to ``bench/results/search_quality_<model>[_per-class-N].json/.md``.
``--per-class N`` evaluates a fixed subset (the first N files of each class);
the tests rerun that subset and compare with the stored numbers.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plugin.models import lit  # noqa: E402
from plugin.models.image_text import (  # noqa: E402
    resolve_image_text_model as resolve_model,
)
from plugin.models.zoo import register_zoo_models  # noqa: E402

TEST_DIR = REPO.parent / "shared" / "data" / "cifar10" / "test"
RESULTS_DIR = REPO / "bench" / "results"
DATASET_NAME = "vrag-bench-cifar10-test"
PROBE_WORDS = ("ferrari", "pony", "mustang")
PROBE_CLASSES = ("automobile", "horse")
LABEL_FIELD = "ground_truth"


def load_cifar10_test(name=DATASET_NAME, test_dir=TEST_DIR, per_class=0):
    """CIFAR-10 test as a FiftyOne dataset, persisted under ``name`` and reused.

    ``per_class`` > 0 keeps only the first N files (by name) of each class.
    """
    import fiftyone as fo

    if fo.dataset_exists(name):
        return fo.load_dataset(name)
    dataset = fo.Dataset(name, persistent=True)
    samples = []
    for label in lit.CIFAR10_CLASSES:
        paths = sorted((Path(test_dir) / label).glob("*.jpg"))
        paths = paths[:per_class] if per_class else paths
        for path in paths:
            cls = fo.Classification(label=label)
            samples.append(fo.Sample(filepath=str(path), **{LABEL_FIELD: cls}))
    dataset.add_samples(samples)
    return dataset


def build_index(dataset, model_name, connection, brain_key, model_kwargs=None):
    """Embeds once, then indexes in Milvus with the model stored by NAME.

    Returns ``(index, image_embeddings, model)``; the embeddings are kept for
    nearest-prompt accuracy (fiftyone-brain's Milvus backend cannot return
    all vectors).
    """
    import fiftyone.brain as fob
    import fiftyone.zoo as foz

    model = foz.load_zoo_model(model_name, **(model_kwargs or {}))
    embeddings = dataset.compute_embeddings(model, batch_size=64, num_workers=0)
    if brain_key in dataset.list_brain_runs():
        dataset.delete_brain_run(brain_key)
    index = fob.compute_similarity(
        dataset,
        embeddings=embeddings,
        model=model_name,
        model_kwargs=model_kwargs,
        backend="milvus",
        brain_key=brain_key,
        metric="cosine",
        **connection.credentials(),
    )
    return index, np.asarray(embeddings, dtype=np.float32), model


def ranked_labels(index, dataset, text, k):
    """Labels of the top-``k`` images for ``text``, via the App's query path."""
    view = index.sort_by_similarity(text, k=k)
    return view.values(f"{LABEL_FIELD}.label")


def class_prompt_precision(index, dataset, ks=(10, 100)):
    """Per class prompt: precision@k of that class among the top k."""
    rows = []
    for label in lit.CIFAR10_CLASSES:
        prompt = lit.class_prompt(label)
        labels = ranked_labels(index, dataset, prompt, max(ks))
        row = {"class": label, "prompt": prompt}
        for k in ks:
            top = labels[:k]
            row[f"p@{k}"] = round(sum(x == label for x in top) / max(len(top), 1), 4)
        rows.append(row)
    return rows


def probe_word_shares(index, dataset, words=PROBE_WORDS, k=25):
    """For each probe word: share of each class among the top ``k``."""
    result = {}
    for word in words:
        labels = ranked_labels(index, dataset, word, k)
        shares = {c: round(labels.count(c) / len(labels), 4) for c in set(labels)}
        result[word] = {
            "top_k": k,
            **{c: shares.get(c, 0.0) for c in PROBE_CLASSES},
            "all": dict(sorted(shares.items(), key=lambda kv: -kv[1])),
        }
    return result


def prompt_accuracy(model, image_embeddings, labels):
    """Nearest-prompt classification accuracy (cosine)."""
    prompts = [lit.class_prompt(c) for c in lit.CIFAR10_CLASSES]
    text = np.asarray(model.embed_prompts(prompts), dtype=np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    imgs = image_embeddings / np.linalg.norm(image_embeddings, axis=1, keepdims=True)
    predicted = np.asarray(lit.CIFAR10_CLASSES)[(imgs @ text.T).argmax(axis=1)]
    return round(float((predicted == np.asarray(labels)).mean()), 4)


def evaluate(model_name, connection, dataset, brain_key, model_kwargs=None):
    """Runs every measurement; returns the results dict."""
    from plugin.runtime import prepare_process

    prepare_process()  # brain fixes + zoo models, as the plugin's register()
    t0 = time.time()
    index, embeddings, model = build_index(
        dataset, model_name, connection, brain_key, model_kwargs
    )
    index_seconds = time.time() - t0
    per_class = class_prompt_precision(index, dataset)
    labels = dataset.values(f"{LABEL_FIELD}.label")
    return {
        "model": model_name,
        "model_kwargs": model_kwargs or {},
        "dataset": dataset.name,
        "num_images": len(dataset),
        "milvus": connection.display_uri,
        "brain_key": brain_key,
        "mean_p@10": round(float(np.mean([r["p@10"] for r in per_class])), 4),
        "mean_p@100": round(float(np.mean([r["p@100"] for r in per_class])), 4),
        "prompt_accuracy": prompt_accuracy(model, embeddings, labels),
        "per_class": per_class,
        "probe_words": probe_word_shares(index, dataset),
        "index_seconds": round(index_seconds, 1),
        "total_seconds": round(time.time() - t0, 1),
    }


def to_markdown(results):
    """The README table for one model."""
    lines = [
        f"### `{results['model']}` on CIFAR-10 test ({results['num_images']} images)",
        "",
        f"Mean precision@10: **{results['mean_p@10']:.3f}** · "
        f"mean precision@100: **{results['mean_p@100']:.3f}** · "
        f"nearest-prompt accuracy: **{results['prompt_accuracy']:.3f}**",
        "",
        "| prompt | P@10 | P@100 |",
        "|---|---|---|",
    ]
    for row in results["per_class"]:
        lines.append(f"| {row['prompt']} | {row['p@10']:.2f} | {row['p@100']:.2f} |")
    lines += ["", "| word | top-25 automobiles | top-25 horses | top-25 mix |"]
    lines.append("|---|---|---|---|")
    for word, r in results["probe_words"].items():
        mix = ", ".join(f"{c} {v:.2f}" for c, v in r["all"].items())
        lines.append(f"| {word} | {r['automobile']:.2f} | {r['horse']:.2f} | {mix} |")
    return "\n".join(lines) + "\n"


def results_stem(model_name, per_class=0):
    safe = model_name.replace("/", "_").replace("@", "_")
    suffix = f"_per-class-{per_class}" if per_class else ""
    return f"search_quality_{safe}{suffix}"


def write_results(results, out_dir, stem):
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / f"{stem}.md").write_text(to_markdown(results))
    return out_dir / f"{stem}.json"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--model", default="vrag-lit-minilm-cifar10", help="registry or zoo name"
    )
    p.add_argument("--pretrained", default=None, help="for open_clip: names")
    p.add_argument("--model-kwargs", type=json.loads, default=None, help="JSON")
    p.add_argument("--milvus-uri", default="local")
    p.add_argument("--per-class", type=int, default=0, help="0 = all 1,000")
    p.add_argument("--dataset", default=None, help="FiftyOne dataset name")
    p.add_argument("--test-dir", type=Path, default=TEST_DIR)
    p.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    register_zoo_models()
    from plugin.milvus import resolve_milvus

    connection = resolve_milvus(args.milvus_uri)
    suffix = f"-{args.per_class}" if args.per_class else ""
    dataset = load_cifar10_test(
        args.dataset or DATASET_NAME + suffix, args.test_dir, args.per_class
    )
    spec = resolve_model(args.model, pretrained=args.pretrained)
    kwargs = {**spec.model_kwargs, **(args.model_kwargs or {})}
    brain_key = f"eval_{spec.slug}"
    results = evaluate(spec.zoo_name, connection, dataset, brain_key, kwargs)
    results.update(registry_name=spec.name, per_class_limit=args.per_class)
    path = write_results(results, args.out_dir, results_stem(spec.name, args.per_class))
    print(to_markdown(results))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
