"""The model registries (plugin/models): lookups without side effects, one
shared MiniLM, Whisper's device from the settings, fast offline failures."""

import huggingface_hub.constants
import pytest
import sentence_transformers

from plugin.errors import ModelLoadError, UnknownModelError
from plugin.models import image_text, minilm
from plugin.models.lit import TextTower
from plugin.models.speech import resolve_speech_model, whisper_device
from plugin.models.text import load_text_embedder
from plugin.settings import Settings
from plugin.video.options import ImportOptions


def test_resolving_the_packaged_base_model_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("VRAG_HOME", str(tmp_path))
    spec = resolve_speech_model("faster-whisper", "base")
    assert spec.assemble and spec.ref.startswith(str(tmp_path))
    assert ImportOptions(model="base").problems() == {}
    assert list(tmp_path.rglob("*")) == [], "validation assembled the model"
    with pytest.raises(UnknownModelError, match="tiny.en, base"):
        resolve_speech_model("faster-whisper", "no-such-model")


def test_minilm_is_loaded_once_for_the_lit_tower_and_the_embedder(monkeypatch):
    created, original = [], sentence_transformers.SentenceTransformer

    def counting(*args, **kwargs):
        created.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", counting)
    minilm._load.cache_clear()
    tower = TextTower()
    vectors = load_text_embedder("minilm").embed(["a photo of a horse"])
    assert len(created) == 1
    assert tower._model is minilm.load_minilm("cpu")
    assert vectors[0] == pytest.approx(
        tower.encode(["a photo of a horse"])[0], abs=1e-5
    )
    assert len(created) == 1


@pytest.mark.parametrize(
    "device, compute_type, expected",
    [
        ("cpu", "auto", ("cpu", "int8")),
        ("cuda", "auto", ("cuda", "float16")),
        ("cuda", "int8_float16", ("cuda", "int8_float16")),
    ],
)
def test_whisper_device_comes_from_the_settings(device, compute_type, expected):
    settings = Settings.load(whisper_device=device, whisper_compute_type=compute_type)
    assert whisper_device(settings) == expected


def test_unreachable_hub_fails_fast_without_switching_the_process_offline(
    monkeypatch,
):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(image_text, "_hub_reachable", lambda host, timeout: False)
    with pytest.raises(ModelLoadError, match="BAAI/AltCLIP.*unreachable"):
        image_text.check_weights_reachable(image_text.MODELS["altclip"])
    notes = []
    spec, model = image_text.load_model_or_offline("altclip", announce=notes.append)
    assert spec.name == image_text.OFFLINE_MODEL and model.can_embed_prompts
    assert "ModelLoadError" in notes[0]
    assert huggingface_hub.constants.HF_HUB_OFFLINE is False
    # a local checkpoint or random weights need no hub: nothing to check
    tiny = image_text.ModelSpec("t", image_text.OPEN_CLIP_ZOO, {"pretrained": ""})
    image_text.check_weights_reachable(tiny)
