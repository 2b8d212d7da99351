"""Shared plumbing for demo models: where they are cached and how a build lands atomically."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import mistral_common

from engine.loading.heartbeat import heartbeat


def cache_root() -> Path:
    """APP_CACHE_DIR, else ~/.cache/local-chat: shared by fresh clones so CI reuses builds."""
    root = os.environ.get("APP_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "local-chat")
    return Path(root)


def mistral_tokenizer_file() -> Path:
    """Mistral-7B-Instruct-v0.3's SentencePiece model, as shipped inside the mistral-common wheel."""
    return Path(mistral_common.__file__).parent / "data" / "mistral_instruct_tokenizer_240323.model.v3"


def cached_build(kind: str, spec: dict, build: Callable[[Path], None]) -> Path:
    """Return the folder for `spec`, building it once; concurrent builders race safely via rename."""
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    target = cache_root() / "demo-models" / f"{kind}-{digest}"
    if (target / "READY").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=target.parent))
    try:
        with heartbeat(f"preparing {kind}"):
            build(staging)
        (staging / "build-spec.json").write_text(json.dumps(spec, indent=1, sort_keys=True))
        (staging / "READY").write_text("ok\n")
        try:
            os.rename(staging, target)
        except OSError:  # another process finished first; its build is identical
            if not (target / "READY").exists():
                shutil.rmtree(target, ignore_errors=True)
                os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
