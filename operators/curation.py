"""Operators: the frame map, near-duplicate frames, storyboards (plugin/curation)."""

import fiftyone.operators.types as types

from plugin.curation.duplicates import (
    DEFAULT_TAG,
    DEFAULT_THRESHOLD,
    check_threshold,
    delete_extras,
    duplicates_view,
    extras_view,
    find_duplicates,
    tag_extras,
)
from plugin.curation.frame_map import (
    check_map_key,
    compute_frame_map,
    default_method,
    map_key_for,
)
from plugin.curation.storyboard import (
    DEFAULT_K,
    build_storyboard,
    check_k,
    storyboard_view,
)
from plugin.curation.vectors import unembedded_count
from plugin.retrieval.frame_index import DEFAULT_BRAIN_KEY

from .forms import (
    WorkbenchOperator,
    dropdown,
    flag,
    mark_invalid,
    milvus_input,
    progress_of,
    view_index_inputs,
    work_args,
)

EMBEDDINGS_PANEL = "Embeddings"  # the App's own panel
MAX_SELECTED = 200  # frames the map's selection may hand to Ask at once
_METHOD_LABELS = {
    "umap": "UMAP (keeps scenes apart)",
    "tsne": "t-SNE (slow; no updates)",
    "pca": "PCA (instant; blurs clusters)",
}
_ACTIONS = {
    "show": "Show the sets",
    "tag": "Tag the extras",
    "delete": "Delete the extras (keeps the first frame of each set)",
}


class ComputeFrameMap(
    WorkbenchOperator, label="map frames", background=True, on_view=True
):
    """Projects a frame index's vectors to 2-D for the App's Embeddings panel
    (re-run after a sync to add the new frames)."""

    def form(self, ctx, inputs):
        key = view_index_inputs(ctx, inputs, DEFAULT_BRAIN_KEY)
        if key is None:
            return
        dropdown(inputs, "method", _METHOD_LABELS, default_method(), "Method")
        prop = inputs.str("map_key", default=map_key_for(key), label="Map key")
        map_key = ctx.params.get("map_key") or map_key_for(key)
        flag(prop, lambda: check_map_key(ctx.dataset, map_key))
        inputs.bool(
            "refit",
            default=False,
            label="Fit the map again",
            description="Else new frames are placed on the existing map",
        )
        _note_unembedded(ctx, inputs, key)

    def run(self, ctx):
        key = ctx.params["brain_key"]
        result = compute_frame_map(
            ctx.target_view(),
            brain_key=key,
            method=ctx.params.get("method") or None,
            map_key=ctx.params.get("map_key") or map_key_for(key),
            refit=bool(ctx.params.get("refit", False)),
            progress=progress_of(ctx),
        )
        if not ctx.delegated:
            ctx.ops.reload_dataset()
            ctx.ops.open_panel(EMBEDDINGS_PANEL, layout="horizontal")
        return result

    def outputs(self, ctx, outputs):
        outputs.str("map_key", label="Map (pick it in the Embeddings panel)")
        outputs.str("method", label="Method")
        outputs.int("frames", label="Frames on the map")
        outputs.int("added", label="Frames placed now")
        outputs.bool("refit", label="Fitted anew")
        outputs.int("unmapped", label="Frames without a vector (sync the index)")


class FindDuplicateFrames(
    WorkbenchOperator,
    label="find near-duplicate frames",
    background=True,
    on_view=True,
):
    """Groups near-identical frames within and across videos; shows, tags or
    deletes the extras (every index kept in sync)."""

    def form(self, ctx, inputs):
        if view_index_inputs(ctx, inputs, DEFAULT_BRAIN_KEY) is None:
            return
        prop = inputs.float(
            "threshold",
            default=DEFAULT_THRESHOLD,
            label="Threshold (cosine distance)",
            description="Frames closer than this are duplicates; 0.05: nearly "
            "identical, 0.2: the same scene from a moved camera",
        )
        if ctx.params.get("threshold") is not None:
            flag(prop, lambda: check_threshold(ctx.params["threshold"]))
        dropdown(inputs, "action", _ACTIONS, "show", "Then")
        action = ctx.params.get("action") or "show"
        if action == "tag":
            inputs.str("tag", default=DEFAULT_TAG, label="Tag")
        if action == "delete":
            _deletion_inputs(ctx, inputs)

    def run(self, ctx):
        found = find_duplicates(
            ctx.target_view(),
            brain_key=ctx.params["brain_key"],
            threshold=ctx.params.get("threshold"),
        )
        action = ctx.params.get("action") or "show"
        done = {}
        if action == "tag":
            done["tagged"] = tag_extras(
                ctx.dataset, ctx.params.get("tag") or DEFAULT_TAG
            )
        elif action == "delete":
            deleted = delete_extras(ctx.dataset, **work_args(ctx))
            done = {**deleted, "frame_indexes": _pairs(deleted["frame_indexes"])}
        if not ctx.delegated:
            ctx.ops.reload_dataset()
            if action != "delete":
                ctx.ops.set_view(duplicates_view(ctx.dataset))
        return {**found, **done}

    def outputs(self, ctx, outputs):
        outputs.int("sets", label="Duplicate sets")
        outputs.int("extras", label="Extras (all but the first frame of each set)")
        outputs.int("cross_video", label="Sets spanning several videos")
        outputs.str("view", label="Saved view")
        action = ctx.params.get("action") or "show"
        if action == "tag":
            outputs.int("tagged", label="Frames tagged")
        if action == "delete":
            outputs.int("deleted", label="Frames deleted")
            outputs.str("frame_indexes", label="Vectors removed per frame index")
            outputs.int("transcript_segments_removed", label="Transcript lines removed")
            outputs.list("videos_emptied", types.String(), label="Videos left empty")


class RepresentativeFrames(
    WorkbenchOperator,
    label="storyboard: representative frames",
    background=True,
    on_view=True,
):
    """Picks the k frames that best stand for each video (a storyboard) and
    saves them as the view 'storyboard'."""

    def form(self, ctx, inputs):
        if view_index_inputs(ctx, inputs, DEFAULT_BRAIN_KEY) is None:
            return
        prop = inputs.int("k", default=DEFAULT_K, label="Frames per video")
        if ctx.params.get("k") is not None:
            flag(prop, lambda: check_k(ctx.params["k"]))

    def run(self, ctx):
        result = build_storyboard(
            ctx.target_view(),
            brain_key=ctx.params["brain_key"],
            k=int(ctx.params.get("k") or DEFAULT_K),
            progress=progress_of(ctx),
        )
        if not ctx.delegated:
            ctx.ops.reload_dataset()
            ctx.ops.set_view(storyboard_view(ctx.dataset))
        return result

    def outputs(self, ctx, outputs):
        outputs.int("videos", label="Videos")
        outputs.int("frames", label="Frames picked")
        outputs.str("view", label="Saved view")


class SelectShownFrames(WorkbenchOperator, label="select the frames shown (for Ask)"):
    """Selects the frames the grid shows, e.g. those lassoed in the
    Embeddings panel, so that the Ask panel uses them as evidence."""

    def form(self, ctx, inputs):
        count = len(ctx.view) if ctx.view is not None else 0
        prop = inputs.int(
            "shown",
            default=count,
            label="Frames shown",
            description="Lasso points in the Embeddings panel to narrow the grid",
            view=types.View(read_only=True),
        )
        if not 0 < count <= MAX_SELECTED:
            mark_invalid(
                prop,
                f"{count} frames are shown; Ask takes 1 to {MAX_SELECTED}: lasso "
                "fewer points in the Embeddings panel",
            )

    def run(self, ctx):
        ids = ctx.view.values("id")[:MAX_SELECTED]
        if not ctx.delegated:
            ctx.ops.set_selected_samples(ids)
        return {"selected": len(ids)}

    def outputs(self, ctx, outputs):
        outputs.int("selected", label="Frames selected (the Ask panel's evidence)")


def _note_unembedded(ctx, inputs, key):
    missing = unembedded_count(ctx.target_view(), key)
    if missing:
        inputs.view(
            "unembedded",
            types.Warning(
                label=f"{missing} frames have no vector in '{key}' yet: run "
                "'sync frame index' first to put them on the map"
            ),
        )


def _deletion_inputs(ctx, inputs):
    marked = len(extras_view(ctx.dataset))
    inputs.view(
        "deletion_note",
        types.Warning(
            label="Deletes the extras from the dataset (the last search marked "
            f"{marked}; this run searches again), removes them from every "
            "frame index, and syncs the transcript index and frame maps"
        ),
    )
    confirm = inputs.bool(
        "confirm", default=False, label="Yes, delete the extra frames"
    )
    if not ctx.params.get("confirm"):
        mark_invalid(confirm, "Tick to confirm the deletion")
    milvus_input(ctx, inputs)


def _pairs(counts):
    return ", ".join(f"{key}: {n}" for key, n in counts.items()) or "none"
