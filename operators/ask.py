"""Operator: ask a question about the selected (or retrieved) frames."""

import fiftyone.operators.types as types

from plugin.answer import ask
from plugin.answer.ask import DEFAULT_K
from plugin.answer.images import DEFAULT_LONG_SIDE
from plugin.answer.labels import save_answer_labels
from plugin.answer.prompt import (
    DEFAULT_MAX_IMAGES,
    DEFAULT_MAX_TOKENS,
    validate_question,
)

from .forms import WorkbenchOperator, flag, milvus_input, settings_from


class AskQuestion(WorkbenchOperator, label="ask a question", background=True):
    """Answers a question from the selected frames (or hybrid retrieval) with Pixtral
    served by vLLM, with citations.
    """

    def form(self, ctx, inputs):
        question = inputs.str("question", required=True, label="Question")
        if ctx.params.get("question") is not None:
            flag(question, lambda: validate_question(ctx.params["question"]))
        n = len(ctx.selected or [])
        inputs.view(
            "evidence_note",
            types.Notice(
                label=f"Evidence: the {n} selected frames"
                if n
                else "Evidence: hybrid retrieval (nothing selected)"
            ),
        )
        inputs.int("k", default=DEFAULT_K, label="Retrieved items (no selection)")
        inputs.int(
            "max_images",
            label="Images per request",
            description="At most vLLM's --limit-mm-per-prompt (empty: the "
            f"VRAG_VLLM_MAX_IMAGES setting, default {DEFAULT_MAX_IMAGES})",
        )
        inputs.int("long_side", default=DEFAULT_LONG_SIDE, label="Image long side (px)")
        inputs.int(
            "max_tokens", default=DEFAULT_MAX_TOKENS, label="Answer length (tokens)"
        )
        inputs.str(
            "answer_field",
            label="Write the answer to field",
            description="Optional: a string field set on the evidence frames",
        )
        inputs.bool(
            "save_labels",
            default=False,
            label="Save the answer on the cited videos",
            description="Timeline labels (field 'answers' of the video samples): "
            "label = the question, with the answer text and citation number",
        )
        if not n:  # retrieval reads the indexes
            milvus_input(ctx, inputs)

    def run(self, ctx):
        params = ctx.params
        answer = ask(
            ctx.dataset,
            params.get("question"),
            sample_ids=list(ctx.selected or []) or None,
            k=params.get("k") or DEFAULT_K,
            max_images=params.get("max_images"),
            long_side=params.get("long_side") or DEFAULT_LONG_SIDE,
            max_tokens=params.get("max_tokens") or DEFAULT_MAX_TOKENS,
            answer_field=params.get("answer_field") or None,
            settings=settings_from(ctx),
        )
        if params.get("save_labels") and not answer.incomplete:
            save_answer_labels(ctx.dataset, answer)
        if params.get("answer_field") and not ctx.delegated:
            ctx.ops.reload_dataset()
        return {
            "answer": answer.text,
            "citations": "\n".join(f"- {c.label}" for c in answer.citations),
            "warnings": "\n".join(answer.warnings),
            "budget": answer.plan.summary() if answer.plan else "",
        }

    def outputs(self, ctx, outputs):
        outputs.str("answer", label="Answer", view=types.MarkdownView())
        outputs.str("citations", label="Citations", view=types.MarkdownView())
        outputs.str("warnings", label="Warnings", view=types.MarkdownView())
        outputs.str("budget", label="Token budget", view=types.MarkdownView())
