"""Publish a trained adapter atomically: adapters/<name>/ appears complete or not at all.

Weights and config are saved into a dot-named temp folder next to the target (same filesystem),
checked (safetensors only, LoRA weights finite and not all zero), meta.json is written last, every
file and the folder are fsynced, then the folder is renamed into place. A crash at any point leaves
at most a dot-folder, which the listing ignores and the next publish of that name removes.
"""
from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

from config.files import fsync_dir
from engine.adapters import CONFIG_FILE, META_FILE, WEIGHTS_FILE, adapter_path
from tuning.runs import write_json_atomic


class PublishError(RuntimeError):
    """The adapter could not be published; nothing appeared under the adapters folder."""


def check_adapter_files(folder: Path) -> dict:
    """Safetensors only, LoRA tensors present, finite, and not all zero (an adapter that does nothing)."""
    from safetensors import safe_open

    names = {p.name for p in folder.iterdir()}
    if WEIGHTS_FILE not in names or CONFIG_FILE not in names:
        raise PublishError(f"saving produced {sorted(names)}, not {WEIGHTS_FILE} + {CONFIG_FILE}")
    pickles = [n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl"))]
    if pickles:
        raise PublishError(f"saving produced pickle files {pickles}; only safetensors are published")
    lora_a = lora_b = nonzero_b = 0
    with safe_open(str(folder / WEIGHTS_FILE), framework="pt") as f:
        for key in f.keys():
            t = f.get_tensor(key)
            if not t.float().isfinite().all():
                raise PublishError(f"adapter weight {key} holds NaN or inf: lower learning_rate and train again")
            if "lora_A" in key:
                lora_a += 1
            elif "lora_B" in key:
                lora_b += 1
                nonzero_b += bool(t.abs().sum() > 0)
    if not lora_a or not lora_b:
        raise PublishError("the saved adapter holds no LoRA weights: check target_modules")
    if not nonzero_b:
        raise PublishError("every LoRA B matrix is still zero, so the adapter would change nothing: "
                           "train more steps or raise learning_rate")
    return {"lora_tensors": lora_a + lora_b, "nonzero_b": nonzero_b}


def _fsync_tree(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    for d in [folder, *[p for p in folder.rglob("*") if p.is_dir()]]:
        fsync_dir(d)


def remove_stale_temps(adapters_dir: Path, name: str) -> None:
    """Leftovers of an earlier publish of `name` that crashed (never listed, but they take disk)."""
    if adapters_dir.is_dir():
        pattern = re.compile(r"\.(tmp|old)-[0-9a-f]{8}-" + re.escape(name))
        for child in adapters_dir.iterdir():
            if child.is_dir() and pattern.fullmatch(child.name):
                shutil.rmtree(child, ignore_errors=True)


def publish_adapter(model: Any, adapters_dir: str | Path, name: str, meta: dict, *, overwrite: bool,
                    abort: Any = None) -> Path:
    """Save `model`'s adapter as adapters_dir/name with `meta`; return the folder.

    `abort()` is asked just before the rename: a cancel that arrives while saving wins.
    """
    root = Path(adapters_dir)
    root.mkdir(parents=True, exist_ok=True)
    target = adapter_path(root, name)
    if target.exists() and not overwrite:
        raise PublishError(f"adapter {name!r} already exists in {root}: pick another name or pass --overwrite")
    remove_stale_temps(root, name)
    tmp = root / f".tmp-{uuid.uuid4().hex[:8]}-{name}"
    tmp.mkdir()
    try:
        model.save_pretrained(str(tmp), safe_serialization=True, save_embedding_layers=False)
        (tmp / "README.md").unlink(missing_ok=True)   # peft's empty model card says nothing meta.json does not
        meta = meta | {"checks": check_adapter_files(tmp)}
        write_json_atomic(tmp / META_FILE, meta)
        _fsync_tree(tmp)
        if abort is not None and abort():
            raise PublishError("cancelled before publishing")
        old = None
        if target.exists():
            old = root / f".old-{uuid.uuid4().hex[:8]}-{name}"
            os.rename(target, old)
        os.rename(tmp, target)
        fsync_dir(root)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return target
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
