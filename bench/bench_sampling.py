"""Sampling one token per row of a continuous batch: transformers' processors against engine/serving/sampling.py.

transformers' side is what its continuous batching runs per step with per-request processors: the CB
temperature and top-p warpers (a full sort per row, a scatter back), then ModelRunner's softmax and
torch.multinomial. Ours: TemperatureOrGreedy and NucleusDraw (radix select of the top-p edge, inverse-CDF
draw), then the argmax the batch takes with do_sample=False. Same random float32 logits (a 32768-token vocabulary, the
Mistral v3 size), temperature 0.7, top_p 0.95; the two alternate, median of REPEATS rounds.
Run: `.venv/bin/python -m bench sampling`.
"""
from __future__ import annotations

import statistics
import time

VOCAB = 32768
ROWS = (1, 8, 32)
REPEATS = 7
CALLS = 20


def _theirs(batch: int):
    import torch
    from engine.hf_bridge import ContinuousBatchingTemperatureLogitsWarper, ContinuousBatchingTopPLogitsWarper
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

    temperature = ContinuousBatchingTemperatureLogitsWarper(TemperatureLogitsWarper(0.7))
    top_p = ContinuousBatchingTopPLogitsWarper(TopPLogitsWarper(0.95))
    t_arg, p_arg = (torch.full((batch,), v, dtype=torch.float32).view(torch.int32) for v in (0.7, 0.95))

    def step(scores):
        probs = top_p(temperature(scores, t_arg), p_arg).softmax(-1)
        return torch.multinomial(probs, num_samples=1)
    return step


def _ours(batch: int):
    import torch

    from engine.serving.sampling import NucleusDraw, TemperatureOrGreedy

    temperature, nucleus = TemperatureOrGreedy(), NucleusDraw()
    t_arg, p_arg = (torch.full((batch,), v, dtype=torch.float32).view(torch.int32) for v in (0.7, 0.95))

    def step(scores):
        return nucleus(temperature(scores, t_arg), p_arg).argmax(-1, keepdim=True)
    return step


def _ms_per_step(step, scores) -> float:
    step(scores)
    started = time.perf_counter()
    for _ in range(CALLS):
        step(scores)
    return (time.perf_counter() - started) / CALLS * 1000


def run() -> str:
    import os

    import torch

    torch.manual_seed(0)
    lines = ["## Sampling a continuous batch (CPU)", "",
             f"One step's token choice for B rows of {VOCAB} logits (temperature 0.7, top_p 0.95), milliseconds, "
             f"median of {REPEATS} alternating rounds of {CALLS} calls; torch threads {torch.get_num_threads()}, "
             f"load average {os.getloadavg()[0]:.1f} at start.", "",
             "| rows | transformers' CB processors + multinomial | engine/serving/sampling.py | ratio |", "|---|---|---|---|"]
    for batch in ROWS:
        scores = torch.randn(batch, VOCAB) * 3
        theirs, ours = _theirs(batch), _ours(batch)
        a, b = [], []
        for _ in range(REPEATS):
            a.append(_ms_per_step(theirs, scores))
            b.append(_ms_per_step(ours, scores))
        ta, tb = statistics.median(a), statistics.median(b)
        lines.append(f"| {batch} | {ta:.2f} | {tb:.2f} | **{ta / tb:.1f}x** |")
    lines += ["", "The kept tokens are the same as transformers' TopPLogitsWarper's (tests/test_sampling.py).",
              "Reproduce: `.venv/bin/python -m bench sampling`."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run())
