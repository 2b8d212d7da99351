"""Train real LoRA / QLoRA adapters on the tiny demo model (CPU, seconds) and use them in a ChatEngine."""
import json
from pathlib import Path

import pytest

from engine.adapters import AdapterRegistry, list_adapters
from engine.chat import ChatEngine
from config import EngineConfig
from engine.serving.generation import GenerationParams
from engine.loading.sources import resolve_source
from tuning.config import TrainConfig
from tuning.output import PublishError, check_adapter_files
from tuning.runs import RunFolderError, read_metrics
from tuning.train import train

REPLIES = [
    [{"role": "user", "content": "안녕하세요!"}, {"role": "assistant", "content": "반갑습니다. 튜닝된 도우미입니다."}],
    [{"role": "user", "content": "Hello!"}, {"role": "assistant", "content": "Hi, I am the tuned assistant."}],
]
PROMPT = [{"role": "user", "content": "안녕하세요!"}]
GREEDY = GenerationParams(max_new_tokens=12, temperature=0)


def repeated_dataset(path: Path, copies: int = 8) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(copies):
            for messages in REPLIES:
                f.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
    return path


def tiny_config(tmp: Path, **changes) -> TrainConfig:
    base = dict(name="tiny", dataset=str(repeated_dataset(tmp / "data.jsonl")), base_model="demo:tiny",
                adapters_dir=str(tmp / "adapters"), lora_r=8, lora_alpha=16, lora_dropout=0.0, max_length=128,
                eval_fraction=0.125, max_steps=30, batch_size=4, grad_accum=1, learning_rate=0.02,
                lr_scheduler="constant", warmup_steps=0, gradient_checkpointing=False, logging_steps=5,
                eval_steps=15, save_steps=15)
    return TrainConfig(**(base | changes))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lora")
    cfg = tiny_config(tmp)
    return cfg, train(cfg)


@pytest.fixture(scope="module")
def engine():
    engine = ChatEngine.from_source(resolve_source("demo:tiny"), EngineConfig())
    yield engine
    engine.close()


def test_loss_goes_down_and_metrics_are_logged(trained):
    cfg, result = trained
    rows = read_metrics(cfg.run_dir)
    losses = [r["loss"] for r in rows if "loss" in r]
    assert [r["step"] for r in rows if "loss" in r] == [1, 5, 10, 15, 20, 25, 30]
    assert all("lr" in r for r in rows if "loss" in r)
    evals = [r for r in rows if "eval_loss" in r]
    assert evals[0]["step"] == 0 and evals[-1]["step"] == 30
    assert losses[-1] < losses[0] - 0.3, losses
    assert evals[-1]["eval_loss"] < evals[0]["eval_loss"]
    print(f"\nLoRA loss {losses[0]:.3f} -> {losses[-1]:.3f}, eval {evals[0]['eval_loss']:.3f} -> "
          f"{evals[-1]['eval_loss']:.3f}, {result.meta['seconds']} s")


def test_published_adapter_is_complete_and_described(trained):
    cfg, result = trained
    folder = Path(cfg.adapters_dir) / "tiny"
    assert result.adapter_dir == folder.resolve()
    assert sorted(p.name for p in folder.iterdir()) == ["adapter_config.json", "adapter_model.safetensors", "meta.json"]
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["method"] == "lora" and meta["r"] == 8 and meta["alpha"] == 16 and meta["steps"] == 30
    assert meta["base_model_id"] == "demo:tiny" and meta["base_fingerprint"].startswith("sha256:")
    assert meta["train_examples"] == 14 and meta["eval_examples"] == 2 and meta["eval_loss"] is not None
    assert meta["effect"]["adapter_loss"] < meta["effect"]["base_loss"]
    assert [a.name for a in list_adapters(cfg.adapters_dir)] == ["tiny"]


def test_adapter_changes_greedy_output_and_base_is_restored_exactly(trained, engine):
    cfg, _ = trained
    # the engine's own registry, over this test's adapters folder (one registry per model)
    registry = engine.adapters = AdapterRegistry(cfg.adapters_dir, engine.report.folder, engine.model_id)
    base = engine.stream(PROMPT, GREEDY).text()
    tuned = engine.stream(PROMPT, GREEDY, adapter="tiny").text()
    again = engine.stream(PROMPT, GREEDY).text()
    assert tuned != base
    assert again == base
    gated = registry.gated(engine.model, engine.generator.stream(PROMPT, GREEDY), "tiny")
    assert gated.text() == tuned and gated.stats.completion_tokens > 0
    assert registry.gated(engine.model, lambda: engine.generator.stream(PROMPT, GREEDY), None).text() == base
    assert registry.unload(engine.model, "tiny") and registry.loaded() == []
    assert engine.stream(PROMPT, GREEDY).text() == base
    print(f"\nbase: {base!r}\nadapter: {tuned!r}")


def test_existing_adapter_or_run_is_never_silently_replaced(trained):
    cfg, _ = trained
    with pytest.raises(RunFolderError, match="already exists"):
        train(cfg)
    with pytest.raises(RunFolderError, match="already exists"):
        train(cfg.with_overrides(resume=True))


def test_an_adapter_that_changes_nothing_is_not_published(trained, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    cfg, _ = trained
    copy = tmp_path / "zero"
    shutil.copytree(Path(cfg.adapters_dir) / "tiny", copy)
    check_adapter_files(copy)
    weights = load_file(copy / "adapter_model.safetensors")
    save_file({k: (v * 0 if "lora_B" in k else v) for k, v in weights.items()}, copy / "adapter_model.safetensors")
    with pytest.raises(PublishError, match="still zero"):
        check_adapter_files(copy)


def test_qlora_trains_on_a_real_4bit_base(tmp_path, engine):
    cfg = tiny_config(tmp_path, name="tiny-q", method="qlora", gradient_checkpointing=True, max_steps=8,
                      eval_fraction=0.0, logging_steps=1, save_steps=100)
    result = train(cfg)
    meta = result.meta
    assert meta["method"] == "qlora" and meta["base_precision"] == "4bit" and meta["steps"] == 8
    losses = [r["loss"] for r in read_metrics(cfg.run_dir) if "loss" in r]
    assert len(losses) == 8 and losses[-1] < losses[0]
    # A QLoRA adapter belongs to the same base: it loads into the unquantized chat model too.
    registry = engine.adapters = AdapterRegistry(cfg.adapters_dir, engine.report.folder, engine.model_id)
    base = engine.stream(PROMPT, GREEDY).text()
    tuned = engine.stream(PROMPT, GREEDY, adapter="tiny-q").text()
    registry.unload(engine.model, "tiny-q")
    assert tuned != base and engine.stream(PROMPT, GREEDY).text() == base
    print(f"\nQLoRA loss {losses[0]:.3f} -> {losses[-1]:.3f} in {meta['seconds']} s")


def test_prepare_model_for_kbit_training_is_used_for_qlora(tmp_path, monkeypatch):
    import peft

    calls = []
    real = peft.prepare_model_for_kbit_training

    def spy(model, **kwargs):
        calls.append((getattr(model, "is_loaded_in_4bit", False), kwargs))
        return real(model, **kwargs)

    monkeypatch.setattr(peft, "prepare_model_for_kbit_training", spy)
    cfg = tiny_config(tmp_path, name="spy", method="qlora", gradient_checkpointing=True, max_steps=1,
                      eval_fraction=0.0, save_steps=100)
    train(cfg)
    assert calls and calls[0][0] is True and calls[0][1]["use_gradient_checkpointing"] is True
