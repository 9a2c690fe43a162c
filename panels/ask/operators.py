"""Panel-internal operator: streams an answer into the Ask panel.

FiftyOne streams a GENERATOR operator's yielded messages to the App as they
are produced (``execute_as_generator=True``). The panel's Ask button triggers
this operator with the panel's id; each yielded ``patch_panel_state`` message
updates the panel's ``answer`` text while vLLM generates it. At the end it
patches the final state (citations, the token plan, the conversation's
turns, history, warnings or the error) and asks the panel to re-render (its
``on_answer_ready`` method). The question is asked in the panel's
conversation: the earlier turns travel in the params and come back with the
new one. If vLLM stops mid-answer, the partial answer stays, marked
incomplete, with the error.
"""

import time

import fiftyone.operators as foo
import fiftyone.operators.types as types

from plugin.answer import Conversation
from plugin.errors import InvalidInputError, VideoRagError
from plugin.inputs import positive_number
from plugin.settings import Settings

from .constants import PANEL_NAME, STREAM_EVERY_S, STREAM_OPERATOR
from .state import evidence_from_state, history_rows


class AskStream(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name=STREAM_OPERATOR,
            label="Video RAG: stream an answer into the Ask panel",
            unlisted=True,
            execute_as_generator=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.str("panel_id")
        inputs.str("question")
        inputs.list("evidence", types.Object())
        inputs.obj("panel_state", default={})
        inputs.list("turns", types.Object())
        inputs.int("max_images")
        inputs.int("long_side")
        inputs.int("max_tokens")
        return types.Property(inputs)

    def execute(self, ctx):
        yield from stream_answer(ctx, self.plugin_name)


def stream_answer(ctx, plugin_name, clock=time.monotonic):
    """The messages to stream to the panel (see the module docstring)."""
    panel_id = ctx.params.get("panel_id")
    state = ctx.params.get("panel_state")
    state = dict(state) if isinstance(state, dict) else {}

    def patch(values):
        state.update(values)
        return ctx.ops.patch_panel_state(values, panel_id=panel_id)

    yield patch(
        {"busy": True, "answer": "", "error": "", "citations": [], "incomplete": False}
    )
    chat = None
    try:
        turns = _rows(ctx.params.get("turns"), "turns")
        settings = Settings.load(ctx.secrets)
        chat = Conversation.from_dict(ctx.dataset, {"turns": turns}, settings)
        final = yield from _generate(ctx, chat, patch, clock)
    except VideoRagError as e:  # shown in the panel, never a traceback
        partial = getattr(e, "answer", None)  # an interrupted stream's text
        final = _answer_state(partial) if partial else {"answer": ""}
        final["error"] = e.message
    final.update(
        busy=False,
        history=history_rows(ctx.dataset),
        conversation=chat.to_dict()["turns"] if chat is not None else [],
    )
    yield patch(final)
    yield ctx.trigger(
        f"{plugin_name}/{PANEL_NAME}",
        {"panel_id": panel_id, "__method__": "on_answer_ready", "panel_state": state},
    )


def _generate(ctx, chat, patch, clock):
    params = ctx.params
    kwargs = {
        k: positive_number(params[k], k.replace("_", " "), integer=True)
        for k in ("max_images", "long_side", "max_tokens")
        if params.get(k) is not None
    }
    stream = chat.ask(
        params.get("question"),
        evidence=evidence_from_state(_rows(params.get("evidence"), "evidence")),
        stream=True,
        **kwargs,
    )
    yield patch({"plan": stream.plan.to_dict(), "plan_summary": stream.plan.summary()})
    last = clock()
    for _ in stream:
        if clock() - last >= STREAM_EVERY_S:
            last = clock()
            yield patch({"answer": stream.text_so_far()})
    return _answer_state(stream.answer)


def _rows(value, what):
    """A list of dicts (the panel's JSON state), else a clear error: the
    panel sends these, a hand-made request may send anything."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise InvalidInputError(f"'{what}' must be a list of objects")
    return value


def _answer_state(answer):
    return {
        "answer": answer.text,
        "incomplete": answer.incomplete,
        "citations": [c.to_dict() | {"label": c.label} for c in answer.citations],
        "warnings": answer.warnings,
        "usage": answer.usage,
    }
