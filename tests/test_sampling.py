"""The continuous batch's sampler (engine/serving/sampling.py) against transformers' own warpers and the laws of chance."""
import torch
from transformers.generation.continuous_batching.requests import FutureRequestState, RequestState
from transformers.generation.logits_process import TopPLogitsWarper

from engine.serving.sampling import HoldEnd, NucleusDraw, TemperatureOrGreedy, batch_sampler, draw, nucleus_threshold

ENDS = (5, 7)


def _arg(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).view(dtype=torch.int32)


def test_the_nucleus_is_the_one_transformers_keeps():
    torch.manual_seed(0)
    for top_p in (0.1, 0.5, 0.9, 0.95, 0.999):
        for spread in (0.3, 1.0, 4.0):          # near-uniform rows (random weights) to peaked ones (trained)
            scores = torch.randn(16, 5000) * spread
            theirs = TopPLogitsWarper(top_p)(None, scores.clone()) != float("-inf")
            probs = scores.softmax(-1)
            ours = probs >= nucleus_threshold(probs, torch.full((16, 1), top_p))
            assert torch.equal(ours, theirs), (top_p, spread, (ours != theirs).sum().item())


def test_the_nucleus_matches_at_the_real_vocabulary_size_with_masked_tokens_and_tiny_top_p():
    """32768 tokens (Mistral v3), some masked to -inf (an end token held back), top_p down to 0, where
    transformers keeps only the most likely token."""
    torch.manual_seed(4)
    scores = torch.randn(6, 32768) * torch.tensor([[0.2], [0.5], [1.0], [2.0], [4.0], [8.0]])
    scores[:, [5, 7, 900]] = float("-inf")
    probs = scores.softmax(-1)
    for top_p in (0.0, 1e-9, 0.3, 0.95, 0.99):
        theirs = TopPLogitsWarper(top_p)(None, scores.clone()) != float("-inf")
        ours = probs >= nucleus_threshold(probs, torch.full((6, 1), top_p))
        # float32 rounding may move the edge by one token (0.99: one row, a token whose mass below and its own
        # is 1 - top_p less 3e-9); nothing else may differ.
        differ = ours != theirs
        assert differ.sum(-1).max() <= 1, (top_p, differ.sum(-1).tolist())
        edge = torch.where(ours | theirs, probs, 2.0).amin(-1)
        assert bool((probs[differ] == edge[differ.any(-1)]).all()), top_p
    alone = probs >= nucleus_threshold(probs, torch.zeros(6, 1))
    assert alone.sum(-1).tolist() == [1] * 6 and torch.equal(alone.float().argmax(-1), probs.argmax(-1))


def test_top_p_one_keeps_every_token():
    probs = torch.randn(4, 100).softmax(-1)
    assert bool((probs >= nucleus_threshold(probs, torch.ones(4, 1))).all())


def test_draws_follow_the_probabilities():
    torch.manual_seed(1)
    weights = torch.tensor([0.5, 0.0, 0.3, 0.15, 0.0, 0.05]).repeat(200_000, 1)
    picks = draw(weights).squeeze(-1)
    freq = torch.bincount(picks, minlength=6).double() / picks.numel()
    assert freq[1] == 0 and freq[4] == 0           # a token with no weight is never drawn
    assert torch.allclose(freq, weights[0].double(), atol=0.004), freq


def test_greedy_rows_take_the_argmax_beside_sampled_rows():
    torch.manual_seed(2)
    scores = torch.randn(4, 300)
    temperature, top_p = _arg([0.0, 1.0, 0.0, 0.7]), _arg([0.95, 0.95, 1.0, 0.5])
    for _ in range(20):
        out = NucleusDraw()(TemperatureOrGreedy()(scores.clone(), temperature), top_p)
        chosen = out.argmax(-1)
        assert bool((out.isfinite().sum(-1) == 1).all())                    # one finite score per row
        assert chosen[0] == scores[0].argmax() and chosen[2] == scores[2].argmax()
        kept = TopPLogitsWarper(0.5)(None, scores[3:4] / 0.7) != float("-inf")
        assert bool(kept[0, chosen[3]])                                      # drawn inside its own nucleus


def test_a_step_of_greedy_rows_only_leaves_the_scores_to_the_batch_argmax():
    """Greedy rows come with temperature 0 and top_p 0 (ContinuousBatcher._sampling): all greedy, the scores
    pass untouched (no [B, V] work); beside a sampled row, each greedy row still takes its own argmax."""
    from engine.serving.batching import ContinuousBatcher
    from engine.serving.generation import GenerationParams

    kw = ContinuousBatcher._sampling(GenerationParams(temperature=0.0, top_p=0.9))
    assert kw == {"temperature": 0.0, "top_p": 0.0}
    torch.manual_seed(3)
    scores = torch.randn(3, 500)
    alone = NucleusDraw()(TemperatureOrGreedy()(scores, _arg([0.0] * 3)), _arg([0.0] * 3))
    assert alone is scores                                                    # untouched, not copied
    mixed = NucleusDraw()(TemperatureOrGreedy()(scores.clone(), _arg([0.0, 0.0, 0.8])), _arg([0.0, 0.0, 0.9]))
    assert torch.equal(mixed[:2].argmax(-1), scores[:2].argmax(-1))
    assert bool((mixed[:2].isfinite().sum(-1) == 1).all())


def test_the_processor_list_takes_min_new_tokens_temperature_and_top_p_per_request():
    processors = batch_sampler(ENDS)
    assert processors.tensors_required == 3 and processors.do_processing
    processors.check_kwargs({"min_new_tokens": 4, "temperature": 0.0, "top_p": 0.9})   # accepted, not refused
    defaults = torch.ones((3, 1), dtype=torch.int32)
    processors.fill_defaults(defaults)
    assert defaults[0].tolist() == [0]                                   # no hold unless asked
    assert defaults[1:].view(dtype=torch.float32).flatten().tolist() == [1.0, 1.0]


def _request(generated: int, **kwargs) -> RequestState:
    state = RequestState("r", [1, 2, 3], max_new_tokens=50, eos_token_id=list(ENDS), logit_processor_kwargs=kwargs)
    state.generated_tokens = [9] * generated
    return state


def test_a_row_below_its_minimum_cannot_end_and_the_others_can():
    soft_reset = _request(2, min_new_tokens=4).create_equivalent_initial_request()   # 2 tokens moved into the prompt
    soft_reset.generated_tokens = [9]
    states = [_request(2, min_new_tokens=3), _request(3, min_new_tokens=3), _request(0), soft_reset,
              _request(0, min_new_tokens=4)]
    soft_reset_done = soft_reset.create_equivalent_initial_request()
    soft_reset_done.generated_tokens = [9]                                           # 2 + 1 + 1 = 4: done
    states.append(soft_reset_done)
    hold = HoldEnd(ENDS)
    arg = hold.prepare_tensor_args([FutureRequestState(s, True, {}, 1) for s in states])
    assert arg.tolist() == [1, 0, 0, 1, 1, 0]
    scores = torch.zeros(len(states), 10)
    scores[:, 7], scores[:, 3] = 5.0, 1.0                                         # an end token is every row's best
    chosen = TemperatureOrGreedy()(hold(scores, arg), _arg([0.0] * len(states))).argmax(-1)
    assert chosen.tolist() == [3, 7, 7, 3, 3, 7]
