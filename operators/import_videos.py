"""Operators: import videos as frame samples with Whisper transcripts.

``import_videos`` imports in its own operation, or fans out (``fan_out``):
one delegated operation per video (``import_video_batch``), so that several
``fiftyone delegated launch`` workers share the work; ``import_status``
(:mod:`operators.jobs`) shows the progress of such a job and queues its
failed videos again. See :mod:`plugin.video.fanout` and docs/scaling.md.
"""

import dataclasses
import time

import fiftyone.operators.types as types

from plugin.models.speech import (
    BACKENDS,
    DEFAULT_SPEECH_MODEL,
    speech_model_choices,
)
from plugin.video import fanout
from plugin.video.importer import (
    DEFAULT_DATASET,
    GROUPED_VIEW,
    find_videos,
    import_videos,
)
from plugin.video.options import ImportOptions

from .forms import WorkbenchOperator, dropdown, mark_invalid, progress_of
from .jobs import JobPart, fan_out_input

# Imports bigger than this run as delegated operations by default.
_BACKGROUND_ABOVE_BYTES = 50 * 1024 * 1024
_BACKGROUND_ABOVE_VIDEOS = 3
# The App asks for the form and for the execution options in two requests
# per change; both read one walk of the file system, reused this long.
_SCAN_REUSE_S = 5.0


class ImportVideos(WorkbenchOperator, label="import videos", background=True):
    """Imports videos as frame samples with aligned Whisper transcripts."""

    def form(self, ctx, inputs):
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
        inputs.bool(
            "screen_text",
            default=False,
            label="Read on-screen text (slides, captions: offline OCR)",
            description="Only frames whose picture changed are read. Worth it "
            "for talks and screen recordings; see docs/screen_text.md",
        )
        fan_out_input(inputs, "One background operation per video", "import")
        _flag_problems(ctx, inputs)

    def is_large(self, ctx):
        found = scan(ctx.params.get("paths"))
        return (
            len(found.videos) > _BACKGROUND_ABOVE_VIDEOS
            or found.total_bytes > _BACKGROUND_ABOVE_BYTES
        )

    def run(self, ctx):
        options = ImportOptions.from_dict(_option_values(ctx.params))
        if ctx.params.get("fan_out"):
            return _fan_out(ctx, self.plugin_name, options)
        report = import_videos(
            split_paths(ctx.params.get("paths")),
            dataset=ctx.params.get("dataset_name") or DEFAULT_DATASET,
            options=options,
            progress=progress_of(ctx),
        )
        if not ctx.delegated:
            _show_frames(ctx, report.dataset_name)
        return {
            "summary": "\n".join(
                f"- {line.strip()}" for line in report.summary_lines()
            ),
            "num_failed": len(report.failed),
        }

    def outputs(self, ctx, outputs):
        if (ctx.results or {}).get("job_id"):
            outputs.str("job_id", label="Import job (see 'import and index status')")
        else:
            outputs.int("num_failed", label="Videos that failed")
        outputs.str("summary", label="Per video", view=types.MarkdownView())


class ImportVideoBatch(JobPart, label="import video batch (fan-out part)"):
    """Imports some videos of a fanned-out import job (queued by 'import
    videos'; runs in a delegated worker)."""

    def run_parts(self, ctx):
        return fanout.run_batch(
            ctx.params["dataset_name"], ctx.params["job_id"], ctx.params["parts"]
        )


def _fan_out(ctx, plugin_name, options):
    job = fanout.fan_out_import(
        split_paths(ctx.params.get("paths")),
        ctx.params.get("dataset_name") or DEFAULT_DATASET,
        f"{plugin_name}/{ImportVideoBatch.operator_name}",
        options=options,
    )
    summary = (
        f"- Queued {job['total']} video(s) as {len(job['operations'])} "
        f"delegated operation(s), job {job['job_id']}: run "
        "`fiftyone delegated launch` on one or more machines; "
        "progress: 'import and index status'"
    )
    skipped = [f"- skipped {p['path']}: {p['message']}" for p in job["problems"]]
    return {"job_id": job["job_id"], "summary": "\n".join([summary, *skipped])}


def split_paths(text):
    """The paths typed in the form: one per line, or separated by ``;``."""
    if not text:
        return []
    parts = str(text).replace(";", "\n").splitlines()
    return [p.strip() for p in parts if p.strip()]


@dataclasses.dataclass(frozen=True)
class Scan:
    """What the typed paths name: videos, inputs that name none, total size."""

    videos: tuple
    problems: tuple
    total_bytes: int


_last_scan = [None]  # (paths text, when, Scan): one form is edited at a time


def scan(paths_text, clock=time.monotonic):
    """ONE walk of the file system for the paths typed in the form, reused
    by the requests of the same form render (see :data:`_SCAN_REUSE_S`)."""
    key = str(paths_text or "")
    last = _last_scan[0]
    if last and last[0] == key and clock() - last[1] < _SCAN_REUSE_S:
        return last[2]
    videos, problems = find_videos(split_paths(key))
    found = Scan(tuple(videos), tuple(problems), sum(_size(v) for v in videos))
    _last_scan[0] = (key, clock(), found)
    return found


def _size(path):
    try:
        return path.stat().st_size
    except OSError:  # removed since the walk
        return 0


def _paths_input(ctx, inputs):
    prop = inputs.str(
        "paths",
        required=True,
        label="Videos",
        description="Video files, directories or glob patterns; one per line "
        "or separated by ';'",
        view=types.TextFieldView(),
    )
    if not split_paths(ctx.params.get("paths")):
        return
    found = scan(ctx.params.get("paths"))
    if not found.videos:
        mark_invalid(prop, "; ".join(f"{p.path}: {p.message}" for p in found.problems))
    elif found.problems:
        inputs.view(
            "path_problems",
            types.Warning(
                label=f"Found {len(found.videos)} video(s); skipped: "
                + "; ".join(f"{p.path} ({p.message})" for p in found.problems)
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
    dropdown(inputs, "backend", BACKENDS, BACKENDS[0], "Backend")
    inputs.str(
        "model",
        default=DEFAULT_SPEECH_MODEL,
        label="Model",
        description=f"Offline: {speech_model_choices()}",
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
            mark_invalid(prop, message)


def _option_values(params):
    values = dict(params)
    if values.get("sampling", "fixed") != "scene":
        values.pop("scene_threshold", None)
    return values


def _show_frames(ctx, dataset_name):
    """Reloads the App on the imported frames, grouped by video."""
    if ctx.dataset is not None and ctx.dataset.name == dataset_name:
        ctx.ops.reload_dataset()
        ctx.ops.set_view(name=GROUPED_VIEW)
    else:
        ctx.ops.open_dataset(dataset_name)
