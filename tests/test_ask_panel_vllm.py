"""The Ask panel and the ask operator against a REAL vLLM server (tiny
Pixtral), driven with a real FiftyOne ExecutionContext: the evidence preview
with its token plan, dropping items, errors, the streamed answer with
citations, a follow-up in the panel's conversation and "New conversation".
The model answers noise: we assert on the protocol and our handling.
"""

import json
import uuid

import fiftyone as fo
import pytest
from support.execution import execute

from plugin.video.importer import import_videos

pytestmark = pytest.mark.vllm

# vllm_server: the session fixture from conftest.py

VIDEO = "samples/narrated_cifar10.mp4"
QUESTION = "What is shown in these frames?"


@pytest.fixture(scope="module")
def frames():
    """A dataset of real frames (with transcripts) of the sample video."""
    name = f"vrag-panel-{uuid.uuid4().hex[:10]}"
    report = import_videos([VIDEO], name, fps=1.0, max_frames=6)
    assert not report.failed, report.summary_lines()
    dataset = fo.load_dataset(name)
    yield dataset
    fo.delete_dataset(name)


@pytest.fixture
def vllm_env(vllm_server, monkeypatch):
    """The plugin's settings (environment) pointing at the server."""
    monkeypatch.setenv("VRAG_VLLM_BASE_URL", vllm_server.base_url)
    monkeypatch.setenv("VRAG_VLLM_API_KEY", vllm_server.api_key)
    monkeypatch.setenv("VRAG_VLLM_MODEL", vllm_server.model_name)
    return vllm_server


def _ids(dataset, n):
    return dataset.values("id")[:n]


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
    ctx, requests, _ = execute(panel, frames, _event("on_load", {}), selected=ids)
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
    # the token plan of the preview: no server, so the default context
    plan = state["plan"]
    assert plan["context_source"] == "assumed" and plan["max_model_len"] == 32768
    assert [(p["n"], p["mode"]) for p in plan["items"]] == [
        (1, "image"),
        (2, "image"),
        (3, "image"),
    ]
    assert state["plan_summary"].startswith("Prompt ~")
    output = json.dumps(requests[-1].params["output"])
    assert "Token budget" in output and "tokens (342 image)" in output

    ctx, requests, _ = execute(
        panel, frames, _event("on_drop", ctx.panel_state, index=0)
    )
    evidence = _patched_state(requests)["evidence"]
    assert [(e["n"], e["sample_id"]) for e in evidence] == [(1, ids[1]), (2, ids[2])]

    state = dict(ctx.panel_state, question="")
    _, requests, _ = execute(panel, frames, _event("on_ask", state))
    assert "empty" in _patched_state(requests)["error"]
    state["question"] = QUESTION
    _, requests, _ = execute(panel, frames, _event("on_ask", state))
    assert "vllm serve" in _patched_state(requests)["error"]  # no endpoint


def _stream(panel, frames, state):
    """on_ask, then the streaming operator it triggers: its message bodies."""
    from panels.ask.operators import stream_answer

    _, requests, _ = execute(panel, frames, _event("on_ask", state))
    trigger = next(r for r in requests if r.operator_uri.endswith("/ask_stream"))
    assert trigger.operator_uri == "@vrag/video-rag/ask_stream"
    assert trigger.params["panel_id"] == "p1"
    trigger.params["max_tokens"] = 24  # noise model: keep CI fast
    ticks = iter(range(10**6))  # a clock that passes STREAM_EVERY_S per call
    stream_ctx, _, _ = execute(_noop(), frames, trigger.params)
    messages = list(stream_answer(stream_ctx, "@vrag/video-rag", lambda: next(ticks)))
    for message in messages:
        json.dumps(message.to_json())  # what FiftyOne streams to the App
    return trigger, [m.body for m in messages]


def _patches(bodies):
    return [b.params["state"] for b in bodies if b.operator_uri == "patch_panel_state"]


def test_panel_streams_an_answer_and_cites(frames, vllm_env):
    panel, ids = _panel(), _ids(frames, 2)
    ctx, _, _ = execute(panel, frames, _event("on_load", {}), selected=ids)
    assert ctx.panel_state["plan"]["context_source"] == "server"
    state = dict(ctx.panel_state, question=QUESTION)
    trigger, bodies = _stream(panel, frames, state)
    assert trigger.params["turns"] == []
    patches = _patches(bodies)
    assert patches[0]["busy"] is True
    assert patches[1]["plan"]["items"][0]["mode"] == "image"  # before the answer
    partial = [p["answer"] for p in patches[2:-1]]
    assert len(partial) > 1
    assert all(b.startswith(a) for a, b in zip(partial, partial[1:]))
    final = patches[-1]
    assert final["busy"] is False and not final.get("error")
    assert final["incomplete"] is False
    assert final["answer"].startswith(partial[-1])
    assert final["history"][0]["question"] == QUESTION
    assert [t["question"] for t in final["conversation"]] == [QUESTION]
    assert bodies[-1].operator_uri == "@vrag/video-rag/ask_panel"
    assert bodies[-1].params["__method__"] == "on_answer_ready"
    dump = json.dumps([b.params for b in bodies], default=str)
    assert vllm_env.api_key not in dump

    final_state = bodies[-1].params["panel_state"]
    final_state["citations"] = [{"n": 1, "sample_id": ids[0], "label": "[1] x @ 00:00"}]
    _, requests, _ = execute(panel, frames, _event("on_answer_ready", final_state))
    assert requests[-1].operator_uri == "show_panel_output"
    output = json.dumps(requests[-1].params["output"])
    assert "cite_0" in output and "on_cite" in output
    assert "new_conversation" in output
    _, requests, _ = execute(
        panel, frames, _event("on_cite", final_state, sample_id=ids[0])
    )
    # plays the cited moment (operators/moments.py); the panel re-renders after
    cites = [r for r in requests if r.operator_uri == "@vrag/video-rag/open_moments"]
    assert len(cites) == 1, [r.operator_uri for r in requests]
    assert cites[0].params == {"sample_ids": [ids[0]], "or_open_frame": True}


def test_panel_follow_up_and_new_conversation(frames, vllm_env):
    panel, ids = _panel(), _ids(frames, 2)
    ctx, _, _ = execute(panel, frames, _event("on_load", {}), selected=ids)
    _, bodies = _stream(panel, frames, dict(ctx.panel_state, question=QUESTION))
    state = bodies[-1].params["panel_state"]
    assert len(state["conversation"]) == 1

    state["question"] = "And what about the second frame?"
    trigger, bodies = _stream(panel, frames, state)
    assert [t["question"] for t in trigger.params["turns"]] == [QUESTION]
    assert [e["n"] for e in trigger.params["evidence"]] == [3, 4]  # continued
    final = _patches(bodies)[-1]
    assert [t["question"] for t in final["conversation"]] == [
        QUESTION,
        "And what about the second frame?",
    ]
    assert _patches(bodies)[1]["plan"]["history_turns"] == 1

    state = bodies[-1].params["panel_state"]
    ctx, requests, _ = execute(panel, frames, _event("on_new_conversation", state))
    cleared = _patched_state(requests)
    assert cleared["conversation"] == [] and cleared["answer"] == ""
    assert [e["n"] for e in cleared["evidence"]] == [1, 2]
    output = json.dumps(requests[-1].params["output"])
    assert "new_conversation" not in output


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
    _, _, result = execute(AskQuestion(), frames, dict(params), selected=ids)
    assert "vllm serve" in result["error"]
    monkeypatch.setenv("VRAG_VLLM_BASE_URL", vllm_server.base_url)
    monkeypatch.setenv("VRAG_VLLM_API_KEY", vllm_server.api_key)
    monkeypatch.setenv("VRAG_VLLM_MODEL", vllm_server.model_name)
    _, requests, result = execute(AskQuestion(), frames, dict(params), selected=ids)
    assert "error" not in result and "answer" in result
    assert result["budget"].startswith("Prompt ~")
    assert frames.select(ids).values("op_answer") == [result["answer"]] * 2
    assert [r.operator_uri for r in requests] == ["reload_dataset"]
