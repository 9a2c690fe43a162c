"""The OpenAI wire protocol against a REAL vLLM server (CPU, tiny Pixtral).

The model (``vrag-tiny-pixtral``: Pixtral's architecture and real tokenizer,
random weights, served with Pixtral's own flags) answers noise; these tests
pin down what the answer path relies on: multi-image chat requests with
base64 JPEG ``image_url`` parts, Pixtral's image token counts, the context
length in ``/v1/models``, streaming, usage, and the errors vLLM returns for
too many images / a too long prompt / a wrong model / a wrong API key.
"""

import base64
import io

import openai
import pytest
from PIL import Image, ImageDraw

from plugin.answer.budget import PIXTRAL

pytestmark = pytest.mark.vllm

# vllm_server: the session fixture from conftest.py

COLORS = ["red", "navy", "green", "orange", "purple", "gray"]
QUESTION = "What happens in these video frames?"


def jpeg_data_url(color, size=(320, 240), label=""):
    image = Image.new("RGB", size, color)
    draw = ImageDraw.Draw(image)
    draw.rectangle([20, 20, size[0] // 2, size[1] // 2], outline="white", width=4)
    if label:
        draw.text((30, size[1] - 40), label, fill="black")
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def frames_message(n_images, text=QUESTION, size=None):
    content = [{"type": "text", "text": text}]
    for i in range(n_images):
        url = jpeg_data_url(COLORS[i % len(COLORS)], size or (320, 240), f"t={i}s")
        content.append({"type": "image_url", "image_url": {"url": url}})
    return [{"role": "user", "content": content}]


@pytest.fixture(scope="module")
def client(vllm_server):
    return openai.OpenAI(
        base_url=vllm_server.base_url,
        api_key=vllm_server.api_key,
        timeout=120,
        max_retries=0,
    )


@pytest.fixture(scope="module")
def chat(client, vllm_server):
    """``chat(n_images, text=..., size=..., **create_options)``: a chat
    request of one user turn with ``n_images`` frames, to the served model."""

    def send(n_images, text=QUESTION, size=None, model=None, **options):
        return client.chat.completions.create(
            model=model or vllm_server.model_name,
            messages=frames_message(n_images, text, size),
            **options,
        )

    return send


def test_lists_the_served_model_and_its_context(client, vllm_server):
    models = client.models.list().data
    assert [m.id for m in models] == [vllm_server.model_name] == ["vrag-tiny-pixtral"]
    # vLLM says its --max-model-len per model: the token budget reads it
    assert models[0].max_model_len == vllm_server.max_model_len == 32768


def test_multi_image_chat_round_trips(chat, vllm_server):
    response = chat(2, max_tokens=12, temperature=0)
    choice = response.choices[0]
    assert choice.message.role == "assistant"
    assert choice.finish_reason in ("stop", "length")
    assert response.model == vllm_server.model_name
    usage = response.usage
    # Both 320x240 images reached the model: 20 x 15 patches + 15 rows each
    assert usage.prompt_tokens > 2 * PIXTRAL.tokens(320, 240) == 2 * 315
    assert 0 < usage.completion_tokens <= 12
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


@pytest.mark.parametrize("size", [(1024, 1024), (768, 432), (512, 512), (256, 256)])
def test_one_more_image_costs_pixtrals_count(chat, size):
    """The issue's observed costs, and our rule, against vLLM's count."""

    def prompt_tokens(n):
        return chat(n, size=size, max_tokens=1).usage.prompt_tokens

    assert prompt_tokens(2) - prompt_tokens(1) == PIXTRAL.tokens(*size)


def test_streaming_yields_several_chunks(chat):
    stream = chat(
        2,
        max_tokens=12,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    deltas = [
        c.choices[0].delta.content
        for c in chunks
        if c.choices and c.choices[0].delta.content
    ]
    assert len(chunks) > 1
    assert len(deltas) > 1
    assert "".join(deltas)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finish[-1] in ("stop", "length")  # what marks a complete stream
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_too_many_images_is_a_400(chat, vllm_server):
    assert vllm_server.max_images == 4
    with pytest.raises(openai.BadRequestError) as err:
        chat(vllm_server.max_images + 1, max_tokens=4)
    assert err.value.status_code == 400
    # vLLM 0.32: "At most 4 image(s) may be provided in one prompt."
    assert "At most 4 image(s)" in str(err.value)


def test_a_prompt_longer_than_the_context_is_a_400(chat):
    with pytest.raises(openai.BadRequestError) as err:
        chat(4, "word " * 30000, size=(1024, 1024), max_tokens=4)
    # vLLM 0.32: "This model's maximum context length is 32768 tokens. ..."
    assert "maximum context length is 32768" in str(err.value)


def test_max_images_is_accepted(chat, vllm_server):
    response = chat(vllm_server.max_images, max_tokens=2)
    assert response.usage.prompt_tokens > vllm_server.max_images * 315


def test_wrong_model_name_is_a_404(chat):
    with pytest.raises(openai.NotFoundError) as err:
        chat(1, model="no-such-model", max_tokens=4)
    assert err.value.status_code == 404
    # vLLM 0.32: "The model `no-such-model` does not exist."
    assert "does not exist" in str(err.value)


def test_wrong_api_key_is_a_401(vllm_server):
    bad = openai.OpenAI(base_url=vllm_server.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        bad.models.list()
    assert err.value.status_code == 401
