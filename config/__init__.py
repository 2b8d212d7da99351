"""Typed sections of config.json, validated on load so a typo fails fast with the key named."""
from __future__ import annotations

import json
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

PRECISIONS = ("auto", "fp16", "8bit", "4bit")


class ConfigError(ValueError):
    """One line that names the key, the bad value and what is allowed."""


def option(default: Any, help: str, *, choices: tuple | None = None, min: float | None = None,
           max: float | None = None, default_factory: Any = None, words: tuple[str, ...] = ()):
    """A dataclass field carrying its help text and limits (read by the validator and the README).
    `words`: strings a numeric option also accepts (max_concurrent's "auto")."""
    meta = {"help": help, "choices": choices, "min": min, "max": max, "words": words}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class EngineConfig:
    model: str = option("mistralai/Mistral-7B-Instruct-v0.3",
                        "Hub id, local folder (safetensors only) or .gguf file of the chat model.")
    precision: str = option("auto", "auto picks the first rung that fits; fp16, 8bit or 4bit force one.",
                            choices=PRECISIONS)
    max_gpu_memory: float | None = option(None, "GiB the models may use; null means free GPU memory from NVML.",
                                          min=0.1, max=4096)
    cpu_dtype: str = option("bfloat16", "dtype on a machine without a GPU.", choices=("bfloat16", "float32"))
    max_context: int = option(4096, "Tokens of context kept per request (prompt + reply).", min=64, max=131072)
    kv_headroom: float = option(0.15, "Fraction of the budget kept free for the KV cache and activations.",
                                min=0.0, max=0.9)
    demo_fallback: bool = option(True, "Load the demo model when the configured one cannot be had.")
    demo_size: str = option("smollm2", "Which demo model --demo and the fallback load: smollm2 (real small offline "
                            "model, SmolLM2-135M-Instruct), tiny (random weights, fast tests) or bench (random, "
                            "realistic speed).", choices=("smollm2", "tiny", "bench"))
    max_concurrent: int | str = option("auto", "Chat requests generated at once; more wait in a fair queue. auto "
                                       "sizes it from the memory left for the KV cache after the weights (1 to 32; "
                                       "shown on /health and the Models tab).", min=1, max=256, words=("auto",))
    batching: str = option("auto", "How concurrent chats share the model: auto picks continuous batching where it "
                           "runs (not quantized), else a fair queue.", choices=("auto", "continuous", "queue"))
    batch_greedy: bool = option(True, "Greedy requests (temperature 0) share the continuous batch: many greedy "
                                "clients get the batch's tokens/s. A lone greedy request repeats its reply; beside "
                                "others it may differ, as the batch rounds differently with what else is in it. "
                                "false: greedy replies equal generate's whatever the load.")
    backend: str = option("local", "local loads the model here; openai streams from an OpenAI-compatible server.",
                          choices=("local", "openai"))
    remote_base_url: str = option("", "Base URL of the OpenAI-compatible server when backend is openai.")
    remote_model: str = option("", "Model name on the remote server.")
    remote_api_key_env: str = option("REMOTE_API_KEY", "Environment variable holding the remote server's key.")
    adapters_dir: str = option("adapters", "Folder of LoRA adapters made by tuning/.")
    vision_model: str = option("llava-hf/llava-v1.6-mistral-7b-hf", "Hub id or folder of the image model.")
    stt_model: str = option("openai/whisper-small", "Whisper model used with a GPU.")
    stt_model_cpu: str = option("openai/whisper-base", "Whisper model used without a GPU.")
    tts_model_ko: str = option("facebook/mms-tts-kor", "Text-to-speech model for Korean.")
    tts_model_en: str = option("facebook/mms-tts-eng", "Text-to-speech model for English.")
    zerogpu_base_seconds: float = option(10.0, "ZeroGPU Spaces: GPU seconds asked for every call (worker start, "
                                         "weights to the GPU), before the per-token part.", min=1, max=600)
    zerogpu_seconds_per_token: float = option(0.05, "ZeroGPU Spaces: GPU seconds asked per new token of a reply.",
                                              min=0.0, max=10)
    zerogpu_max_seconds: int = option(120, "ZeroGPU Spaces: longest GPU call asked for (a user's quota is counted "
                                      "in these seconds).", min=1, max=3600)


@dataclass(frozen=True)
class GenerationConfig:
    system_prompt: str = option("", "System prompt for new sessions.")
    max_new_tokens: int = option(512, "Longest reply in tokens.", min=1, max=32768)
    temperature: float = option(0.7, "0 means greedy.", min=0.0, max=2.0)
    top_p: float = option(0.95, "Nucleus sampling.", min=0.01, max=1.0)
    top_k: int = option(0, "0 turns top-k off.", min=0, max=1000)
    repetition_penalty: float = option(1.0, "1.0 turns it off.", min=0.5, max=2.0)
    max_history_turns: int = option(20, "Most user turns kept; older ones are dropped first.", min=1, max=1000)
    max_message_chars: int = option(32000, "Longest user message accepted.", min=1, max=1_000_000)
    stop: list[str] = option(None, "Extra stop sequences.", default_factory=list)


@dataclass(frozen=True)
class ServerConfig:
    host: str = option("127.0.0.1", "Address to listen on (GRADIO_SERVER_NAME when not set by flag).")
    port: int = option(7860, "Port (GRADIO_SERVER_PORT when not set by flag).", min=1, max=65535)
    share: bool = option(False, "Open a Gradio share link (needs auth or allow_public_share).")
    allow_public_share: bool = option(False, "Let anyone with the share link use the GPU without logging in.")
    auth_file: str = option("", "JSON file of {\"user\": \"password\"}; also APP_USERS=user:pw,user2:pw2.")
    api_key_env: str = option("APP_API_KEY", "Environment variable holding the API key required beyond loopback.")
    max_upload_mb: int = option(25, "Largest upload accepted (images, audio, datasets).", min=1, max=2048)
    queue_size: int = option(64, "Requests waiting before new ones get 'busy, retry'.", min=1, max=10000)
    max_wait_s: float = option(10.0, "A request that would wait longer than this (at the measured pace) gets "
                               "'busy, retry in N s' at once (HTTP 503 with Retry-After) instead of waiting.",
                               min=0.5, max=3600)


@dataclass(frozen=True)
class SessionsConfig:
    path: str = option("data/sessions", "Folder of the session store.")
    max_message_chars: int = option(100000, "Longest message the store accepts.", min=1, max=10_000_000)


@dataclass(frozen=True)
class SpaceConfig:
    storage_dir: str = option("/data", "Hugging Face Space: persistent storage folder; when it exists, sessions "
                              "and adapters are kept there (else they are lost on every restart).")
    cpu_model: str = option("HuggingFaceTB/SmolLM2-360M-Instruct", "Hugging Face Space without a GPU: the chat "
                            "model loaded instead of engine.model (a 7B model is too slow on a CPU Space).")
    gpu_model: str = option("", "Hugging Face Space with a GPU (ZeroGPU or dedicated): the chat model; empty keeps "
                            "engine.model.")


@dataclass(frozen=True)
class AppConfig:
    engine: EngineConfig = field(default_factory=EngineConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    sessions: SessionsConfig = field(default_factory=SessionsConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)


SECTIONS: dict[str, type] = {"engine": EngineConfig, "generation": GenerationConfig,
                             "server": ServerConfig, "sessions": SessionsConfig, "space": SpaceConfig}


def type_name(tp: Any) -> str:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else type_name(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) is list:
        return f"list of {type_name(typing.get_args(tp)[0])}"
    return {str: "string", int: "integer", float: "number", bool: "true/false"}.get(tp, str(tp))


def _matches(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin is list:
        return isinstance(value, list) and all(_matches(v, typing.get_args(tp)[0]) for v in value)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _allowed(meta: dict, tp: Any) -> str:
    """'"auto" or integer, 1 to 256': an option that takes a word or a number in range."""
    number = "integer" if int in typing.get_args(tp) else "number"
    return " or ".join([json.dumps(w) for w in meta["words"]] + [f"{number}, {meta['min']} to {meta['max']}"])


def build_section(cls: type, data: Any, prefix: str):
    """Check one section dict against its dataclass; raise ConfigError naming the first bad key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix}: expected an object of settings, got {json.dumps(data)}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    for key in data:
        if key not in known:
            raise ConfigError(f"{prefix}.{key}: unknown key; allowed keys: {', '.join(known)}")
    values = {}
    for name, value in data.items():
        meta, tp, key = known[name].metadata, hints[name], f"{prefix}.{name}"
        if meta.get("words") and (isinstance(value, str) or not _matches(value, tp)):
            if value not in meta["words"]:
                raise ConfigError(f"{key}: {json.dumps(value, ensure_ascii=False)} is not allowed; expected "
                                  f"{_allowed(meta, tp)}")
            values[name] = value
            continue
        if not _matches(value, tp):
            raise ConfigError(f"{key}: {json.dumps(value, ensure_ascii=False)} is not allowed; expected {type_name(tp)}")
        if meta.get("choices") and value not in meta["choices"]:
            raise ConfigError(f"{key}: {json.dumps(value, ensure_ascii=False)} is not allowed; "
                              f"choose one of {', '.join(map(str, meta['choices']))}")
        lo, hi = meta.get("min"), meta.get("max")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise ConfigError(f"{key}: {value} is out of range; allowed {lo} to {hi}")
        wants_float = tp is float or float in typing.get_args(tp)
        values[name] = float(value) if wants_float and isinstance(value, int) and not isinstance(value, bool) else value
    return cls(**values)


def config_from_dict(data: Any) -> AppConfig:
    if not isinstance(data, dict):
        raise ConfigError("config: the file must hold a JSON object with sections " + ", ".join(SECTIONS))
    sections = {}
    for name, value in data.items():
        if name.startswith("_"):  # "_comment" keys are allowed for notes
            continue
        if name not in SECTIONS:
            raise ConfigError(f"{name}: unknown section; allowed sections: {', '.join(SECTIONS)}")
        sections[name] = build_section(SECTIONS[name], value, name)
    return AppConfig(**sections)


def load_config(path: str | Path) -> AppConfig:
    """Read and validate config.json. Every failure is a one-line ConfigError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config: file {path} not found") from None
    except OSError as exc:
        raise ConfigError(f"config: cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config: {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    return config_from_dict(data)


def describe_options() -> list[tuple[str, str, str, str]]:
    """(key, default, allowed, help) for every option: the README table is generated from this."""
    rows = []
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            default = f.default if f.default is not MISSING else f.default_factory()
            meta = f.metadata
            if meta.get("words"):
                allowed = _allowed(meta, hints[f.name])
            elif meta.get("choices"):
                allowed = " / ".join(map(str, meta["choices"]))
            elif meta.get("min") is not None:
                allowed = f"{type_name(hints[f.name])}, {meta['min']} to {meta['max']}"
            else:
                allowed = type_name(hints[f.name])
            rows.append((f"{section}.{f.name}", json.dumps(default, ensure_ascii=False), allowed, meta["help"]))
    return rows
