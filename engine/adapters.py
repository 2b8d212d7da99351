"""Discover, validate, load, switch and unload LoRA adapters on a loaded chat model.

An adapter is a folder `adapters_dir/<name>/` holding adapter_model.safetensors, adapter_config.json
and meta.json (written last, by tuning/output.py, then the folder is renamed into place). A folder
without a complete meta.json, or whose name starts with a dot (temp folders, runs), is not listed.

The base model is loaded once; adapters are injected next to its layers and chosen per request.
Requests that want the same adapter (or the base) run together; requests that want different ones
are serialised: a switch waits until the running generations finish.
"""
from __future__ import annotations

import hashlib
import json
import re
import struct
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator
from engine import hf_bridge
from engine.errors import AdapterError, AdapterMismatch, AdapterNameError, AdapterNotFound

if TYPE_CHECKING:
    import torch

    from engine.serving.generation import ChatStream

META_FILE = "meta.json"
WEIGHTS_FILE = "adapter_model.safetensors"
CONFIG_FILE = "adapter_config.json"
META_FORMAT = 1
REQUIRED_META = ("format", "name", "base_model_id", "base_fingerprint", "method", "r", "alpha",
                 "target_modules", "dataset_sha256", "steps", "train_loss", "eval_loss", "seconds",
                 "created", "run_id")
NAME_RULE = "1-64 letters (Korean too), digits, '.', '_' or '-', starting with a letter or digit"
_NAME_RE = re.compile(r"[^\W_][\w.-]{0,63}")
FINGERPRINT_SAMPLE_BYTES = 1 << 20


@dataclass(frozen=True)
class AdapterInfo:
    name: str
    path: Path
    meta: dict = field(repr=False)
    compatible: bool | None = None      # None: not checked against a base model

    @property
    def base_model_id(self) -> str:
        return self.meta["base_model_id"]

    @property
    def base_fingerprint(self) -> str:
        return self.meta["base_fingerprint"]

    @property
    def run_id(self) -> str:
        return self.meta["run_id"]

    def summary(self) -> str:
        m = self.meta
        loss = f"eval loss {m['eval_loss']:.3f}" if m.get("eval_loss") is not None else f"train loss {m['train_loss']:.3f}"
        return f"{self.name}: {m['method']} r={m['r']} on {m['base_model_id']}, {m['steps']} steps, {loss}"


def validate_name(name: object) -> str:
    """Return the name if it is a plain folder name; raise AdapterNameError otherwise."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise AdapterNameError(f"adapter name {name!r} is not allowed: use {NAME_RULE}", values={"name": str(name)})
    return name


def adapter_path(adapters_dir: str | Path, name: str) -> Path:
    """adapters_dir/name, refusing names (or symlinks) that would lead outside adapters_dir."""
    validate_name(name)
    root = Path(adapters_dir).resolve()
    path = (root / name).resolve()
    if path.parent != root:
        raise AdapterNameError(f"adapter {name!r} points outside the adapters folder {root}", values={"name": name})
    return path


def base_fingerprint(model_folder: str | Path) -> str:
    """Identity of a base model's weights, cheap enough to compute at every start.

    sha256 over (1) config.json without the keys that change when a folder is merely re-saved
    (transformers_version, _name_or_path), (2) the JSON header of the first safetensors file by name
    (tensor names, dtypes, shapes) and (3) the first MiB of its tensor data. The header alone would
    not tell apart two bases of one architecture (a fine-tune, another seed); hashing all weights
    would take minutes for a 7B model. A dtype conversion of the same weights counts as another base.
    """
    folder = Path(model_folder)
    h = hashlib.sha256()
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AdapterError(f"cannot fingerprint the base model in {folder}: config.json unreadable ({exc})") from None
    for key in ("transformers_version", "_name_or_path"):
        config.pop(key, None)
    h.update(b"config\0" + json.dumps(config, sort_keys=True).encode())
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        raise AdapterError(f"cannot fingerprint the base model in {folder}: no .safetensors file")
    with open(weights[0], "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        h.update(b"header\0" + f.read(size))
        h.update(b"data\0" + f.read(FINGERPRINT_SAMPLE_BYTES))
    return "sha256:" + h.hexdigest()


def read_adapter(adapters_dir: str | Path, name: str) -> AdapterInfo:
    """The complete adapter `name`, or AdapterNotFound saying what is missing."""
    path = adapter_path(adapters_dir, name)
    if not path.is_dir():
        raise AdapterNotFound(f"no adapter named {name!r} in {Path(adapters_dir)}", values={"name": name})
    for needed in (WEIGHTS_FILE, CONFIG_FILE):
        if not (path / needed).is_file():
            if (path / "adapter_model.bin").is_file():
                raise AdapterNotFound(f"adapter {name!r} has only adapter_model.bin (a pickle, never loaded): "
                                      "convert it to safetensors", values={"name": name})
            raise AdapterNotFound(f"adapter {name!r} is incomplete: {needed} is missing", values={"name": name})
    try:
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AdapterNotFound(f"adapter {name!r} is incomplete: {META_FILE} is missing",
                              values={"name": name}) from None
    except (OSError, ValueError) as exc:
        raise AdapterNotFound(f"adapter {name!r}: {META_FILE} is unreadable ({exc})", values={"name": name}) from None
    missing = [k for k in REQUIRED_META if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise AdapterNotFound(f"adapter {name!r}: {META_FILE} lacks {', '.join(missing)}", values={"name": name})
    return AdapterInfo(name, path, meta)


def list_adapters(adapters_dir: str | Path, base_fp: str | None = None) -> list[AdapterInfo]:
    """Complete adapters sorted by name; with `base_fp`, each marked compatible or not."""
    root = Path(adapters_dir)
    if not root.is_dir():
        return []
    found = []
    for child in sorted(root.iterdir()):
        if child.name.startswith(".") or not child.is_dir() or not _NAME_RE.fullmatch(child.name):
            continue
        try:
            info = read_adapter(root, child.name)
        except AdapterError:
            continue
        if base_fp is not None:
            info = AdapterInfo(info.name, info.path, info.meta, info.base_fingerprint == base_fp)
        found.append(info)
    return found


def _peft_key(name: str) -> str:
    """peft stores adapters in ModuleDicts whose keys cannot hold '.'; user names may."""
    return "a" + hashlib.sha256(name.encode()).hexdigest()[:16]


class _Switch:
    """The few peft calls we need, for a plain transformers model or a PeftModel."""

    def __init__(self, model: Any):
        from peft import PeftModel

        self.model, self.is_peft = model, isinstance(model, PeftModel)

    def names(self) -> set[str]:
        if self.is_peft or hf_bridge.peft_config_loaded(self.model):
            return set(self.model.peft_config)
        return set()

    def load(self, path: Path, key: str) -> None:
        if self.is_peft:
            self.model.load_adapter(str(path), adapter_name=key, is_trainable=False)
        else:
            self.model.load_adapter(str(path), adapter_name=key, is_trainable=False)

    def select(self, key: str | None) -> None:
        if not self.names():
            return
        if self.is_peft:
            tuner = self.model.base_model
            if key is None:
                tuner.disable_adapter_layers()
            else:
                self.model.set_adapter(key)
                tuner.enable_adapter_layers()
        elif key is None:
            self.model.disable_adapters()
        else:
            self.model.set_adapter(key)
            self.model.enable_adapters()

    def delete(self, key: str) -> None:
        if key in self.names():
            self.model.delete_adapter(key)


class AdapterRegistry:
    """The adapters usable with one loaded base model, and which one each request gets.

    `registry.gated(model, stream, name_or_None)` makes a reply stream generate with that adapter
    (None: the base). Streams that ask for the same selection run concurrently; one that asks for
    another waits until those finish (first come, first served), so outputs never mix adapters.
    At most `max_loaded` adapters stay in memory; the least recently used idle one is unloaded.
    """

    def __init__(self, adapters_dir: str | Path, base_folder: str | Path, base_model_id: str = "",
                 *, max_loaded: int = 4):
        self.adapters_dir = Path(adapters_dir)
        self.base_model_id = base_model_id or str(base_folder)
        self.fingerprint = base_fingerprint(base_folder)
        self.max_loaded = max(1, max_loaded)
        self._cond = threading.Condition()
        self._waiting: deque[tuple[object, Any]] = deque()
        self._selected: Any = None          # adapter name, None (base), or an exclusive token
        self._users = 0
        self._loaded: OrderedDict[str, str] = OrderedDict()   # name -> run_id, least recently used first
        self._model_ref: Any = None

    # -- what is there -------------------------------------------------------------------------
    def available(self) -> list[AdapterInfo]:
        """All complete adapters, each marked compatible (same base fingerprint) or not."""
        return list_adapters(self.adapters_dir, self.fingerprint)

    def loaded(self) -> list[str]:
        with self._cond:
            return list(self._loaded)

    def check(self, name: str) -> AdapterInfo:
        """The adapter if it exists and was trained on this base; AdapterError subclasses otherwise."""
        info = read_adapter(self.adapters_dir, name)
        if info.base_fingerprint != self.fingerprint:
            raise AdapterMismatch(
                f"adapter {name!r} was trained on {info.base_model_id} ({_short(info.base_fingerprint)}), "
                f"but the loaded model is {self.base_model_id} ({_short(self.fingerprint)}): "
                "train it again on this model, or load the model it was made for",
                values={"name": name, "adapter_base": info.base_model_id, "base": self.base_model_id})
        return info

    # -- per-request selection -----------------------------------------------------------------
    def gated(self, model: "torch.nn.Module", stream: "ChatStream | Callable[[], ChatStream]",
              info: "AdapterInfo | str | None") -> "ChatStream":
        """Wrap a lazy ChatStream (or a no-argument function making one) so it generates with adapter
        `info` (an AdapterInfo, a name, or None for the base) applied to `model`.

        The adapter is checked now, before a function is called (errors before any text); the
        selection is held from the first piece until the stream ends or is closed. Close streams you
        abandon: an unfinished, unclosed stream keeps other adapters waiting.
        """
        if isinstance(info, str) or info == "":
            info = self.check(info) if info else None   # a bare name: checked here (ChatService.request checks once)
        if callable(stream) and not hasattr(stream, "stats"):
            stream = stream()

        def pieces(inner: Iterator[str]) -> Iterator[str]:
            self._enter(model, info.name if info else None, lambda sw: self._apply(sw, info))
            try:
                yield from inner
            finally:
                self._leave()

        return stream.around(pieces)

    def unload(self, model: "torch.nn.Module", name: str) -> bool:
        """Free adapter `name` from memory (waits for requests using any adapter to finish)."""
        validate_name(name)
        token = object()
        done = []

        def drop(sw: _Switch) -> None:
            if name in self._loaded:
                sw.delete(_peft_key(name))
                del self._loaded[name]
                done.append(name)
            sw.select(None)

        self._enter(model, token, drop)
        self._leave()
        return bool(done)

    # -- internals -------------------------------------------------------------------------------
    def _enter(self, model: Any, key: Any, apply) -> None:
        ticket = object()
        with self._cond:
            if self._model_ref is None:
                self._model_ref = model
            elif self._model_ref is not model:
                raise ValueError("this AdapterRegistry serves another model: make one registry per loaded model")
            self._waiting.append((ticket, key))
            try:
                while not self._may_enter(ticket, key):
                    self._cond.wait()
            finally:
                self._waiting.remove((ticket, key))
                self._cond.notify_all()
            if self._users == 0:
                self._selected = None       # if apply fails, the base is what stays selected
                apply(_Switch(model))
                self._selected = key
            self._users += 1

    def _may_enter(self, ticket: object, key: Any) -> bool:
        for other, wanted in self._waiting:
            if other is ticket:
                break
            if wanted != key:          # someone earlier wants another selection: they go first
                return False
        return self._users == 0 or self._selected == key

    def _leave(self) -> None:
        with self._cond:
            self._users -= 1
            self._cond.notify_all()

    def _apply(self, sw: _Switch, info: AdapterInfo | None) -> None:
        """Make `info` (or the base) the active selection; called only with no generation running."""
        if info is None:
            sw.select(None)
            return
        name = info.name
        if self._loaded.get(name) != info.run_id:      # new, or retrained since it was loaded
            self._loaded.pop(name, None)
            sw.delete(_peft_key(name))   # the old version, or one left by another registry: never trust it
            while len(self._loaded) >= self.max_loaded:
                old, _ = self._loaded.popitem(last=False)
                sw.delete(_peft_key(old))
            try:
                sw.load(info.path, _peft_key(name))
            except Exception as exc:  # noqa: BLE001 - undo, keep the base usable, tell the user
                sw.delete(_peft_key(name))
                sw.select(None)
                raise AdapterError(f"adapter {name!r} could not be loaded: {exc}") from exc
            self._loaded[name] = info.run_id
        self._loaded.move_to_end(name)
        sw.select(_peft_key(name))


def _short(fingerprint: str) -> str:
    return fingerprint.replace("sha256:", "sha256 ")[:19]
