"""Faults of the answer path, against a tiny vLLM-like HTTP server run here.

The server speaks just enough of the OpenAI chat API: the model name in
the request picks its misbehaviour (echo the request headers in an error
body, die in the middle of a stream, never answer). The API key must never
reach a message, the partial answer must be kept, and nothing hangs.
"""

import json
import time
import uuid

import fiftyone as fo
import pytest
from support.fake_openai import JSONHandler, serving
from support.faults import SECRET
from support.synth import solid_image

from plugin.answer import ask
from plugin.errors import AnswerError
from plugin.process import free_port
from plugin.settings import Settings

KEY = f"sk-{SECRET}"
MODES = ["echo-400", "echo-401", "echo-500", "die-mid-stream", "hang"]


def _chunk(text=None, finish=None):
    choice = {"index": 0, "delta": {"content": text} if text else {}}
    choice["finish_reason"] = finish
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake",
        "choices": [choice],
    }


class _Handler(JSONHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # /v1/models: every misbehaviour is a "model"
        models = [
            {"id": name, "object": "model", "max_model_len": 4096} for name in MODES
        ]
        self.send_json(200, {"object": "list", "data": models})

    def do_POST(self):
        body = self.read_json()
        mode = body.get("model", "")
        headers = dict(self.headers)
        if mode.startswith("echo-"):  # an error body quoting our headers
            status = int(mode.split("-")[1])
            token = self.headers.get("Authorization", "-").split()[-1]
            message = (
                f"unknown credential {token} (not in the --api-key list); your "
                f"headers were {json.dumps(headers)}"
            )
            payload = {"object": "error", "message": message, "code": status}
            self.send_json(status, payload)
        elif mode == "die-mid-stream":
            self._die_mid_stream()
        elif mode == "hang":
            time.sleep(5)
            self.close_connection = True
        else:
            self.send_json(404, {"message": f"The model `{mode}` does not exist."})

    def _die_mid_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for text in ("The frog ", "jumps "):
            event = f"data: {json.dumps(_chunk(text))}\n\n".encode()
            self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            self.wfile.flush()
        # the process dies: the chunked body never ends
        self.close_connection = True
        self.connection.shutdown(2)


@pytest.fixture(scope="module")
def server():
    with serving(_Handler) as (_, base_url):
        yield base_url


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    folder = tmp_path_factory.mktemp("answer-frames")
    dataset = fo.Dataset(f"vrag-faults-answer-{uuid.uuid4().hex[:8]}")
    for i, color in enumerate([(200, 30, 30), (30, 160, 60)]):
        path = folder / f"{i}.jpg"
        solid_image(color).save(path)
        dataset.add_sample(fo.Sample(filepath=str(path), video_id="v", timestamp=i))
    yield dataset
    dataset.delete()


def _settings(base_url, model, timeout=10.0):
    return Settings.load(
        vllm_base_url=base_url, vllm_api_key=KEY, vllm_model=model, vllm_timeout=timeout
    )


def _ask(dataset, settings, **kwargs):
    return ask(
        dataset,
        "What happens?",
        sample_ids=dataset.values("id"),
        settings=settings,
        save_history=False,
        **kwargs,
    )


def _text_of(error):
    return json.dumps(error.to_dict())


@pytest.mark.parametrize("status", [400, 401, 500])
def test_an_error_body_echoing_the_key_never_shows_it(server, frames, status):
    """Issue #16 case 6: vLLM's error body (which may quote the request's
    Authorization header) is shown, without the key."""
    with pytest.raises(AnswerError) as caught:
        _ask(frames, _settings(server, f"echo-{status}"))
    assert "authorization" in _text_of(caught.value).lower()  # the echo is there
    assert SECRET not in _text_of(caught.value)
    assert SECRET not in str(caught.value)


def test_a_server_dying_mid_stream_keeps_the_partial_answer(server, frames):
    stream = _ask(frames, _settings(server, "die-mid-stream"), stream=True)
    received = []
    with pytest.raises(AnswerError) as caught:
        for chunk in stream:
            received.append(chunk)
    assert caught.value.kind == "interrupted"
    assert "".join(received) == "The frog jumps "
    assert stream.text_so_far() == "The frog jumps "
    assert SECRET not in _text_of(caught.value)


def test_a_server_that_never_answers_times_out(server, frames):
    with pytest.raises(AnswerError) as caught:
        _ask(frames, _settings(server, "hang", timeout=1.0))
    assert caught.value.kind == "timeout"
    assert "within 1 s" in caught.value.message


@pytest.mark.parametrize(
    "credentials",
    [
        "",  # a server that is gone says so
        f"user:{SECRET}@",  # a key written into the URL is scrubbed too
    ],
    ids=["gone", "key-in-url"],
)
def test_a_server_that_is_gone_says_so_without_the_key(frames, credentials):
    url = f"http://{credentials}127.0.0.1:{free_port()}/v1"
    with pytest.raises(AnswerError) as caught:
        _ask(frames, _settings(url, "fake"))
    assert caught.value.kind == "connection"
    assert SECRET not in _text_of(caught.value)
