"""The next token for every row of a continuous batch: temperature, top-p and the draw in a few passes.

transformers' continuous batching samples with a full sort of each row for top-p, a scatter back, a second
softmax and torch.multinomial: on the 2-core CPU, for 8 rows of a 32768-token vocabulary, about a quarter of
a bench-model step (`python -m bench sampling` compares the two). Here the top-p threshold is found by a
radix select on the probabilities' bits (three bucketed sums, no sort) and the token is drawn by inverse CDF
(one uniform number per row, a cumulative sum and a binary search), which is the same distribution as
multinomial over the kept tokens. The kept set is transformers' (the smallest set of most likely tokens
holding top_p of the mass) except that ties at the edge are all kept.

Rows with temperature 0 take the argmax, so greedy requests share the batch with sampled ones; they come
with top_p 0 (the nucleus shrunk to the most likely token), and a step whose rows are all greedy skips
both processors, leaving the pick to the batch's own argmax. A request with min_new_tokens cannot end
before it: its row's end tokens are masked (as MinNewTokensLogitsProcessor does for `generate`), so the
reply is as long as asked and made of text, not of ignored end tokens. The temperature and top-p
processors hand the chosen token on as the only finite score, and the batch's own argmax
(`do_sample=False`) reads it back.
"""
from __future__ import annotations

import torch
from transformers import LogitsProcessorList
from engine.hf_bridge import (ContinuousBatchingLogitsProcessor, ContinuousBatchingLogitsProcessorList,
                              prompt_tokens_moved)

def _only(scores: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """-inf everywhere but `index` ([B, 1]) in each row."""
    return torch.full_like(scores, float("-inf")).scatter_(-1, index, 0.0)


class _PerRequestFloat(ContinuousBatchingLogitsProcessor):
    """One float per request (`key`, default 1.0), carried in transformers' int32 argument rows."""

    key = ""
    ignored_kwargs = ()

    def fill_defaults(self, int32_tensor: torch.Tensor) -> None:
        int32_tensor.copy_(torch.ones_like(int32_tensor, dtype=torch.float32).view(dtype=torch.int32))

    def prepare_tensor_args(self, requests) -> torch.Tensor:
        values = [float(r.state.logit_processor_kwargs.get(self.key, 1.0)) for r in requests]
        return torch.tensor(values, dtype=torch.float32).view(dtype=torch.int32)

    @staticmethod
    def values(scores: torch.Tensor, tensor_arg: torch.Tensor) -> torch.Tensor:
        """[B, 1] floats for the rows of `scores`."""
        return tensor_arg[: scores.size(0)].view(dtype=torch.float32).unsqueeze(-1)


def tokens_generated(state) -> int:
    """Reply tokens so far, counting those a soft reset moved into the prompt (transformers' requests.py)."""
    moved = prompt_tokens_moved(state)
    return len(state.generated_tokens) + (len(state.initial_tokens) - moved if moved else 0)


class HoldEnd(ContinuousBatchingLogitsProcessor):
    """Masks the end tokens of each row whose request has fewer than its `min_new_tokens` reply tokens.

    With asynchronous batching (CUDA graphs) a step is prepared before the previous token is counted, so
    the hold may last one token longer; the reply is never shorter than asked."""

    supported_kwargs, ignored_kwargs = {"min_new_tokens": int}, ()

    def __init__(self, end_ids: tuple[int, ...]):
        self.end_ids = torch.tensor(end_ids, dtype=torch.long)

    def fill_defaults(self, int32_tensor: torch.Tensor) -> None:
        int32_tensor.zero_()

    @staticmethod
    def _holds(state) -> int:
        minimum = state.logit_processor_kwargs.get("min_new_tokens", 0)
        return int(minimum > 0 and tokens_generated(state) < minimum)

    def prepare_tensor_args(self, requests) -> torch.Tensor:
        return torch.tensor([self._holds(r.state) for r in requests], dtype=torch.int32)

    def __call__(self, scores: torch.Tensor, tensor_arg: torch.Tensor) -> torch.Tensor:
        hold = tensor_arg[: scores.size(0)].bool().unsqueeze(-1)           # [B, 1]
        if not bool(hold.any()):          # the usual step: nobody asked for a minimum
            return scores
        ends = self.end_ids.to(scores.device)
        scores[:, ends] = torch.where(hold, float("-inf"), scores[:, ends])   # only the few end columns
        return scores


class TemperatureOrGreedy(_PerRequestFloat):
    """Divides each row by its temperature; a row with temperature 0 keeps only its most likely token."""

    key, supported_kwargs = "temperature", {"temperature": float}

    def __call__(self, scores: torch.Tensor, tensor_arg: torch.Tensor) -> torch.Tensor:
        temperature = self.values(scores, tensor_arg)
        greedy = temperature <= 0
        how_many = int(greedy.sum())
        if how_many == scores.size(0):      # all greedy: the batch's own argmax is every row's token
            return scores
        scaled = scores / torch.where(greedy, torch.ones_like(temperature), temperature)
        if how_many == 0:
            return scaled
        return torch.where(greedy, _only(scores, scores.argmax(-1, keepdim=True)), scaled)


class NucleusDraw(_PerRequestFloat):
    """Keeps each row's top_p nucleus and draws one token from it; the drawn token is the only finite score."""

    key, supported_kwargs = "top_p", {"top_p": float}

    def __call__(self, scores: torch.Tensor, tensor_arg: torch.Tensor) -> torch.Tensor:
        top_p = self.values(scores, tensor_arg)
        if bool((top_p <= 0).all()):       # greedy rows only (top_p 0): the argmax after this is the answer
            return scores
        probs = scores.softmax(-1)
        top = probs.max(-1, keepdim=True)
        if bool((top.values >= top_p).all()):     # every row's nucleus is its one most likely token (greedy rows)
            return _only(scores, top.indices)
        kept = probs * (probs >= nucleus_threshold(probs, top_p, top.values))
        return _only(scores, draw(kept))


def nucleus_threshold(probs: torch.Tensor, top_p: torch.Tensor, top: torch.Tensor | None = None) -> torch.Tensor:
    """[B, 1]: the largest t with mass(probs < t) <= 1 - top_p (so probs >= t holds at least top_p), at most
    each row's largest probability; 0 where top_p >= 1. A radix select on the float32 bit patterns (for
    non-negative floats, their order as integers): one pass fixes the top 16 bits of t from each row's mass
    per bucket, two more fix the next 8 and the last 8 inside the chosen bucket; no sort. The mass below is
    summed from the small buckets up, as transformers' ascending cumulative sum counts it, and the edge is
    its edge up to float32 rounding of those sums (tests/test_sampling.py). `top`: each row's largest
    probability, if known."""
    probs = probs.float()
    budget = 1 - top_p                                           # [B, 1] mass that may be left out
    bits = probs.view(torch.int32)
    # Level 1: sign, exponent and 7 mantissa bits; every probability (<= 1.0) is under 0x3F81 (the clamp
    # only keeps a NaN from indexing out of range).
    below = _mass_below(probs, (bits >> 16).clamp(0, 0x3F80), 0x3F81)
    prefix = (below <= budget).sum(-1, keepdim=True) - 1         # the last bucket the nucleus may start in
    base = below.gather(-1, prefix)
    for shift in (8, 0):                                         # levels 2 and 3, inside the chosen bucket
        inside = torch.where((bits >> (shift + 8)) == prefix.to(torch.int32), probs, 0)
        below = base + _mass_below(inside, (bits >> shift) & 0xFF, 256)
        digit = (below <= budget).sum(-1, keepdim=True) - 1
        base, prefix = below.gather(-1, digit), (prefix << 8) | digit
    # Never above the most likely token, which is always kept (top_p 0 included), as in transformers.
    top = probs.amax(-1, keepdim=True) if top is None else top.float()
    edge = torch.minimum(prefix.to(torch.int32).view(torch.float32), top)
    return torch.where(top_p >= 1, 0, edge)


def _mass_below(weights: torch.Tensor, buckets: torch.Tensor, count: int) -> torch.Tensor:
    """[B, count]: per row, the weight in all buckets below each bucket."""
    mass = weights.new_zeros(weights.size(0), count).scatter_add_(-1, buckets.long(), weights).cumsum(-1)
    return torch.cat([mass.new_zeros(mass.size(0), 1), mass[:, :-1]], -1)


def draw(weights: torch.Tensor) -> torch.Tensor:
    """[B, 1] indices drawn in proportion to the non-negative `weights` ([B, V], each row with some mass)."""
    cumulative = weights.cumsum(-1)
    total = cumulative[:, -1:]
    # rand < 1 by at least 2**-24, so the product stays below the total: the first sum above it is at a kept
    # token (one with weight), never past the last.
    point = torch.rand_like(total) * total
    return torch.searchsorted(cumulative, point, right=True)


def batch_sampler(end_ids: tuple[int, ...]) -> ContinuousBatchingLogitsProcessorList:
    """The processor list for transformers' continuous batching (set as manager.logit_processor before it
    starts); per request: min_new_tokens (holding back `end_ids`), temperature (0 = greedy) and top_p."""
    processors = ContinuousBatchingLogitsProcessorList(
        LogitsProcessorList([HoldEnd(end_ids), TemperatureOrGreedy(), NucleusDraw()]))
    processors.tensors_required = 3   # one argument row each; set by transformers only for its own converted ones
    return processors
