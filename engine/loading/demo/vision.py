"""Demo image model: LLaVA-NeXT (CLIP vision tower + Mistral) with random seeded weights, built offline.

Same classes and prompt path as llava-hf/llava-v1.6-mistral-7b-hf, scaled down: 32 px crops of 8 px
patches and a 2x2 any-resolution grid, so a test image costs ~100 image tokens.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from engine.loading.demo.build import cached_build, mistral_tokenizer_file

IMAGE_TOKEN = "<image>"

SIZES = {
    "tiny": dict(
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                    image_size=32, patch_size=8, projection_dim=32),
        text=dict(hidden_size=64, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2),
        pinpoints=[[32, 64], [64, 32], [64, 64]],
    ),
}
BUILDER_VERSION = 1


def demo_vision_model(size: str = "tiny", seed: int = 0) -> Path:
    """Folder of a demo LLaVA-NeXT model (config, safetensors, tokenizer, processor); built once, then cached."""
    if size not in SIZES:
        raise ValueError(f"demo vision size {size!r}: choose one of {', '.join(SIZES)}")
    spec = {"arch": "LlavaNextForConditionalGeneration", "size": SIZES[size], "seed": seed, "v": BUILDER_VERSION}
    return cached_build(f"llava-next-{size}", spec, lambda out: _build(out, SIZES[size], seed))


def _tokenizer(out: Path):
    """The real Mistral v3 tokenizer plus the `<image>` placeholder, as llava-hf adds it."""
    from transformers import AddedToken, LlamaTokenizer

    tmp = out / "_tok"
    tmp.mkdir()
    shutil.copy(mistral_tokenizer_file(), tmp / "tokenizer.model")
    tokenizer = LlamaTokenizer.from_pretrained(str(tmp), legacy=False)
    shutil.rmtree(tmp)
    tokenizer.add_tokens([AddedToken(IMAGE_TOKEN, special=True, normalized=False)], special_tokens=True)
    return tokenizer


def _build(out: Path, size: dict, seed: int) -> None:
    import torch
    from transformers import (CLIPVisionConfig, LlavaNextConfig, LlavaNextForConditionalGeneration,
                              LlavaNextImageProcessorPil, LlavaNextProcessor, MistralConfig)

    tokenizer = _tokenizer(out)
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    vision = size["vision"]
    crop = vision["image_size"]
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": crop}, crop_size={"height": crop, "width": crop},
        image_grid_pinpoints=size["pinpoints"])
    processor = LlavaNextProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                   patch_size=vision["patch_size"], vision_feature_select_strategy="default",
                                   image_token=IMAGE_TOKEN, num_additional_image_tokens=1)
    processor.save_pretrained(str(out))

    text = MistralConfig(vocab_size=len(tokenizer), max_position_embeddings=32768, rope_theta=1_000_000.0,
                         sliding_window=None, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
                         head_dim=size["text"]["hidden_size"] // size["text"]["num_attention_heads"], **size["text"])
    config = LlavaNextConfig(
        vision_config=CLIPVisionConfig(**vision).to_dict(), text_config=text.to_dict(),
        image_token_index=image_token_id, image_grid_pinpoints=size["pinpoints"],
        vision_feature_layer=-2, vision_feature_select_strategy="default", projector_hidden_act="gelu",
        tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = LlavaNextForConditionalGeneration(config).to(torch.bfloat16)
    model.generation_config.bos_token_id, model.generation_config.eos_token_id = 1, 2
    model.generation_config.pad_token_id = 2
    model.save_pretrained(str(out), safe_serialization=True)
    (out / "demo.json").write_text(json.dumps({"demo": True, "note": "random weights: answers are noise",
                                               "seed": seed}))
