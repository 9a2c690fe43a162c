"""Operators: read on-screen text into imported frames; build every index."""

import fiftyone.operators.types as types

from plugin.models.image_text import DEFAULT_IMAGE_TEXT_MODEL, MODELS
from plugin.retrieval.build import build_indexes
from plugin.retrieval.frame_store import DEFAULT_BRAIN_KEY
from plugin.retrieval.fusion import SCREEN_TEXT, SIGNALS
from plugin.video.screen_text import TEXT_FIELD, add_screen_text

from .forms import (
    MANY_FRAMES,
    WorkbenchOperator,
    dropdown,
    milvus_input,
    work_args,
)

_SIGNAL_LABELS = {
    "frames": "Frames (image-text model)",
    "transcripts": "Transcript",
    "screen_text": "On-screen text",
}
_COLUMNS = [("index", "Index"), ("status", "Status"), ("message", "Details")]


class ReadScreenText(WorkbenchOperator, label="read on-screen text", background=True):
    """Reads the text shown on frames (slides, captions) with offline OCR,
    only on frames whose picture changed, and indexes it for search.
    """

    def form(self, ctx, inputs):
        if ctx.dataset is None:
            inputs.view("no_dataset", types.Warning(label="Open a dataset first"))
            return
        inputs.view_target(ctx)
        inputs.bool(
            "overwrite",
            default=False,
            label="Read frames that already have on-screen text again",
        )
        inputs.bool(
            "index",
            default=True,
            label="Then index the text (build or sync the on-screen text index)",
        )
        if ctx.params.get("index", True):
            milvus_input(ctx, inputs)

    def is_large(self, ctx):
        return ctx.view is not None and len(ctx.target_view()) > MANY_FRAMES

    def run(self, ctx):
        args = work_args(ctx)
        counts = add_screen_text(
            ctx.target_view(),
            overwrite=bool(ctx.params.get("overwrite")),
            progress=args["progress"],
        )
        summary = (
            f"{counts['read']} frame(s) read, {counts['reused']} unchanged "
            f"(text reused), {counts['with_text']} show text; "
            f"{counts['kept']} already had it"
        )
        if counts["missing"]:
            summary += f"; {counts['missing']} image file(s) missing"
        if ctx.params.get("index", True):
            outcome = build_indexes(ctx.dataset, signals=(SCREEN_TEXT,), **args)
            summary += f". Index: {outcome[SCREEN_TEXT].message}"
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return {"summary": summary}

    def outputs(self, ctx, outputs):
        outputs.str("summary", label="Result")


class BuildIndexes(WorkbenchOperator, label="build all indexes", background=True):
    """Builds, or syncs, every index the dataset supports: frames,
    transcript and on-screen text (the ones hybrid search and Ask use).
    """

    def form(self, ctx, inputs):
        if ctx.dataset is None:
            inputs.view("no_dataset", types.Warning(label="Open a dataset first"))
            return
        inputs.view(
            "about",
            types.Notice(label=_plan(ctx.dataset)),
        )
        for signal in SIGNALS:
            inputs.bool(signal, default=True, label=_SIGNAL_LABELS[signal])
        if DEFAULT_BRAIN_KEY not in ctx.dataset.list_brain_runs():
            choices = {name: spec.description for name, spec in MODELS.items()}
            dropdown(
                inputs,
                "image_model",
                choices,
                DEFAULT_IMAGE_TEXT_MODEL,
                "Image-text model of the new frame index",
                description="If its weights cannot be had, the offline model is used",
            )
        milvus_input(ctx, inputs)

    def is_large(self, ctx):
        return ctx.dataset is not None and len(ctx.dataset) > MANY_FRAMES

    def run(self, ctx):
        signals = [s for s in SIGNALS if ctx.params.get(s, True)]
        outcomes = build_indexes(
            ctx.dataset,
            image_model=ctx.params.get("image_model") or None,
            signals=signals,
            **work_args(ctx),
        )
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return {
            "indexes": [
                {"index": _SIGNAL_LABELS[s], **o.to_dict()} for s, o in outcomes.items()
            ]
        }

    def outputs(self, ctx, outputs):
        table = types.TableView()
        for key, label in _COLUMNS:
            table.add_column(key, label=label)
        outputs.list("indexes", types.Object(), label="Indexes", view=table)


def _plan(dataset):
    """What the fields support, in a sentence."""
    parts = [f"{len(dataset)} frames"]
    if dataset.has_sample_field(TEXT_FIELD):
        shown = dataset.match({TEXT_FIELD: {"$nin": [None, ""]}}).count()
        parts.append(f"{shown} with on-screen text")
    else:
        parts.append("no on-screen text read yet ('read on-screen text' does it)")
    return (
        "Builds each index that does not exist and syncs each that does: "
        + ", ".join(parts)
        + ". An index the fields do not support is skipped, with the reason."
    )
