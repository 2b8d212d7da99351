"""The precision ladder with real bitsandbytes on CPU, out-of-memory step-down, and the preflight."""
import bitsandbytes as bnb
import pytest
import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, MistralConfig

from engine.loader import LoadPlan, ModelLoadError, is_out_of_memory, load_pretrained, plan_rungs
from engine.preflight import GiB, estimate_rungs, first_fitting_rung

PROMPT = torch.tensor([[1, 3, 1032, 4]])


def quantized_linears(model, kind):
    return sum(isinstance(m, kind) for m in model.modules())


def next_token(model):
    with torch.inference_mode():
        return int(model(PROMPT).logits[0, -1].argmax())


@pytest.mark.parametrize("precision, rung, layer", [
    ("fp16", "cpu-bfloat16", None),
    ("8bit", "8bit", bnb.nn.Linear8bitLt),
    ("4bit", "4bit", bnb.nn.Linear4bit),
])
def test_each_precision_loads_for_real(tiny_model_dir, precision, rung, layer):
    model, report = load_pretrained(AutoModelForCausalLM, tiny_model_dir, "demo:tiny", LoadPlan(precision=precision))
    assert report.rung == rung and report.device == "cpu"
    assert [a.outcome for a in report.attempts] == ["loaded"]
    assert report.cpu_bytes > 0 and report.gpu_bytes == 0
    if layer is None:
        assert next(model.parameters()).dtype == torch.bfloat16
        assert quantized_linears(model, bnb.nn.Linear4bit) == 0
    else:
        assert quantized_linears(model, layer) == 2 * 7  # q,k,v,o,gate,up,down in 2 layers; lm_head kept
    assert 0 <= next_token(model) < model.config.vocab_size


def test_out_of_memory_at_fp16_lands_on_8bit(tiny_model_dir, monkeypatch):
    """Fault injection: the full-precision load raises the CUDA OOM error; the loader steps down for real."""
    real = transformers.AutoModelForCausalLM.from_pretrained.__func__
    calls = []

    def flaky(cls, *args, **kwargs):
        calls.append(kwargs.get("quantization_config"))
        if kwargs.get("quantization_config") is None:
            torch.zeros(1024)  # something was allocated before the failure
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 14.00 GiB")
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", classmethod(flaky))
    model, report = load_pretrained(AutoModelForCausalLM, tiny_model_dir, "demo:tiny", LoadPlan(precision="fp16"))
    assert report.rung == "8bit"
    assert [a.rung for a in report.attempts] == ["cpu-bfloat16", "8bit"]
    assert report.attempts[0].outcome.startswith("out of memory")
    assert "ran out of memory" in report.reason
    assert quantized_linears(model, bnb.nn.Linear8bitLt) == 14
    assert len(calls) == 2


def test_out_of_memory_at_every_rung_is_a_clear_error(tiny_model_dir, monkeypatch):
    def always(cls, *args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 99 bytes")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", classmethod(always))
    with pytest.raises(ModelLoadError, match=r"could not be loaded at any precision .*cpu-bfloat16: out of memory"
                                             r".*8bit: out of memory.*4bit: out of memory"):
        load_pretrained(AutoModelForCausalLM, tiny_model_dir, "demo:tiny", LoadPlan())


def test_other_errors_are_not_swallowed(tiny_model_dir, monkeypatch):
    def broken(cls, *args, **kwargs):
        raise ValueError("header of model.safetensors is corrupt")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", classmethod(broken))
    with pytest.raises(ValueError, match="corrupt"):
        load_pretrained(AutoModelForCausalLM, tiny_model_dir, "demo:tiny", LoadPlan())


def test_budget_makes_preflight_choose_the_rung(tiny_model_dir):
    """A budget between the 8-bit and full-precision needs loads 8-bit; between 4-bit and 8-bit loads 4-bit."""
    config = AutoConfig.from_pretrained(tiny_model_dir)
    plan = LoadPlan(context_tokens=256, headroom=0.0)
    sizes = {e.rung: e.needed_bytes for e in estimate_rungs(config, budget_bytes=GiB, context_tokens=256, headroom=0.0)}
    assert sizes["fp16"] > sizes["8bit"] > sizes["4bit"]
    for budget, expected in [((sizes["fp16"] + sizes["8bit"]) // 2, "8bit"),
                             ((sizes["8bit"] + sizes["4bit"]) // 2, "4bit"),
                             (sizes["fp16"] * 2, "cpu-bfloat16")]:
        model, report = load_pretrained(AutoModelForCausalLM, tiny_model_dir, "demo:tiny",
                                        LoadPlan(budget_bytes=budget, context_tokens=256, headroom=0.0))
        assert report.rung == expected, (budget, sizes)
        assert "engine.max_gpu_memory" in report.reason
    with pytest.raises(ModelLoadError, match="needs at least"):
        plan_rungs(config, LoadPlan(budget_bytes=sizes["4bit"] // 2, headroom=0.0), cuda=False)


@pytest.mark.parametrize("card_gib, expected", [(8, "4bit"), (12, "8bit"), (16, "8bit"), (24, "fp16")])
def test_mistral_7b_preflight_per_card(card_gib, expected):
    """The full-size Mistral-7B architecture (no weights) on consumer cards, 4k context, 10% headroom."""
    config = MistralConfig(vocab_size=32768, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                           num_attention_heads=32, num_key_value_heads=8)
    estimates = estimate_rungs(config, budget_bytes=int(card_gib * 0.95 * GiB), context_tokens=4096, headroom=0.1)
    assert first_fitting_rung(estimates) == expected
    fp16 = estimates[0]
    assert 13.0 * GiB < fp16.weight_bytes < 14.0 * GiB  # 7.25B parameters at 2 bytes
    assert 0.45 * GiB < fp16.kv_cache_bytes < 0.55 * GiB


def test_out_of_memory_classifier():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(KeyboardInterrupt())
