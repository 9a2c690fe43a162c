"""Operator: import videos as frame samples with Whisper transcripts."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from plugin.video.importer import (
    DEFAULT_DATASET,
    GROUPED_VIEW,
    find_videos,
    import_videos,
)
from plugin.video.options import ImportOptions
from plugin.video.transcribe import BACKENDS, DEFAULT_MODEL, model_choices

# Imports bigger than this run as delegated operations (with progress).
_DELEGATE_ABOVE_BYTES = 50 * 1024 * 1024
_DELEGATE_ABOVE_VIDEOS = 3


class ImportVideos(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="import_videos",
            label="Video RAG: import videos",
            description="Imports videos as frame samples with aligned Whisper "
            "transcripts",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        _paths_input(ctx, inputs)
        default_name = ctx.dataset.name if ctx.dataset is not None else DEFAULT_DATASET
        inputs.str(
            "dataset_name",
            default=default_name,
            required=True,
            label="Dataset",
            description="An existing dataset to add to, or a new name",
        )
        _sampling_inputs(ctx, inputs)
        _frame_inputs(inputs)
        _transcript_inputs(ctx, inputs)
        _flag_problems(ctx, inputs)
        inputs.bool(
            "delegate",
            default=_is_large(ctx.params.get("paths")),
            label="Run in the background (delegated)",
            description="On by default for large imports",
        )
        return types.Property(inputs, view=types.View(label="Import videos"))

    def resolve_delegation(self, ctx):
        return bool(ctx.params.get("delegate", _is_large(ctx.params.get("paths"))))

    def execute(self, ctx):
        options = ImportOptions.from_dict(_option_values(ctx.params))
        report = import_videos(
            split_paths(ctx.params.get("paths")),
            dataset=ctx.params.get("dataset_name") or DEFAULT_DATASET,
            options=options,
            progress=lambda fraction, label: ctx.set_progress(
                progress=fraction, label=label
            ),
        )
        if not ctx.delegated:
            _show_frames(ctx, report.dataset_name)
        return {
            "summary": "\n".join(
                f"- {line.strip()}" for line in report.summary_lines()
            ),
            "num_failed": len(report.failed),
        }

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.int("num_failed", label="Videos that failed")
        outputs.str("summary", label="Per video", view=types.MarkdownView())
        return types.Property(outputs)


def split_paths(text):
    """The paths typed in the form: one per line, or separated by ``;``."""
    if not text:
        return []
    parts = str(text).replace(";", "\n").splitlines()
    return [p.strip() for p in parts if p.strip()]


def _paths_input(ctx, inputs):
    prop = inputs.str(
        "paths",
        required=True,
        label="Videos",
        description="Video files, directories or glob patterns; one per line "
        "or separated by ';'",
        view=types.TextFieldView(),
    )
    paths = split_paths(ctx.params.get("paths"))
    if not paths:
        return
    videos, problems = find_videos(paths)
    if not videos:
        prop.invalid = True
        prop.error_message = "; ".join(f"{p.path}: {p.message}" for p in problems)
    elif problems:
        inputs.view(
            "path_problems",
            types.Warning(
                label=f"Found {len(videos)} video(s); skipped: "
                + "; ".join(f"{p.path} ({p.message})" for p in problems)
            ),
        )


def _sampling_inputs(ctx, inputs):
    modes = types.RadioGroup()
    modes.add_choice("fixed", label="Fixed frame rate")
    modes.add_choice("scene", label="On scene changes")
    inputs.enum(
        "sampling", modes.values(), default="fixed", view=modes, label="Sampling"
    )
    if ctx.params.get("sampling", "fixed") == "scene":
        inputs.int(
            "scene_threshold",
            default=12,
            label="Scene-change threshold",
            description="Perceptual-hash distance (1-64) between probes 1 s apart",
        )
    else:
        inputs.float(
            "fps",
            default=0.2,
            label="Frames per second",
            description="0.2 = one every 5 s",
        )
    inputs.int(
        "max_frames", label="Maximum frames per video", description="Empty: no limit"
    )
    inputs.int(
        "dedup_distance",
        label="Skip near-duplicate frames",
        description="Perceptual-hash distance under which a frame is skipped; empty: off",
    )


def _frame_inputs(inputs):
    inputs.int("long_side", default=1024, label="Frame size (long side, px)")
    inputs.int("jpeg_quality", default=90, label="JPEG quality (1-95)")
    inputs.str(
        "frames_dir",
        label="Frames folder",
        description="Empty: <workbench home>/frames/<dataset>",
    )


def _transcript_inputs(ctx, inputs):
    inputs.bool("transcribe", default=True, label="Transcribe the audio (Whisper)")
    if not ctx.params.get("transcribe", True):
        return
    backends = types.Dropdown()
    for name in BACKENDS:
        backends.add_choice(name, label=name)
    inputs.enum(
        "backend",
        backends.values(),
        default=BACKENDS[0],
        view=backends,
        label="Backend",
    )
    inputs.str(
        "model",
        default=DEFAULT_MODEL,
        label="Model",
        description=f"Offline: {model_choices()}",
    )
    inputs.str(
        "language",
        default="auto",
        label="Language",
        description="e.g. en, fr; auto: detect",
    )
    inputs.float(
        "transcript_window",
        label="Transcript window (s)",
        description="Seconds of transcript around each frame; empty: the frame interval",
    )


def _flag_problems(ctx, inputs):
    """Marks invalid options in the form instead of raising."""
    if not ctx.params:
        return
    problems = ImportOptions.from_dict(_option_values(ctx.params)).problems()
    for name, message in problems.items():
        prop = inputs.properties.get(name)
        if prop is not None:
            prop.invalid = True
            prop.error_message = message


def _option_values(params):
    values = dict(params)
    if values.get("sampling", "fixed") != "scene":
        values.pop("scene_threshold", None)
    return values


def _is_large(paths_text):
    videos, _ = find_videos(split_paths(paths_text))
    if len(videos) > _DELEGATE_ABOVE_VIDEOS:
        return True
    return sum(v.stat().st_size for v in videos) > _DELEGATE_ABOVE_BYTES


def _show_frames(ctx, dataset_name):
    """Reloads the App on the imported frames, grouped by video."""
    if ctx.dataset is not None and ctx.dataset.name == dataset_name:
        ctx.ops.reload_dataset()
        ctx.ops.set_view(name=GROUPED_VIEW)
    else:
        ctx.ops.open_dataset(dataset_name)
