"""The next token for every row of a continuous batch: temperature, top-p and the draw in a few passes.

transformers' continuous batching samples with a full sort of each row for top-p, a scatter back, a second
softmax and torch.multinomial: on the 2-core CPU, for 8 rows of a 32768-token vocabulary, about a quarter of
a bench-model step (`python -m bench sampling` compares the two). Here the top-p threshold is found by
bisection (24 masked sums, no sort) and the token is drawn by inverse CDF (one uniform number per row, a
cumulative sum and a binary search), which is the same distribution as multinomial over the kept tokens. The
kept set is transformers' (the smallest set of most likely tokens holding top_p of the mass) except that
ties at the edge are all kept and the edge is found to a relative 1e-6.

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
from transformers.generation.continuous_batching.cb_logits_processors import (
    ContinuousBatchingLogitsProcessor, ContinuousBatchingLogitsProcessorList)

BISECTION_STEPS = 24


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
    moved = getattr(state, "_true_initial_tokens", 0)
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
    """[B, 1]: the largest t with mass(probs >= t) >= top_p, found to a relative 1e-6 (24 geometric bisection
    steps over at most V / (1 - top_p)); 0 where top_p >= 1. `top`: each row's largest probability, if known."""
    vocab = probs.size(-1)
    # Every token below (1 - p) / V is dropped: together they hold at most 1 - p.
    low = ((1 - top_p).clamp(min=0) / vocab).to(probs.dtype)
    high = probs.amax(-1, keepdim=True) if top is None else top
    if bool((top_p >= 1).all()):
        return torch.zeros_like(high)
    low = low.clamp(min=torch.finfo(probs.dtype).tiny)
    for _ in range(BISECTION_STEPS):
        mid = (low * high).sqrt()    # geometric: the edge is found relative to its own size, tail or head
        # The mass left out, as transformers counts it (<= 1 - top_p): the small tail sums more exactly.
        enough = torch.where(probs < mid, probs, 0).sum(-1, keepdim=True) <= 1 - top_p
        low, high = torch.where(enough, mid, low), torch.where(enough, high, mid)
    top_holds = torch.where(probs < high, probs, 0).sum(-1, keepdim=True) <= 1 - top_p
    return torch.where(top_p >= 1, 0, torch.where(top_holds, high, low))


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
