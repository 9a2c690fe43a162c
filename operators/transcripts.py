"""Operators: index the transcripts of a dataset, and search them."""

from pathlib import Path

import fiftyone.operators.types as types

from plugin.models.text import (
    DEFAULT_TEXT_MODEL,
    OPENAI_PREFIX,
    resolve_text_model,
    text_model_choices,
)
from plugin.retrieval.transcript_index import (
    build_transcript_index,
    search_transcript,
    sync_transcript_index,
    transcript_index_info,
)
from plugin.settings import EMBEDDINGS_API_KEY, EMBEDDINGS_BASE_URL

from .forms import (
    MANY_FRAMES,
    WorkbenchOperator,
    dropdown,
    flag,
    mark_invalid,
    milvus_input,
    search_inputs,
    search_request,
    settings_from,
    table_output,
    work_args,
)

_OPENAI = OPENAI_PREFIX.rstrip(":")
_K = 10  # segments a search shows by default


class IndexTranscripts(WorkbenchOperator, label="index transcripts", background=True):
    """Embeds the transcript segments of the dataset into Milvus (new videos only, if
    an index exists).
    """

    def form(self, ctx, inputs):
        if ctx.dataset is None:
            inputs.view("no_dataset", types.Warning(label="Open a dataset first"))
            return
        existing = transcript_index_info(ctx.dataset)
        if existing:
            _existing_index_inputs(inputs, existing)
        if not existing or ctx.params.get("overwrite"):
            _model_inputs(ctx, inputs)
        milvus_input(ctx, inputs)

    def is_large(self, ctx):
        # Segments follow the frames (a few per frame at the default rate)
        return ctx.dataset is not None and len(ctx.dataset) > MANY_FRAMES

    def run(self, ctx):
        args = work_args(ctx)
        if transcript_index_info(ctx.dataset) and not ctx.params.get("overwrite"):
            counts = sync_transcript_index(ctx.dataset, **args)
            summary = ", ".join(f"{n} {what}" for what, n in counts.items())
            return {"summary": f"Synced: {summary} segment(s)"}
        info = build_transcript_index(
            ctx.dataset,
            text_model=_model_name(ctx.params),
            overwrite=bool(ctx.params.get("overwrite")),
            **args,
        )
        store = args["settings"].milvus(start_local=False)  # built: it is running
        return {
            "summary": f"Indexed {info['num_segments']} segment(s) with "
            f"{info['text_model']} into {info['collection_name']!r} "
            f"({store.kind} Milvus at {store.display_uri})"
        }

    def outputs(self, ctx, outputs):
        outputs.str("summary", label="Result")


class SearchTranscript(WorkbenchOperator, label="search transcript"):
    """Finds transcript segments by meaning and shows their frames."""

    def form(self, ctx, inputs):
        if ctx.dataset is None or not transcript_index_info(ctx.dataset):
            inputs.view(
                "no_index",
                types.Warning(
                    label="This dataset has no transcript index: run "
                    "'Video RAG: index transcripts' first"
                ),
            )
            return
        search_inputs(ctx, inputs, _K, "segments")
        milvus_input(ctx, inputs)

    def run(self, ctx):
        hits = search_transcript(ctx.dataset, **search_request(ctx, _K))
        frame_ids = list(dict.fromkeys(i for hit in hits for i in hit.frame_ids))
        if not ctx.delegated:
            ctx.ops.set_view(view=ctx.dataset.select(frame_ids, ordered=True))
        return {"hits": hit_rows(ctx.dataset, hits)}

    def outputs(self, ctx, outputs):
        table_output(outputs, "hits", _COLUMNS, "Transcript hits")


_COLUMNS = [
    ("rank", "#"),
    ("score", "Score"),
    ("video", "Video"),
    ("span", "Start-end (s)"),
    ("text", "Text"),
    ("frames", "Frames"),
]


def hit_rows(dataset, hits):
    """Table rows for ``hits``: rank, score, video file name, span, text, frames."""
    ids, paths = dataset.values(["video_id", "video_path"])
    names = {vid: Path(path or "").name for vid, path in zip(ids, paths)}
    return [
        {
            "rank": hit.rank + 1,
            "score": round(hit.score, 4),
            "video": names.get(hit.video_id) or hit.video_id,
            "span": f"{hit.start:.1f}-{hit.end:.1f}",
            "text": hit.text,
            "frames": len(hit.frame_ids),
        }
        for hit in hits
    ]


def _existing_index_inputs(inputs, existing):
    inputs.view(
        "existing",
        types.Notice(
            label=f"This dataset has a transcript index ({existing['text_model']}, "
            f"{existing['num_segments']} segments, collection "
            f"{existing['collection_name']!r}). Running adds the segments of new "
            "videos and removes those of deleted videos."
        ),
    )
    inputs.bool(
        "overwrite",
        default=False,
        label="Rebuild: replace the existing index",
        description="Re-embeds every segment, e.g. with another text model",
    )


def _model_inputs(ctx, inputs):
    # The registry's "openai:<model>" is two fields here: a choice and a name
    choices = {
        name.split(":")[0]: description
        for name, description in text_model_choices().items()
    }
    dropdown(inputs, "text_model", choices, DEFAULT_TEXT_MODEL, "Text model")
    if ctx.params.get("text_model") != _OPENAI:
        return
    settings = settings_from(ctx)
    model = inputs.str(
        "openai_model",
        default=settings.embeddings_model or "",
        required=True,
        label="Embedding model",
        description="e.g. mistral-embed, or the model your vLLM server serves. "
        f"URL and key: the {EMBEDDINGS_BASE_URL} / {EMBEDDINGS_API_KEY} secrets",
    )
    if not settings.embeddings_base_url:
        mark_invalid(model, f"Set the {EMBEDDINGS_BASE_URL} secret or variable first")
    elif ctx.params.get("openai_model") is not None:
        flag(model, lambda: resolve_text_model(_model_name(ctx.params), settings))


def _model_name(params):
    if params.get("text_model") == _OPENAI:
        return f"{OPENAI_PREFIX}{(params.get('openai_model') or '').strip()}"
    return params.get("text_model") or DEFAULT_TEXT_MODEL
