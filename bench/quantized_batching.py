"""Is continuous batching correct on a bitsandbytes model? Greedy replies of transformers' continuous batching
(`generate_batch`) against one plain `generate` per prompt, on SmolLM2-135M-Instruct (real weights, offline).

Run: `.venv/bin/python bench/quantized_batching.py RUNG [PROMPTS]` with RUNG cpu-float32 | cpu-bfloat16 | 8bit | 4bit.
Measured 2026-11-30 on the 2-core CPU, 12 new tokens, 8 prompts: 8bit 4/8 equal, 4bit 6/8 equal
(cpu-float32: 8/8 at 16 tokens); cpu-bfloat16, same day, 12 tokens: 7/8 equal. engine/serving/batching.py keeps
quantized models on the FIFO queue because of it.
"""
import sys, time, torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
from transformers.generation.configuration_utils import ContinuousBatchingConfig
from engine.loading.demo.gguf import offline_chat_model
from engine.loading.loader import LoadPlan, load_pretrained
d = offline_chat_model()
tok = AutoTokenizer.from_pretrained(d)
rung = sys.argv[1]
plan = LoadPlan(precision="fp16", cpu_dtype=rung[4:]) if rung.startswith("cpu-") else LoadPlan(precision=rung)
model, rep = load_pretrained(AutoModelForCausalLM, d, "s", plan)
qs = ["What is the capital of France?", "Name three colors.", "What is 2+2?", "Who wrote Hamlet?",
      "What is water made of?", "Say hello in Korean.", "What is the largest planet?", "Count to five."]
qs = qs[:int(sys.argv[2])] if len(sys.argv) > 2 else qs
prompts = [tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, return_dict=False) for q in qs]
N = 12
eos = tok.eos_token_id
plain = []
t = time.time()
for p in prompts:
    out = model.generate(torch.tensor([p]), max_new_tokens=N, do_sample=False, pad_token_id=eos, eos_token_id=eos)
    plain.append(out[0, len(p):].tolist())
tp = time.time() - t
gen = GenerationConfig(do_sample=False, max_new_tokens=N, eos_token_id=eos, pad_token_id=eos)
cb = ContinuousBatchingConfig(page_size=64, num_blocks=64, max_batch_tokens=256, max_requests_per_batch=8, auto_switch_to_flash=False)
t = time.time()
res = model.generate_batch(prompts, generation_config=gen, continuous_batching_config=cb, warmup=False)
tc = time.time() - t
byid = {r.request_id: r.generated_tokens for r in res.values()}
outs = [r.generated_tokens for r in res.values()]
same = sum(o in plain for o in outs)
print(f"{rung}: plain seq {tp:.1f}s; CB {tc:.1f}s; greedy equal {same}/{len(qs)}; e.g. {tok.decode(plain[0])!r}")
for o in outs:
    if o not in plain: print("  CB only:", repr(tok.decode(o)))
