"""TrainConfig: every knob of a tuning run, with help text, checked when built (file, dict or code).

Files are JSON objects of these keys (see tuning/configs/*.json); `--key value` on the command line
overrides them. Relative paths are relative to the current directory, like config.json's.
"""
from __future__ import annotations

import json
import typing
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr

from config import ConfigError, section, type_name
from engine.adapters import validate_name
from engine.errors import AdapterNameError

MISTRAL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PREFIX = "tuning"
Scheduler = Literal["cosine", "linear", "constant", "constant_with_warmup"]
Optimizer = Literal["adamw_torch", "paged_adamw_8bit", "adamw_8bit"]


@section(PREFIX)
class TrainConfig:
    name: StrictStr = Field("", description="Adapter name: the folder adapters_dir/<name> it is published to.")
    dataset: StrictStr = Field("", description="JSONL file, one {\"messages\": [...]} conversation per line, ending "
                               "with an assistant turn.")
    base_model: StrictStr = Field("mistralai/Mistral-7B-Instruct-v0.3", description="Hub id, local folder, or "
                                  "demo:tiny / demo:bench of the base model.")
    method: Literal["lora", "qlora"] = Field("lora", description="lora: base in 16-bit; qlora: base in 4-bit nf4 "
                                             "with double quant.")
    adapters_dir: StrictStr = Field("adapters", description="Folder the finished adapter is published to (the app's "
                                    "engine.adapters_dir).")
    runs_dir: StrictStr = Field("", description="Folder of checkpoints and metrics; empty means "
                                "<adapters_dir>/.runs (never listed).")
    lora_r: StrictInt = Field(16, ge=1, le=1024, description="LoRA rank.")
    lora_alpha: StrictInt = Field(32, ge=1, le=4096, description="LoRA alpha; the update is scaled by alpha / r.")
    lora_dropout: StrictFloat = Field(0.05, ge=0.0, le=0.9, description="Dropout on the LoRA input.")
    target_modules: list[StrictStr] = Field(default_factory=lambda: list(MISTRAL_PROJECTIONS), description="Linear "
                                            "layers that get LoRA weights (Mistral names).")
    max_length: StrictInt = Field(2048, ge=16, le=131072, description="Longest conversation in tokens; longer lines "
                                  "are reported, not cut.")
    eval_fraction: StrictFloat = Field(0.1, ge=0.0, le=0.5, description="Share of conversations held out for eval "
                                       "loss (0: none).")
    seed: StrictInt = Field(42, ge=0, le=2**31 - 1, description="Seed of the train/eval split, LoRA init and data "
                            "order.")
    epochs: StrictFloat = Field(3.0, ge=0.01, le=1000, description="Passes over the training set (ignored when "
                                "max_steps > 0).")
    max_steps: StrictInt = Field(-1, ge=-1, le=10_000_000, description="Optimizer steps to run; -1 means use "
                                 "epochs.")
    batch_size: StrictInt = Field(1, ge=1, le=1024, description="Conversations per device per step.")
    grad_accum: StrictInt = Field(8, ge=1, le=1024, description="Micro-batches accumulated per optimizer step.")
    learning_rate: StrictFloat = Field(2e-4, ge=1e-8, le=1.0, description="Peak learning rate.")
    lr_scheduler: Scheduler = Field("cosine", description="Learning-rate schedule after warmup.")
    warmup_steps: StrictInt = Field(10, ge=0, le=1_000_000, description="Steps of linear warmup.")
    weight_decay: StrictFloat = Field(0.0, ge=0.0, le=1.0, description="AdamW weight decay on the LoRA weights.")
    max_grad_norm: StrictFloat = Field(1.0, ge=0.0, le=1000, description="Gradient clipping norm.")
    optimizer: Optimizer = Field("adamw_torch", description="Trainer optimizer; paged_adamw_8bit needs a CUDA GPU.")
    gradient_checkpointing: StrictBool = Field(True, description="Recompute activations in backward: much less "
                                               "memory, ~30% slower.")
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = Field("auto", description="auto: bf16 (or fp16) "
                                                                   "autocast on a GPU, none on the CPU.")
    cpu_dtype: Literal["float32", "bfloat16"] = Field("float32", description="dtype of the base weights when "
                                                      "training without a GPU (lora method).")
    logging_steps: StrictInt = Field(10, ge=1, le=100000, description="Log loss and learning rate to metrics.jsonl "
                                     "every N steps.")
    eval_steps: StrictInt = Field(50, ge=1, le=1_000_000, description="Compute eval loss every N steps (needs "
                                  "eval_fraction > 0).")
    save_steps: StrictInt = Field(50, ge=1, le=1_000_000, description="Write a resumable checkpoint every N steps.")
    save_total_limit: StrictInt = Field(2, ge=1, le=100, description="Checkpoints kept in the run folder.")
    resume: StrictBool = Field(False, description="Continue from the last checkpoint of this name's run folder.")
    overwrite: StrictBool = Field(False, description="Replace an existing adapter and start the run folder over.")

    def __post_init__(self) -> None:
        """Checks across keys, and what a type cannot say; types and limits are pydantic's (also for
        configs built in code or by with_overrides)."""
        if not self.name:
            raise ConfigError(f"{PREFIX}.name: required (the adapter's folder name)")
        try:
            validate_name(self.name)
        except AdapterNameError as exc:
            raise ConfigError(f"{PREFIX}.name: {exc}") from None
        if not self.dataset:
            raise ConfigError(f"{PREFIX}.dataset: required (a JSONL file of conversations)")
        if not self.target_modules or not all(self.target_modules):
            raise ConfigError(f"{PREFIX}.target_modules: give at least one module name, e.g. {MISTRAL_PROJECTIONS}")
        if self.resume and self.overwrite:
            raise ConfigError(f"{PREFIX}.resume and {PREFIX}.overwrite: choose one (continue, or start over)")

    @property
    def adapter_dir(self) -> Path:
        return Path(self.adapters_dir) / self.name

    @property
    def run_dir(self) -> Path:
        return (Path(self.runs_dir) if self.runs_dir else Path(self.adapters_dir) / ".runs") / self.name

    def to_dict(self) -> dict:
        return asdict(self)

    def with_overrides(self, **changes: object) -> "TrainConfig":
        return replace(self, **changes)


def config_from_dict(data: object, overrides: dict | None = None) -> TrainConfig:
    """Validate a dict (unknown keys, types, limits) into a TrainConfig; ConfigError names the key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{PREFIX}: a training config is a JSON object of settings")
    merged = {k: v for k, v in data.items() if not k.startswith("_")} | dict(overrides or {})
    return TrainConfig(**merged)


def load_config(path: str | Path, overrides: dict | None = None) -> TrainConfig:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{PREFIX}: config file {path} not found") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{PREFIX}: {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    return config_from_dict(data, overrides)


def parse_overrides(argv: list[str]) -> dict:
    """`--key value` pairs into typed values; a bool key alone (`--resume`) means true.

    Values are read as JSON when they parse (numbers, true/false, lists), else as text; a list key
    also takes comma-separated text (`--target_modules q_proj,v_proj`).
    """
    hints = typing.get_type_hints(TrainConfig)
    out: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or len(arg) <= 2:
            raise ConfigError(f"unexpected argument {arg!r}: overrides look like --key value")
        key = arg[2:].replace("-", "_")
        if key not in hints:
            raise ConfigError(f"--{key}: unknown setting; allowed: {', '.join(f.name for f in fields(TrainConfig))}")
        tp = hints[key]
        has_value = i + 1 < len(argv) and not argv[i + 1].startswith("--")
        if not has_value:
            if tp is not bool:
                raise ConfigError(f"--{key}: needs a value ({type_name(tp)})")
            out[key], i = True, i + 1
            continue
        raw = argv[i + 1]
        if tp is str or typing.get_origin(tp) is Literal:  # text as typed: "--name 123" is a name
            value: Any = raw
        else:
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
            if typing.get_origin(tp) is list and isinstance(value, str):
                value = [p.strip() for p in value.split(",") if p.strip()]
        out[key], i = value, i + 2
    return out
