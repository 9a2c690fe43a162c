"""Talking to vLLM's OpenAI-compatible server: one request, clear errors.

The endpoint, key, model and timeout come from :class:`~plugin.settings.Settings`
(``VRAG_VLLM_*``); the ``openai`` client is built once per settings
(:func:`plugin.clients.vllm_client`). The API key is only handed to that
client: never logged, stored or put in an error message.
"""

import urllib.parse

import openai

from plugin import settings as S
from plugin.answer.prompt import DEFAULT_MAX_IMAGES
from plugin.clients import vllm_client
from plugin.errors import AnswerError

SERVE_COMMAND = (
    f"vllm serve {S.DEFAULT_VLM} --tokenizer-mode mistral "
    "--config-format mistral --load-format mistral "
    f"--limit-mm-per-prompt '{{\"image\": {DEFAULT_MAX_IMAGES}}}' "
    "--max-model-len 32768 --port 8000"
)

HOW_TO_START = (
    "Start vLLM on a GPU machine:\n"
    f"    {SERVE_COMMAND}\n"
    "then set VRAG_VLLM_BASE_URL=http://<host>:8000/v1 (and VRAG_VLLM_API_KEY if "
    "the server was started with --api-key) as plugin secrets or environment "
    "variables. See docs/ask.md."
)

__all__ = ["AnswerError", "complete", "require_endpoint", "stream"]


def normalize_base_url(url):
    """``host:8000`` -> ``http://host:8000/v1``; a URL with a path is kept."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    parts = urllib.parse.urlsplit(url)
    if parts.path in ("", "/"):
        url += "/v1"
    return url


def require_endpoint(settings=None):
    """``settings`` with a normalised vLLM base URL.

    Raises:
        AnswerError: ``no_endpoint`` when no base URL is configured
    """
    settings = S.Settings.coerce(settings)
    if not settings.vllm_base_url:
        raise AnswerError(
            "no_endpoint",
            f"No vLLM endpoint is configured ({S.VLLM_BASE_URL} is not set). "
            + HOW_TO_START,
        )
    return settings.replace(vllm_base_url=normalize_base_url(settings.vllm_base_url))


def complete(settings, request):
    """ONE non-streaming chat completion: ``(text, usage_dict)``."""
    client = vllm_client(settings)
    try:
        response = client.chat.completions.create(**request)
    except openai.OpenAIError as e:
        raise translate_error(e, settings, client) from None
    text = (response.choices[0].message.content or "") if response.choices else ""
    return text, _usage(response.usage)


def stream(settings, request, usage_out=None):
    """ONE streaming chat completion: yields text chunks as they arrive.

    ``usage_out`` (a dict), if given, receives the token usage at the end.
    """
    client = vllm_client(settings)
    try:
        chunks = client.chat.completions.create(
            **request, stream=True, stream_options={"include_usage": True}
        )
        for chunk in chunks:
            if chunk.usage is not None and usage_out is not None:
                usage_out.update(_usage(chunk.usage))
            for choice in chunk.choices or []:
                if choice.delta and choice.delta.content:
                    yield choice.delta.content
    except openai.OpenAIError as e:
        raise translate_error(e, settings, client) from None


def served_models(settings, client=None):
    """The model names the server serves (empty list if it cannot say)."""
    client = client or vllm_client(settings)
    try:
        return [m.id for m in client.models.list()]
    except openai.OpenAIError:
        return []


def _usage(usage):
    if usage is None:
        return {}
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def server_message(error):
    """vLLM's message in an ``APIStatusError`` (its JSON ``message``)."""
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        msg = body.get("message") or body.get("detail")
        if isinstance(msg, str | list) and msg:
            return str(msg)
    if isinstance(body, str) and body:
        return body
    return getattr(error, "message", None) or str(error)


def translate_error(error, settings, client=None):
    """An :class:`AnswerError` with a clear message for an ``openai`` error."""
    where = f"vLLM at {settings.vllm_base_url}"
    if isinstance(error, openai.APITimeoutError):
        return AnswerError(
            "timeout",
            f"{where} did not answer within {settings.vllm_timeout:g} s. The server "
            "may be overloaded or still loading the model; try again, or send "
            "fewer/smaller images (max_images, long_side) or raise the timeout.",
        )
    if isinstance(error, openai.APIConnectionError):
        return AnswerError(
            "connection",
            f"Cannot connect to {where} (connection refused or unreachable: "
            f"{_cause(error)}). Is the server running and is "
            f"{S.VLLM_BASE_URL} right? " + HOW_TO_START,
        )
    if isinstance(error, openai.APIStatusError):
        return _status_error(error, settings, client, where)
    return AnswerError("server", f"{where} failed: {error}")


def _status_error(error, settings, client, where):
    status = error.status_code
    msg = server_message(error)
    if status == 401 or status == 403:
        return AnswerError(
            "auth",
            f"{where} refused the API key (HTTP {status}). Set "
            f"{S.VLLM_API_KEY} to the key the server was started with (--api-key).",
            msg,
        )
    if status == 404 and "model" in msg.lower():
        models = served_models(settings, client)
        served = ", ".join(repr(m) for m in models) or "(could not list models)"
        return AnswerError(
            "model_not_found",
            f"The model {settings.vllm_model!r} is not served by {where}. It serves: "
            f"{served}. Set {S.VLLM_MODEL} to one of them.",
            msg,
        )
    if 400 <= status < 500:
        return AnswerError(
            "bad_request",
            f"{where} rejected the request (HTTP {status}): {msg}\n"
            "Suggestion: send fewer images (max_images, at most the server's "
            "--limit-mm-per-prompt) or smaller ones (long_side), or drop "
            "evidence so the prompt fits the server's --max-model-len.",
            msg,
        )
    return AnswerError("server", f"{where} failed (HTTP {status}): {msg}", msg)


def _cause(error):
    cause = error.__cause__ or error.__context__
    return str(cause) if cause else error.message
