"""Talking to vLLM's OpenAI-compatible server: one request, clear errors.

The endpoint, key, model and timeout come from :class:`~plugin.settings.Settings`
(``VRAG_VLLM_*``); the ``openai`` client is built once per settings
(:func:`plugin.clients.vllm_client`). The API key is only handed to that
client: never logged, stored or put in an error message.

Before a request, :func:`server_info` reads what the server serves and its
context length (vLLM's ``/v1/models`` lists ``max_model_len`` per model).
Answers are always streamed: a server that stops mid-answer raises
``AnswerError("interrupted")`` after the text received so far was yielded.
"""

import dataclasses
import re
import threading
import time
import urllib.parse

import httpx
import openai

from plugin import settings as S
from plugin.answer.prompt import DEFAULT_MAX_IMAGES, count_images
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

__all__ = ["AnswerError", "require_endpoint", "server_info", "stream"]

SERVER_INFO_TTL_S = 30.0  # a restarted server may serve another context length
_INFO = {}
_INFO_LOCK = threading.Lock()
_IMAGE_LIMIT = re.compile(r"At most (\d+) image", re.IGNORECASE)
_CONTEXT = re.compile(r"maximum context length is (\d+)", re.IGNORECASE)


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


@dataclasses.dataclass(frozen=True)
class ServerInfo:
    """What ``/v1/models`` says: the served model names and, per model, the
    context length (vLLM's ``max_model_len``; absent from other servers)."""

    models: tuple
    max_model_len: dict

    def context_length(self, model):
        return self.max_model_len.get(model)


def server_info(settings, refresh=False):
    """The :class:`ServerInfo` of the endpoint (cached for a few seconds).

    Raises:
        AnswerError: the server cannot be reached, refuses the key...
    """
    key = (settings.vllm_base_url, settings.vllm_api_key)
    with _INFO_LOCK:
        cached = _INFO.get(key)
    if cached and not refresh and time.monotonic() - cached[0] < SERVER_INFO_TTL_S:
        return cached[1]
    client = vllm_client(settings)
    try:
        models = list(client.models.list())
    except openai.OpenAIError as e:
        raise translate_error(e, settings, client) from None
    info = ServerInfo(
        models=tuple(m.id for m in models),
        max_model_len={
            m.id: int(getattr(m, "max_model_len", 0) or 0)
            for m in models
            if getattr(m, "max_model_len", None)
        },
    )
    with _INFO_LOCK:
        _INFO[key] = (time.monotonic(), info)
    return info


def forget_server_info(settings):
    with _INFO_LOCK:
        _INFO.pop((settings.vllm_base_url, settings.vllm_api_key), None)


def require_model(settings, info):
    """Raises ``model_not_found`` unless the server serves the set model."""
    if info.models and settings.vllm_model not in info.models:
        raise _model_not_found(settings, list(info.models), None)


def stream(settings, request, meta=None):
    """ONE streaming chat completion: yields text chunks as they arrive.

    ``meta`` (a dict), if given, receives ``usage``, ``finish_reason`` and
    ``first_chunk`` (``time.perf_counter()`` when the first chunk came).

    Raises:
        AnswerError: ``interrupted`` when the server stops mid-answer (the
        connection drops, or the stream ends without a finish reason), after
        the chunks received were yielded; other kinds as
        :func:`translate_error`
    """
    meta = {} if meta is None else meta
    client = vllm_client(settings)
    started = False
    try:
        chunks = client.chat.completions.create(
            **request, stream=True, stream_options={"include_usage": True}
        )
        for chunk in chunks:
            if not started:
                meta["first_chunk"] = time.perf_counter()
            started = True
            if chunk.usage is not None:
                meta["usage"] = _usage(chunk.usage)
            for choice in chunk.choices or []:
                if choice.finish_reason:
                    meta["finish_reason"] = choice.finish_reason
                if choice.delta and choice.delta.content:
                    yield choice.delta.content
    except (openai.OpenAIError, httpx.HTTPError) as e:
        if started and not meta.get("finish_reason"):
            raise _interrupted(settings, e) from None
        if isinstance(e, httpx.HTTPError):  # openai wraps these; just in case
            raise AnswerError("connection", f"vLLM at {where(settings)}: {e}") from None
        raise translate_error(e, settings, client, request) from None
    if not meta.get("finish_reason"):
        raise _interrupted(settings, None)


def where(settings):
    return settings.vllm_base_url


def _interrupted(settings, error):
    cause = f" ({_cause(error) if isinstance(error, openai.APIError) else error})"
    return AnswerError(
        "interrupted",
        f"vLLM at {settings.vllm_base_url} stopped in the middle of the answer"
        f"{cause if error else ' (the stream ended without finishing)'}. The "
        "partial answer is kept, marked incomplete. Check that the server is "
        "still running (it may have crashed or been restarted), then ask again.",
    )


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


def translate_error(error, settings, client=None, request=None):
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
        return _status_error(error, settings, client, where, request)
    return AnswerError("server", f"{where} failed: {error}")


def _status_error(error, settings, client, where, request=None):
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
        return _model_not_found(settings, served_models(settings, client), msg)
    limit = _IMAGE_LIMIT.search(msg)
    if status == 400 and limit:
        sent = count_images(request) if request else "more"
        return AnswerError(
            "image_limit",
            f"{where} accepts at most {limit.group(1)} image(s) per request (its "
            f"--limit-mm-per-prompt) and we sent {sent}: the setting "
            f"{S.ENV_NAMES['vllm_max_images']} (or max_images) is "
            f"{settings.vllm_max_images}. Set it to {limit.group(1)}.",
            msg,
        )
    context = _CONTEXT.search(msg)
    if status == 400 and context:
        forget_server_info(settings)
        return AnswerError(
            "too_long",
            f"{where} rejected the request as longer than its context "
            f"({context.group(1)} tokens): {msg}\nThe token budget uses the "
            "server's max_model_len and an estimate of the text; drop evidence "
            "or lower long_side / max_tokens, and report this (the estimate "
            "should err high).",
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


def _model_not_found(settings, models, msg):
    served = ", ".join(repr(m) for m in models) or "(could not list models)"
    return AnswerError(
        "model_not_found",
        f"The model {settings.vllm_model!r} is not served by vLLM at "
        f"{settings.vllm_base_url}. It serves: {served}. Set {S.VLLM_MODEL} to "
        "one of them.",
        msg,
    )


def _cause(error):
    cause = error.__cause__ or error.__context__
    return str(cause) if cause else error.message
