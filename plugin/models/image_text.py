"""The registry of image-text embedding models (frame search).

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

import dataclasses
import logging
import os
import socket

from plugin.errors import InvalidInputError, ModelLoadError, UnknownModelError

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

DEFAULT_IMAGE_TEXT_MODEL = "clip-vit-b32"


def image_text_model_choices():
    """Registry keys with descriptions, for forms and error messages."""
    return {name: spec.description for name, spec in MODELS.items()}


def resolve_image_text_model(name=None, pretrained=None):
    """Returns the :class:`ModelSpec` for a user-given model name.

    Args:
        name (None): see the module docstring; default ``clip-vit-b32``
        pretrained (None): for ``open_clip:`` names, a tag or checkpoint path
    """
    if isinstance(name, ModelSpec):
        return name
    name = (name or DEFAULT_IMAGE_TEXT_MODEL).strip()
    if name in MODELS:
        return MODELS[name]
    if name.startswith("open_clip:"):
        return _open_clip_spec(name, pretrained)
    if name.startswith("hf:"):
        path = name[3:]
        return ModelSpec(name, HF_ZERO_SHOT_ZOO, {"name_or_path": path}, path)
    if _is_zoo_model(name):
        return ModelSpec(name, name, {}, "FiftyOne zoo model")
    raise UnknownModelError(
        f"Unknown model {name!r}. Choices: {', '.join(MODELS)}; or "
        "'open_clip:<architecture>' (+ pretrained tag or checkpoint path), "
        "'hf:<name or dir>', or a FiftyOne zoo model name."
    )


def _open_clip_spec(name, pretrained):
    import open_clip

    arch = name.split(":", 1)[1]
    if arch not in open_clip.list_models():
        raise UnknownModelError(
            f"Unknown OpenCLIP architecture {arch!r}. Examples: "
            + ", ".join(open_clip.list_models()[:8])
        )
    tag = "" if pretrained is None else str(pretrained)
    if tag and (os.sep in tag or tag.endswith((".pt", ".bin", ".safetensors"))):
        if not os.path.isfile(os.path.expanduser(tag)):
            raise InvalidInputError(f"OpenCLIP checkpoint not found: {tag}")
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


def load_image_text_model(spec):
    """Loads the FiftyOne model for a :class:`ModelSpec` (or a name)."""
    import fiftyone.zoo as foz

    spec = resolve_image_text_model(spec)
    register_zoo_models()
    return foz.load_zoo_model(spec.zoo_name, **spec.model_kwargs)


def load_model_or_offline(name=None, announce=print):
    """Loads ``name``; if its weights cannot be had, the offline model.

    Returns ``(spec, model)``. ``announce`` receives a sentence saying which
    model is used and why, for the user's screen.
    """
    spec = resolve_image_text_model(name)
    try:
        check_weights_reachable(spec)
        return spec, load_image_text_model(spec)
    except Exception as e:  # hub unreachable, missing weights, ...
        if spec.offline:
            raise
        offline = MODELS[OFFLINE_MODEL]
        announce(
            f"Could not load {spec.name} ({type(e).__name__}: {str(e)[:160]}). "
            f"Using the offline model {offline.name} instead: {offline.description}."
        )
        return offline, load_image_text_model(offline)


def check_weights_reachable(spec, timeout=3.0):
    """Raises :class:`~plugin.errors.ModelLoadError` at once when ``spec``'s
    weights come from the Hugging Face hub, the hub is unreachable and the
    weights are not in the local cache.

    With no route to the hub, a download retries for minutes before failing:
    this check fails in seconds instead. It does NOT switch the hub client to
    offline mode (``huggingface_hub.constants.HF_HUB_OFFLINE``), as a first
    version did: that flag is one global of the process, and the App server
    loads models for several users at once, so flipping it would turn their
    downloads offline too. Looking the files up in the cache takes per-call
    arguments only; when they are cached, the hub client falls back to them
    by itself when it cannot reach the hub.
    """
    from huggingface_hub import constants

    files = _hub_files(spec)
    if files is None or constants.HF_HUB_OFFLINE or _is_cached(*files):
        return
    host = _hub_host()
    if _hub_reachable(host, timeout):
        return
    raise ModelLoadError(
        f"{spec.name} needs weights from the Hugging Face hub ({files[0]}), "
        f"which are not cached here, and {host} is unreachable. Download them "
        "where the hub is reachable (same cache: HF_HOME), or pick another model."
    )


def _hub_files(spec):
    """``(repo_id, candidate file names)`` of the hub weights ``spec`` loads,
    or None when it loads nothing from the hub."""
    kwargs = spec.model_kwargs
    if spec.offline:
        return None
    if spec.zoo_name == OPEN_CLIP_ZOO:
        tag = kwargs.get("pretrained") or ""
        if not tag or os.path.isfile(tag):
            return None  # random init, or a local checkpoint
        return _open_clip_hub_files(kwargs["clip_model"], tag)
    path = kwargs.get("name_or_path")
    if path and not os.path.isdir(os.path.expanduser(path)):
        return path, ("config.json",)
    return None  # FiftyOne's own zoo downloads do not go through the hub


def _open_clip_hub_files(arch, tag):
    import open_clip

    hub = (open_clip.get_pretrained_cfg(arch, tag) or {}).get("hf_hub")
    if not hub:
        return None  # a plain URL download (or an unknown tag: open_clip says)
    # open_clip's own rule: "org/model/" means its default file names, the
    # safetensors one first; "org/model/file.bin" that file (or .safetensors).
    repo_id, filename = os.path.split(hub)
    if not filename:
        return repo_id, ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
    stem, ext = os.path.splitext(filename)
    if ext in (".bin", ".pth"):
        return repo_id, (stem + ".safetensors", filename)
    return repo_id, (filename,)


def _is_cached(repo_id, filenames):
    from huggingface_hub import try_to_load_from_cache

    return any(
        isinstance(try_to_load_from_cache(repo_id, name), str) for name in filenames
    )


def _hub_host():
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    return urlsplit(constants.ENDPOINT).hostname or "huggingface.co"


def _hub_reachable(host, timeout):
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False
