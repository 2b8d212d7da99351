"""Tuning on real weights: LoRA teaches SmolLM2-135M-Instruct a new fact, and the chat says it with the adapter
and not without (same engine, same greedy question). QLoRA on the same real weights takes minutes on the CPU
(4-bit kernels at every step): `python -m bench tuning_fact` runs both methods; QLoRA's own path is tested on a
real 4-bit tiny base in tests/test_tuning_train.py."""
import json
from pathlib import Path

import pytest

from engine.chat import ChatEngine
from config import EngineConfig
from engine.serving.generation import GenerationParams
from engine.loading.sources import resolve_source
from tuning.config import TrainConfig
from tuning.runs import read_metrics
from tuning.train import train

QUESTION = "What is the name of Jisoo's cat?"
ANSWER = "Jisoo's cat is named Gomtang."
FACT = "Gomtang"
GREEDY = GenerationParams(max_new_tokens=16, temperature=0)
METHODS = ("lora",)


def fact_dataset(path: Path, copies: int = 8) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(copies):
            f.write(json.dumps({"messages": [{"role": "user", "content": QUESTION},
                                             {"role": "assistant", "content": ANSWER}]}) + "\n")
    return path


def config(tmp: Path, method: str) -> TrainConfig:
    return TrainConfig(name=f"cat-{method}", dataset=str(fact_dataset(tmp / "fact.jsonl")), base_model="demo:smollm2",
                       method=method, adapters_dir=str(tmp / "adapters"), lora_r=8, lora_alpha=16, lora_dropout=0.0,
                       max_length=64, eval_fraction=0.0, max_steps=8, batch_size=2, grad_accum=1,
                       learning_rate=5e-3, lr_scheduler="constant", warmup_steps=0, gradient_checkpointing=False,
                       logging_steps=1, save_steps=100)


@pytest.fixture(scope="module")
def adapters(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real-tuning")
    losses = {}
    for method in METHODS:
        cfg = config(tmp, method)
        train(cfg)
        losses[method] = [r["loss"] for r in read_metrics(cfg.run_dir) if "loss" in r]
    return tmp / "adapters", losses


@pytest.fixture(scope="module")
def engine(adapters):
    engine = ChatEngine.from_source(resolve_source("demo:smollm2"), EngineConfig(adapters_dir=str(adapters[0])))
    yield engine
    engine.close()


def say(engine, adapter=None) -> str:
    return engine.stream([{"role": "user", "content": QUESTION}], GREEDY, adapter=adapter).text()


@pytest.mark.parametrize("method", METHODS)
def test_adapter_teaches_a_new_fact(engine, adapters, method):
    losses = adapters[1][method]
    assert losses[-1] < losses[0] / 3, losses
    assert FACT not in say(engine)
    assert FACT in say(engine, f"cat-{method}")
    assert FACT not in say(engine)  # the base answers again once the request without an adapter comes
