"""TrainConfig: every knob of a tuning run, with help text, checked when built (file, dict or code).

Files are JSON objects of these keys (see tuning/configs/*.json); `--key value` on the command line
overrides them. Relative paths are relative to the current directory, like config.json's.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from engine.adapters import AdapterNameError, validate_name
from config import ConfigError, type_name, build_section, option

MISTRAL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PREFIX = "tuning"


@dataclass(frozen=True)
class TrainConfig:
    name: str = option("", "Adapter name: the folder adapters_dir/<name> it is published to.")
    dataset: str = option("", "JSONL file, one {\"messages\": [...]} conversation per line, ending with an assistant turn.")
    base_model: str = option("mistralai/Mistral-7B-Instruct-v0.3",
                             "Hub id, local folder, or demo:tiny / demo:bench of the base model.")
    method: str = option("lora", "lora: base in 16-bit; qlora: base in 4-bit nf4 with double quant.",
                         choices=("lora", "qlora"))
    adapters_dir: str = option("adapters", "Folder the finished adapter is published to (the app's engine.adapters_dir).")
    runs_dir: str = option("", "Folder of checkpoints and metrics; empty means <adapters_dir>/.runs (never listed).")
    lora_r: int = option(16, "LoRA rank.", min=1, max=1024)
    lora_alpha: int = option(32, "LoRA alpha; the update is scaled by alpha / r.", min=1, max=4096)
    lora_dropout: float = option(0.05, "Dropout on the LoRA input.", min=0.0, max=0.9)
    target_modules: list[str] = option(None, "Linear layers that get LoRA weights (Mistral names).",
                                       default_factory=lambda: list(MISTRAL_PROJECTIONS))
    max_length: int = option(2048, "Longest conversation in tokens; longer lines are reported, not cut.",
                             min=16, max=131072)
    eval_fraction: float = option(0.1, "Share of conversations held out for eval loss (0: none).", min=0.0, max=0.5)
    seed: int = option(42, "Seed of the train/eval split, LoRA init and data order.", min=0, max=2**31 - 1)
    epochs: float = option(3.0, "Passes over the training set (ignored when max_steps > 0).", min=0.01, max=1000)
    max_steps: int = option(-1, "Optimizer steps to run; -1 means use epochs.", min=-1, max=10_000_000)
    batch_size: int = option(1, "Conversations per device per step.", min=1, max=1024)
    grad_accum: int = option(8, "Micro-batches accumulated per optimizer step.", min=1, max=1024)
    learning_rate: float = option(2e-4, "Peak learning rate.", min=1e-8, max=1.0)
    lr_scheduler: str = option("cosine", "Learning-rate schedule after warmup.",
                               choices=("cosine", "linear", "constant", "constant_with_warmup"))
    warmup_steps: int = option(10, "Steps of linear warmup.", min=0, max=1_000_000)
    weight_decay: float = option(0.0, "AdamW weight decay on the LoRA weights.", min=0.0, max=1.0)
    max_grad_norm: float = option(1.0, "Gradient clipping norm.", min=0.0, max=1000)
    optimizer: str = option("adamw_torch", "Trainer optimizer; paged_adamw_8bit needs a CUDA GPU.",
                            choices=("adamw_torch", "paged_adamw_8bit", "adamw_8bit"))
    gradient_checkpointing: bool = option(True, "Recompute activations in backward: much less memory, ~30% slower.")
    mixed_precision: str = option("auto", "auto: bf16 (or fp16) autocast on a GPU, none on the CPU.",
                                  choices=("auto", "no", "bf16", "fp16"))
    cpu_dtype: str = option("float32", "dtype of the base weights when training without a GPU (lora method).",
                            choices=("float32", "bfloat16"))
    logging_steps: int = option(10, "Log loss and learning rate to metrics.jsonl every N steps.", min=1, max=100000)
    eval_steps: int = option(50, "Compute eval loss every N steps (needs eval_fraction > 0).", min=1, max=1_000_000)
    save_steps: int = option(50, "Write a resumable checkpoint every N steps.", min=1, max=1_000_000)
    save_total_limit: int = option(2, "Checkpoints kept in the run folder.", min=1, max=100)
    resume: bool = option(False, "Continue from the last checkpoint of this name's run folder.")
    overwrite: bool = option(False, "Replace an existing adapter and start the run folder over.")

    def __post_init__(self) -> None:
        for f in fields(self):  # limits also hold for configs built in code, not only from files
            meta, value = f.metadata, getattr(self, f.name)
            if meta.get("choices") and value not in meta["choices"]:
                raise ConfigError(f"{PREFIX}.{f.name}: {value!r} is not allowed; choose one of "
                                  + ", ".join(meta["choices"]))
            lo, hi = meta.get("min"), meta.get("max")
            if isinstance(value, (int, float)) and not isinstance(value, bool) and lo is not None and not lo <= value <= hi:
                raise ConfigError(f"{PREFIX}.{f.name}: {value} is out of range; allowed {lo} to {hi}")
        if not self.name:
            raise ConfigError(f"{PREFIX}.name: required (the adapter's folder name)")
        try:
            validate_name(self.name)
        except AdapterNameError as exc:
            raise ConfigError(f"{PREFIX}.name: {exc}") from None
        if not self.dataset:
            raise ConfigError(f"{PREFIX}.dataset: required (a JSONL file of conversations)")
        if not self.target_modules or not all(isinstance(m, str) and m for m in self.target_modules):
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

    def with_overrides(self, **changes: Any) -> "TrainConfig":
        return replace(self, **changes)


def config_from_dict(data: Any, overrides: dict | None = None) -> TrainConfig:
    """Validate a dict (unknown keys, types, limits) into a TrainConfig; ConfigError names the key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{PREFIX}: a training config is a JSON object of settings")
    merged = {k: v for k, v in data.items() if not k.startswith("_")} | dict(overrides or {})
    return build_section(TrainConfig, merged, PREFIX)


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
    import typing

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
        if tp is str:
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
