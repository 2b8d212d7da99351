"""The architectures of the models the app is configured with by default, shipped as their config.json (a few KB
each in engine/loading/model_configs/), so that "Estimate GPU memory" answers for them with no hub and an empty
cache. Only the architecture is read from them: no weights, no tokenizer, nothing is loaded from them.

Where each file came from (the hub is unreachable from here, so each is a copy vendored elsewhere, checked
against a second copy where one was found):
- mistralai/Mistral-7B-Instruct-v0.3 (engine.model's default): the config.json printed in a public dump of hub
  configs ("# mistralai/Mistral-7B-Instruct-v0.3 ... ## config.json", found through the code index), identical
  field by field to the copy quoted in IBM foundation-model-stack's Mistral support, which cites
  https://huggingface.co/mistralai/Mistral-7B-Instruct-v0.3/blob/main/config.json.
- llava-hf/llava-v1.6-mistral-7b-hf (engine.vision_model's default): NVIDIA TensorRT-LLM's LLaVA-NeXT modeling test
  (LLAVA_NEXT_7B_CONFIG, named after llava-v1.6-mistral-7b-hf), with vision_config.num_hidden_layers 24 as
  that test's note gives for the full model (the test cuts it to 2).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PretrainedConfig

FOLDER = Path(__file__).resolve().parent / "model_configs"


def _file(model_id: str) -> Path:
    """owner/name -> model_configs/owner--name.json (the hub's own cache spelling)."""
    return FOLDER / (model_id.strip().replace("/", "--") + ".json")


def known_ids() -> tuple[str, ...]:
    """The hub ids whose architecture ships with the app."""
    return tuple(sorted(p.stem.replace("--", "/", 1) for p in FOLDER.glob("*.json")))


def known_config(model_id: str) -> PretrainedConfig | None:
    """The transformers config of a shipped hub id (exact spelling), or None for any other model."""
    if model_id.strip() not in known_ids():
        return None
    from transformers import AutoConfig

    data = json.loads(_file(model_id).read_text(encoding="utf-8"))
    return AutoConfig.for_model(**data)
