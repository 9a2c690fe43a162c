"""Operators: build/sync a frame index on Milvus, search frames by text.

``index_frames`` builds in its own operation, or fans out (``fan_out``): one
delegated operation per N frames (``index_frame_batch``), so that several
``fiftyone delegated launch`` workers share the work; ``import_status``
shows the job. See :mod:`plugin.retrieval.index_fanout`.
"""

import fiftyone.operators.types as types

from plugin.models.image_text import (
    DEFAULT_IMAGE_TEXT_MODEL,
    MODELS,
    resolve_image_text_model,
)
from plugin.retrieval.frame_index import (
    CONSISTENCY_LEVELS,
    DEFAULT_BRAIN_KEY,
    METRICS,
    build_frame_index,
    embeddings_field_for,
    sync_frame_index,
)
from plugin.retrieval.frame_search import hits_view, search_frames
from plugin.retrieval.index_fanout import (
    FRAMES_PER_OPERATION,
    fan_out_index,
    run_index_batch,
)

from .forms import (
    MANY_FRAMES,
    WorkbenchOperator,
    dropdown,
    flag,
    frame_index_input,
    mark_invalid,
    milvus_input,
    number_param,
    search_inputs,
    search_request,
    settings_from,
    table_output,
    work_args,
)
from .jobs import JobPart, fan_out_input

_CUSTOM = "custom"
_K = 25  # frames a search shows by default


class IndexFrames(
    WorkbenchOperator, label="index frames in Milvus", background=True, on_view=True
):
    """Embeds frames with a CLIP-family model and indexes them in Milvus
    (fiftyone-brain similarity index).
    """

    def form(self, ctx, inputs):
        inputs.view_target(ctx)
        _model_inputs(ctx, inputs)
        dropdown(inputs, "metric", METRICS, "cosine", "Metric")
        dropdown(
            inputs, "consistency_level", CONSISTENCY_LEVELS, "Session", "Consistency"
        )
        _brain_key_input(ctx, inputs)
        inputs.str(
            "collection_name",
            label="Milvus collection",
            description="Empty: derived from the dataset name and brain key",
        )
        milvus_input(ctx, inputs)
        _fan_out_inputs(ctx, inputs)

    def run(self, ctx):
        request = {
            "model": _model_name(ctx.params),
            "brain_key": ctx.params.get("brain_key") or DEFAULT_BRAIN_KEY,
            "metric": ctx.params.get("metric", "cosine"),
            "consistency_level": ctx.params.get("consistency_level", "Session"),
            "collection_name": ctx.params.get("collection_name") or None,
            "overwrite": bool(ctx.params.get("overwrite", False)),
            **work_args(ctx),
        }
        if ctx.params.get("fan_out"):
            return _fan_out(ctx, self.plugin_name, request)
        index = build_frame_index(ctx.target_view(), **request)
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return {
            "brain_key": index.key,
            "vectors": index.total_index_size,
            "collection": index.config.collection_name,
        }

    def outputs(self, ctx, outputs):
        outputs.str("brain_key", label="Brain key (pick it in the App's search)")
        if (ctx.results or {}).get("job_id"):
            outputs.str("job_id", label="Index job (see 'import and index status')")
            outputs.str("summary", label="Parts", view=types.MarkdownView())
            return
        outputs.int("vectors", label="Vectors in the index")
        outputs.str("collection", label="Milvus collection")


class IndexFrameBatch(JobPart, label="index frame batch (fan-out part)"):
    """Indexes some frames of a fanned-out index job (queued by 'index
    frames'; runs in a delegated worker)."""

    def run_parts(self, ctx):
        return run_index_batch(
            ctx.params["dataset_name"],
            ctx.params["job_id"],
            ctx.params["parts"],
            settings=settings_from(ctx),
        )


class SyncFrameIndex(WorkbenchOperator, label="sync frame index", background=True):
    """Indexes frames added since, drops deleted ones."""

    def form(self, ctx, inputs):
        frame_index_input(ctx, inputs, DEFAULT_BRAIN_KEY)
        milvus_input(ctx, inputs)

    def is_large(self, ctx):
        """Many frames without an embedding yet: those are the work."""
        key = ctx.params.get("brain_key")
        if ctx.dataset is None or not key:
            return False
        missing = ctx.dataset.exists(embeddings_field_for(key), False)
        return missing.count() > MANY_FRAMES

    def run(self, ctx):
        return sync_frame_index(ctx.dataset, ctx.params["brain_key"], **work_args(ctx))

    def outputs(self, ctx, outputs):
        outputs.int("added", label="Frames added")
        outputs.int("removed", label="Frames removed")


class SearchFrames(WorkbenchOperator, label="search frames by text"):
    """Shows the frames that best match a text query."""

    def form(self, ctx, inputs):
        search_inputs(ctx, inputs, _K, "frames")
        frame_index_input(ctx, inputs, DEFAULT_BRAIN_KEY)
        milvus_input(ctx, inputs)

    def run(self, ctx):
        hits = search_frames(
            ctx.dataset, brain_key=ctx.params["brain_key"], **search_request(ctx, _K)
        )
        if not ctx.delegated:
            ctx.ops.set_view(hits_view(ctx.dataset, hits))
        return {"hits": [_hit_row(hit) for hit in hits]}

    def outputs(self, ctx, outputs):
        columns = {"rank": "#", "score": "Score", "video": "Video", "time": "Time"}
        table_output(outputs, "hits", columns, "Frames")


def _fan_out_inputs(ctx, inputs):
    fan_out_input(inputs, "One background operation per N frames", "indexing")
    if not ctx.params.get("fan_out"):
        return
    prop = inputs.int(
        "frames_per_operation",
        default=FRAMES_PER_OPERATION,
        label="Frames per operation (N)",
    )
    if ctx.params.get("frames_per_operation") is not None:
        flag(prop, lambda: _frames_per_operation(ctx))


def _frames_per_operation(ctx):
    return number_param(
        ctx, "frames_per_operation", FRAMES_PER_OPERATION, "Frames per operation", True
    )


def _fan_out(ctx, plugin_name, request):
    job = fan_out_index(
        ctx.target_view(),
        f"{plugin_name}/{IndexFrameBatch.operator_name}",
        frames_per_operation=_frames_per_operation(ctx),
        **request,
    )
    summary = (
        f"- Queued {job['params']['frames']} frame(s) as {job['total']} "
        f"delegated operation(s), job {job['job_id']}: run "
        "`fiftyone delegated launch` on one or more machines; "
        "progress: 'import and index status'"
    )
    return {
        "brain_key": request["brain_key"],
        "job_id": job["job_id"],
        "summary": summary,
    }


def _hit_row(hit):
    seconds = hit.timestamp or 0.0
    return {
        "rank": hit.rank + 1,
        "score": round(hit.score, 4),
        "video": hit.video_path.rsplit("/", 1)[-1] or hit.video_id,
        "time": f"{int(seconds // 60):02d}:{seconds % 60:04.1f}",
    }


def _model_inputs(ctx, inputs):
    dropdown(
        inputs,
        "model",
        list(MODELS) + [_CUSTOM],
        DEFAULT_IMAGE_TEXT_MODEL,
        "Model",
        description="Registry models; 'custom' for any OpenCLIP name, "
        "hf:<model>, a checkpoint or a FiftyOne zoo name",
    )
    if ctx.params.get("model") != _CUSTOM:
        return
    prop = inputs.str(
        "custom_model",
        required=True,
        label="Model name",
        description="open_clip:<arch> | hf:<name or dir> | zoo model name",
    )
    inputs.str("pretrained", label="OpenCLIP pretrained tag or checkpoint path")
    if ctx.params.get("custom_model"):
        flag(prop, lambda: _model_name(ctx.params))


def _model_name(params):
    name = params.get("model") or DEFAULT_IMAGE_TEXT_MODEL
    if name != _CUSTOM:
        return name
    return resolve_image_text_model(
        params.get("custom_model"), params.get("pretrained")
    )


def _brain_key_input(ctx, inputs):
    prop = inputs.str("brain_key", default=DEFAULT_BRAIN_KEY, label="Brain key")
    key = ctx.params.get("brain_key") or DEFAULT_BRAIN_KEY
    if ctx.dataset is None or key not in ctx.dataset.list_brain_runs():
        return
    inputs.bool(
        "overwrite",
        default=False,
        label=f"Replace the existing index '{key}'",
        description="Deletes its Milvus collection and builds a new one",
    )
    if not ctx.params.get("overwrite", False):
        mark_invalid(
            prop, f"An index '{key}' exists. Choose another key or tick 'Replace'."
        )
