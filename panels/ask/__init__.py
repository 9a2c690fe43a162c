"""The Ask panel: grounded answers about the videos, on the samples grid.

Question box -> evidence preview (selected frames, else hybrid retrieval),
editable (drop items), with the token plan (tokens per item, which go as
images, as text, or are dropped, the total against the server's budget) ->
Ask: the answer streams in (see ``operators.py``) -> citations as buttons
that play the cited moment as a clip of its video -> follow-up questions carry the
conversation ("New conversation" starts over) -> the dataset's Q&A history.
Core logic lives in ``plugin/answer``.
"""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from plugin.answer import gather_evidence, require_endpoint
from plugin.answer.chat import Turn
from plugin.answer.evidence import renumber
from plugin.answer.history import clear_history
from plugin.answer.images import DEFAULT_LONG_SIDE
from plugin.answer.prompt import DEFAULT_MAX_TOKENS, validate_question
from plugin.answer.request import Options, preview
from plugin.errors import VideoRagError
from plugin.settings import Settings

from . import state as S
from .constants import (
    ANSWER_PLACEHOLDER,
    HELP,
    PANEL_LABEL,
    PANEL_NAME,
    STREAM_OPERATOR,
)
from .operators import AskStream

__all__ = ["AskPanel", "AskStream"]


class AskPanel(foo.Panel):
    @property
    def config(self):
        return foo.PanelConfig(
            name=PANEL_NAME,
            label=PANEL_LABEL,
            help_markdown=HELP,
            icon="question_answer",
            surfaces="grid",
        )

    # -- events -------------------------------------------------------------

    def on_load(self, ctx):
        ctx.panel.state.set(
            {
                "busy": False,
                "answer": "",
                "error": "",
                "warnings": [],
                "citations": [],
                "incomplete": False,
                "conversation": [],
                "setup_message": _setup_message(ctx),
                "history": S.history_rows(ctx.dataset),
            }
        )
        self._set_evidence(ctx, _selected_evidence(ctx), "selected")

    def on_change_dataset(self, ctx):
        self.on_load(ctx)

    def on_change_selected(self, ctx):
        self._set_evidence(ctx, _selected_evidence(ctx), "selected")

    def on_preview(self, ctx):
        """Shows the evidence Ask will send (runs retrieval if none selected)."""
        try:
            items = gather_evidence(
                ctx.dataset,
                ctx.panel.state.question,
                ctx.selected or None,
                settings=Settings.load(ctx.secrets),
            )
        except VideoRagError as e:
            return self._error(ctx, e.message)
        source = "selected" if ctx.selected else "retrieved"
        self._set_evidence(ctx, items, source)
        ctx.panel.state.error = ""

    def on_drop(self, ctx):
        """Removes one evidence item (event param ``index``)."""
        items = S.evidence_from_state(ctx.panel.state.evidence)
        index = int(_arg(ctx, "index", -1))
        if 0 <= index < len(items):
            del items[index]
        self._set_evidence(ctx, S.evidence_from_state(S.evidence_to_state(items)))

    def on_ask(self, ctx):
        """Validates, then triggers the streaming operator for this panel."""
        try:
            question = validate_question(ctx.panel.state.question)
            require_endpoint(Settings.load(ctx.secrets))
        except VideoRagError as e:
            return self._error(ctx, e.message)
        if not ctx.panel.state.evidence:
            self.on_preview(ctx)
            if not ctx.panel.state.evidence:
                return
        # numbered as ask() will send them: after the conversation's items
        items = S.evidence_from_state(ctx.panel.state.evidence)
        items = renumber(items, start=_next_number(ctx.panel.state.conversation))
        ctx.panel.state.evidence = S.evidence_to_state(items)
        ctx.panel.state.set({"busy": True, "error": "", "answer": ""})
        ctx.trigger(
            f"{self.plugin_name}/{STREAM_OPERATOR}",
            {
                "panel_id": ctx.panel_id,
                "panel_state": dict(ctx.panel_state),
                "question": question,
                "evidence": ctx.panel.state.evidence,
                "turns": ctx.panel.state.conversation or [],
            },
        )

    def on_answer_ready(self, ctx):
        """Called by the streaming operator when done: re-renders."""

    def on_cite(self, ctx):
        """Opens the cited moment as a clip of its video (operators/moments.py);
        the cited frame itself when its video has no video sample (event
        param ``sample_id``)."""
        sample_id = _arg(ctx, "sample_id")
        if sample_id:
            ctx.trigger(
                f"{self.plugin_name}/open_moments",
                {"sample_ids": [sample_id], "or_open_frame": True},
            )

    def on_clear_history(self, ctx):
        clear_history(ctx.dataset)
        ctx.panel.state.history = []

    def on_new_conversation(self, ctx):
        """Forgets the earlier turns: the next question starts afresh."""
        ctx.panel.state.set(
            {
                "conversation": [],
                "answer": "",
                "citations": [],
                "warnings": [],
                "incomplete": False,
                "error": "",
            }
        )
        items = S.evidence_from_state(ctx.panel.state.evidence)
        self._set_evidence(ctx, items)

    # -- helpers --------------------------------------------------------------

    def _set_evidence(self, ctx, items, source=None):
        turns = [Turn.from_dict(t) for t in ctx.panel.state.conversation or []]
        items = renumber(items, start=_next_number(ctx.panel.state.conversation))
        ctx.panel.state.evidence = S.evidence_to_state(items)
        if source is not None:
            ctx.panel.state.evidence_source = source if items else ""
        self._set_plan(ctx, items, turns)
        thumbs = {key: {"img": url} for key, url in S.thumbnails(items).items()}
        if thumbs:
            ctx.panel.data.set(thumbs)

    def _set_plan(self, ctx, items, turns):
        """The token plan Ask would follow, for the preview."""
        if not items:
            ctx.panel.state.set({"plan": None, "plan_summary": ""})
            return
        settings = Settings.load(ctx.secrets)
        options = Options(
            settings.vllm_max_images, DEFAULT_LONG_SIDE, DEFAULT_MAX_TOKENS
        )
        if settings.vllm_base_url:  # else preview assumes the default context
            settings = require_endpoint(settings)
        try:
            plan = preview(ctx.panel.state.question, items, settings, options, turns)
        except VideoRagError as e:
            ctx.panel.state.set({"plan": None, "plan_summary": e.message})
            return
        ctx.panel.state.set({"plan": plan.to_dict(), "plan_summary": plan.summary()})

    def _error(self, ctx, message):
        ctx.panel.state.set({"error": message, "busy": False})

    # -- layout ---------------------------------------------------------------

    def render(self, ctx):
        panel = types.Object()
        s = ctx.panel.state
        if s.setup_message:
            panel.view("setup", types.Warning(label=s.setup_message))
        panel.str("question", label="Question", description="Ask about the videos")
        actions = panel.h_stack("actions", align_x="left")
        actions.btn("preview", label="Show evidence", on_click=self.on_preview)
        actions.btn(
            "ask",
            label="Asking…" if s.busy else "Ask",
            variant="contained",
            disabled=bool(s.busy),
            on_click=self.on_ask,
        )
        if s.error:
            panel.view("error_box", types.Error(label=s.error))
        self._render_evidence(panel, s)
        self._render_conversation(panel, s)
        answer = s.answer or ANSWER_PLACEHOLDER
        if s.incomplete:
            answer += "\n\n_(incomplete: the server stopped mid-answer)_"
        panel.md(answer, name="answer")
        for i, warning in enumerate(s.warnings or []):
            panel.view(f"warning_{i}", types.Warning(label=warning))
        self._render_citations(panel, s.citations or [])
        self._render_history(panel, s.history or [])
        return types.Property(panel, view=types.GridView(orientation="vertical"))

    def _render_evidence(self, panel, s):
        items = S.evidence_from_state(s.evidence)
        where = {"selected": "selected frames", "retrieved": "hybrid retrieval"}
        source = where.get(s.evidence_source or "", "")
        if not items:
            panel.md(
                "_Evidence: select frames in the grid, or press **Show evidence** "
                "to retrieve frames and transcript lines for the question._",
                name="evidence_title",
            )
            return
        panel.md(f"**Evidence** ({source}, {len(items)} items)", name="evidence_title")
        # The token plan says which frames go as images, as text, or not at all
        planned = S.plan_rows(s.plan)
        for i, item in enumerate(items):
            row = panel.h_stack(S.thumb_key(i), align_y="center")
            if item.sample_id:
                row.img(
                    "img",
                    height="72px",
                    on_click=self.on_cite,
                    params={"sample_id": item.sample_id},
                    alt_text=f"[{item.n}]",
                )
            row.md(S.evidence_caption(item, planned.get(item.n)), name="caption")
            row.btn(
                "drop",
                label="Drop",
                icon="close",
                on_click=self.on_drop,
                params={"index": i},
            )
        budget = S.plan_markdown(s.plan, s.plan_summary) or s.plan_summary
        if budget:
            panel.md(budget, name="budget")

    def _render_conversation(self, panel, s):
        turns = list(s.conversation or [])
        if not turns:
            return
        if turns[-1].get("answer", "") == (s.answer or ""):
            turns = turns[:-1]  # the latest answer is shown below
        text = S.conversation_markdown(turns) or "_The answer below is its first turn._"
        panel.md(
            f"**Conversation** ({len(s.conversation)} turns, sent with the next "
            "question)  \n\n" + text,
            name="conversation_md",
        )
        panel.btn(
            "new_conversation",
            label="New conversation",
            icon="restart_alt",
            on_click=self.on_new_conversation,
        )

    def _render_citations(self, panel, citations):
        if not citations:
            return
        row = panel.h_stack("citations", align_x="left")
        for i, c in enumerate(citations):
            row.btn(
                f"cite_{i}",
                label=c.get("label") or f"[{c.get('n')}]",
                icon="movie",
                on_click=self.on_cite,
                params={"sample_id": c.get("sample_id")},
                disabled=not c.get("sample_id"),
            )

    def _render_history(self, panel, rows):
        panel.md("**History** (this dataset)", name="history_title")
        panel.md(S.history_markdown(rows), name="history_md")
        if rows:
            panel.btn(
                "clear_history", label="Clear history", on_click=self.on_clear_history
            )


def _next_number(conversation):
    """The first evidence number after the conversation's turns."""
    numbers = [e.get("n", 0) for t in conversation or [] for e in t.get("evidence", [])]
    return max(numbers, default=0) + 1


def _arg(ctx, name, default=None):
    """A button's param: in ``ctx.params``, or in the event's args."""
    if ctx.params.get(name) is not None:
        return ctx.params[name]
    event_args = getattr(ctx, "event_args", None) or {}
    return event_args.get(name, default)


def _selected_evidence(ctx):
    if ctx.dataset is None or not ctx.selected:
        return []
    try:
        items = gather_evidence(ctx.dataset, "", ctx.selected)
    except VideoRagError:  # none of the selected samples is here any more
        return []
    return S.evidence_from_state(S.evidence_to_state(items))


def _setup_message(ctx):
    try:
        require_endpoint(Settings.load(ctx.secrets))
    except VideoRagError as e:
        return e.message
    return ""
