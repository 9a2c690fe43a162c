"""Operators: index the transcripts of a dataset, and search them."""

from pathlib import Path

import fiftyone.operators as foo
import fiftyone.operators.types as types

from plugin.milvus import resolve_milvus
from plugin.retrieval.frame_search import validate_query
from plugin.retrieval.text_embedders import (
    EMBEDDINGS_BASE_URL,
    EMBEDDINGS_MODEL,
    canonical_name,
)
from plugin.retrieval.transcript_index import (
    build_transcript_index,
    search_transcript,
    sync_transcript_index,
    transcript_index_info,
)
from plugin.settings import get_setting

_MODELS = {
    "minilm": "all-MiniLM-L6-v2 (offline, 384-d)",
    "openai": "OpenAI-compatible /v1/embeddings endpoint",
}


class IndexTranscripts(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="index_transcripts",
            label="Video RAG: index transcripts",
            description="Embeds the transcript segments of the dataset into "
            "Milvus (new videos only, if an index exists)",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        if ctx.dataset is None:
            inputs.view("no_dataset", types.Warning(label="Open a dataset first"))
            return types.Property(inputs)
        existing = transcript_index_info(ctx.dataset)
        if existing:
            _existing_index_inputs(inputs, existing)
        if not existing or ctx.params.get("overwrite"):
            _model_inputs(ctx, inputs)
        _milvus_input(inputs)
        inputs.bool(
            "delegate",
            default=False,
            label="Run in the background (delegated)",
            description="For datasets with many videos",
        )
        return types.Property(inputs, view=types.View(label="Index transcripts"))

    def resolve_delegation(self, ctx):
        return bool(ctx.params.get("delegate", False))

    def execute(self, ctx):
        milvus = resolve_milvus(
            ctx.params.get("milvus_uri") or None, secrets=ctx.secrets
        )

        def progress(fraction, label):
            ctx.set_progress(progress=fraction, label=label)

        if transcript_index_info(ctx.dataset) and not ctx.params.get("overwrite"):
            counts = sync_transcript_index(
                ctx.dataset, milvus=milvus, progress=progress, secrets=ctx.secrets
            )
            summary = ", ".join(f"{n} {what}" for what, n in counts.items())
            return {"summary": f"Synced: {summary} segment(s)"}
        info = build_transcript_index(
            ctx.dataset,
            text_model=_model_name(ctx.params),
            milvus=milvus,
            overwrite=bool(ctx.params.get("overwrite")),
            progress=progress,
            secrets=ctx.secrets,
        )
        return {
            "summary": f"Indexed {info['num_segments']} segment(s) with "
            f"{info['text_model']} into {info['collection_name']!r} "
            f"({milvus.kind} Milvus at {milvus.display_uri})"
        }

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("summary", label="Result")
        return types.Property(outputs)


class SearchTranscript(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="search_transcript",
            label="Video RAG: search transcript",
            description="Finds transcript segments by meaning and shows their frames",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        if ctx.dataset is None or not transcript_index_info(ctx.dataset):
            inputs.view(
                "no_index",
                types.Warning(
                    label="This dataset has no transcript index: run "
                    "'Video RAG: index transcripts' first"
                ),
            )
            return types.Property(inputs)
        query = inputs.str("query", required=True, label="Search text")
        if ctx.params.get("query") is not None:
            _flag(query, lambda: validate_query(ctx.params.get("query")))
        k = inputs.int("k", default=10, label="Number of segments")
        if ctx.params.get("k") is not None and ctx.params["k"] < 1:
            k.invalid, k.error_message = True, "Must be at least 1"
        _milvus_input(inputs)
        return types.Property(inputs, view=types.View(label="Search transcript"))

    def execute(self, ctx):
        milvus = resolve_milvus(
            ctx.params.get("milvus_uri") or None, secrets=ctx.secrets
        )
        hits = search_transcript(
            ctx.dataset,
            ctx.params["query"],
            k=int(ctx.params.get("k") or 10),
            milvus=milvus,
            secrets=ctx.secrets,
        )
        frame_ids = list(dict.fromkeys(i for hit in hits for i in hit.frame_ids))
        if not ctx.delegated:
            ctx.ops.set_view(view=ctx.dataset.select(frame_ids, ordered=True))
        return {"hits": hit_rows(ctx.dataset, hits)}

    def resolve_output(self, ctx):
        outputs = types.Object()
        table = types.TableView()
        for key, label in _COLUMNS:
            table.add_column(key, label=label)
        outputs.list("hits", types.Object(), label="Transcript hits", view=table)
        return types.Property(outputs)


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
    choices = types.Dropdown()
    for name, label in _MODELS.items():
        choices.add_choice(name, label=label)
    inputs.enum(
        "text_model",
        choices.values(),
        default="minilm",
        view=choices,
        label="Text model",
    )
    if ctx.params.get("text_model") != "openai":
        return
    model = inputs.str(
        "openai_model",
        default=get_setting(EMBEDDINGS_MODEL, ctx.secrets) or "",
        required=True,
        label="Embedding model",
        description="e.g. mistral-embed, or the model your vLLM server serves. "
        f"URL and key: the {EMBEDDINGS_BASE_URL} / VRAG_EMBEDDINGS_API_KEY secrets",
    )
    if not get_setting(EMBEDDINGS_BASE_URL, ctx.secrets):
        model.invalid = True
        model.error_message = f"Set the {EMBEDDINGS_BASE_URL} secret or variable first"
    elif ctx.params.get("openai_model") is not None:
        _flag(model, lambda: canonical_name(_model_name(ctx.params)))


def _milvus_input(inputs):
    inputs.str(
        "milvus_uri",
        label="Milvus URI",
        description="Empty: VRAG_MILVUS_URI, else the managed local store",
    )


def _model_name(params):
    if params.get("text_model") == "openai":
        return f"openai:{(params.get('openai_model') or '').strip()}"
    return params.get("text_model") or "minilm"


def _flag(prop, check):
    """Marks ``prop`` invalid with the message of the ValueError ``check`` raises."""
    try:
        check()
    except ValueError as e:
        prop.invalid = True
        prop.error_message = str(e)
