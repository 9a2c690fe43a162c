"""The answer path against a REAL vLLM server (CPU, tiny VLM), end to end.

``ask()`` with real frame files from an imported sample video; streaming;
vLLM's own 4xx errors turned into clear messages; faults without a server
(connection refused, timeout, no endpoint); the history store holds no
secret; the Ask panel's handlers and its streaming operator, driven with a
real FiftyOne ExecutionContext. The model answers noise: we assert on the
protocol and our handling, never on the wording.
"""

import json
import shutil
import socket
import uuid

import fiftyone as fo
import pytest

from plugin.answer import AnswerError, ask
from plugin.answer.evidence import frames_evidence
from plugin.answer.history import STORE_NAME, list_entries
from plugin.settings import Settings
from plugin.video.importer import import_videos

pytestmark = pytest.mark.vllm

# vllm_server: the session fixture from conftest.py

VIDEO = "samples/narrated_cifar10.mp4"
MM_TOKENS_PER_IMAGE = 16  # tests/vllm_server/assemble_model.py
QUESTION = "What is shown in these frames?"


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """A dataset of real frames (with transcripts) of the sample video."""
    name = f"vrag-ask-{uuid.uuid4().hex[:10]}"
    report = import_videos([VIDEO], name, fps=1.0, max_frames=6)
    assert not report.failed, report.summary_lines()
    dataset = fo.load_dataset(name)
    assert len(dataset) >= 5, "the sample video gives too few frames"
    yield dataset
    fo.delete_dataset(name)


@pytest.fixture
def server_kwargs(vllm_server):
    settings = Settings.load(
        vllm_base_url=vllm_server.base_url,
        vllm_api_key=vllm_server.api_key,
        vllm_model=vllm_server.model_name,
        vllm_timeout=120,
    )
    return {"settings": settings, "max_tokens": 24}


def _ids(dataset, n):
    return dataset.values("id")[:n]


def test_multi_image_round_trip_is_one_request(frames, server_kwargs):
    one = ask(frames, QUESTION, sample_ids=_ids(frames, 1), **server_kwargs)
    three = ask(frames, QUESTION, sample_ids=_ids(frames, 3), **server_kwargs)
    assert isinstance(three.text, str) and three.text
    assert [e.n for e in three.evidence] == [1, 2, 3]
    assert three.model == "vrag-tiny-vlm"
    assert three.usage["completion_tokens"] > 0
    # ONE request carried all three frames: two more images, two more blocks
    extra = three.usage["prompt_tokens"] - one.usage["prompt_tokens"]
    assert extra >= 2 * MM_TOKENS_PER_IMAGE, (one.usage, three.usage)
    assert all(1 <= c.n <= 3 for c in three.citations)


def test_streaming_yields_chunks_then_the_answer(frames, server_kwargs):
    stream = ask(
        frames, QUESTION, sample_ids=_ids(frames, 2), stream=True, **server_kwargs
    )
    chunks = list(stream)
    assert len(chunks) > 1
    assert stream.answer is not None
    assert stream.answer.text == "".join(chunks)
    assert stream.answer.usage.get("completion_tokens", 0) >= 1


def test_too_many_images_gives_the_servers_400_and_a_suggestion(
    frames, server_kwargs, vllm_server
):
    with pytest.raises(AnswerError) as info:
        ask(frames, QUESTION, sample_ids=_ids(frames, 5), max_images=5, **server_kwargs)
    error = info.value
    assert error.kind == "bad_request"
    assert "HTTP 400" in error.message
    assert error.server_message and error.server_message in error.message
    assert "fewer images" in error.message and "long_side" in error.message
    assert vllm_server.api_key not in error.message


def test_capped_images_fit_the_server(frames, server_kwargs):
    answer = ask(frames, QUESTION, sample_ids=_ids(frames, 5), **server_kwargs)
    assert len(answer.evidence) == 5  # 4 as images, the 5th as text


def test_wrong_model_name_lists_the_served_models(frames, server_kwargs):
    server_kwargs["settings"] = server_kwargs["settings"].replace(
        vllm_model="mistralai/Pixtral-12B-2409"
    )
    with pytest.raises(AnswerError) as info:
        ask(frames, QUESTION, sample_ids=_ids(frames, 1), **server_kwargs)
    assert info.value.kind == "model_not_found"
    assert "'mistralai/Pixtral-12B-2409' is not served" in info.value.message
    assert "'vrag-tiny-vlm'" in info.value.message
    assert "VRAG_VLLM_MODEL" in info.value.message


def test_missing_frame_file_is_sent_as_text(frames, server_kwargs, tmp_path):
    ids = _ids(frames, 2)
    evidence = frames_evidence(frames, ids)
    copy = tmp_path / "frame.jpg"
    shutil.copy(evidence[0].filepath, copy)
    evidence[0].filepath = str(copy)
    copy.unlink()
    answer = ask(frames, QUESTION, evidence=evidence, **server_kwargs)
    assert any("missing on disk" in w and "frame.jpg" in w for w in answer.warnings)
    assert len(answer.evidence) == 2


def test_no_selection_and_no_index_is_a_clear_message(frames, server_kwargs):
    with pytest.raises(AnswerError) as info:
        ask(frames, QUESTION, **server_kwargs)
    assert info.value.kind == "no_evidence"
    assert "Select some frames" in info.value.message


def test_empty_question(frames, server_kwargs):
    with pytest.raises(AnswerError) as info:
        ask(frames, "   ", sample_ids=_ids(frames, 1), **server_kwargs)
    assert info.value.kind == "empty_question"


def test_connection_refused(frames):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens
    with pytest.raises(AnswerError) as info:
        ask(
            frames,
            QUESTION,
            _ids(frames, 1),
            settings=Settings.load(vllm_base_url=f"http://127.0.0.1:{port}/v1"),
        )
    assert info.value.kind == "connection"
    assert "Cannot connect" in info.value.message
    assert "vllm serve" in info.value.message


def test_timeout_when_the_server_never_answers(frames):
    with socket.socket() as sock:  # accepts connections, never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
        with pytest.raises(AnswerError) as info:
            settings = Settings.load(vllm_base_url=url, vllm_timeout=1.5)
            ask(frames, QUESTION, _ids(frames, 1), settings=settings)
    assert info.value.kind == "timeout"
    assert "did not answer within 1.5 s" in info.value.message


def test_no_endpoint_configured(frames, monkeypatch):
    monkeypatch.delenv("VRAG_VLLM_BASE_URL", raising=False)
    with pytest.raises(AnswerError) as info:
        ask(frames, QUESTION, _ids(frames, 1))
    assert info.value.kind == "no_endpoint"
    assert "vllm serve mistralai/Pixtral-12B-2409" in info.value.message


def test_history_is_kept_without_secrets(frames, server_kwargs, vllm_server):
    ask(frames, "Which frame shows a vehicle?", _ids(frames, 2), **server_kwargs)
    entries = list_entries(frames, limit=100)
    assert any(e["question"] == "Which frame shows a vehicle?" for e in entries)
    docs = list(
        fo.core.odm.get_db_conn()["execution_store"].find(
            {"store_name": STORE_NAME, "dataset_id": frames._doc.id}
        )
    )
    assert docs, "no history documents in the execution store"
    dump = json.dumps(docs, default=str)
    assert vllm_server.api_key not in dump
    assert vllm_server.base_url not in dump
    assert f"127.0.0.1:{vllm_server.port}" not in dump


def test_answer_field_is_written(frames, server_kwargs):
    ids = _ids(frames, 2)
    answer = ask(frames, QUESTION, ids, answer_field="vrag_answer", **server_kwargs)
    assert frames.select(ids).values("vrag_answer") == [answer.text] * 2


def test_retrieval_path_with_a_transcript_index(frames, server_kwargs, local_store):
    from plugin.retrieval.transcript_index import build_transcript_index

    build_transcript_index(frames, settings=local_store, overwrite=True)
    answer = ask(
        frames, "What animal is mentioned?", settings=local_store, k=3, **server_kwargs
    )
    assert 1 <= len(answer.evidence) <= 3
    assert all(e.source == "retrieved" for e in answer.evidence)
    assert any(e.transcript for e in answer.evidence)


# -- the Ask panel, driven with a real ExecutionContext --------------------


def _run(operator, dataset, params, selected=()):
    from fiftyone.operators.executor import ExecutionContext, Executor

    executor = Executor()
    ctx = ExecutionContext(
        request_params={
            "dataset_name": dataset.name,
            "selected": list(selected),
            "params": params,
        },
        executor=executor,
    )
    result = operator.execute(ctx)
    return ctx, executor._requests, result


def _panel():
    from panels.ask import AskPanel

    panel = AskPanel()
    panel.plugin_name = "@vrag/video-rag"
    return panel


def _event(method, state, **args):
    return {"panel_id": "p1", "__method__": method, "panel_state": state, **args}


def _patched_state(requests):
    state = {}
    for r in requests:
        if r.operator_uri == "patch_panel_state":
            state.update(r.params["state"])
    return state


def test_panel_load_preview_drop_and_errors(frames, monkeypatch):
    monkeypatch.delenv("VRAG_VLLM_BASE_URL", raising=False)
    panel, ids = _panel(), _ids(frames, 3)
    ctx, requests, _ = _run(panel, frames, _event("on_load", {}), selected=ids)
    state = _patched_state(requests)
    assert "vllm serve" in state["setup_message"]
    assert [e["sample_id"] for e in state["evidence"]] == ids
    data = [r.params["data"] for r in requests if r.operator_uri == "patch_panel_data"]
    assert any(
        str(v.get("img", "")).startswith("data:image/jpeg")
        for d in data
        for v in d.values()
    )
    assert requests[-1].operator_uri == "show_panel_output"

    ctx, requests, _ = _run(panel, frames, _event("on_drop", ctx.panel_state, index=0))
    evidence = _patched_state(requests)["evidence"]
    assert [(e["n"], e["sample_id"]) for e in evidence] == [(1, ids[1]), (2, ids[2])]

    state = dict(ctx.panel_state, question="")
    _, requests, _ = _run(panel, frames, _event("on_ask", state))
    assert "empty" in _patched_state(requests)["error"]
    state["question"] = QUESTION
    _, requests, _ = _run(panel, frames, _event("on_ask", state))
    assert "vllm serve" in _patched_state(requests)["error"]  # no endpoint


def test_panel_streams_an_answer_and_cites(frames, vllm_server, monkeypatch):
    from panels.ask.operators import stream_answer

    monkeypatch.setenv("VRAG_VLLM_BASE_URL", vllm_server.base_url)
    monkeypatch.setenv("VRAG_VLLM_API_KEY", vllm_server.api_key)
    monkeypatch.setenv("VRAG_VLLM_MODEL", vllm_server.model_name)
    panel, ids = _panel(), _ids(frames, 2)
    ctx, _, _ = _run(panel, frames, _event("on_load", {}), selected=ids)
    state = dict(ctx.panel_state, question=QUESTION)
    _, requests, _ = _run(panel, frames, _event("on_ask", state))
    trigger = next(r for r in requests if r.operator_uri.endswith("/ask_stream"))
    assert trigger.operator_uri == "@vrag/video-rag/ask_stream"
    assert trigger.params["panel_id"] == "p1"

    trigger.params["max_tokens"] = 24  # noise model: keep CI fast
    ticks = iter(range(10**6))  # a clock that passes STREAM_EVERY_S per call
    stream_ctx, _, _ = _run(_noop(), frames, trigger.params)
    messages = list(stream_answer(stream_ctx, "@vrag/video-rag", lambda: next(ticks)))
    for message in messages:
        json.dumps(message.to_json())  # what FiftyOne streams to the App
    bodies = [m.body for m in messages]
    patches = [
        b.params["state"] for b in bodies if b.operator_uri == "patch_panel_state"
    ]
    partial = [p["answer"] for p in patches[1:-1]]
    assert patches[0]["busy"] is True and len(partial) > 1
    assert all(b.startswith(a) for a, b in zip(partial, partial[1:]))
    final = patches[-1]
    assert final["busy"] is False and not final.get("error")
    assert final["answer"].startswith(partial[-1])
    assert final["history"][0]["question"] == QUESTION
    assert bodies[-1].operator_uri == "@vrag/video-rag/ask_panel"
    assert bodies[-1].params["__method__"] == "on_answer_ready"
    assert vllm_server.api_key not in json.dumps([m.to_json() for m in messages])

    final_state = bodies[-1].params["panel_state"]
    final_state["citations"] = [{"n": 1, "sample_id": ids[0], "label": "[1] x @ 00:00"}]
    _, requests, _ = _run(panel, frames, _event("on_answer_ready", final_state))
    assert requests[-1].operator_uri == "show_panel_output"
    output = json.dumps(requests[-1].params["output"])
    assert "cite_0" in output and "on_cite" in output
    _, requests, _ = _run(
        panel, frames, _event("on_cite", final_state, sample_id=ids[0])
    )
    uris = [r.operator_uri for r in requests]
    assert "set_selected_samples" in uris and "open_sample" in uris


def _noop():
    class _Op:
        def execute(self, ctx):
            return None

    return _Op()


def test_ask_question_operator(frames, vllm_server, monkeypatch):
    from operators.ask import AskQuestion

    ids = _ids(frames, 2)
    params = {"question": QUESTION, "answer_field": "op_answer", "max_tokens": 24}
    monkeypatch.delenv("VRAG_VLLM_BASE_URL", raising=False)
    _, _, result = _run(AskQuestion(), frames, dict(params), selected=ids)
    assert "vllm serve" in result["error"]
    monkeypatch.setenv("VRAG_VLLM_BASE_URL", vllm_server.base_url)
    monkeypatch.setenv("VRAG_VLLM_API_KEY", vllm_server.api_key)
    monkeypatch.setenv("VRAG_VLLM_MODEL", vllm_server.model_name)
    _, requests, result = _run(AskQuestion(), frames, dict(params), selected=ids)
    assert "error" not in result and result["answer"]
    assert frames.select(ids).values("op_answer") == [result["answer"]] * 2
    assert [r.operator_uri for r in requests] == ["reload_dataset"]
