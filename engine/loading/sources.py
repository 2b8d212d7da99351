"""Where a model's files come from: a local folder, a GGUF file, the Hugging Face hub, or a built demo model."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from engine.errors import SourceError

OFFLINE_DEMO = "smollm2"   # demo:smollm2, the real small model that needs no hub (engine/loading/demo/gguf.py)
WEIGHT_PATTERNS = ["*.json", "*.safetensors", "tokenizer.model", "*.txt", "*.jinja"]


@dataclass(frozen=True)
class ModelSource:
    model_id: str   # what the user asked for (hub id, folder, .gguf file, or demo:<name>)
    folder: Path    # a local folder holding config.json and safetensors
    demo: bool


def check_folder(folder: Path, model_id: str) -> None:
    if not (folder / "config.json").is_file():
        raise SourceError(f"{model_id}: no config.json in {folder}")
    if not any(folder.glob("*.safetensors")):
        bins = any(folder.glob("*.bin")) or any(folder.glob("*.pt"))
        hint = " (only .bin/.pt pickles, which we never load: convert them to safetensors)" if bins else ""
        raise SourceError(f"{model_id}: no .safetensors weights in {folder}{hint}")


def resolve_source(model: str) -> ModelSource:
    """Find or download the model's files. Raises SourceError with a fix the user can apply."""
    if model.startswith("demo"):
        size = model.partition(":")[2] or OFFLINE_DEMO
        return ModelSource(f"demo:{size}", _demo_folder(size), True)
    folder = Path(model).expanduser()
    if folder.is_file():
        return ModelSource(model, _from_gguf(folder, model), False)
    if folder.is_dir():
        check_folder(folder, model)
        return ModelSource(model, folder, False)
    if model.startswith((".", "/", "~")) or model.count("/") != 1:
        raise SourceError(f"engine.model {model!r} is neither a local folder nor a hub id like owner/name")
    return ModelSource(model, _download(model), False)


def _demo_folder(size: str) -> Path:
    """demo:smollm2 is real weights from a pip package; demo:tiny / demo:bench are random Mistral models."""
    if size == OFFLINE_DEMO:
        from engine.loading.demo.gguf import GgufError, offline_chat_model

        try:
            return offline_chat_model()
        except GgufError as exc:
            raise SourceError(str(exc)) from None
    from engine.loading.demo.chat import demo_chat_model

    return demo_chat_model(size)


def _from_gguf(file: Path, model_id: str) -> Path:
    """A GGUF file as engine.model: dequantized once into a cached safetensors folder."""
    from engine.loading.demo.gguf import GgufError, dense_from_gguf

    if file.suffix.lower() != ".gguf":
        raise SourceError(f"engine.model {model_id!r} is a file but not a .gguf model: give a model folder "
                          "(config.json + safetensors), a .gguf file, or a hub id like owner/name")
    try:
        return dense_from_gguf(file)
    except GgufError as exc:
        raise SourceError(f"engine.model: {exc}") from None


def hub_reachable(timeout: float = 2.0) -> bool:
    """One quick look (HF_HUB_OFFLINE, then one HTTPS request to HF_ENDPOINT): without it, an unreachable hub
    costs a minute of silent retries at start and on every "Estimate GPU memory" click."""
    import os

    import httpx

    if os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("0", "", "false", "no"):
        return False
    endpoint = (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
    try:
        httpx.head(endpoint + "/api/models", timeout=timeout)    # any answer at all: the hub is there
    except httpx.HTTPError:
        return False
    return True


def _download(repo_id: str) -> Path:
    from huggingface_hub import errors, snapshot_download

    online = hub_reachable()
    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=WEIGHT_PATTERNS, local_files_only=not online))
    except errors.GatedRepoError:
        raise SourceError(f"{repo_id} is gated: accept its licence on the Hugging Face hub, then set HF_TOKEN "
                          "(or run `hf auth login`) and restart") from None
    except errors.RepositoryNotFoundError:
        raise SourceError(f"{repo_id} was not found on the Hugging Face hub (or is private: set HF_TOKEN)") from None
    except (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled, OSError) as exc:
        if not online:
            raise SourceError(f"{repo_id} is not in the local cache and the Hugging Face hub cannot be reached from "
                              "this machine: set engine.model in config.json to a local folder with the model, or "
                              "connect and restart") from None
        raise SourceError(f"{repo_id} could not be downloaded and is not in the local cache ({type(exc).__name__}): "
                          "set engine.model in config.json to a local folder with the model, or connect and retry") from None
    check_folder(folder, repo_id)
    return folder
