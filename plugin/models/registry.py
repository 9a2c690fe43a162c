"""The one registry of embedding models the workbench uses.

Every model resolves to a FiftyOne zoo name plus keyword arguments, because
fiftyone-brain re-creates an index's model from exactly that (in the App's
search bar, in a later notebook): a model passed as an instance would leave
the index without text search.

Names users can give:

- a registry key below, e.g. ``clip-vit-b32`` (the default) or ``altclip``
- ``open_clip:<architecture>`` with ``pretrained`` = an OpenCLIP tag (e.g.
  ``laion2b_s34b_b79k``) or a local checkpoint path
- ``hf:<name or local dir>``: a Hugging Face CLIP-like zero-shot model
- any FiftyOne zoo model name that can embed prompts, e.g.
  ``clip-vit-base32-torch``
"""

import contextlib
import dataclasses
import logging
import os
import socket

logger = logging.getLogger(__name__)

OPEN_CLIP_ZOO = "open-clip-torch"
HF_ZERO_SHOT_ZOO = "zero-shot-classification-transformer-torch"
ALTCLIP_ZOO = "vrag-altclip-torch"
OFFLINE_MODEL = "vrag-lit-minilm-cifar10"


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How to build an embedding model through FiftyOne's zoo."""

    name: str
    zoo_name: str
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    description: str = ""
    offline: bool = False  # weights ship with the repo / its packages

    @property
    def slug(self):
        """A short name for brain keys and collection names (letters, _)."""
        raw = self.name.split("/")[-1].split(":")[-1]
        return "".join(c if c.isalnum() else "_" for c in raw).strip("_").lower()


MODELS = {
    "clip-vit-b32": ModelSpec(
        "clip-vit-b32",
        OPEN_CLIP_ZOO,
        {"clip_model": "ViT-B-32", "pretrained": "openai"},
        "OpenCLIP ViT-B-32, OpenAI weights (512-d); downloads on first use",
    ),
    "altclip": ModelSpec(
        "altclip",
        ALTCLIP_ZOO,
        {"name_or_path": "BAAI/AltCLIP"},
        "AltCLIP (BAAI/AltCLIP, multilingual text, 768-d) via transformers",
    ),
    "clip-vit-base32-torch": ModelSpec(
        "clip-vit-base32-torch",
        "clip-vit-base32-torch",
        {},
        "FiftyOne zoo CLIP ViT-B/32 (512-d); downloads on first use",
    ),
    OFFLINE_MODEL: ModelSpec(
        OFFLINE_MODEL,
        OFFLINE_MODEL,
        {},
        "Offline LiT model: frozen all-MiniLM-L6-v2 text tower + small image "
        "tower trained on CIFAR-10 (384-d); knows the 10 CIFAR classes only",
        offline=True,
    ),
}

DEFAULT_MODEL = "clip-vit-b32"


def model_choices():
    """Registry keys with descriptions, for forms and error messages."""
    return {name: spec.description for name, spec in MODELS.items()}


def resolve_model(name=None, pretrained=None):
    """Returns the :class:`ModelSpec` for a user-given model name.

    Args:
        name (None): see the module docstring; default ``clip-vit-b32``
        pretrained (None): for ``open_clip:`` names, a tag or checkpoint path
    """
    if isinstance(name, ModelSpec):
        return name
    name = (name or DEFAULT_MODEL).strip()
    if name in MODELS:
        return MODELS[name]
    if name.startswith("open_clip:"):
        return _open_clip_spec(name, pretrained)
    if name.startswith("hf:"):
        path = name[3:]
        return ModelSpec(name, HF_ZERO_SHOT_ZOO, {"name_or_path": path}, path)
    if _is_zoo_model(name):
        return ModelSpec(name, name, {}, "FiftyOne zoo model")
    raise ValueError(
        f"Unknown model {name!r}. Choices: {', '.join(MODELS)}; or "
        "'open_clip:<architecture>' (+ pretrained tag or checkpoint path), "
        "'hf:<name or dir>', or a FiftyOne zoo model name."
    )


def _open_clip_spec(name, pretrained):
    import open_clip

    arch = name.split(":", 1)[1]
    if arch not in open_clip.list_models():
        raise ValueError(
            f"Unknown OpenCLIP architecture {arch!r}. Examples: "
            + ", ".join(open_clip.list_models()[:8])
        )
    tag = "" if pretrained is None else str(pretrained)
    if tag and (os.sep in tag or tag.endswith((".pt", ".bin", ".safetensors"))):
        if not os.path.isfile(os.path.expanduser(tag)):
            raise ValueError(f"OpenCLIP checkpoint not found: {tag}")
        tag = os.path.abspath(os.path.expanduser(tag))
    kwargs = {"clip_model": arch, "pretrained": tag}
    label = f"OpenCLIP {arch} ({tag or 'random init'})"
    return ModelSpec(name, OPEN_CLIP_ZOO, kwargs, label)


def _is_zoo_model(name):
    import fiftyone.zoo as foz

    register_zoo_models()
    return name in foz.list_zoo_models()


def register_zoo_models():
    """Makes our own zoo models (offline LiT, AltCLIP) loadable by name."""
    from plugin.models import zoo

    zoo.register_zoo_models()


def load_model(spec):
    """Loads the FiftyOne model for a :class:`ModelSpec` (or a name)."""
    import fiftyone.zoo as foz

    if not isinstance(spec, ModelSpec):
        spec = resolve_model(spec)
    register_zoo_models()
    return foz.load_zoo_model(spec.zoo_name, **spec.model_kwargs)


def load_model_or_offline(name=None, announce=print):
    """Loads ``name``; if its weights cannot be had, the offline model.

    Returns ``(spec, model)``. ``announce`` receives a sentence saying which
    model is used and why, for the user's screen.
    """
    spec = resolve_model(name)
    try:
        with _offline_unless_hub_reachable(spec):
            return spec, load_model(spec)
    except Exception as e:  # hub unreachable, missing weights, ...
        if spec.offline:
            raise
        offline = MODELS[OFFLINE_MODEL]
        announce(
            f"Could not load {spec.name} ({type(e).__name__}: {str(e)[:160]}). "
            f"Using the offline model {offline.name} instead: {offline.description}."
        )
        return offline, load_model(offline)


@contextlib.contextmanager
def _offline_unless_hub_reachable(spec, timeout=3.0):
    """With no route to the Hugging Face hub, downloads retry for minutes
    before failing; switch the hub client to offline mode for this load so
    cached weights still load and missing ones fail at once."""
    from huggingface_hub import constants

    if spec.offline or constants.HF_HUB_OFFLINE or _hub_reachable(timeout):
        yield
        return
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = False


def _hub_reachable(timeout):
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    host = urlsplit(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False
