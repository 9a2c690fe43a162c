"""Small, randomly initialised CLIP-family models for tests.

No CLIP-family weights reach the test machines, so the OpenCLIP and AltCLIP
code paths are exercised with tiny random models, saved to disk so that every
load (this process, the App's, brain's reloads) gets the same weights.
"""

import json
from pathlib import Path

TINY_OPEN_CLIP = "vrag-tiny-test"
TINY_OPEN_CLIP_DIM = 32
TINY_ALTCLIP_DIM = 32

_OPEN_CLIP_CFG = {
    "embed_dim": TINY_OPEN_CLIP_DIM,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16},
    "text_cfg": {
        "context_length": 77,
        "vocab_size": 49408,
        "width": 64,
        "heads": 2,
        "layers": 1,
    },
}


def register_tiny_open_clip(config_dir):
    """Registers the tiny architecture with open_clip in this process."""
    import open_clip

    config_dir = Path(config_dir)
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / f"{TINY_OPEN_CLIP}.json").write_text(json.dumps(_OPEN_CLIP_CFG))
    open_clip.add_model_config(config_dir)


def make_tiny_open_clip_checkpoint(folder, seed=0):
    """Saves a random tiny OpenCLIP model; returns the checkpoint path."""
    import open_clip
    import torch

    register_tiny_open_clip(Path(folder) / "configs")
    torch.manual_seed(seed)
    model = open_clip.create_model(TINY_OPEN_CLIP, pretrained=None)
    path = Path(folder) / "tiny_open_clip.pt"
    torch.save({"state_dict": model.state_dict()}, path)
    return str(path)


def make_tiny_altclip(folder, seed=0):
    """Saves a random tiny AltCLIP (model + processor) dir; returns its path."""
    import torch
    from tokenizers import SentencePieceUnigramTokenizer
    from transformers import (
        AltCLIPConfig,
        AltCLIPModel,
        AltCLIPProcessor,
        CLIPImageProcessor,
        XLMRobertaTokenizerFast,
    )

    folder = Path(folder)
    corpus = ["a photo of a horse", "a red car on a road", "a ship at sea"] * 20
    unigram = SentencePieceUnigramTokenizer()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    unigram.train_from_iterator(
        corpus, vocab_size=60, special_tokens=specials, unk_token="<unk>"
    )
    tokenizer = XLMRobertaTokenizerFast(tokenizer_object=unigram._tokenizer)
    images = CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    AltCLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(
        folder
    )
    small = {"num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
    config = AltCLIPConfig(
        text_config={
            **small,
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "project_dim": TINY_ALTCLIP_DIM,
            "max_position_embeddings": 80,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={**small, "hidden_size": 32, "image_size": 32, "patch_size": 16},
        projection_dim=TINY_ALTCLIP_DIM,
    )
    torch.manual_seed(seed)
    AltCLIPModel(config).save_pretrained(folder)
    return str(folder)


def make_frame_images(folder, count, seed=0):
    """Writes ``count`` distinct small JPEGs; returns their paths."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        base = rng.integers(0, 255, size=3)
        noise = rng.integers(0, 60, size=(48, 64, 3))
        pixels = np.clip(base + noise, 0, 255).astype("uint8")
        path = folder / f"frame_{i:04d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(str(path))
    return paths
