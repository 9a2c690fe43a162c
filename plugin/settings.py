"""Every setting of the workbench, in one place: :class:`Settings`.

Each setting has ONE ``VRAG_*`` name (:data:`ENV_NAMES`). A value comes from,
first found wins: explicit overrides (``Settings.load(milvus_uri=...)``),
FiftyOne plugin secrets (``ctx.secrets`` in the App), the environment, and
for Milvus fiftyone-brain's own ``FIFTYONE_BRAIN_SIMILARITY_MILVUS_*``
variables; then the defaults below.

A :class:`Settings` is frozen and hashable: the clients built from it (see
:mod:`plugin.clients`) are created once per distinct settings and reused.
Secret values are never in its ``repr``, never logged and never stored.

Entry points take ``settings=None``: None means ``Settings.load()`` (the
environment); the App's adapters pass ``Settings.load(ctx.secrets)``.
"""

import dataclasses
import os
from pathlib import Path

#: field name -> the VRAG_* name it is read from
ENV_NAMES = {
    "home": "VRAG_HOME",
    "milvus_uri": "VRAG_MILVUS_URI",
    "milvus_token": "VRAG_MILVUS_TOKEN",
    "milvus_user": "VRAG_MILVUS_USER",
    "milvus_password": "VRAG_MILVUS_PASSWORD",
    "milvus_lite_port": "VRAG_MILVUS_LITE_PORT",
    "milvus_timeout": "VRAG_MILVUS_TIMEOUT",
    "vllm_base_url": "VRAG_VLLM_BASE_URL",
    "vllm_api_key": "VRAG_VLLM_API_KEY",
    "vllm_model": "VRAG_VLLM_MODEL",
    "vllm_timeout": "VRAG_VLLM_TIMEOUT",
    "vllm_max_images": "VRAG_VLLM_MAX_IMAGES",
    "embeddings_base_url": "VRAG_EMBEDDINGS_BASE_URL",
    "embeddings_api_key": "VRAG_EMBEDDINGS_API_KEY",
    "embeddings_model": "VRAG_EMBEDDINGS_MODEL",
    "whisper_device": "VRAG_WHISPER_DEVICE",
    "whisper_compute_type": "VRAG_WHISPER_COMPUTE_TYPE",
    "whisper_batch_size": "VRAG_WHISPER_BATCH_SIZE",
    "whisper_vad": "VRAG_WHISPER_VAD",
    "whisper_streams": "VRAG_WHISPER_STREAMS",
    "whisper_beam_size": "VRAG_WHISPER_BEAM_SIZE",
}

#: fields that hold credentials (never shown, logged or stored)
SECRET_FIELDS = (
    "milvus_token",
    "milvus_password",
    "vllm_api_key",
    "embeddings_api_key",
)

#: fiftyone-brain's own Milvus settings, read after ours
_BRAIN_ENV = "FIFTYONE_BRAIN_SIMILARITY_MILVUS_%s"
_BRAIN_FALLBACK = {
    "milvus_uri": "URI",
    "milvus_token": "TOKEN",
    "milvus_user": "USER",
    "milvus_password": "PASSWORD",
}

# Names kept for adapters and docs that spell a setting's variable.
MILVUS_URI = ENV_NAMES["milvus_uri"]
VLLM_BASE_URL = ENV_NAMES["vllm_base_url"]
VLLM_API_KEY = ENV_NAMES["vllm_api_key"]
VLLM_MODEL = ENV_NAMES["vllm_model"]
EMBEDDINGS_BASE_URL = ENV_NAMES["embeddings_base_url"]
EMBEDDINGS_API_KEY = ENV_NAMES["embeddings_api_key"]
EMBEDDINGS_MODEL = ENV_NAMES["embeddings_model"]

DEFAULT_VLM = "mistralai/Pixtral-12B-2409"
DEFAULT_LITE_PORT = 19541
DEFAULT_MILVUS_TIMEOUT = 30.0  # s; pymilvus' own default retries for ~211 s
DEFAULT_VLLM_TIMEOUT = 120.0  # s; a 12B model on a GPU answers 300 tokens in ~10 s


def _secret(default=None):
    return dataclasses.field(default=default, repr=False)


@dataclasses.dataclass(frozen=True, repr=False)
class Settings:
    """The workbench's settings. Build with :meth:`load`; change with :meth:`replace`."""

    home: str = ""
    milvus_uri: str = ""  # "" or "local": the managed local store
    milvus_token: str | None = _secret()
    milvus_user: str | None = None
    milvus_password: str | None = _secret()
    milvus_lite_port: int = DEFAULT_LITE_PORT
    milvus_timeout: float = DEFAULT_MILVUS_TIMEOUT  # s, per Milvus call
    vllm_base_url: str | None = None
    vllm_api_key: str | None = _secret()
    vllm_model: str = DEFAULT_VLM
    vllm_timeout: float = DEFAULT_VLLM_TIMEOUT
    vllm_max_images: int = 4  # images per request: the server's --limit-mm-per-prompt
    embeddings_base_url: str | None = None
    embeddings_api_key: str | None = _secret()
    embeddings_model: str | None = None
    whisper_device: str = "auto"  # auto | cpu | cuda
    whisper_compute_type: str = "auto"  # auto | int8 | float16 | ...
    whisper_batch_size: str = "auto"  # auto | 0 (sequential) | N (batched)
    whisper_vad: str = "auto"  # auto | on | off
    whisper_streams: str = "auto"  # auto | N parts decoded at once (CPU, sequential)
    whisper_beam_size: str = "auto"  # auto | N

    def __repr__(self):
        from plugin.errors import scrub

        shown = (
            f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)
            if f.name not in SECRET_FIELDS
        )
        return scrub(f"Settings({', '.join(shown)})")

    @classmethod
    def load(cls, secrets=None, **overrides):
        """Settings from ``overrides``, then ``secrets``, then the environment.

        Args:
            secrets (None): a mapping of plugin secrets, e.g. ``ctx.secrets``
            **overrides: field values that win over everything (None: unset)
        """
        unknown = set(overrides) - set(ENV_NAMES)
        if unknown:
            raise TypeError(f"Unknown settings: {', '.join(sorted(unknown))}")
        values = {}
        for name, env_name in ENV_NAMES.items():
            value = overrides.get(name)
            if value in (None, ""):
                value = get_setting(env_name, secrets)
            if value in (None, "") and name in _BRAIN_FALLBACK:
                value = os.environ.get(_BRAIN_ENV % _BRAIN_FALLBACK[name])
            if value not in (None, ""):
                values[name] = value
        return cls(**_typed(values))

    @classmethod
    def coerce(cls, settings=None):
        """``settings`` itself, or :meth:`load` when None."""
        if settings is None:
            return cls.load()
        if not isinstance(settings, Settings):
            raise TypeError(
                f"settings must be a plugin.settings.Settings, got "
                f"{type(settings).__name__} (build one with Settings.load(...))"
            )
        return settings

    def replace(self, **changes):
        """A copy with ``changes`` applied (None and "" keep the value)."""
        changes = {k: v for k, v in changes.items() if v not in (None, "")}
        return dataclasses.replace(self, **_typed(changes))

    @property
    def home_path(self):
        """The folder for the workbench's own files (local Milvus store, frames).

        ``$VRAG_HOME`` if set, else ``~/.fiftyone/video-rag``.
        """
        home = self.home or os.path.join(Path.home(), ".fiftyone", "video-rag")
        return Path(home).expanduser().resolve()

    def secret_values(self):
        """The credentials held (to scrub them from any text shown), with a
        password written into the Milvus URI (``http://user:pw@host``)."""
        from urllib.parse import urlsplit

        values = [getattr(self, name) for name in SECRET_FIELDS]
        try:
            values.append(urlsplit(self.milvus_uri or "").password)
        except ValueError:  # a malformed URI holds no password we can find
            pass
        return [v for v in values if v and len(v) >= 4]

    def milvus(self, start_local=True):
        """The :class:`~plugin.milvus.MilvusConnection` these settings name."""
        from plugin.milvus.resolver import connection_for

        return connection_for(self, start_local=start_local)


#: numeric settings: field -> (type, lowest value allowed)
_NUMBERS = {
    "milvus_lite_port": (int, 1),
    "milvus_timeout": (float, 0.001),
    "vllm_timeout": (float, 0.001),
    "vllm_max_images": (int, 1),
}


def _typed(values):
    values = dict(values)
    for name, (kind, lowest) in _NUMBERS.items():
        if name in values:
            values[name] = _number(name, values[name], kind, lowest)
    for name in ("milvus_uri", "vllm_base_url", "embeddings_base_url"):
        if isinstance(values.get(name), str):
            values[name] = values[name].strip()
    return values


def _number(name, value, kind, lowest):
    """``value`` as a ``kind`` >= ``lowest``, else an error naming the
    setting (a typo in an environment variable must not be a raw ValueError)."""
    import math

    from plugin.errors import InvalidInputError

    try:
        number = kind(value)
        ok = not isinstance(value, bool) and math.isfinite(number) and number >= lowest
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise InvalidInputError(
            f"The setting {ENV_NAMES[name]} must be a number >= {lowest:g}, "
            f"got {value!r:.40}"
        )
    return number


def get_setting(name, secrets=None, default=None):
    """The value of setting ``name`` (a ``VRAG_*`` name): plugin secrets,
    then the environment, else ``default``."""
    value = None
    if secrets is not None:
        try:
            value = secrets.get(name)
        except Exception:  # ctx.secrets may raise for undeclared keys
            value = None
    if not value:
        value = os.environ.get(name)
    return value or default


def workbench_home():
    """The workbench's folder, per the environment (see :attr:`Settings.home_path`)."""
    return Settings(home=os.environ.get(ENV_NAMES["home"], "")).home_path
