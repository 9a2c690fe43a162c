"""Operators of fanned-out jobs (:mod:`plugin.jobs`): the status of a job,
and the base of the operators that run its parts.

An import (``import_videos``) or a frame index (``index_frames``) fanned out
over delegated operations is one job; ``import_status`` (named before index
jobs existed) shows the progress of either kind and queues failed parts
again.
"""

import fiftyone.operators.types as types

from plugin import jobs
from plugin.retrieval import index_fanout

from .forms import WorkbenchOperator, dropdown, mark_invalid


class JobPart(WorkbenchOperator, background=True):
    """Base of an operator running some parts of a job: queued by the job,
    run in a delegated worker, unlisted. A subclass implements
    :meth:`run_parts`."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(background=True, **kwargs)

    @property
    def config(self):
        config = super().config
        config.unlisted = True  # queued by a job, not chosen by users
        return config

    def resolve_delegation(self, ctx):
        return True

    def run_parts(self, ctx):
        """Runs the parts ``ctx.params["parts"]``; returns their records."""
        raise NotImplementedError

    def run(self, ctx):
        return {"summary": "\n".join(part_line(r) for r in self.run_parts(ctx))}

    def outputs(self, ctx, outputs):
        outputs.str("summary", label="Parts", view=types.MarkdownView())


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
        lines = [head, ""] + [part_line(p) for p in status["parts"]]
        return {"fraction": status["fraction"], "summary": "\n".join(lines)}

    def outputs(self, ctx, outputs):
        outputs.float("fraction", label="Done (fraction)")
        outputs.str("summary", label="Parts", view=types.MarkdownView())


def fan_out_input(inputs, label, what):
    """The checkbox that makes an operator's work a job of delegated
    operations (``fan_out``); ``what``: the work, e.g. "import"."""
    return inputs.bool(
        "fan_out",
        default=False,
        label=label,
        description=f"For several delegated workers (fiftyone delegated launch) "
        f"sharing the {what}; follow it with 'import and index status'",
    )


def part_line(record):
    """One part of a job, as a Markdown list item."""
    note = f" - {record['message']}" if record.get("message") else ""
    tries = f", attempt {record['attempts']}" if record.get("attempts", 0) > 1 else ""
    return f"- [{record['status']}{tries}] {record['label']}{note}"


def _job_choice(job):
    if job.get("kind") == index_fanout.KIND:
        what = f"index '{job['params']['brain_key']}', {job['total']} part(s)"
    else:
        what = f"import, {job['total']} video(s)"
    return f"{job['job_id']} ({what})"
