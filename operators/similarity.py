"""Operators: build/sync a frame index on Milvus, search frames by text."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from plugin.milvus import resolve_milvus
from plugin.models.registry import DEFAULT_MODEL, MODELS, resolve_model
from plugin.retrieval.frame_index import (
    CONSISTENCY_LEVELS,
    DEFAULT_BRAIN_KEY,
    METRICS,
    build_frame_index,
    sync_frame_index,
)
from plugin.retrieval.frame_search import hits_view, search_frames, validate_query

_CUSTOM = "custom"
_DELEGATE_ABOVE_SAMPLES = 500


class IndexFrames(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="index_frames",
            label="Video RAG: index frames in Milvus",
            description="Embeds frames with a CLIP-family model and indexes "
            "them in Milvus (fiftyone-brain similarity index)",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx)
        _model_inputs(ctx, inputs)
        _choice(inputs, "metric", METRICS, "cosine", "Metric")
        _choice(
            inputs, "consistency_level", CONSISTENCY_LEVELS, "Session", "Consistency"
        )
        _brain_key_input(ctx, inputs)
        inputs.str(
            "collection_name",
            label="Milvus collection",
            description="Empty: derived from the dataset name and brain key",
        )
        inputs.str(
            "milvus_uri",
            label="Milvus URI",
            description="Empty: the VRAG_MILVUS_URI secret, else the managed "
            "local store. Or a .db file, http(s)://host:port, a Zilliz URI",
        )
        inputs.bool(
            "delegate",
            default=ctx.view is not None and len(ctx.view) > _DELEGATE_ABOVE_SAMPLES,
            label="Run in the background (delegated)",
        )
        return types.Property(inputs, view=types.View(label="Index frames"))

    def resolve_delegation(self, ctx):
        return bool(ctx.params.get("delegate", False))

    def execute(self, ctx):
        index = build_frame_index(
            ctx.target_view(),
            model=_model_name(ctx.params),
            brain_key=ctx.params.get("brain_key") or DEFAULT_BRAIN_KEY,
            metric=ctx.params.get("metric", "cosine"),
            consistency_level=ctx.params.get("consistency_level", "Session"),
            collection_name=ctx.params.get("collection_name") or None,
            milvus=resolve_milvus(ctx.params.get("milvus_uri"), secrets=ctx.secrets),
            overwrite=bool(ctx.params.get("overwrite", False)),
            progress=lambda f, label: ctx.set_progress(progress=f, label=label),
        )
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return {
            "brain_key": index.key,
            "vectors": index.total_index_size,
            "collection": index.config.collection_name,
        }

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("brain_key", label="Brain key (pick it in the App's search)")
        outputs.int("vectors", label="Vectors in the index")
        outputs.str("collection", label="Milvus collection")
        return types.Property(outputs)


class SyncFrameIndex(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="sync_frame_index",
            label="Video RAG: sync frame index",
            description="Indexes frames added since, drops deleted ones",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        _existing_index_input(ctx, inputs)
        return types.Property(inputs, view=types.View(label="Sync frame index"))

    def execute(self, ctx):
        counts = sync_frame_index(
            ctx.dataset,
            ctx.params["brain_key"],
            milvus=resolve_milvus(secrets=ctx.secrets),
        )
        return counts

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.int("added", label="Frames added")
        outputs.int("removed", label="Frames removed")
        return types.Property(outputs)


class SearchFrames(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="search_frames",
            label="Video RAG: search frames by text",
            description="Shows the frames that best match a text query",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        prop = inputs.str("query", required=True, label="Search text")
        if ctx.params.get("query") is not None:
            try:
                validate_query(ctx.params["query"])
            except ValueError as e:
                prop.invalid, prop.error_message = True, str(e)
        k = inputs.int("k", default=25, label="Number of frames")
        if ctx.params.get("k") is not None and ctx.params["k"] < 1:
            k.invalid, k.error_message = True, "At least 1"
        _existing_index_input(ctx, inputs)
        return types.Property(inputs, view=types.View(label="Search frames"))

    def execute(self, ctx):
        hits = search_frames(
            ctx.dataset,
            ctx.params["query"],
            k=int(ctx.params.get("k") or 25),
            brain_key=ctx.params["brain_key"],
            milvus=resolve_milvus(secrets=ctx.secrets),
        )
        ctx.ops.set_view(hits_view(ctx.dataset, hits))
        return {"hits": [_hit_row(hit) for hit in hits]}

    def resolve_output(self, ctx):
        outputs = types.Object()
        table = types.TableView()
        for key, label in (
            ("rank", "#"),
            ("score", "Score"),
            ("video", "Video"),
            ("time", "Time"),
        ):
            table.add_column(key, label=label)
        outputs.list("hits", types.Object(), label="Frames", view=table)
        return types.Property(outputs)


def _hit_row(hit):
    seconds = hit.timestamp or 0.0
    return {
        "rank": hit.rank + 1,
        "score": round(hit.score, 4),
        "video": hit.video_path.rsplit("/", 1)[-1] or hit.video_id,
        "time": f"{int(seconds // 60):02d}:{seconds % 60:04.1f}",
    }


def _choice(inputs, name, values, default, label, description=None):
    dropdown = types.Dropdown()
    for value in values:
        dropdown.add_choice(value, label=value)
    return inputs.enum(
        name,
        dropdown.values(),
        default=default,
        view=dropdown,
        label=label,
        description=description,
    )


def _model_inputs(ctx, inputs):
    choices = list(MODELS) + [_CUSTOM]
    _choice(
        inputs,
        "model",
        choices,
        DEFAULT_MODEL,
        "Model",
        "Registry models; 'custom' for any OpenCLIP name, hf:<model>, a "
        "checkpoint or a FiftyOne zoo name",
    )
    if ctx.params.get("model") == _CUSTOM:
        prop = inputs.str(
            "custom_model",
            required=True,
            label="Model name",
            description="open_clip:<arch> | hf:<name or dir> | zoo model name",
        )
        inputs.str("pretrained", label="OpenCLIP pretrained tag or checkpoint path")
        if ctx.params.get("custom_model"):
            try:
                resolve_model(_model_name(ctx.params), ctx.params.get("pretrained"))
            except ValueError as e:
                prop.invalid, prop.error_message = True, str(e)


def _model_name(params):
    name = params.get("model") or DEFAULT_MODEL
    if name != _CUSTOM:
        return name
    return resolve_model(params.get("custom_model"), params.get("pretrained"))


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
        prop.invalid = True
        prop.error_message = (
            f"An index '{key}' exists. Choose another key or tick 'Replace'."
        )


def _existing_index_input(ctx, inputs):
    keys = _similarity_keys(ctx.dataset)
    if not keys:
        prop = inputs.str("brain_key", label="Index")
        prop.invalid = True
        prop.error_message = "This dataset has no frame index yet: run 'index frames'"
        return
    default = DEFAULT_BRAIN_KEY if DEFAULT_BRAIN_KEY in keys else keys[0]
    _choice(inputs, "brain_key", keys, default, "Index (brain key)")


def _similarity_keys(dataset):
    if dataset is None:
        return []
    return dataset.list_brain_runs(type="similarity")
