"""Clients built once per settings and reused: Milvus, vLLM, embeddings.

A ``pymilvus.MilvusClient`` opens a gRPC channel and an ``openai.OpenAI``
client an HTTP connection pool: building one per call (as the first round
did) costs a handshake each time. Here each is cached by the settings that
define it (URI and credentials; base URL, key and timeout), so every call with
equal settings shares one client. A client that failed to connect is dropped
(:func:`forget_milvus_client`) so the next call builds a fresh one.
"""

import functools
import threading
from urllib.parse import urlsplit

from plugin.errors import StoreUnreachableError, remember_secrets, scrub

_LOCK = threading.Lock()
_MILVUS = {}
VLLM_CONNECT_TIMEOUT = 10.0
EMBEDDINGS_TIMEOUT = 30.0


def milvus_client(connection, timeout=5.0, connect_timeout=None):
    """The shared ``pymilvus.MilvusClient`` of a
    :class:`~plugin.milvus.MilvusConnection`, checked reachable first.

    A dead address fails within ``timeout`` s (a TCP check); a live but busy
    server gets ``connect_timeout`` s for the gRPC handshake (default: the
    connection's ``call_timeout``: a frozen server must not hold a caller for
    a minute). Every call of
    the client gives up after ``connection.call_timeout`` s (the
    ``milvus_timeout`` setting; see :class:`plugin.milvus.guard.Timed`).
    """
    from plugin.milvus.resolver import check_reachable

    remember_secrets(*connection.secrets())  # never shown from here on
    check_reachable(connection, timeout=timeout)
    key = connection.cache_key()
    with _LOCK:
        client = _MILVUS.get(key)
        if client is None:
            client = _MILVUS[key] = _new_milvus_client(
                connection, connect_timeout or connection.call_timeout
            )
    return client


def _new_milvus_client(connection, connect_timeout):
    from pymilvus import MilvusClient

    from plugin.milvus.guard import bound

    try:
        client = MilvusClient(timeout=connect_timeout, **connection.credentials())
        return bound(client, connection.call_timeout)
    except Exception as e:
        reason = scrub(f"{type(e).__name__}: {e}", connection.secrets())
        raise StoreUnreachableError(
            f"Could not connect to Milvus at {connection.display_uri} within "
            f"{connect_timeout:g} s: {reason}"
        ) from None


def forget_milvus_client(connection):
    """Drops the cached client of ``connection`` (e.g. after the store restarted)."""
    with _LOCK:
        client = _MILVUS.pop(connection.cache_key(), None)
    if client is not None:
        try:
            client.close()
        except Exception:  # already broken: nothing to close
            pass


def vllm_client(settings):
    """The shared ``openai.OpenAI`` client for the vLLM endpoint of ``settings``.

    No retries: a retry of a timed-out generation only doubles the wait.
    """
    return _openai_client(
        settings.vllm_base_url,
        settings.vllm_api_key or "EMPTY",
        float(settings.vllm_timeout),
        VLLM_CONNECT_TIMEOUT,
        0,
    )


def embeddings_client(base_url, api_key, timeout=EMBEDDINGS_TIMEOUT):
    """The shared ``openai.OpenAI`` client of an embeddings endpoint."""
    # Servers like vLLM accept any key; the client insists on one.
    return _openai_client(base_url, api_key or "EMPTY", timeout, None, 1)


@functools.lru_cache(maxsize=16)
def _openai_client(base_url, api_key, timeout, connect_timeout, max_retries):
    import openai

    if api_key != "EMPTY":  # never shown from here on (e.g. echoed by a server)
        remember_secrets(api_key)
    try:
        remember_secrets(urlsplit(base_url or "").password)
    except ValueError:
        pass
    return openai.OpenAI(
        base_url=base_url,
        api_key=api_key,
        timeout=openai.Timeout(timeout, connect=connect_timeout or timeout),
        max_retries=max_retries,
    )
