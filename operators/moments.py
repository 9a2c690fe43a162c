"""Operators: play frames as moments of their videos, and densify around them.

Both take the selected frames, else the first ``k`` frames of the current
view (e.g. a search result, best first).
"""

import time

import fiftyone.operators as foo
import fiftyone.operators.types as types

from plugin.errors import InvalidInputError
from plugin.retrieval.frame_index import DEFAULT_BRAIN_KEY
from plugin.video.densify import DEFAULT_DENSE_FPS, DEFAULT_RADIUS_S, densify_around
from plugin.video.moments import (
    DEFAULT_PAD_S,
    MOMENTS_VIEW,
    clip_spans,
    clips_view,
    moments_from_frames,
)

from .forms import (
    WorkbenchOperator,
    flag,
    frame_index_keys,
    milvus_input,
    number_param,
    table_output,
    work_args,
)

_K = 5  # frames taken from the current view when nothing is selected
_MAX_DENSIFY = 5  # moments densified in one run
_MAX_FRAMES = 200  # moments opened in one run
PLUGIN_NAME = "@vrag/video-rag"  # fiftyone.yml's name
_SHOW = "show_moments_view"
_SHOW_TRIES = 40  # ~10 s for the App to switch datasets
_SHOW_WAIT_S = 0.25
_CLIP_COLUMNS = {"rank": "#", "video": "Video", "span": "Span"}  # one row a clip


class OpenMoments(WorkbenchOperator, label="open moments"):
    """Plays the selected frames (or the current result's first ones) as clips of
    their videos, from the start of each moment, with the transcript on the timeline.
    """

    def form(self, ctx, inputs):
        _source_inputs(ctx, inputs)
        inputs.float(
            "pad_s",
            default=DEFAULT_PAD_S,
            label="Seconds around a frame without transcript",
        )

    def run(self, ctx):
        """Params ``sample_ids`` (e.g. a citation's frame, from the Ask panel)
        override the selection; with ``or_open_frame``, a frame whose video
        has no video sample opens as itself instead of an error."""
        k = number_param(ctx, "k", _K, "Frames from the view", integer=True)
        ids = ctx.params.get("sample_ids") or frame_ids(ctx, min(k, _MAX_FRAMES))
        pad = number_param(ctx, "pad_s", DEFAULT_PAD_S, "Seconds around a frame")
        try:
            clips = clips_view(ctx.dataset, moments_from_frames(ctx.dataset, ids, pad))
        except InvalidInputError:
            if not ctx.params.get("or_open_frame"):
                raise
            ctx.ops.set_selected_samples(list(ids))
            ctx.ops.open_sample(id=ids[0])
            return {"moments": []}
        if not ctx.delegated:
            show_clips(ctx, clips, self.plugin_name)
        return {"moments": _rows(clips)}

    def outputs(self, ctx, outputs):
        table_output(outputs, "moments", _CLIP_COLUMNS, "Moments")


class DensifyMoments(
    WorkbenchOperator, label="densify around moments", background=True
):
    """Samples the video around the selected frames (or the current result's first
    ones) at a higher rate and adds those frames to the frame index.
    """

    def form(self, ctx, inputs):
        _source_inputs(ctx, inputs)
        inputs.float("radius_s", default=DEFAULT_RADIUS_S, label="Seconds either side")
        fps = inputs.float("fps", default=DEFAULT_DENSE_FPS, label="Frames per second")
        if ctx.params.get("fps") is not None:
            flag(fps, lambda: _positive("Frames per second", ctx.params["fps"]))
        keys = frame_index_keys(ctx.dataset)
        choices = types.Dropdown()
        for key in keys:
            choices.add_choice(key, label=key)
        default = DEFAULT_BRAIN_KEY if DEFAULT_BRAIN_KEY in keys else None
        if keys:
            inputs.enum(
                "brain_key",
                choices.values(),
                default=default or keys[0],
                view=choices,
                label="Add the new frames to index",
            )
        milvus_input(ctx, inputs)

    def is_large(self, ctx):
        return True  # decoding and embedding: minutes on long spans

    def run(self, ctx):
        k = number_param(ctx, "k", _K, "Frames from the view", integer=True)
        ids = frame_ids(ctx, min(k, _MAX_DENSIFY))[:_MAX_DENSIFY]
        radius = number_param(ctx, "radius_s", DEFAULT_RADIUS_S, "Seconds either side")
        fps = number_param(ctx, "fps", DEFAULT_DENSE_FPS, "Frames per second")
        args = work_args(ctx)
        moments = moments_from_frames(ctx.dataset, ids)
        rows = []
        for moment in moments:
            result = densify_around(
                ctx.dataset,
                moment,
                radius_s=radius,
                fps=fps,
                brain_key=ctx.params.get("brain_key"),
                **args,
            )
            rows.append(
                {
                    "video": moment.video_id[:8],
                    "span": f"{result.start:.1f}-{result.end:.1f} s",
                    "added": len(result.added),
                    "note": result.note,
                }
            )
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return {"moments": rows}

    def outputs(self, ctx, outputs):
        columns = {
            "video": "Video",
            "span": "Span",
            "added": "Frames added",
            "note": "Note",
        }
        table_output(outputs, "moments", columns, "Densified")


def frame_ids(ctx, k):
    """The selected frames, else the first ``k`` of the current view."""
    if ctx.dataset is None:
        raise InvalidInputError("Open a frames dataset first")
    if ctx.dataset.media_type != "image":
        raise InvalidInputError(
            "Run this on the frames dataset (its frames are the moments' source)"
        )
    ids = list(ctx.selected or [])
    if not ids:
        ids = ctx.view.limit(k).values("id")
    if not ids:
        raise InvalidInputError("No frames selected and the view is empty")
    return ids


def show_clips(ctx, clips, plugin_name=None):
    """Shows ``clips`` in the App: saved as the video dataset's ``moments``
    view, which the App opens (switching to the video dataset if needed).

    The App switches datasets asynchronously and a ``set_view`` sent with
    the switch applies to the dataset being left; so the view is set by
    :class:`ShowMomentsView`, which the App runs once it is on the video
    dataset.
    """
    videos = clips._root_dataset
    videos.save_view(MOMENTS_VIEW, clips, overwrite=True)
    if ctx.dataset is not None and ctx.dataset.name == videos.name:
        ctx.ops.set_view(name=MOMENTS_VIEW)
        return
    ctx.ops.open_dataset(videos.name)
    plugin_name = plugin_name or PLUGIN_NAME
    ctx.trigger(f"{plugin_name}/{_SHOW}", {"dataset": videos.name})


class ShowMomentsView(foo.Operator):
    """Sets the ``moments`` view once the App shows the video dataset (waits
    for the switch by running again, a few times a second, for ~10 s)."""

    @property
    def config(self):
        return foo.OperatorConfig(
            name=_SHOW, label="Video RAG: show the moments view", unlisted=True
        )

    def execute(self, ctx):
        target, tries = ctx.params.get("dataset"), int(ctx.params.get("tries") or 0)
        if ctx.dataset is not None and ctx.dataset.name == target:
            ctx.ops.set_view(name=MOMENTS_VIEW)
            return {"shown": True}
        if tries < _SHOW_TRIES:
            time.sleep(_SHOW_WAIT_S)
            ctx.trigger(self.uri, {"dataset": target, "tries": tries + 1})
        return {"shown": False}


def _source_inputs(ctx, inputs):
    n = len(ctx.selected or [])
    label = (
        f"The {n} selected frames"
        if n
        else "No selection: the first frames of the view"
    )
    inputs.view("source_note", types.Notice(label=label))
    if not n:
        count = inputs.int("k", default=_K, label="Frames from the view")
        if ctx.params.get("k") is not None:
            flag(count, lambda: _positive("Frames from the view", ctx.params["k"]))


def _positive(label, value):
    if not isinstance(value, int | float) or value <= 0:
        raise InvalidInputError(f"{label} must be positive")


def _rows(clips):
    return [
        {"rank": n + 1, "video": video_id[:8], "span": f"{start:.1f}-{end:.1f} s"}
        for n, (video_id, start, end) in enumerate(clip_spans(clips))
    ]
