"""Operators of the retrieval lab: judge the selected frames, import judgments."""

import fiftyone.operators.types as types

from plugin.inputs import validate_query
from plugin.lab import (
    import_judgments,
    load_judgments,
    mark,
    read_judgments_file,
    rerun,
)

from .forms import WorkbenchOperator, flag, mark_invalid, milvus_input, settings_from


class MarkRelevant(WorkbenchOperator, label="mark selected frames relevant"):
    """Judges the selected frames: relevant (or not relevant) to a query,
    for the retrieval lab's metrics.
    """

    def form(self, ctx, inputs):
        if ctx.dataset is None:
            inputs.view("no_dataset", types.Warning(label="Open a dataset first"))
            return
        known = [e["query"] for e in load_judgments(ctx.dataset)]
        view = types.AutocompleteView()
        for query in known:
            view.add_choice(query, label=query)
        prop = inputs.str(
            "query",
            required=True,
            label="Query",
            description="The query these frames answer (a new one or a judged one)",
            view=view,
        )
        if ctx.params.get("query") is not None:
            flag(prop, lambda: validate_query(ctx.params["query"]))
        inputs.bool("relevant", default=True, label="Relevant (off: not relevant)")
        if not ctx.selected:
            mark_invalid(prop, "Select the frames to judge in the grid first")
        inputs.bool(
            "evaluate",
            default=True,
            label="Then evaluate again (if the lab has a report)",
        )
        if ctx.params.get("evaluate", True):
            milvus_input(ctx, inputs)

    def run(self, ctx):
        relevant = bool(ctx.params.get("relevant", True))
        entry = mark(ctx.dataset, ctx.params.get("query"), ctx.selected, relevant)
        summary = (
            f"{entry['query']!r}: {len(entry['relevant'])} relevant, "
            f"{len(entry['not_relevant'])} not relevant"
        )
        if ctx.params.get("evaluate", True):
            report = rerun(ctx.dataset, settings=settings_from(ctx))
            if report is not None:
                best = max(report.rows, key=lambda r: r["mrr"] or 0)
                summary += f". Re-evaluated: best MRR {best['mrr'] or 0:.3f} ({best['system']})"
        return {"summary": summary}

    def outputs(self, ctx, outputs):
        outputs.str("summary", label="Judgment")


class ImportJudgments(WorkbenchOperator, label="import relevance judgments"):
    """Reads relevance judgments (queries and the frames, time spans or
    labels that answer them) from a TSV or JSON file into the dataset.
    """

    def form(self, ctx, inputs):
        prop = inputs.str(
            "path",
            required=True,
            label="File",
            description="A .tsv or .json file (see samples/judgments/ and docs/lab.md)",
        )
        if ctx.params.get("path"):
            flag(prop, lambda: read_judgments_file(ctx.params["path"]))
        inputs.bool("replace", default=False, label="Replace the stored judgments")

    def run(self, ctx):
        count = import_judgments(
            ctx.dataset, ctx.params["path"], replace=bool(ctx.params.get("replace"))
        )
        return {"summary": f"Imported {count} judged queries"}

    def outputs(self, ctx, outputs):
        outputs.str("summary", label="Result")
