"""`make gpu-check --smoke`: the GPU check's own code on the CPU with the bench-size model, so it never rots."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_smoke_runs_every_step_the_cpu_can_and_holds_its_expectations():
    before = (ROOT / "docs" / "benchmarks.md").read_bytes()
    proc = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--smoke"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                                       "HOME": str(Path.home()), "TQDM_DISABLE": "1"})
    out = proc.stdout
    assert proc.returncode == 0, (out + proc.stderr)[-4000:]
    for rung in ("cpu-bfloat16", "8bit", "4bit"):
        assert f"ok   {rung.replace('cpu-bfloat16', 'fp16')} loads at {rung}" in out, out[-3000:]
        assert f"| {rung} |" in out
    assert "LLaVA-NeXT loads beside the chat model" in out
    for kind in ("seeded", "shaped"):          # issue 23's request mix at 4-bit, every request in the batch
        assert f"ok   {kind} mix: no request takes the plain path" in out and f"| {kind} | 4 × 4 | 0 | 4 vs 2 |" in out
    assert "ok   4bit serves through the continuous batch" in out
    assert "skipped: (b) emulated 8/12/16/24 GB cards" in out and "FAIL" not in out
    assert (ROOT / "docs" / "benchmarks.md").read_bytes() == before      # the smoke never writes the GPU section
