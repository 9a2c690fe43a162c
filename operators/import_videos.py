"""Operators: import videos as frame samples with Whisper transcripts.

``import_videos`` imports in its own operation, or fans out (``fan_out``):
one delegated operation per video (``import_video_batch``), so that several
``fiftyone delegated launch`` workers share the work; ``import_status``
shows the progress of such a job (or of a fanned-out frame index job) and
queues its failed parts again. See :mod:`plugin.jobs` and docs/scaling.md.
"""

import dataclasses
import time

import fiftyone.operators.types as types

from plugin import jobs
from plugin.models.speech import (
    BACKENDS,
    DEFAULT_SPEECH_MODEL,
    speech_model_choices,
)
from plugin.retrieval import index_fanout
from plugin.video import fanout
from plugin.video.importer import (
    DEFAULT_DATASET,
    GROUPED_VIEW,
    find_videos,
    import_videos,
)
from plugin.video.options import ImportOptions

from .forms import WorkbenchOperator, dropdown, mark_invalid, progress_of

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
        _fan_out_inputs(ctx, inputs)
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
            outputs.str("job_id", label="Import job (see 'import status')")
        else:
            outputs.int("num_failed", label="Videos that failed")
        outputs.str("summary", label="Per video", view=types.MarkdownView())


class ImportVideoBatch(
    WorkbenchOperator, label="import video batch (fan-out part)", background=True
):
    """Imports some videos of a fanned-out import job (queued by 'import
    videos'; runs in a delegated worker)."""

    @property
    def config(self):
        config = super().config
        config.unlisted = True  # queued by a job, not chosen by users
        return config

    def resolve_delegation(self, ctx):
        return True

    def run(self, ctx):
        records = fanout.run_batch(
            ctx.params["dataset_name"], ctx.params["job_id"], ctx.params["parts"]
        )
        return {"summary": "\n".join(_part_line(r) for r in records)}

    def outputs(self, ctx, outputs):
        outputs.str("summary", label="Videos", view=types.MarkdownView())


class ImportStatus(WorkbenchOperator, label="import and index status"):
    """Shows the progress of a fanned-out import or frame index job, and
    queues its failed parts again."""

    def form(self, ctx, inputs):
        found = jobs.list_jobs(ctx.dataset) if ctx.dataset is not None else []
        if not found:
            prop = inputs.str("job_id", label="Job")
            mark_invalid(prop, "This dataset has no fanned-out import or index jobs")
            return
        choices = {j["job_id"]: _job_choice(j) for j in found}
        dropdown(inputs, "job_id", choices, found[0]["job_id"], "Job")
        inputs.bool("retry_failed", default=False, label="Queue failed parts again")

    def run(self, ctx):
        job_id = ctx.params["job_id"]
        queued = []
        if ctx.params.get("retry_failed"):
            queued = jobs.retry_failed(ctx.dataset.name, job_id)
        status = jobs.job_status(ctx.dataset.name, job_id)
        head = (
            f"**{status['done']}/{status['total']} done** "
            f"({status['failed']} failed, {status['pending']} pending)"
        )
        if status["kind"] == index_fanout.KIND:
            indexed, frames = index_fanout.frame_counts(status)
            key = status["params"]["brain_key"]
            head += f"; {indexed}/{frames} frames in index '{key}'"
        if queued:
            head += f"; queued {len(queued)} failed part(s) again"
        lines = [head, ""] + [_part_line(p) for p in status["parts"]]
        return {"fraction": status["fraction"], "summary": "\n".join(lines)}

    def outputs(self, ctx, outputs):
        outputs.float("fraction", label="Done (fraction)")
        outputs.str("summary", label="Parts", view=types.MarkdownView())


def _job_choice(job):
    if job.get("kind") == index_fanout.KIND:
        what = f"index '{job['params']['brain_key']}', {job['total']} part(s)"
    else:
        what = f"import, {job['total']} video(s)"
    return f"{job['job_id']} ({what})"


def _fan_out_inputs(ctx, inputs):
    inputs.bool(
        "fan_out",
        default=False,
        label="One background operation per video",
        description="For several delegated workers (fiftyone delegated launch) "
        "sharing the import; follow it with 'import status'",
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
        "progress: 'import status'"
    )
    skipped = [f"- skipped {p['path']}: {p['message']}" for p in job["problems"]]
    return {"job_id": job["job_id"], "summary": "\n".join([summary, *skipped])}


def _part_line(record):
    note = f" - {record['message']}" if record.get("message") else ""
    tries = f", attempt {record['attempts']}" if record.get("attempts", 0) > 1 else ""
    return f"- [{record['status']}{tries}] {record['label']}{note}"


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
