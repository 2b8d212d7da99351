"""The next token for every row of a continuous batch: penalties, temperature, top-k, top-p and the draw.

transformers' continuous batching samples with a full sort of each row for top-p, a scatter back, a second
softmax and torch.multinomial: on the 2-core CPU, for 8 rows of a 32768-token vocabulary, about a quarter of
a bench-model step (`python -m bench sampling` compares the two). Here the top-p threshold is found by a
radix select on the probabilities' bits (three bucketed sums, no sort) and the token is drawn by inverse CDF
(one uniform number per row, a cumulative sum and a binary search; a seeded row by an exponential race),
which is the same distribution as multinomial over the kept tokens. The kept set is transformers' (the
smallest set of most likely tokens holding top_p of the mass) except that ties at the edge are all kept.

Rows with temperature 0 take the argmax, so greedy requests share the batch with sampled ones; they come
with top_p 0 (the nucleus shrunk to the most likely token), and a step whose rows are all greedy skips
both processors, leaving the pick to the batch's own argmax. A request with min_new_tokens cannot end
before it: its row's end tokens are masked (as MinNewTokensLogitsProcessor does for `generate`), so the
reply is as long as asked and made of text, not of ignored end tokens. The temperature and top-p
processors hand the chosen token on as the only finite score, and the batch's own argmax
(`do_sample=False`) reads it back.

Per request, when the list is built with them (batch_sampler): a `seed` (NucleusDraw: the row races its
tokens with its own torch.Generator, so a seeded reply is the same whatever else shares its steps, up to a
flip where the batch's rounding swaps the two leading tokens), `top_k` (TopK, before the nucleus, as in
`generate`) and the repetition, presence and frequency penalties (Penalties and ReplyPenalties, before the
temperature, as vLLM and OpenAI apply them); and, from the batcher's RowExtras by request id (`rows`),
logprobs (LogprobRows: the row's log-softmax between the repetition and the presence penalty, where `generate`
reports it on the plain path) and a JSON schema or forced tool call (GrammarRows: the row's own llguidance
mask, before the temperature, so greedy and sampled rows alike pick an allowed token). transformers gives each
processor one int32 argument row per request; what does not fit in it (a row's generator, its token history,
its matcher) is handed from prepare_tensor_args to __call__ on the batching thread, which is in order for
synchronous batching only (see Penalties).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from transformers import LogitsProcessorList
from engine.prompting.constrained import allowed_tokens
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


class Penalties(ContinuousBatchingLogitsProcessor):
    """Per row: transformers' repetition_penalty over the prompt and the reply (a seen token's score is divided
    by it when positive, multiplied when negative: RepetitionPenaltyLogitsProcessor), then OpenAI's presence and
    frequency penalties over the reply only (engine/serving/penalties.py). Applied before the temperature, as vLLM
    and OpenAI do; the plain path (`generate`) applies presence and frequency after its warpers, which differs
    only for sampled requests.

    A row's token history does not fit the one int32 argument row transformers gives a processor, so
    prepare_tensor_args, which transformers runs on the batching thread when it lays a step out, also keeps that
    step's histories here, and __call__, run by the same thread in that step's forward, reads them. That order
    holds for synchronous batching only. With asynchronous batching (transformers turns it on with CUDA graphs,
    for flash attention on a GPU) the next step is laid out while the previous one runs, before its token is
    known (the history would miss the last token), and a replayed CUDA graph or a compiled step never runs
    __call__'s Python at each step: the batcher then keeps penalised requests on the plain path
    (engine/serving/batching._synchronous, ContinuousBatcher.plain_path_reasons)."""

    supported_kwargs = {"repetition_penalty": float, "presence_penalty": float, "frequency_penalty": float}
    ignored_kwargs = ()
    PROMPT = "_penalty_prompt"        # (prompt length, its distinct ids), kept with the request once computed

    def __init__(self):
        self._step: tuple | None = None   # this step's penalised rows, from prepare_tensor_args to __call__

    def fill_defaults(self, int32_tensor: torch.Tensor) -> None:
        int32_tensor.zero_()

    @staticmethod
    def _values(kwargs: dict) -> tuple[float, float, float]:
        return (float(kwargs.get("repetition_penalty", 1.0)), float(kwargs.get("presence_penalty", 0.0)),
                float(kwargs.get("frequency_penalty", 0.0)))

    def _prompt_ids(self, state) -> torch.Tensor:
        """The distinct ids of the real prompt, computed once per request (again after a soft reset)."""
        moved = prompt_tokens_moved(state)
        length = moved or len(state.initial_tokens)
        cached = state.logit_processor_kwargs.get(self.PROMPT)
        if cached is None or cached[0] != length:
            cached = (length, torch.tensor(state.initial_tokens[:length], dtype=torch.long).unique())
            state.logit_processor_kwargs[self.PROMPT] = cached
        return cached[1]

    @staticmethod
    def _reply(state) -> list[int]:
        """The reply so far, counting tokens a soft reset moved into the prompt."""
        moved = prompt_tokens_moved(state)
        return (state.initial_tokens[moved:] if moved else []) + state.generated_tokens

    def prepare_tensor_args(self, requests) -> torch.Tensor:
        flags, rows, reps, seen, replies, weights = [], [], [], [], [], []
        for i, r in enumerate(requests):
            rep, presence, frequency = self._values(r.state.logit_processor_kwargs)
            on = (rep, presence, frequency) != (1.0, 0.0, 0.0)
            flags.append(int(on))
            if not on:
                continue
            reply, counts = torch.tensor(self._reply(r.state), dtype=torch.long).unique(return_counts=True)
            rows.append(i)
            reps.append(rep)
            seen.append(torch.cat([self._prompt_ids(r.state), reply]).unique() if rep != 1.0 else reply[:0])
            replies.append(reply)
            weights.append(presence + frequency * counts.float())
        self._step = None
        if rows:
            self._step = (torch.tensor(rows).unsqueeze(-1), torch.tensor(reps).unsqueeze(-1), _pad(seen),
                          _pad(replies), _pad(weights, zero=True))
        return torch.tensor(flags, dtype=torch.int32)

    def __call__(self, scores: torch.Tensor, tensor_arg: torch.Tensor) -> torch.Tensor:
        """The repetition penalty (ReplyPenalties applies presence and frequency next, after LogprobRows has read
        the scores, as on the plain path). Only the seen tokens' scores are read and written ([n, ids] gathers,
        no [n, V] pass)."""
        if self._step is None:
            return scores
        rows, rep, seen = (t.to(scores.device) for t in self._step[:3])
        old = scores[rows, seen]                                  # repetition: seen in the prompt or the reply
        scores[rows, seen] = torch.where(old < 0, old * rep, old / rep)
        return scores


class ReplyPenalties(ContinuousBatchingLogitsProcessor):
    """OpenAI's presence and frequency penalties of the rows Penalties laid out for this step. A processor of its
    own so that the reported log-probabilities lie between the two, where `generate` reports them (it applies
    repetition_penalty among its own processors, ours after)."""

    supported_kwargs, ignored_kwargs = {}, ()

    def __init__(self, penalties: Penalties):
        self.penalties = penalties

    def fill_defaults(self, int32_tensor: torch.Tensor) -> None:
        int32_tensor.zero_()

    def prepare_tensor_args(self, requests) -> torch.Tensor:
        return torch.zeros(len(requests), dtype=torch.int32)

    def __call__(self, scores: torch.Tensor, tensor_arg: torch.Tensor) -> torch.Tensor:
        step = self.penalties._step
        if step is None:
            return scores
        rows, reply, weight = (t.to(scores.device) for t in (step[0], step[3], step[4]))
        scores.index_put_((rows.expand_as(reply), reply), -weight, accumulate=True)   # presence + frequency * count
        return scores


@dataclass
class RowExtras:
    """What one batch row asks beyond the numbers transformers carries per request, kept by the batcher under
    the request's id (transformers deep-copies a request's kwargs when it resets it, and a copy of a matcher or
    of a callback would leave the request's own behind): `scores` gets the row's log-softmax ([V], float32,
    on the CPU) at each of its tokens, before the token is chosen (LogprobRows); `matcher` is the row's
    llguidance matcher, moved on with each reply token and masking the row's next one (GrammarRows)."""
    scores: Callable[[torch.Tensor], None] | None = None
    matcher: Any = None
    consumed: int = 0          # reply tokens the matcher has been given


class _Rows(ContinuousBatchingLogitsProcessor):
    """A processor over the rows whose request has RowExtras with `field` set, noted by prepare_tensor_args on the
    batching thread when it lays the step out and read by __call__ in that step's forward (synchronous batching
    only, as for Penalties). The argument row transformers gives it is unused (zeros)."""

    supported_kwargs, ignored_kwargs = {}, ()
    field = ""

    def __init__(self, rows: Mapping[str, RowExtras]):
        self.rows = rows
        self._step: list[tuple[int, RowExtras]] = []

    def fill_defaults(self, int32_tensor: torch.Tensor) -> None:
        int32_tensor.zero_()

    def prepare_tensor_args(self, requests) -> torch.Tensor:
        self._step = []
        if self.rows:
            for i, r in enumerate(requests):
                extras = self.rows.get(r.state.request_id)
                if extras is not None and getattr(extras, self.field) is not None:
                    self._step.append((i, extras))
                    self.laid_out(r.state, extras)
        return torch.zeros(len(requests), dtype=torch.int32)

    def laid_out(self, state, extras: RowExtras) -> None:
        """A noted row, as the step is laid out."""


class LogprobRows(_Rows):
    """Hands each noted row's log-softmax to its request: the distribution `generate` reports on the plain path
    (after the end-token hold and the repetition penalty, before presence/frequency penalties, the grammar and
    the sampler), taken from the batch's own logits for that row."""

    field = "scores"

    def __call__(self, scores: torch.Tensor, tensor_arg: torch.Tensor) -> torch.Tensor:
        step, self._step = self._step, []
        if step:
            index = torch.tensor([i for i, _ in step], device=scores.device)
            logprobs = torch.log_softmax(scores[index].float(), dim=-1).cpu()
            for (_, extras), row in zip(step, logprobs):
                extras.scores(row)
        return scores


class GrammarRows(_Rows):
    """Masks each noted row to the tokens its own llguidance matcher allows next (a JSON schema, a forced tool
    call); the matcher is first given the row's reply tokens it has not seen. A finished grammar allows only the
    end token, which ends the row (even under a minimum length, which would leave it no token); a failed one
    allows only `end_ids`."""

    field = "matcher"

    def __init__(self, rows: Mapping[str, RowExtras], end_ids: tuple[int, ...]):
        super().__init__(rows)
        self.end_ids = end_ids

    def laid_out(self, state, extras: RowExtras) -> None:
        reply = Penalties._reply(state)
        for token in reply[extras.consumed:]:
            extras.matcher.consume_token(token)
        extras.consumed = len(reply)

    def __call__(self, scores: torch.Tensor, tensor_arg: torch.Tensor) -> torch.Tensor:
        step, self._step = self._step, []
        for i, extras in step:
            allowed = allowed_tokens(extras.matcher, scores.size(-1), self.end_ids)
            row = scores[i].masked_fill_(~allowed.to(scores.device), float("-inf"))
            if not bool(torch.isfinite(row).any()):     # the grammar is done but a minimum length holds the end
                row[list(self.end_ids)] = 0.0            # back: end here, never draw from nothing
        return scores


def _pad(rows: list[torch.Tensor], zero: bool = False) -> torch.Tensor:
    """[n, width] from rows of different lengths. Ids are padded with the row's first id (a repeated index writes
    the same value again), weights with 0 (`zero`); an empty row of ids gets 0, harmless where its penalty is off."""
    width = max(1, max(len(x) for x in rows))
    def fill(x: torch.Tensor) -> torch.Tensor:
        value = 0 if zero or len(x) == 0 else x[0]
        return torch.cat([x, x.new_full((width - len(x),), value)])
    return torch.stack([fill(x) for x in rows])


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


class TopK(ContinuousBatchingLogitsProcessor):
    """Keeps each row's `top_k` highest scores (all of those tied at the edge, as TopKLogitsWarper does); 0, the
    default, keeps every token. Greedy rows get 0: TemperatureOrGreedy has already chosen their token."""

    supported_kwargs, ignored_kwargs = {"top_k": int}, ()

    def fill_defaults(self, int32_tensor: torch.Tensor) -> None:
        int32_tensor.zero_()

    def prepare_tensor_args(self, requests) -> torch.Tensor:
        def top_k(kwargs: dict) -> int:
            return 0 if kwargs.get("temperature", 1.0) <= 0 else max(0, int(kwargs.get("top_k", 0)))
        return torch.tensor([top_k(r.state.logit_processor_kwargs) for r in requests], dtype=torch.int32)

    def __call__(self, scores: torch.Tensor, tensor_arg: torch.Tensor) -> torch.Tensor:
        k = tensor_arg[: scores.size(0)].long().clamp(0, scores.size(-1)).unsqueeze(-1)    # [B, 1]
        widest = int(k.max())
        if widest == 0 or bool((k == scores.size(-1)).all()):     # nobody asked for top-k: nothing to cut
            return scores
        best = scores.topk(widest, dim=-1).values                                         # [B, widest], descending
        edge = best.gather(-1, (k - 1).clamp(min=0))
        edge = torch.where(k > 0, edge, float("-inf"))                                      # 0: keep all
        return scores.masked_fill(scores < edge, float("-inf"))


class NucleusDraw(_PerRequestFloat):
    """Keeps each row's top_p nucleus and draws one token from it; the drawn token is the only finite score.

    A row draws by inverse CDF (one torch.rand number, a cumulative sum and a binary search). With `seeds`, a
    row whose request has a `seed` draws instead by an exponential race with its own torch.Generator (made from
    the seed at its first draw and kept in the request's logit_processor_kwargs, which a soft reset copies):
    the argmax of p / E with one E ~ Exp(1) per token, which picks each kept token with its probability, as
    vLLM samples seeded requests. Its generator moves on once per reply token whatever the other rows are, so
    the same seed gives the same numbers alone or beside others, and the race's winner changes only if the
    batch's rounding carries one of the two leading tokens past the other. The inverse CDF is the cheaper
    draw but no good for this: its cumulative sum over the vocabulary adds up every token's rounding, and on
    the tiny bf16 demo model a seeded reply drawn beside three others left the one drawn alone at its second
    token (the same number landed one token over).

    The seeded rows of a step are noted by prepare_tensor_args, which transformers runs on the batching thread
    when it lays the step out, and read by __call__, which the same thread runs in that step's forward. That
    order holds for synchronous batching only (see Penalties): with asynchronous batching the batcher keeps
    seeded requests on the plain path."""

    key, supported_kwargs = "top_p", {"top_p": float}
    GENERATOR = "_row_generator"      # set here, on the batching thread; add_request's check never sees it

    def __init__(self, seeds: bool = False):
        self.seeds = seeds
        if seeds:
            self.supported_kwargs = {"top_p": float, "seed": int}
        self._seeded: list[tuple[int, dict]] = []   # this step's (row, kwargs) of seeded sampled requests

    def prepare_tensor_args(self, requests) -> torch.Tensor:
        if self.seeds:
            self._seeded = [(i, kwargs) for i, r in enumerate(requests)
                            if self._samples_seeded(kwargs := r.state.logit_processor_kwargs)]
        return super().prepare_tensor_args(requests)

    @staticmethod
    def _samples_seeded(kwargs: dict) -> bool:
        """A seed, and a row that samples (a greedy row, or top_p 0, never draws)."""
        return (kwargs.get("seed") is not None and kwargs.get("temperature", 1.0) > 0
                and kwargs.get("top_p", 1.0) > 0)

    def __call__(self, scores: torch.Tensor, tensor_arg: torch.Tensor) -> torch.Tensor:
        seeded, self._seeded = self._seeded, []
        top_p = self.values(scores, tensor_arg)
        if not seeded and bool((top_p <= 0).all()):    # greedy rows only (top_p 0): the argmax after this is it
            return scores
        probs = scores.softmax(-1)
        top = probs.max(-1, keepdim=True)
        if not seeded and bool((top.values >= top_p).all()):   # every row's nucleus is its one most likely token
            return _only(scores, top.indices)
        kept = probs * (probs >= nucleus_threshold(probs, top_p, top.values))
        chosen = draw(kept)
        for row, kwargs in seeded:       # a seeded row's generator moves on at each of its tokens, whatever the rest
            chosen[row] = race(kept[row], self._generator(kwargs, scores.device))
        return _only(scores, chosen)

    def _generator(self, kwargs: dict, device: torch.device) -> torch.Generator:
        generator = kwargs.get(self.GENERATOR)
        if generator is None:
            generator = kwargs[self.GENERATOR] = torch.Generator(device=device).manual_seed(kwargs["seed"])
        return generator


def race(weights: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The index ([1]) of the largest weight / E over [V] non-negative `weights` (some positive), one E ~ Exp(1)
    per index from `generator`: index j wins with probability weights[j] / weights.sum()."""
    exp = torch.empty_like(weights, dtype=torch.float32).exponential_(generator=generator)
    return (weights / exp.clamp_(min=torch.finfo(torch.float32).tiny)).argmax(-1, keepdim=True)


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


def batch_sampler(end_ids: tuple[int, ...], *, seeds: bool = False, top_k: bool = False,
                  penalties: bool = False,
                  rows: Mapping[str, RowExtras] | None = None) -> ContinuousBatchingLogitsProcessorList:
    """The processor list for transformers' continuous batching (set as manager.logit_processor before it
    starts); per request: min_new_tokens (holding back `end_ids`), temperature (0 = greedy) and top_p, and as
    asked: `seed` (seeds) and repetition/presence/frequency penalties (penalties), both only where batching is
    synchronous (see Penalties), `top_k` (top_k), and with `rows` (the batcher's RowExtras by request id, also
    synchronous only) log-probabilities and grammar masks. Its `supported_keys` name the request kwargs it takes."""
    repetition = Penalties() if penalties else None
    chain = [HoldEnd(end_ids), *([repetition] if repetition else []),
             *([LogprobRows(rows)] if rows is not None else []),
             *([ReplyPenalties(repetition)] if repetition else []),
             *([GrammarRows(rows, end_ids)] if rows is not None else []),
             TemperatureOrGreedy(), *([TopK()] if top_k else []), NucleusDraw(seeds)]
    processors = ContinuousBatchingLogitsProcessorList(LogitsProcessorList(chain))
    processors.tensors_required = len(chain)  # one argument row each; transformers counts only its own converted ones
    return processors
