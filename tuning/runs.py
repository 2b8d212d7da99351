"""The run folder (<runs_dir>/<name>/): checkpoints, metrics.jsonl, progress.json, run.json, CANCEL.

It lives outside the published adapters (default adapters/.runs, a dot-folder the listing skips),
so checkpoints and half-finished work never look like an adapter. Files written here are written
atomically: a reader (the UI polling progress) never sees half a file.
"""
from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock, Timeout

from config.files import atomic_write_text

if TYPE_CHECKING:
    from tuning.config import TrainConfig

METRICS_FILE = "metrics.jsonl"
PROGRESS_FILE = "progress.json"
RUN_FILE = "run.json"
CANCEL_FILE = "CANCEL"
LOCK_FILE = ".lock"
ELAPSED_FILE = "elapsed.json"           # inside each checkpoint: training seconds up to it
RUN_OUTPUTS = (METRICS_FILE, PROGRESS_FILE, RUN_FILE, CANCEL_FILE)
# Settings that must not change when a run is resumed (the rest, e.g. max_steps, may).
RESUME_KEYS = ("base_fingerprint", "dataset_sha256", "method", "lora_r", "lora_alpha", "lora_dropout",
               "target_modules", "max_length", "eval_fraction", "seed", "batch_size", "grad_accum")
_CHECKPOINT = re.compile(r"checkpoint-(\d+)")


class RunFolderError(ValueError):
    """The run folder is in a state that needs the user's decision (resume, overwrite, another name)."""


def write_json_atomic(path: Path, data: Any) -> None:
    """JSON through the one atomic write (config.files): a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=1))


def read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, folder) of complete checkpoints, oldest first (a checkpoint is complete once its
    trainer_state.json exists: the Trainer writes it last)."""
    found = []
    if run_dir.is_dir():
        for child in run_dir.iterdir():
            m = _CHECKPOINT.fullmatch(child.name)
            if m and (child / "trainer_state.json").is_file():
                found.append((int(m.group(1)), child))
    return sorted(found)


def last_checkpoint(run_dir: Path) -> tuple[int, Path] | None:
    found = checkpoints(run_dir)
    return found[-1] if found else None


def remove_incomplete_checkpoints(run_dir: Path) -> None:
    """Checkpoint folders an interruption cut short (no trainer_state.json): never resumed from."""
    complete = {folder for _, folder in checkpoints(run_dir)}
    if run_dir.is_dir():
        for child in run_dir.iterdir():
            if _CHECKPOINT.fullmatch(child.name) and child not in complete:
                shutil.rmtree(child, ignore_errors=True)


def clear_run(run_dir: Path) -> None:
    """Remove what an earlier run wrote (checkpoints and our files); leave job files such as train.log."""
    if run_dir.is_dir():
        for child in run_dir.iterdir():
            if _CHECKPOINT.fullmatch(child.name):
                shutil.rmtree(child, ignore_errors=True)
    for name in RUN_OUTPUTS:
        (run_dir / name).unlink(missing_ok=True)


def check_resume_matches(run_dir: Path, current: dict) -> None:
    """Refuse to resume a run whose data, base or LoRA shape changed since it started."""
    saved = read_json(run_dir / RUN_FILE)
    if not isinstance(saved, dict):
        raise RunFolderError(f"{run_dir / RUN_FILE} is missing or unreadable, so the run cannot be resumed "
                             "safely: start over with --overwrite")
    changed = [k for k in RESUME_KEYS if saved.get(k) != current.get(k)]
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed)
        raise RunFolderError(f"cannot resume {run_dir.name}: changed since the run started ({details}); "
                             "restore them, or start over with --overwrite")


def truncate_metrics(run_dir: Path, after_step: int) -> None:
    """Drop metric rows logged after the checkpoint we resume from (they will be logged again)."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and row.get("step", 0) <= after_step:
            kept.append(line)
    atomic_write_text(path, "".join(k + "\n" for k in kept))


def read_metrics(run_dir: Path) -> list[dict]:
    """Rows of metrics.jsonl; a half-written last line (being appended right now) is skipped."""
    path = Path(run_dir) / METRICS_FILE
    rows = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return rows
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def write_progress(run_dir: Path, **fields: Any) -> None:
    write_json_atomic(run_dir / PROGRESS_FILE, {"updated": time.time(), **fields})


def read_progress(run_dir: Path) -> dict:
    data = read_json(Path(run_dir) / PROGRESS_FILE)
    return data if isinstance(data, dict) else {}


class RunLock:
    """One process per run folder: a second `train` of the same name is refused, not interleaved.

    A file lock (filelock: flock on Unix, LockFileEx on Windows) that the OS drops when the holder
    dies, so a killed run never leaves its name locked.
    """

    def __init__(self, run_dir: Path):
        self.path = run_dir / LOCK_FILE
        self._lock = FileLock(self.path, mode=0o644, blocking=False)
        self._held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except Timeout:
            raise RunFolderError(f"a training run named {self.path.parent.name!r} is already in progress") from None
        self._held = True

    def release(self) -> None:
        if self._held:
            self._lock.release()
            self._held = False

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


# Exit status of `python -m tuning.train`, read by tuning/jobs.py (kept here so the page can start a job
# without importing the trainer, peft and bitsandbytes: seconds of every start).
EXIT_OK, EXIT_CRASH, EXIT_USER_ERROR, EXIT_CANCELLED = 0, 1, 2, 3


def prepare_run_folder(cfg: TrainConfig) -> tuple[int, Path] | None:
    """Decide start-over vs resume before anything slow; return the checkpoint to resume from.

    Refuses (RunFolderError) to silently discard an earlier run's checkpoints or an existing adapter.
    """
    from engine.adapters import adapter_path

    target = adapter_path(cfg.adapters_dir, cfg.name)
    if target.exists() and not cfg.overwrite:
        raise RunFolderError(f"adapter {cfg.name!r} already exists in {cfg.adapters_dir}: "
                             "pick another name or pass --overwrite")
    found = last_checkpoint(cfg.run_dir)
    if cfg.resume:
        if found is None:
            raise RunFolderError(f"nothing to resume: no checkpoint in {cfg.run_dir} yet; run without --resume")
        return found
    if found is not None and not cfg.overwrite:
        raise RunFolderError(f"{cfg.run_dir} holds checkpoints of an earlier run (last at step {found[0]}): "
                             "pass --resume to continue it or --overwrite to start over")
    return None
