"""The answer path against a REAL vLLM server (CPU, tiny Pixtral), end to end.

``ask()`` with real frame files; the token plan against the server's real
limits (image limit, ``max_model_len``, on the session's server and on a
second one started with a tiny context); the built request's token order
through vLLM's ``/tokenize`` with Pixtral's real tokenizer; streaming with
citations; a conversation; a server that dies mid-answer; vLLM's own 4xx
errors turned into clear messages; faults without a server (connection
refused, timeout, no endpoint); the history store holds no secret. The Ask
panel's handlers and its streaming operator are in test_ask_panel_vllm.py.
The model answers noise: we assert on the protocol and our handling, never
on the wording (where a test needs citations, vLLM's structured outputs
make the noise model write them).
"""

import json
import os
import shutil
import signal
import socket
import uuid

import fiftyone as fo
import pytest
from support.evidence import frame_evidence

from plugin.answer import AnswerError, Conversation, Evidence, ask
from plugin.answer.budget import PIXTRAL
from plugin.answer.evidence import frames_evidence
from plugin.answer.history import STORE_NAME, list_entries
from plugin.answer.request import Options, prepare
from plugin.settings import Settings
from plugin.video.importer import import_videos

pytestmark = pytest.mark.vllm

# vllm_server: the session fixture from conftest.py (max_model_len 32768)

VIDEO = "samples/narrated_cifar10.mp4"  # 288 x 288 frames
QUESTION = "What is shown in these frames?"
SMALL_CONTEXT = 4096  # the second server's --max-model-len
CITE = {"structured_outputs": {"regex": r"The frames \[1\] and \[3\] show it\."}}


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


@pytest.fixture(scope="module")
def hd_frames(tmp_path_factory):
    """40 evidence items with 1280x720 frame files and transcripts."""
    return frame_evidence(
        tmp_path_factory.mktemp("hd"),
        40,
        (1280, 720),
        sample_id=lambda i: f"hd{i:02d}",
        video_title="Harbour tour",
        timestamp=lambda i: 4.0 * i,
        transcript=lambda i: (
            f"At stop {i} the guide points at the ships, the "
            "cranes and a red lighthouse; gulls circle over the water."
        ),
    )


def _settings(server, **changes):
    return Settings.load(
        vllm_base_url=server.base_url,
        vllm_api_key=server.api_key,
        vllm_model=server.model_name,
        vllm_timeout=120,
        **changes,
    )


@pytest.fixture
def server_kwargs(vllm_server):
    return {"settings": _settings(vllm_server), "max_tokens": 24}


@pytest.fixture(scope="module", autouse=True)
def _small_server_boots_early(request):
    """The second server (tiny context) boots while this module's first
    tests run, when a selected test needs it."""
    if not any("small_server" in i.fixturenames for i in request.session.items):
        yield None
        return
    from support.app_browser import BackgroundVLLM

    booting = BackgroundVLLM(max_model_len=SMALL_CONTEXT).start()
    yield booting
    booting.stop()


@pytest.fixture
def small_server(_small_server_boots_early):
    try:
        return _small_server_boots_early.wait(900)
    except Exception as e:
        pytest.fail(f"Second vLLM server unavailable: {e}", pytrace=False)


def _ids(dataset, n):
    return dataset.values("id")[:n]


def _copies(items):
    return [Evidence.from_dict(e.to_dict()) for e in items]


def _ask_about(items, dataset=None, max_tokens=24, **options):
    """``ask()`` with copies of the evidence ``items`` (they get numbered)."""
    evidence = _copies(items)
    return ask(dataset, QUESTION, evidence=evidence, max_tokens=max_tokens, **options)


def _check_fits(answer):
    """The request fitted, and the plan's estimate erred high."""
    plan = answer.plan
    assert plan.total_tokens <= plan.limits.prompt_budget
    assert plan.image_tokens < answer.usage["prompt_tokens"] <= plan.total_tokens


# -- images, plan and protocol -------------------------------------------------


def test_multi_image_round_trip_is_one_request(frames, server_kwargs):
    one = ask(frames, QUESTION, sample_ids=_ids(frames, 1), **server_kwargs)
    three = ask(frames, QUESTION, sample_ids=_ids(frames, 3), **server_kwargs)
    assert isinstance(three.text, str)
    assert [e.n for e in three.evidence] == [1, 2, 3]
    assert three.model == "vrag-tiny-pixtral"
    assert three.usage["completion_tokens"] > 0
    # ONE request carried all three frames: two more images, two more blocks
    extra = three.usage["prompt_tokens"] - one.usage["prompt_tokens"]
    assert extra > 2 * PIXTRAL.tokens(288, 288), (one.usage, three.usage)
    assert three.plan.numbers("image") == [1, 2, 3]
    assert three.plan.limits.context_source == "server"
    _check_fits(three)


def test_four_frames_stream_an_answer_with_citations(hd_frames, server_kwargs):
    stream = _ask_about(hd_frames[:4], stream=True, extra_body=CITE, **server_kwargs)
    assert stream.plan.numbers("image") == [1, 2, 3, 4]  # known before sending
    chunks = list(stream)
    answer = stream.answer
    assert len(chunks) > 1 and answer.text == "".join(chunks)
    assert not answer.incomplete and answer.finish_reason == "stop"
    assert [(c.n, c.sample_id) for c in answer.citations] == [(1, "hd00"), (3, "hd02")]
    assert [c.label for c in answer.citations][0] == "[1] Harbour tour @ 00:00"
    _check_fits(answer)


def test_six_frames_with_a_limit_of_four(hd_frames, server_kwargs, vllm_server):
    assert server_kwargs["settings"].vllm_max_images == vllm_server.max_images == 4
    answer = _ask_about(hd_frames[:6], **server_kwargs)
    plan = answer.plan
    assert plan.numbers("image") == [1, 2, 3, 4]
    assert plan.numbers("text") == [5, 6]
    told = [w for w in answer.warnings if w.startswith("[5], [6] sent as text only")]
    assert told and "at most 4 images" in told[0]
    assert [e.n for e in answer.evidence] == [1, 2, 3, 4, 5, 6]
    _check_fits(answer)


def test_a_wrong_image_limit_setting_is_reported(hd_frames, vllm_server):
    settings = _settings(vllm_server, vllm_max_images=5)
    with pytest.raises(AnswerError) as info:
        _ask_about(hd_frames[:6], settings=settings, max_tokens=8)
    error = info.value
    assert error.kind == "image_limit"
    assert "at most 4 image(s)" in error.message and "we sent 5" in error.message
    assert "VRAG_VLLM_MAX_IMAGES" in error.message and "Set it to 4" in error.message
    assert "At most 4 image(s)" in error.server_message
    assert vllm_server.api_key not in error.message


def test_forty_items_are_packed_without_a_400(hd_frames, server_kwargs):
    answer = _ask_about(hd_frames, long_side=1024, **server_kwargs)
    plan = answer.plan
    print(
        f"\n40 items, max_model_len 32768: {plan.summary()} "
        f"Images fill {plan.image_fill:.1%} of their room."
    )
    assert plan.numbers("image") == [1, 2, 3, 4]
    assert plan.numbers("dropped") == []
    assert all(plan.size_of(n) == (1024, 576) for n in (1, 2, 3, 4))
    assert plan.image_fill >= 0.8
    _check_fits(answer)


def test_the_built_request_keeps_each_image_next_to_its_label(hd_frames, vllm_server):
    """Through vLLM's /tokenize, with Pixtral's real tokenizer and template:
    each image's tokens follow its own [n] label; each image costs what the
    plan says; the whole prompt is within the plan's estimate."""
    evidence = _copies(hd_frames[:5])
    evidence[1].attach_image = False  # [2] as text: labels and images interleave
    settings = _settings(vllm_server)
    prepared = prepare(QUESTION, evidence, settings, Options(4, 512, 24))
    tokens = vllm_server.tokenize(prepared.request["messages"])["token_strs"]
    images = _image_blocks(tokens)
    assert [label for label, _ in images] == prepared.plan.numbers("image")
    assert [label for label, _ in images] == [1, 3, 4, 5]
    for label, count in images:
        plan_item = next(p for p in prepared.plan.items if p.n == label)
        assert count == plan_item.image_tokens == PIXTRAL.tokens(512, 288)
    assert len(tokens) <= prepared.plan.total_tokens
    # Pixtral's template folds the system prompt into the (last) user turn
    assert tokens[:2] == ["<s>", "[INST]"] and tokens[-1] == "[/INST]"


def _image_blocks(tokens):
    """``[(label n before the image, its token count), ...]`` in order."""
    blocks, label, count, i = [], None, 0, 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in ("[IMG]", "[IMG_BREAK]", "[IMG_END]"):
            count += 1
            if tok == "[IMG_END]":
                blocks.append((label, count))
                label, count = None, 0  # a label serves one image only
        elif tok == "[" and i + 1 < len(tokens) and tokens[i + 1].isdigit():
            j = i + 1
            while tokens[j].isdigit():
                j += 1
            if tokens[j] == "]" and tokens[j + 1] == " video":
                label = int("".join(tokens[i + 1 : j]))
            i = j
        i += 1
    return blocks


# -- conversation ---------------------------------------------------------------


def test_a_follow_up_carries_the_previous_turn(hd_frames, vllm_server):
    settings = _settings(vllm_server)
    first_items, next_items = hd_frames[:2], hd_frames[2:4]
    chat = Conversation(None, settings=settings, max_tokens=16, save_history=False)
    first = chat.ask("Which ships are in the harbour?", evidence=_copies(first_items))
    assert len(chat) == 1 and chat.turns[0].answer == first.text

    follow = chat.ask("And the lighthouse?", evidence=_copies(next_items))
    assert [e.n for e in follow.evidence] == [3, 4]  # numbers continue
    assert follow.plan.history_turns == 1 and len(chat) == 2
    # what was sent: turn 1 as user + assistant messages, then the new question
    turn = chat.turns[:1]
    request = prepare(
        "And the lighthouse?",
        _copies(chat.turns[1].evidence),
        settings,
        Options(4, 768, 16),
        turns=turn,
    ).request
    roles = [m["role"] for m in request["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert request["messages"][2]["content"] == (first.text or "(no answer)")
    text = "".join(vllm_server.tokenize(request["messages"])["token_strs"])
    order = ["Which ships", "[/INST]", "</s>", "And the lighthouse?", "[/INST]"]
    at = [text.index(order[0])]
    for piece in order[1:]:
        at.append(text.index(piece, at[-1] + 1))  # each after the one before
    assert text.rstrip().endswith("[/INST]")
    # earlier frames ride along in the free image slots (budget allows)
    assert follow.plan.numbers("image", earlier=True) == [1, 2]

    fresh = Conversation(None, settings=settings, max_tokens=16, save_history=False)
    alone = fresh.ask("And the lighthouse?", evidence=_copies(next_items))
    assert follow.usage["prompt_tokens"] > alone.usage["prompt_tokens"]

    chat.reset()  # "new conversation"
    assert len(chat) == 0
    again = chat.ask("And the lighthouse?", evidence=_copies(next_items))
    assert [e.n for e in again.evidence] == [1, 2]
    assert again.plan.history_turns == 0
    assert again.usage["prompt_tokens"] == alone.usage["prompt_tokens"]


# -- the second server: a tiny context; then it dies mid-answer ---------------


def test_a_tiny_context_sends_fewer_smaller_images(hd_frames, small_server):
    settings = _settings(small_server)
    answer = _ask_about(hd_frames[:4], settings=settings)
    plan = answer.plan
    assert plan.limits.max_model_len == SMALL_CONTEXT  # read from /v1/models
    sent = plan.numbers("image")
    assert sent and all(max(plan.size_of(n)) < 768 for n in sent)
    assert any("smaller than 768 px" in w for w in answer.warnings)
    _check_fits(answer)

    packed = _ask_about(hd_frames, settings=settings)
    plan = packed.plan
    print(
        f"\n40 items, max_model_len {SMALL_CONTEXT}: {plan.summary()} "
        f"Images fill {plan.image_fill:.1%} of their room."
    )
    assert plan.image_budget < plan.wanted_image_tokens  # the budget binds
    assert plan.image_fill >= 0.8
    _check_fits(packed)


def test_the_server_dies_mid_answer(frames, hd_frames, small_server):
    """LAST use of the second server: it is killed while streaming."""
    settings = _settings(small_server)
    stream = _ask_about(
        hd_frames[:2], frames, stream=True, settings=settings, max_tokens=2000
    )
    received = []
    with pytest.raises(AnswerError) as info:
        for chunk in stream:
            received.append(chunk)
            if len(received) == 3:
                os.killpg(small_server.proc.pid, signal.SIGKILL)
    error = info.value
    assert error.kind == "interrupted"
    assert "stopped in the middle of the answer" in error.message
    assert "partial answer is kept" in error.message
    assert stream.answer is error.answer and stream.answer.incomplete
    assert stream.answer.text == "".join(received) != ""
    entries = list_entries(frames, limit=100)
    kept = next(e for e in entries if e["answer"] == stream.answer.text)
    assert kept["incomplete"] is True


# -- errors and faults --------------------------------------------------------


def test_wrong_model_name_lists_the_served_models(frames, server_kwargs):
    server_kwargs["settings"] = server_kwargs["settings"].replace(
        vllm_model="mistralai/Pixtral-12B-2409"
    )
    with pytest.raises(AnswerError) as info:
        ask(frames, QUESTION, sample_ids=_ids(frames, 1), **server_kwargs)
    assert info.value.kind == "model_not_found"
    assert "'mistralai/Pixtral-12B-2409' is not served" in info.value.message
    assert "'vrag-tiny-pixtral'" in info.value.message
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
    assert answer.plan.numbers("text") == [1] and answer.plan.numbers("image") == [2]


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
    settings = server_kwargs.pop("settings").replace(milvus_uri="local")
    answer = ask(
        frames, "What animal is mentioned?", settings=settings, k=3, **server_kwargs
    )
    assert 1 <= len(answer.evidence) <= 3
    assert all(e.source == "retrieved" for e in answer.evidence)
    assert any(e.transcript for e in answer.evidence)
