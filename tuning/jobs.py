"""Training in a subprocess, so the app keeps chatting: start, watch, cancel.

    job = start_training("tuning/configs/qlora.json", {"name": "my-bot", "dataset": "chats.jsonl"})
    job.status()      # JobStatus(state="training", step=120, max_steps=600, ...)
    job.metrics()     # [{"step": 10, "loss": 1.9, "lr": ...}, {"step": 50, "eval_loss": 1.7}, ...]
    job.log_tail()    # last lines of the subprocess output (progress bar included)
    job.cancel()      # stops after the current step with a checkpoint; nothing is published

The config is validated here first, so a bad key or an existing adapter name fails at once, in
the caller, with a message for the user. No UI code here: the Tuning tab polls these methods.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from config import ConfigError
from tuning.config import TrainConfig, config_from_dict, load_config
from tuning.dataset import load_dataset
from tuning.runs import (CANCEL_FILE, EXIT_CANCELLED, EXIT_OK, RunLock, prepare_run_folder, read_metrics, read_progress,
                         write_json_atomic, write_progress)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
JOB_CONFIG = "job-config.json"
LOG_FILE = "train.log"
# The page's Cancel confirms within about 3 s (issue 24): a step still running after this grace is stopped
# outright (nothing is published either way; the last saved checkpoint stays resumable).
CANCEL_GRACE_S = 2.5


class NoRoomForTraining(ConfigError):
    """The GPU has not enough free memory, next to the models the app holds, for this training run."""


def training_need_bytes(cfg: TrainConfig, config) -> int:
    """Card bytes a run needs: the base weights at its rung, the activations kept for backward, the logits,
    and the CUDA context. LoRA weights and their optimizer state are small enough to sit in the rounding."""
    from engine.loading.preflight import CUDA_CONTEXT_BYTES, estimate_rungs

    rung = "4bit" if cfg.method == "qlora" else "fp16"
    weights = next(e.weight_bytes for e in estimate_rungs(config, budget_bytes=0, context_tokens=cfg.max_length,
                                                          headroom=0.0) if e.rung == rung)
    text = getattr(config, "text_config", None) or config
    tokens = cfg.batch_size * cfg.max_length
    kept = 1 if cfg.gradient_checkpointing else 16     # hidden-state sized tensors per layer kept for backward
    activations = tokens * text.hidden_size * 2 * text.num_hidden_layers * kept
    logits = tokens * text.vocab_size * 4 * 2           # fp32 logits and their gradient
    return int(weights + activations + logits + CUDA_CONTEXT_BYTES)


def check_room(cfg: TrainConfig, room_bytes: int) -> None:
    """Refuse a run that cannot fit in `room_bytes`, saying what would."""
    from transformers import AutoConfig

    from engine.loading.preflight import GiB

    try:
        config = AutoConfig.from_pretrained(cfg.base_model, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError):
        return  # not a local folder (a hub id, a demo name): the run's own loader decides and reports
    need = training_need_bytes(cfg, config)
    if need > room_bytes:
        other = "qlora" if cfg.method != "qlora" else None
        hint = f"use method {other}, " if other else ""
        raise NoRoomForTraining(
            f"training {cfg.name} ({cfg.method}, {cfg.max_length} tokens x {cfg.batch_size}) needs about "
            f"{need / GiB:.1f} GiB on the GPU, but {room_bytes / GiB:.1f} GiB is free next to the models loaded "
            f"now: unload models on the Models tab, {hint}or lower max_length or batch_size")


def gpu_room_bytes() -> int | None:
    """Free memory of the card training would use (what the loaded models left), or None without a GPU."""
    from engine.monitor import free_gpu_bytes

    return free_gpu_bytes(0)


@dataclass(frozen=True)
class JobStatus:
    state: str                  # starting | loading | tokenizing | training | saving | succeeded | failed | cancelled
    step: int = 0
    max_steps: int | None = None
    returncode: int | None = None
    message: str = ""           # the error, or where the adapter was published
    adapter: str | None = None  # folder of the published adapter once succeeded
    examples: int | None = None         # training examples, once tokenized
    seconds_per_step: float | None = None   # this run's training pace, once a step has ended

    @classmethod
    def of(cls, state: str, progress: dict, returncode: int | None = None, message: str = "",
           adapter: str | None = None) -> "JobStatus":
        """A status from progress.json (written by the run) and what the caller knows (exit code, message)."""
        step, max_steps = int(progress.get("step") or 0), progress.get("max_steps")
        examples, seconds = progress.get("examples"), progress.get("step_seconds")
        done = step - int(progress.get("resumed_from") or 0)
        pace = float(seconds) / done if isinstance(seconds, (int, float)) and done > 0 else None
        return cls(state, step, max_steps, returncode, message, adapter,
                   examples if isinstance(examples, int) else None, pace)

    @property
    def finished(self) -> bool:
        return self.returncode is not None


class TrainingJob:
    """One `python -m tuning.train` subprocess and its run folder."""

    def __init__(self, config: TrainConfig, process: subprocess.Popen, log_path: Path):
        self.config, self.process, self.log_path = config, process, log_path

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def run_dir(self) -> Path:
        return self.config.run_dir

    def metrics(self) -> list[dict]:
        """Rows of metrics.jsonl so far: {"step", "epoch", "loss" or "eval_loss", "lr", ...}."""
        return read_metrics(self.run_dir)

    def status(self) -> JobStatus:
        code = self.process.poll()
        p = read_progress(self.run_dir)
        if code is None:
            return JobStatus.of(p.get("phase", "starting"), p)
        if code == EXIT_OK:
            return JobStatus.of("succeeded", p, returncode=code, message=f"published {p.get('adapter')}",
                                adapter=p.get("adapter"))
        if code == EXIT_CANCELLED or (code < 0 and self._cancel_requested()):
            return JobStatus.of("cancelled", p, returncode=code, message=p.get("error") or "cancelled")
        message = p.get("error") if p.get("phase") == "failed" else None
        return JobStatus.of("failed", p, returncode=code, message=message or self._last_error_line(code))

    def running(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float | None = None) -> JobStatus:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        return self.status()

    def cancel(self, timeout: float = 60.0) -> JobStatus:
        """Ask the run to stop (CANCEL file + SIGTERM); after `timeout` s, kill it. Either way the
        adapter is not published (publication is a final atomic rename). Given time, the run ends its
        step and saves a checkpoint to resume from; killed, the last saved checkpoint stays resumable."""
        if self.running():
            (self.run_dir / CANCEL_FILE).touch()
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.status()

    def log_tail(self, lines: int = 40) -> str:
        """Last lines of the subprocess output; progress-bar redraws (\\r) count as lines."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64 * 1024))
                text = f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        rows = [r for r in text.replace("\r", "\n").split("\n") if r.strip()]
        return "\n".join(rows[-lines:])

    def _cancel_requested(self) -> bool:
        return (self.run_dir / CANCEL_FILE).exists()

    def _last_error_line(self, code: int) -> str:
        tail = self.log_tail(20).splitlines()
        lines = [l for l in tail if l.startswith("[tuning]") or "Error" in l]
        return (lines[-1] if lines else f"training exited with status {code}").removeprefix("[tuning] ")


def resolve_config(config: str | Path | dict | TrainConfig, overrides: dict | None = None) -> TrainConfig:
    """A validated TrainConfig with absolute paths (the subprocess runs from the project root)."""
    if isinstance(config, TrainConfig):
        cfg = config.with_overrides(**(overrides or {}))
    elif isinstance(config, dict):
        cfg = config_from_dict(config, overrides)
    else:
        cfg = load_config(config, overrides)
    absolute = {k: str(Path(getattr(cfg, k)).resolve()) for k in ("dataset", "adapters_dir") if getattr(cfg, k)}
    if cfg.runs_dir:
        absolute["runs_dir"] = str(Path(cfg.runs_dir).resolve())
    if Path(cfg.base_model).expanduser().is_dir():
        absolute["base_model"] = str(Path(cfg.base_model).expanduser().resolve())
    return cfg.with_overrides(**absolute)


def start_training(config: str | Path | dict | TrainConfig, overrides: dict | None = None, *,
                   python: str | None = None, env: dict | None = None,
                   room_bytes: int | None = None) -> TrainingJob:
    """Validate, then run `python -m tuning.train` for this config in a subprocess; return at once.

    Raises now, with a message for the user: ConfigError (bad key or value), DatasetError (every
    malformed line), RunFolderError (name taken, earlier checkpoints without resume/overwrite, a
    run of this name still going), NoRoomForTraining (the GPU memory the app's models leave, or
    `room_bytes`, is too small). Later problems (too-long lines, the model) show in status().
    """
    cfg = resolve_config(config, overrides)
    room = room_bytes if room_bytes is not None else gpu_room_bytes()
    if room is not None:
        check_room(cfg, room)
    load_dataset(cfg.dataset, None, cfg.max_length).raise_if_bad()   # structure now; lengths need the tokenizer
    prepare_run_folder(cfg)
    run_dir = cfg.run_dir
    with RunLock(run_dir):      # refuse now if a run of this name is still going
        pass
    (run_dir / CANCEL_FILE).unlink(missing_ok=True)
    config_path = run_dir / JOB_CONFIG
    write_json_atomic(config_path, cfg.to_dict())
    write_progress(run_dir, phase="starting", step=0, max_steps=None)
    log_path = run_dir / LOG_FILE
    child_env = dict(os.environ if env is None else env)
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), child_env.get("PYTHONPATH")]))
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    with open(log_path, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} start {json.dumps(cfg.name)} "
                  f"resume={cfg.resume} ===\n".encode())
        log.flush()
        process = subprocess.Popen([python or sys.executable, "-m", "tuning.train", "--config", str(config_path)],
                                   cwd=str(PROJECT_ROOT), env=child_env, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT)
    return TrainingJob(cfg, process, log_path)
