"""Operator: ask a question about the selected (or retrieved) frames."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from plugin.answer import AnswerError, ask
from plugin.answer.ask import DEFAULT_K
from plugin.answer.images import DEFAULT_LONG_SIDE
from plugin.answer.prompt import DEFAULT_MAX_IMAGES, DEFAULT_MAX_TOKENS


class AskQuestion(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="ask_question",
            label="Video RAG: ask a question",
            description="Answers a question from the selected frames (or hybrid "
            "retrieval) with Pixtral served by vLLM, with citations",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.str("question", required=True, label="Question")
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
            default=DEFAULT_MAX_IMAGES,
            label="Images per request",
            description="At most vLLM's --limit-mm-per-prompt",
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
        return types.Property(inputs, view=types.View(label="Ask a question"))

    def execute(self, ctx):
        params = ctx.params
        try:
            answer = ask(
                ctx.dataset,
                params.get("question"),
                sample_ids=list(ctx.selected or []) or None,
                k=params.get("k") or DEFAULT_K,
                max_images=params.get("max_images") or DEFAULT_MAX_IMAGES,
                long_side=params.get("long_side") or DEFAULT_LONG_SIDE,
                max_tokens=params.get("max_tokens") or DEFAULT_MAX_TOKENS,
                secrets=ctx.secrets,
                answer_field=params.get("answer_field") or None,
            )
        except AnswerError as e:
            return {"error": e.message}
        if params.get("answer_field") and not ctx.delegated:
            ctx.ops.reload_dataset()
        return {
            "answer": answer.text,
            "citations": "\n".join(f"- {c.label}" for c in answer.citations),
            "warnings": "\n".join(answer.warnings),
        }

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("error", label="Could not answer", view=types.MarkdownView())
        outputs.str("answer", label="Answer", view=types.MarkdownView())
        outputs.str("citations", label="Citations", view=types.MarkdownView())
        outputs.str("warnings", label="Warnings", view=types.MarkdownView())
        return types.Property(outputs)
