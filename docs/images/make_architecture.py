"""Draws docs/images/architecture.png (run: .venv/bin/python docs/images/make_architecture.py)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

OUT = Path(__file__).with_name("architecture.png")

LAYER_COLORS = {
    "app": "#dbeafe",
    "core": "#dcfce7",
    "base": "#fef3c7",
    "ext": "#f3f4f6",
}


def box(ax, x, y, w, h, title, lines=(), color="#ffffff", size=9):
    ax.add_patch(
        FancyBboxPatch(
            (x, y),
            w,
            h,
            boxstyle="round,pad=0.02,rounding_size=0.08",
            facecolor=color,
            edgecolor="#374151",
            linewidth=1,
        )
    )
    ax.text(
        x + w / 2,
        y + h - 0.18,
        title,
        ha="center",
        va="top",
        fontsize=size + 1,
        fontweight="bold",
        family="monospace",
    )
    for i, line in enumerate(lines):
        ax.text(
            x + w / 2,
            y + h - 0.48 - i * 0.26,
            line,
            ha="center",
            va="top",
            fontsize=size - 1,
        )


def arrow(ax, a, b, label="", color="#1f2937", rad=0.0):
    ax.add_patch(
        FancyArrowPatch(
            a,
            b,
            arrowstyle="-|>",
            mutation_scale=12,
            color=color,
            linewidth=1.3,
            connectionstyle=f"arc3,rad={rad}",
        )
    )
    if label:
        ax.text(
            (a[0] + b[0]) / 2,
            (a[1] + b[1]) / 2 + 0.08,
            label,
            ha="center",
            fontsize=7.5,
            color=color,
            style="italic",
        )


def layer(ax, y, h, name, color):
    ax.add_patch(
        FancyBboxPatch(
            (0.1, y),
            17.8,
            h,
            boxstyle="round,pad=0.02",
            facecolor=color,
            edgecolor="none",
        )
    )
    ax.text(
        0.25,
        y + h - 0.15,
        name,
        fontsize=10,
        fontweight="bold",
        va="top",
        color="#374151",
    )


def main():
    fig, ax = plt.subplots(figsize=(18, 11.5))
    ax.set_xlim(0, 18)
    ax.set_ylim(0, 11.5)
    ax.axis("off")
    ax.text(
        9,
        11.3,
        "fiftyone-video-rag: layers and the one-way data path",
        ha="center",
        va="top",
        fontsize=15,
        fontweight="bold",
    )

    layer(
        ax,
        9.2,
        1.8,
        "App adapters: parse input, call the core, show results",
        LAYER_COLORS["app"],
    )
    box(
        ax,
        1.0,
        9.35,
        7.5,
        1.25,
        "operators/",
        [
            "forms.py: WorkbenchOperator, Milvus field, validation",
            "import_videos, similarity, transcripts, ask, store, ...",
        ],
        "#ffffff",
    )
    box(
        ax,
        9.5,
        9.35,
        7.5,
        1.25,
        "panels/",
        [
            "ask/: evidence + token budget, streamed answer,",
            "citations -> clips, chat; lab/: search metrics",
        ],
        "#ffffff",
    )

    layer(
        ax,
        3.6,
        5.4,
        "plugin/: the core, importable and testable without the App",
        LAYER_COLORS["core"],
    )
    box(
        ax,
        0.5,
        6.35,
        3.9,
        2.25,
        "video/",
        [
            "sampling.py, duration.py (PyAV)",
            "transcribe.py (Whisper), alignment.py",
            "importer.py, transcripts.py, videos.py",
            "moments.py, densify.py, playable.py",
            "screen_text.py (OCR), pool.py, fanout.py",
        ],
    )
    box(
        ax,
        4.8,
        6.35,
        3.9,
        2.25,
        "models/",
        [
            "image_text.py (OpenCLIP, AltCLIP,",
            "zoo names, offline LiT)",
            "speech.py (Whisper models)",
            "text.py, minilm.py (text embedders)",
        ],
    )
    box(
        ax,
        9.1,
        6.35,
        4.1,
        2.25,
        "retrieval/",
        [
            "frame_index.py, frame_search.py (brain)",
            "text_index.py: transcript, screen text",
            "hybrid.py, fusion.py (RRF), hits.py",
            "build.py (every index), lite_index.py",
            "brain_fixes.py (brain's private names)",
        ],
    )
    box(
        ax,
        13.6,
        6.35,
        3.9,
        2.25,
        "answer/",
        [
            "evidence.py, prompt.py (ONE builder)",
            "budget.py, plan.py, request.py, images.py",
            "client.py (vLLM), citations.py",
            "ask.py, chat.py, history.py",
        ],
    )
    ax.text(
        9,
        6.12,
        "also in plugin/: curation/ (frame map, near-duplicates, storyboards), "
        "lab/ (relevance judgments, metrics), cleanup.py (orphans), demo.py",
        ha="center",
        fontsize=9,
    )
    box(ax, 0.5, 3.8, 17.0, 2.25, "cross-cutting (one place each)", [], "#ffffff")
    items = [
        ("settings.py", "Settings: every VRAG_*"),
        ("errors.py", "VideoRagError + subclasses"),
        ("clients.py", "Milvus/OpenAI clients, once"),
        ("runtime.py", "prepare_process()"),
        ("milvus/", "resolver, managed Lite store"),
        ("process.py", "ports, start/stop groups"),
        ("inputs.py, progress.py", "checks, progress(f, label)"),
    ]
    for i, (name, what) in enumerate(items):
        x = 0.8 + i * 2.42
        box(ax, x, 3.95, 2.25, 1.6, name, [what], "#f0fdf4", size=8)

    layer(
        ax,
        0.2,
        3.1,
        "Libraries and services (real parts in the tests)",
        LAYER_COLORS["ext"],
    )
    ext = [
        ("FiftyOne + MongoDB", ["datasets, views,", "execution store"]),
        ("fiftyone-brain", ["compute_similarity", "(backend=milvus)"]),
        ("Milvus", ["Lite server (managed)", "or standalone / Zilliz"]),
        ("faster-whisper", ["CTranslate2 models", "(packaged offline)"]),
        ("open_clip / transformers", ["CLIP-family models", "sentence-transformers"]),
        ("vLLM", ["Pixtral-12B, OpenAI API", "(openai client)"]),
    ]
    for i, (name, lines) in enumerate(ext):
        box(ax, 0.5 + i * 2.9, 0.45, 2.65, 2.1, name, lines, "#ffffff", size=8)

    # the data path, left to right
    red = "#b91c1c"
    arrow(ax, (2.45, 9.35), (2.45, 8.6), "import", red)
    arrow(ax, (4.4, 7.65), (4.8, 7.65), "", red)
    arrow(ax, (8.7, 7.65), (9.1, 7.65), "embed", red)
    arrow(ax, (13.2, 7.65), (13.6, 7.65), "hits", red)
    arrow(ax, (15.5, 8.6), (13.5, 9.35), "answer + [n]", red)
    arrow(ax, (6.0, 9.35), (11.0, 8.6), "search", "#1d4ed8")
    arrow(ax, (11.0, 9.35), (15.0, 8.6), "ask", "#1d4ed8")
    ax.text(
        9,
        3.42,
        "Data path: video file -> frames (JPEG) + Whisper segments -> frame samples "
        "with aligned transcript -> embeddings -> Milvus (frame + transcript "
        "collections)\n-> hits carrying frame fields -> numbered evidence -> ONE chat "
        "request -> cited answer",
        ha="center",
        fontsize=8.5,
        color=red,
    )
    fig.savefig(OUT, dpi=110, bbox_inches="tight")
    print(OUT)


if __name__ == "__main__":
    main()
