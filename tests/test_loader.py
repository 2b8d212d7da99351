"""The precision ladder with real bitsandbytes on CPU, out-of-memory step-down, and the preflight."""
import bitsandbytes as bnb
import pytest
import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, MistralConfig, MistralForCausalLM

from engine.loading.loader import (LoadPlan, _empty, _rung_kwargs, load_pretrained, offload_gpu_bytes, offloaded_modules, plan_rungs)
from engine.errors import ModelLoadError
from engine.loading.memory import is_out_of_memory
from engine.loading.preflight import CUDA_CONTEXT_BYTES, GiB, estimate_rungs, first_fitting_rung

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


@pytest.mark.parametrize("precision, on_gpu, on_cpu", [
    ("auto", ["fp16", "8bit", "4bit", "4bit-offload"], ["cpu-bfloat16", "8bit", "4bit"]),
    ("8bit", ["8bit", "4bit", "4bit-offload"], ["8bit", "4bit"]),
    (["fp16", "4bit"], ["fp16", "4bit"], ["cpu-bfloat16", "4bit"]),
    (["4bit", "fp16"], ["4bit", "fp16"], ["4bit", "cpu-bfloat16"]),
    (["fp16", "4bit-offload"], ["fp16", "4bit-offload"], ["cpu-bfloat16", "4bit"]),
])
def test_a_configured_ladder_plans_exactly_its_rungs(tiny_model_dir, precision, on_gpu, on_cpu):
    """A list is tried as listed (no preflight start, nothing added); one rung starts there and steps down."""
    config = AutoConfig.from_pretrained(tiny_model_dir)
    plan = LoadPlan(precision=precision, budget_bytes=64 * GiB)       # a budget where every rung fits
    assert plan_rungs(config, plan, cuda=True)[0] == on_gpu
    assert plan_rungs(config, plan, cuda=False)[0] == on_cpu


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


# -- the 4-bit + CPU offload rung ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def offload_model_dir(tmp_path_factory):
    """A Mistral with a small vocabulary, so decoder layers (not the embeddings) are what the map splits."""
    folder = tmp_path_factory.mktemp("offload-mistral")
    config = MistralConfig(vocab_size=128, hidden_size=128, intermediate_size=512, num_hidden_layers=4,
                           num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
    torch.manual_seed(0)
    MistralForCausalLM(config).to(torch.bfloat16).save_pretrained(folder)
    return folder


def test_offload_rung_splits_below_the_budget_and_keeps_offloaded_modules_unquantized(offload_model_dir):
    """The dict device map is accelerate's, for the model as bitsandbytes builds it; transformers' own bnb
    quantizer, given that map and our config, quantizes exactly the card side. Only a GPU can show the
    card side placed on the card and the offloaded blocks streamed to it (make gpu-check)."""
    from transformers.quantizers import AutoHfQuantizer

    config = AutoConfig.from_pretrained(offload_model_dir)
    plan = LoadPlan(precision="4bit", context_tokens=64, headroom=0.0)
    four_bit = next(e for e in estimate_rungs(config, budget_bytes=GiB, context_tokens=64, headroom=0.0)
                    if e.rung == "4bit")
    budget = four_bit.needed_bytes           # what the 4bit rung needed, and (say) ran out of
    kwargs = _rung_kwargs("4bit-offload", cuda=True, plan=plan, model_cls=AutoModelForCausalLM, config=config,
                          budget=budget, failed_bytes=budget)
    device_map, q = kwargs["device_map"], kwargs["quantization_config"]
    on_card = [k for k, v in device_map.items() if v == 0]
    offloaded = offloaded_modules(device_map)
    assert "model.embed_tokens" in on_card and any(k.startswith("model.layers.") for k in on_card), device_map
    assert any(k.startswith("model.layers.") for k in offloaded) and "lm_head" in offloaded, device_map
    assert q.llm_int8_enable_fp32_cpu_offload and set(offloaded) <= set(q.llm_int8_skip_modules)
    assert offload_gpu_bytes(config, plan, budget=budget, failed_bytes=budget) <= 0.8 * budget

    # transformers' recipe on the meta model: the quantizer reads the explicit map and skips offloaded modules.
    meta = _empty(AutoModelForCausalLM, config, torch.bfloat16)
    quantizer = AutoHfQuantizer.from_config(q, pre_quantized=False)
    quantizer.validate_environment(device_map=device_map)
    quantizer.preprocess_model(meta, dtype=torch.bfloat16, device_map=device_map)

    def card_side(name):
        return any(name == k or name.startswith(k + ".") for k in on_card)

    for name, module in meta.named_modules():
        if isinstance(module, torch.nn.Linear):
            assert isinstance(module, bnb.nn.Linear4bit) == card_side(name), name

    # The same modules with real weights on the CPU: the card side stands in as CPU (a map naming a CUDA
    # index cannot load without a card), so the flag is off and the skip list alone decides.
    q.llm_int8_enable_fp32_cpu_offload = False
    model = AutoModelForCausalLM.from_pretrained(offload_model_dir, quantization_config=q, dtype=torch.bfloat16,
                                                 device_map={"": "cpu"})
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            if card_side(name):
                assert isinstance(module, bnb.nn.Linear4bit) and module.weight.dtype == torch.uint8, name
            else:
                assert type(module) is torch.nn.Linear and module.weight.dtype == torch.bfloat16, name
    with torch.inference_mode():
        assert model(torch.tensor([[1, 5, 9]])).logits.shape == (1, 3, 128)


def test_offload_rung_prices_offloaded_weights_unquantized(offload_model_dir):
    config = AutoConfig.from_pretrained(offload_model_dir)
    rows = {e.rung: e for e in estimate_rungs(config, budget_bytes=GiB, context_tokens=64, headroom=0.0,
                                              offload_bytes=GiB)}
    quantizable = sum(m.weight.numel() for n, m in MistralForCausalLM(config).named_modules()
                      if isinstance(m, torch.nn.Linear) and "lm_head" not in n)
    assert rows["4bit-offload"].offload_bytes == quantizable * 2
    assert rows["4bit-offload"].needed_bytes < rows["4bit"].needed_bytes
    tight = {e.rung: e for e in estimate_rungs(config, budget_bytes=GiB, context_tokens=64, headroom=0.0,
                                               offload_bytes=quantizable)}   # RAM for 4-bit, not for 16-bit
    assert not tight["4bit-offload"].fits


def test_preflight_counts_every_concurrent_kv_cache_and_the_cuda_context():
    """Mistral-7B at fp16 on a 20 GiB budget: fits with one 4k cache; max_concurrent 8 pushes it to 8-bit."""
    config = MistralConfig(vocab_size=32768, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                           num_attention_heads=32, num_key_value_heads=8)
    one = estimate_rungs(config, budget_bytes=20 * GiB, context_tokens=4096, headroom=0.1)
    eight = estimate_rungs(config, budget_bytes=20 * GiB, context_tokens=4096, headroom=0.1, concurrent=8,
                           context_reserve=CUDA_CONTEXT_BYTES)
    assert eight[0].kv_cache_bytes == 8 * one[0].kv_cache_bytes
    assert eight[0].needed_bytes - one[0].needed_bytes == 7 * one[0].kv_cache_bytes + CUDA_CONTEXT_BYTES
    assert first_fitting_rung(one) == "fp16" and first_fitting_rung(eight) == "8bit"


def test_a_budget_below_every_rung_is_one_line_saying_what_fits(tiny_model_dir):
    config = AutoConfig.from_pretrained(tiny_model_dir)
    with pytest.raises(ModelLoadError) as info:
        plan_rungs(config, LoadPlan(budget_bytes=1024, context_tokens=256, concurrent=4), cuda=False)
    text = str(info.value)
    assert "\n" not in text and text.startswith("the model needs at least") and "4 full-context KV cache(s)" in text
