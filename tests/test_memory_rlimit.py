"""The precision ladder under a real memory limit: a subprocess whose address space (RLIMIT_AS) leaves room
for the bench-size demo model at 8-bit but not at fp32. The fp32 load genuinely runs out of memory, the
loader gives back what it took and the next rung loads and answers. A configured ladder (engine.precision as
a list) steps down the same way, through the rungs it lists only."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys
import psutil, torch
from transformers import AutoConfig, AutoModelForCausalLM
from engine.loading.demo.chat import demo_chat_model
from engine.loading.loader import LoadPlan, load_pretrained, plan_rungs

folder = demo_chat_model("bench")
if len(sys.argv) > 2:  # engine.precision as config.json gives it, through the engine's own plan
    from config import EngineConfig
    from engine.chat import load_plan
    plan = load_plan(EngineConfig(precision=json.loads(sys.argv[2]), cpu_dtype="float32"))
else:
    plan = LoadPlan(cpu_dtype="float32")
rungs, _, _ = plan_rungs(AutoConfig.from_pretrained(folder), plan, cuda=False)  # warm: imports, meta model
torch.zeros(8) @ torch.zeros(8)
file_bytes = (folder / "model.safetensors").stat().st_size          # bf16 on disk; fp32 needs twice that in RAM
base = psutil.Process().memory_info().vms
resource.setrlimit(resource.RLIMIT_AS, (base + int(float(sys.argv[1]) * file_bytes), resource.RLIM_INFINITY))
model, report = load_pretrained(AutoModelForCausalLM, folder, "demo:bench", plan)
with torch.inference_mode():
    token = int(model(torch.tensor([[1, 3, 1032, 4]])).logits[0, -1].argmax())
print(json.dumps({"planned": rungs, "rung": report.rung, "token": token,
                  "attempts": [[a.rung, a.outcome] for a in report.attempts]}))
"""


def run_child(factor: float, precision: object = None) -> dict:
    env = os.environ | {"PYTHONPATH": str(ROOT), "MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_THRESHOLD_": "1048576", "OMP_NUM_THREADS": "1",
                        "TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    argv = [sys.executable, "-c", CHILD, str(factor)] + ([json.dumps(precision)] if precision is not None else [])
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_fp32_runs_out_under_rlimit_and_the_ladder_steps_down_to_a_rung_that_fits():
    result = run_child(2.6)
    assert result["planned"][0] == "cpu-float32"      # preflight (free RAM) chose fp32: the limit is what fails
    first, *rest = result["attempts"]
    assert first[0] == "cpu-float32" and first[1].startswith("out of memory"), result
    assert rest and rest[-1][1] == "loaded" and result["rung"] in ("8bit", "4bit"), result
    assert 0 <= result["token"] < 32768


def test_a_configured_ladder_without_8bit_never_tries_it():
    """engine.precision ["fp16", "4bit"]: full precision (fp32 on this CPU) really runs out under the limit, and
    the loader steps down to 4bit, past the 8bit rung that auto takes next (the test above)."""
    result = run_child(2.6, ["fp16", "4bit"])
    assert result["planned"] == ["cpu-float32", "4bit"], result
    assert [rung for rung, _ in result["attempts"]] == ["cpu-float32", "4bit"], result
    assert result["attempts"][0][1].startswith("out of memory") and result["attempts"][1][1] == "loaded", result
    assert result["rung"] == "4bit"
    assert 0 <= result["token"] < 32768
