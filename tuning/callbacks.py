"""Trainer callbacks: metrics.jsonl for live plots, progress.json for status, and clean cancel.

Cancel comes from SIGTERM/SIGINT or a CANCEL file in the run folder (works where signals do not,
and under `accelerate launch`, which does not forward SIGTERM to its workers). The Trainer stops
at the end of the current step and writes a checkpoint, so the run can be resumed; the adapter is
not published.
"""
from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

from transformers import TrainerCallback

from tuning.runs import CANCEL_FILE, ELAPSED_FILE, METRICS_FILE, write_json_atomic, write_progress


class Cancelled(Exception):
    """The run was cancelled by the user; nothing was published."""


class CancelToken:
    """Set by a signal or by the CANCEL file. Before training starts a signal stops at once
    (nothing to save); during training it stops after the current step, with a checkpoint."""

    def __init__(self, run_dir: Path):
        self.file = Path(run_dir) / CANCEL_FILE
        self._event = threading.Event()
        self.in_training = False

    def clear_stale(self) -> None:
        self.file.unlink(missing_ok=True)

    def requested(self) -> bool:
        return self._event.is_set() or self.file.exists()

    def request(self) -> None:
        self._event.set()

    def install_signal_handlers(self) -> Callable[[], None]:
        """Route SIGTERM/SIGINT here; return the function that puts the previous handlers back
        (train() may run inside a longer-lived process). Only the main thread may install
        handlers; elsewhere (train() in a thread) the CANCEL file still works."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handler(signum: int, frame: Any) -> None:
            again = self._event.is_set()
            self._event.set()
            if again or not self.in_training:
                raise Cancelled(f"cancelled by signal {signum}")

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old if old is not None else signal.SIG_DFL)

        return restore

    def raise_if_requested(self) -> None:
        if self.requested():
            raise Cancelled("cancelled")


class CancelCallback(TrainerCallback):
    def __init__(self, token: CancelToken):
        self.token = token

    def on_train_begin(self, args, state, control, **kwargs):
        self.token.in_training = True

    def on_step_end(self, args, state, control, **kwargs):
        if self.token.requested():
            control.should_training_stop = True
            control.should_save = True     # resumable from exactly here

    def on_train_end(self, args, state, control, **kwargs):
        self.token.in_training = False


class MetricsCallback(TrainerCallback):
    """Appends {"step", "epoch", "loss" | "eval_loss", "lr", "grad_norm", "time"} rows to metrics.jsonl."""

    KEYS = {"loss": "loss", "eval_loss": "eval_loss", "learning_rate": "lr", "grad_norm": "grad_norm"}

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / METRICS_FILE

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or not ({"loss", "eval_loss"} & logs.keys()):
            return
        row = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4), "time": round(time.time(), 3)}
        row |= {out: float(logs[key]) for key, out in self.KEYS.items() if key in logs}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()


class ProgressCallback(TrainerCallback):
    """progress.json (phase, step, max_steps) for the UI, and training seconds saved with each
    checkpoint so a resumed run reports the total time."""

    def __init__(self, run_dir: Path, seconds_before: float = 0.0, resumed_from: int | None = None,
                 examples: int | None = None):
        self.run_dir = Path(run_dir)
        self.examples = examples
        self.seconds_before = seconds_before
        self.resumed_from = resumed_from
        self._started = time.monotonic()
        self._last_write = 0.0

    def seconds(self) -> float:
        return self.seconds_before + time.monotonic() - self._started

    def on_train_begin(self, args, state, control, **kwargs):
        self._started = time.monotonic()
        self._write(state, "training", force=True)

    def on_step_end(self, args, state, control, **kwargs):
        self._write(state, "training")

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = self.run_dir / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                write_json_atomic(folder / ELAPSED_FILE, {"seconds": self.seconds()})

    def _write(self, state, phase: str, force: bool = False) -> None:
        now = time.monotonic()
        if not state.is_world_process_zero or (not force and now - self._last_write < 0.5):
            return
        self._last_write = now
        write_progress(self.run_dir, phase=phase, step=state.global_step, max_steps=state.max_steps,
                       epoch=state.epoch, resumed_from=self.resumed_from, seconds=round(self.seconds(), 2),
                       step_seconds=round(time.monotonic() - self._started, 2), examples=self.examples)
