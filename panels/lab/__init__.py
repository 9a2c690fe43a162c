"""The Search lab panel: how well does search work on YOUR videos?

Judge results (select frames in the grid, then mark them relevant or not
relevant to a query) or import a TSV/JSON file of judgments; press
Evaluate: each index alone, hybrid fusion and a fusion setting of your own
are compared side by side (a table and Plotly charts: recall@k, MRR,
nDCG@10, a hit inside a relevant time span). Marking again re-evaluates,
so the numbers follow the judgments. Core logic lives in ``plugin/lab``.
"""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from plugin.errors import VideoRagError
from plugin.lab import (
    evaluate,
    import_judgments,
    last_report,
    load_judgments,
    mark,
    rerun,
)
from plugin.retrieval.fusion import DEFAULT_MIN_SHARE, DEFAULT_RRF_K, SIGNALS
from plugin.settings import Settings

from .charts import metrics_chart, metrics_markdown, per_query_chart

PANEL_NAME = "lab_panel"
CUSTOM = "custom"
_WEIGHT_LABELS = {
    "frames": "Frames weight",
    "transcripts": "Transcript weight",
    "screen_text": "On-screen text weight",
}
HELP = """\
Measure search on your own videos. Judge results: select frames in the grid,
type the query and mark them relevant (or not); or import judgments from a
TSV/JSON file (see `samples/judgments/`). **Evaluate** compares each index
alone, hybrid fusion, and your own fusion weights: recall@k, MRR, nDCG@10,
and whether a top hit lands inside a relevant time span. See docs/lab.md.
"""


class LabPanel(foo.Panel):
    @property
    def config(self):
        return foo.PanelConfig(
            name=PANEL_NAME,
            label="Search lab",
            help_markdown=HELP,
            icon="science",
            surfaces="grid",
        )

    # -- events -------------------------------------------------------------

    def on_load(self, ctx):
        report = last_report(ctx.dataset) if ctx.dataset is not None else None
        ctx.panel.state.set(
            {
                "error": "",
                "notice": "",
                "report": report.to_dict() if report else None,
                "selected_count": len(ctx.selected or []),
                "rrf_k": DEFAULT_RRF_K,
                "min_share": DEFAULT_MIN_SHARE,
                **{f"w_{s}": 1.0 for s in SIGNALS},
            }
        )
        self._set_judgments(ctx)

    def on_change_dataset(self, ctx):
        self.on_load(ctx)

    def on_change_selected(self, ctx):
        ctx.panel.state.selected_count = len(ctx.selected or [])

    def on_evaluate(self, ctx):
        """Runs the evaluation with each index, hybrid and the custom weights."""
        self._run(
            ctx,
            lambda: evaluate(
                ctx.dataset, fusions=_custom(ctx), settings=_settings(ctx)
            ),
        )

    def on_mark_relevant(self, ctx):
        self._mark(ctx, True)

    def on_mark_not_relevant(self, ctx):
        self._mark(ctx, False)

    def on_import(self, ctx):
        path = (ctx.panel.state.judgments_path or "").strip()
        try:
            count = import_judgments(ctx.dataset, path)
        except VideoRagError as e:
            return self._error(ctx, e.message)
        ctx.panel.state.set({"error": "", "notice": f"Imported {count} judged queries"})
        self._set_judgments(ctx)

    # -- helpers --------------------------------------------------------------

    def _mark(self, ctx, relevant):
        query = ctx.panel.state.query
        try:
            entry = mark(ctx.dataset, query, ctx.selected or [], relevant)
        except VideoRagError as e:
            return self._error(ctx, e.message)
        which = "relevant" if relevant else "not relevant"
        ctx.panel.state.notice = (
            f"Marked {len(ctx.selected)} frame(s) {which} to {entry['query']!r} "
            f"({len(entry['relevant'])} relevant, {len(entry['not_relevant'])} not)"
        )
        self._set_judgments(ctx)
        if ctx.panel.state.report:  # the numbers follow the judgments
            self._run(ctx, lambda: rerun(ctx.dataset, settings=_settings(ctx)))

    def _run(self, ctx, evaluation):
        try:
            report = evaluation()
        except VideoRagError as e:
            return self._error(ctx, e.message)
        ctx.panel.state.set({"report": report.to_dict(), "error": ""})

    def _set_judgments(self, ctx):
        entries = load_judgments(ctx.dataset) if ctx.dataset is not None else []
        ctx.panel.state.judged = [e["query"] for e in entries]

    def _error(self, ctx, message):
        ctx.panel.state.set({"error": message, "notice": ""})

    # -- layout ---------------------------------------------------------------

    def render(self, ctx):
        panel = types.Object()
        s = ctx.panel.state
        panel.md(_judged_markdown(s.judged or []), name="judged")
        self._render_judging(panel, s)
        self._render_settings(panel)
        if s.error:
            panel.view("error_box", types.Error(label=s.error))
        if s.notice:
            panel.view("notice_box", types.Notice(label=s.notice))
        if s.report:
            self._render_report(panel, s.report)
        return types.Property(panel, view=types.GridView(orientation="vertical"))

    def _render_judging(self, panel, s):
        panel.str(
            "query",
            label="Query",
            description="The query the selected frames answer (or not)",
        )
        row = panel.h_stack("marking", align_x="left")
        count = s.selected_count or 0
        row.btn(
            "mark_relevant",
            label=f"Mark {count} selected relevant",
            icon="check",
            disabled=not count,
            on_click=self.on_mark_relevant,
        )
        row.btn(
            "mark_not_relevant",
            label="Mark not relevant",
            icon="close",
            disabled=not count,
            on_click=self.on_mark_not_relevant,
        )
        # Inputs stay at the top level: inside a stack their state would nest
        panel.str("judgments_path", label="Judgments file (TSV or JSON)")
        panel.btn("import", label="Import", icon="upload_file", on_click=self.on_import)

    def _render_settings(self, panel):
        panel.md(
            "**Your fusion setting** (compared beside *hybrid*)", name="custom_title"
        )
        for signal in SIGNALS:
            panel.float(f"w_{signal}", default=1.0, label=_WEIGHT_LABELS[signal])
        panel.int("rrf_k", default=DEFAULT_RRF_K, label="RRF k")
        panel.float(
            "min_share",
            default=DEFAULT_MIN_SHARE,
            label="Text hits count from this share of the best (0-1)",
        )
        panel.btn(
            "evaluate",
            label="Evaluate",
            icon="science",
            variant="contained",
            on_click=self.on_evaluate,
        )

    def _render_report(self, panel, report):
        n = report["rows"][0]["queries"] if report["rows"] else 0
        skipped = report.get("skipped") or []
        note = f"; {len(skipped)} skipped (no relevant frame here)" if skipped else ""
        panel.md(
            f"**{n} judged queries**{note}\n\n" + metrics_markdown(report), name="table"
        )
        for name, chart in (
            ("metrics_chart", metrics_chart),
            ("per_query_chart", per_query_chart),
        ):
            traces, layout = chart(report)
            panel.plot(
                name, data=traces, layout=layout, config={"displayModeBar": False}
            )


def _custom(ctx):
    """The panel's own fusion setting, unless it is the default one."""
    s = ctx.panel.state
    weights = {signal: _number(s.get(f"w_{signal}"), 1.0) for signal in SIGNALS}
    rrf_k = int(s.get("rrf_k") if s.get("rrf_k") is not None else DEFAULT_RRF_K)
    share = s.get("min_share")
    share = float(DEFAULT_MIN_SHARE if share is None else share)
    default = (1.0, DEFAULT_RRF_K, DEFAULT_MIN_SHARE)
    if all(w == 1.0 for w in weights.values()) and (1.0, rrf_k, share) == default:
        return []  # that is "hybrid"
    return [{"name": CUSTOM, "weights": weights, "rrf_k": rrf_k, "min_share": share}]


def _number(value, default):
    return float(default if value is None else value)


def _settings(ctx):
    return Settings.load(ctx.secrets)


def _judged_markdown(queries):
    if not queries:
        return (
            "**No judged queries yet.** Search, select the frames that answer "
            "the query, type it below and mark them relevant; or import a file."
        )
    shown = ", ".join(f"_{q}_" for q in queries[:8])
    more = f" and {len(queries) - 8} more" if len(queries) > 8 else ""
    return f"**{len(queries)} judged queries**: {shown}{more}"
