"""The Markdown of bench/bench_scale_ingest.py's results
(``bench/results/scale_ingest.md``)."""


def to_markdown(r):
    lines = [
        f"Machine: {r['cpus']} CPU cores, shared with other work: load average "
        f"{r['load_before']} at the start, {r['load_after']} at the end (each "
        "run's own is in the JSON). faster-whisper tiny.en, int8, CPU. Variants "
        f"ran in turn, {r['rounds']} rounds; medians.",
        "",
        "**Whisper decoding** (seconds; x real time; CPU seconds of the process; "
        "word error rate against the known narration):",
        "",
        "| Variant | 10-min video | CPU s | WER | 25-s sample | CPU s | WER |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in r["decoding"].items():
        a, b = row["10min"], row["sample"]
        lines.append(
            f"| {name} | {a['seconds']} s ({a['x_real_time']}x) | {a['cpu_s']} | "
            f"{a['wer']} | {b['seconds']} s | {b['cpu_s']} | {b['wer']} |"
        )
    lines += [
        "",
        "**WER with the 10-min video cut to start at "
        f"{', '.join(map(str, r['cut_starts_s']))} s** (the streams' split and the "
        "30-s windows fall elsewhere):",
        "",
        "| Variant | WERs | mean | segments (sentences said) |",
        "|---|---|---:|---|",
        *[
            f"| {name} | {', '.join(map(str, row['wers']))} | {row['mean_wer']} | "
            + ", ".join(f"{a} ({b})" for a, b in zip(row["segments"], row["sentences"]))
            + " |"
            for name, row in r["cut_wer"].items()
        ],
        "",
        "**One 10-minute video, imported** (median of the wall times listed):",
        "",
        "| Variant | Wall s | x real time | CPU s | sampling | writing | "
        "transcription | rest | runs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, imp in r["import"].items():
        st = imp["stages_s"]
        lines.append(
            f"| {name} | {imp['wall_s']} | **{imp['x_real_time']}x** | "
            f"{imp['cpu_s']} | {st['sampling']} | {st['writing']} | "
            f"{st['transcription']} | {st['rest (not during transcription)']} | "
            f"{', '.join(map(str, imp['walls_s']))} |"
        )
    lines += [
        "",
        "(rest: the wall time outside transcription; with the overlap, sampling "
        "and writing the frames ran during it.)",
        "",
        f"**Library of {r['library_videos']} videos ({r['library_s'] / 60:.0f} min), "
        "worker pool**:",
        "",
        "| Workers | Threads each | Wall s | x real time | Speed-up |",
        "|---:|---:|---:|---:|---:|",
        *[
            f"| {w} | {row['threads_per_worker']} | {row['wall_s']} | "
            f"{row['x_real_time']}x | {row['speedup']}x |"
            for w, row in r["pool"]["workers"].items()
        ],
        "",
        "Peak memory of a spawned pool worker (RSS sampled every 0.2 s; one "
        "worker runs in the bench's own process): "
        f"{r['pool']['worker_peak_rss_bytes'] / 1e9:.2f} GB.",
    ]
    return "\n".join(lines) + "\n"
