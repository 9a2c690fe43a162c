"""One error root for the workbench: :class:`VideoRagError`, with typed subclasses.

In the manner of openai-python's ``OpenAIError``: callers catch the root to
show ANY workbench failure (the App's operators and panels do, as a form error
or ``ctx.ops.notify``), or a subclass to handle one kind. Every message is
meant for the user: what happened and what to do. Messages never carry
credentials (see :func:`scrub`).

Subclasses also derive from the matching builtin (``ValueError``,
``ConnectionError``, ``LookupError``) so code written against those keeps
working.
"""

import re


class VideoRagError(Exception):
    """Root of every error the workbench raises on purpose.

    Attributes:
        message: what happened and what to do (safe to show)
        kind: a short machine name of the failure (``type(e).kind``)
    """

    kind = "error"

    def __init__(self, message, *, kind=None):
        message = scrub(str(message))
        super().__init__(message)
        self.message = message
        if kind is not None:
            self.kind = kind

    def to_dict(self):
        return {"kind": self.kind, "message": self.message}


class InvalidInputError(VideoRagError, ValueError):
    """A bad argument or form value (empty query, k < 1, unknown metric...)."""

    kind = "invalid_input"


class StoreUnreachableError(VideoRagError, ConnectionError):
    """Milvus could not be reached (or the managed local store not started)."""

    kind = "store_unreachable"


class StoreError(VideoRagError):
    """Milvus answered but refused or failed an operation (not a bad input,
    not an unreachable store); the message says what was being done."""

    kind = "store"


class IndexConfigError(VideoRagError, ValueError):
    """A requested index conflicts with what exists; nothing was changed."""

    kind = "index_config"


class IndexNotFoundError(VideoRagError, LookupError):
    """The dataset has no such index (or its collection is gone)."""

    kind = "index_not_found"


class VideoReadError(VideoRagError):
    """A video file cannot be read or decoded."""

    kind = "video_read"


class UnknownModelError(VideoRagError, ValueError):
    """A model name no registry knows; the message lists the choices."""

    kind = "unknown_model"


class ModelLoadError(VideoRagError):
    """A known model could not be loaded (weights missing, package absent)."""

    kind = "model_load"


class EmbeddingEndpointError(VideoRagError):
    """An OpenAI-compatible embeddings endpoint failed."""

    kind = "embedding_endpoint"


class AnswerError(VideoRagError):
    """The answer path failed (no endpoint, connection, auth, bad request...).

    ``kind`` is one of ``no_endpoint | connection | timeout | auth |
    bad_request | model_not_found | server | empty_question | bad_question |
    no_evidence``; ``server_message`` is vLLM's own message, when it sent one.
    """

    kind = "answer"

    def __init__(self, kind, message, server_message=None):
        super().__init__(message, kind=kind)
        self.server_message = scrub(server_message) if server_message else None

    def to_dict(self):
        return {**super().to_dict(), "server_message": self.server_message}


_URI_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)[^/\s@]+@")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\"]+")
_KEY_VALUE = re.compile(
    r"(?i)((?:api[_-]?key|token|password|authorization)[\"']?\s*[:=]\s*[\"']?)"
    r"[^\s'\",}]+"
)


#: Credentials this process handed to a client (see :func:`remember_secrets`)
_KNOWN_SECRETS = set()


def remember_secrets(*values):
    """Makes :func:`scrub` remove these values from every text from now on,
    in this process: the clients (:mod:`plugin.clients`) register the keys,
    tokens and passwords they are given, so an error body that echoes one
    (a vLLM error quoting the ``Authorization`` header) is scrubbed even where
    the code raising it does not know the settings."""
    _KNOWN_SECRETS.update(v for v in values if isinstance(v, str) and len(v) >= 4)


def scrub(text, secrets=()):
    """``text`` without credentials: ``user:pw@`` in URIs, bearer tokens,
    ``key=value`` secrets, the literal ``secrets`` given and those
    remembered (:func:`remember_secrets`)."""
    text = str(text)
    # Longest first: a secret that contains another is removed whole
    for secret in sorted({*(secrets or ()), *_KNOWN_SECRETS}, key=len, reverse=True):
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    text = _URI_CREDENTIALS.sub(r"\g<scheme>***@", text)
    text = _BEARER.sub(r"\1***", text)
    return _KEY_VALUE.sub(r"\1***", text)
