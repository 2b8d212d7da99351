"""Train a LoRA or QLoRA adapter on a chat dataset with transformers' Trainer, then publish it.

    python -m tuning.train --config tuning/configs/lora.json --name my-bot --dataset chats.jsonl
    python -m tuning.train --config tuning/configs/qlora.json --name my-bot --resume
    accelerate launch -m tuning.train --config tuning/configs/qlora.json --name my-bot
    accelerate launch --num_processes 1 --cpu -m tuning.train --config tuning/configs/demo-lora.json

Any config key can be overridden with `--key value`. Checkpoints, metrics.jsonl and progress.json
go to the run folder (<adapters_dir>/.runs/<name>); the adapter appears in <adapters_dir>/<name>
only when training finished and the files were checked. Exit status: 0 published, 2 a problem the
user can fix (message on stderr), 3 cancelled (resumable with --resume), 1 an unexpected crash.
"""
from __future__ import annotations

import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from tuning.callbacks import CancelCallback, CancelToken, Cancelled, MetricsCallback, ProgressCallback
from tuning.config import TrainConfig, load_config, parse_overrides
from tuning.runs import (ELAPSED_FILE, EXIT_CANCELLED, EXIT_OK, EXIT_USER_ERROR, RUN_FILE, RunFolderError, RunLock,
                         check_resume_matches, clear_run, last_checkpoint, prepare_run_folder, read_json, read_metrics,
                         remove_incomplete_checkpoints, truncate_metrics, write_json_atomic, write_progress)


class TuningError(RuntimeError):
    """Training cannot go on for a reason the user can act on; the message says how."""


@dataclass(frozen=True)
class TrainResult:
    adapter_dir: Path
    meta: dict


def _load_base(cfg: TrainConfig, folder: Path, model_id: str):
    """Base model at the precision the method needs (refusing a silent step down the ladder)."""
    import torch
    from transformers import AutoModelForCausalLM

    from engine.loading.loader import LoadPlan, load_pretrained

    precision = "4bit" if cfg.method == "qlora" else "fp16"
    extra: dict[str, Any] = {}
    if torch.cuda.is_available():
        from accelerate import PartialState

        extra["device_map"] = {"": PartialState().local_process_index}   # one full copy per process (DDP)
    plan = LoadPlan(precision=precision, cpu_dtype=cfg.cpu_dtype, context_tokens=cfg.max_length)
    model, report = load_pretrained(AutoModelForCausalLM, folder, model_id, plan, **extra)
    wanted = ("4bit",) if cfg.method == "qlora" else ("fp16", "cpu-float32", "cpu-bfloat16")
    if report.rung not in wanted:
        raise TuningError(f"the base model only fit at {report.rung} ({report.reason}); "
                          f"method {cfg.method} needs {wanted[0]}: use tuning/configs/qlora.json or a smaller model")
    return model, report


def _wrap_lora(cfg: TrainConfig, model: Any) -> Any:
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    ckpt_kwargs = {"use_reentrant": False}
    if cfg.method == "qlora":
        # Casts norms to fp32, freezes the 4-bit base, makes inputs require grad for checkpointing.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing,
                                                gradient_checkpointing_kwargs=ckpt_kwargs)
    elif cfg.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=ckpt_kwargs)
        model.enable_input_require_grads()
    model.config.use_cache = False          # the KV cache is useless in training and clashes with checkpointing
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.target_modules), bias="none", task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:
        names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if type(m).__name__.startswith("Linear")})
        raise TuningError(f"target_modules {cfg.target_modules}: {exc}. Linear layers of this model: {names}") from None


def _training_args(cfg: TrainConfig, has_eval: bool, resuming: bool):
    import torch
    from transformers import TrainingArguments

    from engine.loading.memory import supports_bf16   # compute capability >= 8, not is_bf16_supported()'s emulation

    cuda = torch.cuda.is_available()
    mixed = cfg.mixed_precision
    if mixed == "auto":
        mixed = ("bf16" if supports_bf16() else "fp16") if cuda else "no"
    if mixed == "fp16" and not cuda:
        raise TuningError("mixed_precision fp16 needs a CUDA GPU; use auto, no or bf16 on the CPU")
    if cfg.optimizer == "paged_adamw_8bit" and not cuda:
        raise TuningError("optimizer paged_adamw_8bit needs a CUDA GPU; use adamw_torch on the CPU")
    return TrainingArguments(
        output_dir=str(cfg.run_dir), seed=cfg.seed, data_seed=cfg.seed,
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_scheduler, warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay, max_grad_norm=cfg.max_grad_norm, optim=cfg.optimizer,
        bf16=mixed == "bf16", fp16=mixed == "fp16", use_cpu=not cuda,
        logging_strategy="steps", logging_steps=cfg.logging_steps, logging_first_step=True,
        eval_strategy="steps" if has_eval else "no", eval_steps=cfg.eval_steps,
        eval_on_start=has_eval and not resuming,        # the step-0 eval loss is the base model's
        save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=cfg.save_total_limit,
        activation_checkpointing=False,     # enabled on the model in _wrap_lora, the way each method needs
        report_to="none", disable_tqdm=False, remove_unused_columns=False, label_names=["labels"],
        dataloader_num_workers=0, include_num_input_tokens_seen="no",
    )


def _adapter_effect(model: Any, example: Any) -> dict:
    """Loss on one training conversation with and without the adapter: proof it changes the model."""
    import torch

    device = next(p.device for p in model.parameters())
    ids = torch.tensor([example.input_ids], device=device)
    labels = torch.tensor([example.labels], device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            tuned = model(input_ids=ids, labels=labels)
            with model.disable_adapter():
                base = model(input_ids=ids, labels=labels)
    finally:
        model.train(was_training)
    diff = (tuned.logits.float() - base.logits.float()).abs().max().item()
    if not diff > 0:
        raise TuningError("the trained adapter does not change the model's output: "
                          "train more steps or raise learning_rate")
    return {"line": example.line, "base_loss": round(base.loss.item(), 4),
            "adapter_loss": round(tuned.loss.item(), 4), "max_logit_change": round(diff, 4)}


def train(cfg: TrainConfig, token: CancelToken | None = None) -> TrainResult:
    """Run one training to a published adapter. Raises Cancelled, or TuningError/DatasetError/
    RunFolderError/ConfigError/SourceError/ModelLoadError with a message for the user."""
    from accelerate import PartialState

    state = PartialState()
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(cfg.run_dir)
    if state.is_main_process:
        lock.acquire()        # a second run of this name fails here, before touching anything
    token = token or CancelToken(cfg.run_dir)
    restore_signals = token.install_signal_handlers()
    try:
        return _train_locked(cfg, token, state)
    except Cancelled:
        if state.is_main_process:
            last = last_checkpoint(cfg.run_dir)
            write_progress(cfg.run_dir, phase="cancelled", step=last[0] if last else 0, resumable=last is not None,
                           error="cancelled" + (f"; resume continues from step {last[0]}" if last else ""))
        raise
    except BaseException as exc:
        if state.is_main_process:
            write_progress(cfg.run_dir, phase="failed", error=str(exc) or type(exc).__name__)
        raise
    finally:
        restore_signals()
        lock.release()


def _train_locked(cfg: TrainConfig, token: CancelToken, state: Any) -> TrainResult:
    from transformers import AutoTokenizer, Trainer, set_seed

    from engine.adapters import base_fingerprint
    from engine.prompting.codec import TextCodec
    from engine.loading.sources import resolve_source
    from tuning.dataset import ChatDataset, PadCollator, load_dataset, split
    from tuning.output import publish_adapter

    started = time.monotonic()
    run_dir = cfg.run_dir
    resume_from = prepare_run_folder(cfg)
    if state.is_main_process:
        if resume_from is None:
            clear_run(run_dir)
        else:
            remove_incomplete_checkpoints(run_dir)
            truncate_metrics(run_dir, resume_from[0])
        token.clear_stale()
        write_progress(run_dir, phase="loading", step=resume_from[0] if resume_from else 0, max_steps=None)

    source = resolve_source(cfg.base_model)
    tokenizer = AutoTokenizer.from_pretrained(str(source.folder), trust_remote_code=False)
    codec = TextCodec.load(source.folder, tokenizer)
    step0 = resume_from[0] if resume_from else 0
    if state.is_main_process:
        write_progress(run_dir, phase="tokenizing", step=step0, max_steps=None)
    data = load_dataset(cfg.dataset, codec, cfg.max_length)
    data.raise_if_bad()
    train_set, eval_set = split(data.examples, cfg.eval_fraction, cfg.seed)
    if state.is_main_process:     # the page names the phase and how many examples it trains on
        write_progress(run_dir, phase="loading", step=step0, max_steps=None, examples=len(train_set))
    print(f"[tuning] {data.path}: {len(train_set)} train / {len(eval_set)} eval conversations", flush=True)
    fingerprint = base_fingerprint(source.folder)
    run_info = cfg.to_dict() | {"base_fingerprint": fingerprint, "dataset_sha256": data.sha256,
                                "base_model_id": source.model_id}
    seconds_before = 0.0
    if resume_from is not None:
        check_resume_matches(run_dir, run_info)
        seconds_before = float((read_json(resume_from[1] / ELAPSED_FILE) or {}).get("seconds", 0.0))
        print(f"[tuning] resuming from {resume_from[1].name} (step {resume_from[0]})", flush=True)
    elif state.is_main_process:
        write_json_atomic(run_dir / RUN_FILE, run_info | {"run_id": uuid.uuid4().hex})
    token.raise_if_requested()

    model, report = _load_base(cfg, source.folder, source.model_id)
    print(f"[tuning] base: {report.summary()}", flush=True)
    set_seed(cfg.seed)        # the same LoRA initialisation on every run of this config
    model = _wrap_lora(cfg, model)
    trainable, total = model.get_nb_trainable_parameters()
    print(f"[tuning] {cfg.method}: {trainable:,} trainable of {total:,} parameters "
          f"({100 * trainable / total:.3f}%)", flush=True)
    token.raise_if_requested()

    progress = ProgressCallback(run_dir, seconds_before, resume_from[0] if resume_from else None, len(train_set))
    trainer = Trainer(model=model, args=_training_args(cfg, bool(eval_set), resume_from is not None),
                      train_dataset=ChatDataset(train_set), eval_dataset=ChatDataset(eval_set) or None,
                      data_collator=PadCollator(codec.eos),
                      callbacks=[MetricsCallback(run_dir), progress, CancelCallback(token)])
    output = trainer.train(resume_from_checkpoint=str(resume_from[1]) if resume_from else None)
    token.raise_if_requested()

    steps = trainer.state.global_step
    evals = [h for h in trainer.state.log_history if "eval_loss" in h]
    eval_loss = None
    if eval_set:
        if evals and evals[-1].get("step") == steps:
            eval_loss = evals[-1]["eval_loss"]
        else:
            eval_loss = trainer.evaluate()["eval_loss"]
    rows = read_metrics(run_dir) if state.is_main_process else []
    losses = [r["loss"] for r in rows if "loss" in r]
    eval_losses = [r["eval_loss"] for r in rows if "eval_loss" in r]
    seconds = progress.seconds()
    adapter_dir = cfg.adapter_dir
    meta: dict = {}
    if state.is_main_process:
        write_progress(run_dir, phase="saving", step=steps, max_steps=trainer.state.max_steps,
                       examples=len(train_set))
        effect = _adapter_effect(model, train_set[0])
        import peft
        import transformers

        meta = {
            "format": 1, "name": cfg.name, "base_model_id": source.model_id, "base_fingerprint": fingerprint,
            "base_precision": report.rung, "method": cfg.method, "r": cfg.lora_r, "alpha": cfg.lora_alpha,
            "dropout": cfg.lora_dropout, "target_modules": list(cfg.target_modules),
            "max_length": cfg.max_length, "dataset": str(Path(cfg.dataset)), "dataset_sha256": data.sha256,
            "train_examples": len(train_set), "eval_examples": len(eval_set), "steps": steps,
            "epochs": round(trainer.state.epoch or 0.0, 4),
            "train_loss": losses[-1] if losses else output.training_loss,
            "first_loss": losses[0] if losses else None, "eval_loss": eval_loss,
            "base_eval_loss": eval_losses[0] if eval_losses else None,
            "learning_rate": cfg.learning_rate, "seconds": round(seconds, 2),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "run_id": (read_json(run_dir / RUN_FILE) or {}).get("run_id") or uuid.uuid4().hex,
            "resumed_from_step": resume_from[0] if resume_from else None,
            "effect": effect, "versions": {"peft": peft.__version__, "transformers": transformers.__version__},
        }
        adapter_dir = publish_adapter(model, cfg.adapters_dir, cfg.name, meta, overwrite=cfg.overwrite,
                                      abort=token.requested)
        write_progress(run_dir, phase="done", step=steps, max_steps=trainer.state.max_steps,
                       examples=len(train_set), adapter=str(adapter_dir), seconds=round(time.monotonic() - started, 2))
    state.wait_for_everyone()
    return TrainResult(adapter_dir, meta)


def main(argv: Sequence[str] | None = None) -> int:
    from config import ConfigError
    from engine.errors import ModelLoadError, SourceError
    from tuning.dataset import DatasetError
    from tuning.output import PublishError

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return EXIT_OK if argv else EXIT_USER_ERROR
    try:
        if argv[0] != "--config" or len(argv) < 2:
            raise ConfigError("usage: python -m tuning.train --config FILE [--key value ...]")
        cfg = load_config(argv[1], parse_overrides(argv[2:]))
        result = train(cfg)
    except Cancelled:
        _report("cancelled: nothing was published; continue with --resume")
        return EXIT_CANCELLED
    except (ConfigError, DatasetError, RunFolderError, TuningError, SourceError, ModelLoadError, PublishError) as exc:
        _report(str(exc))
        return EXIT_USER_ERROR
    m = result.meta
    if m:
        print(f"[tuning] published {result.adapter_dir}: {m['steps']} steps, loss {m['first_loss']} -> "
              f"{m['train_loss']}, eval loss {m['eval_loss']}, {m['seconds']} s", flush=True)
    return EXIT_OK


def _report(message: str) -> None:
    print(f"[tuning] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
