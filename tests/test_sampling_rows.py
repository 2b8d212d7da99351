"""The batch's per-request processors beyond temperature and top-p (engine/serving/sampling.py), without a model:
top_k against transformers' TopKLogitsWarper, the penalties against the plain path's processors, and seeded
rows that draw the same whatever else shares the step."""
import torch
from transformers.generation.continuous_batching.requests import FutureRequestState, RequestState
from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor, TopKLogitsWarper

from engine.serving.penalties import PresenceFrequencyPenalty
from engine.serving.sampling import NucleusDraw, Penalties, ReplyPenalties, TopK, batch_sampler, race

ENDS = (5, 7)


def _rows(*states: RequestState) -> list[FutureRequestState]:
    return [FutureRequestState(s, True, {}, 1) for s in states]


def _state(prompt, generated=(), rid="r", **kwargs) -> RequestState:
    state = RequestState(rid, list(prompt), max_new_tokens=500, eos_token_id=list(ENDS),
                         logit_processor_kwargs=kwargs)
    state.generated_tokens = list(generated)
    return state


def _arg(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).view(dtype=torch.int32)


def test_the_list_takes_seeds_top_k_and_penalties_only_when_built_with_them():
    plain = batch_sampler(ENDS)
    assert plain.tensors_required == 3 and not {"seed", "top_k", "repetition_penalty"} & set(plain.supported_keys)
    full = batch_sampler(ENDS, seeds=True, top_k=True, penalties=True)
    assert full.tensors_required == 6            # the penalties in two: repetition, then presence and frequency
    full.check_kwargs({"min_new_tokens": 2, "temperature": 0.7, "top_p": 0.9, "seed": 3, "top_k": 4,
                       "repetition_penalty": 1.2, "presence_penalty": 0.5, "frequency_penalty": 0.1})
    defaults = torch.ones((6, 1), dtype=torch.int32)
    full.fill_defaults(defaults)
    assert defaults.flatten().tolist()[:3] == [0, 0, 0] and defaults[4].tolist() == [0]   # no hold/penalty/top-k
    assert batch_sampler(ENDS, seeds=True, top_k=True, penalties=True, rows={}).tensors_required == 8


def test_top_k_keeps_what_transformers_keeps_per_row():
    torch.manual_seed(0)
    scores = torch.randn(6, 1000)
    scores[2, :10] = 3.0                                                    # ties at the edge: all kept
    ks = [0, 1, 5, 7, 1000, 3]
    states = [_state([1], temperature=0.8, **({"top_k": k} if k else {})) for k in ks]
    greedy = _state([1], temperature=0.0, top_k=2)                          # greedy: its token is already chosen
    top_k = TopK()
    arg = top_k.prepare_tensor_args(_rows(*states, greedy))
    assert arg.tolist() == ks + [0]
    ours = top_k(torch.cat([scores, scores[:1]]).clone(), arg)
    for row, k in enumerate(ks):
        theirs = scores[row:row + 1] if k == 0 else TopKLogitsWarper(k)(None, scores[row:row + 1].clone())
        assert torch.equal(ours[row:row + 1], theirs), row
    assert torch.equal(ours[6], scores[0])
    nobody = torch.randn(3, 50)
    assert top_k(nobody, torch.zeros(3, dtype=torch.int32)) is nobody       # nobody asked: untouched


def test_penalties_are_the_plain_path_processors_per_row():
    """repetition_penalty over prompt + reply (transformers'), presence and frequency over the reply only
    (ours for `generate`), each row with its own values; a row without penalties is untouched; a soft reset
    (reply tokens moved into the prompt) counts them as reply still."""
    torch.manual_seed(1)
    vocab = 60
    reset = _state([3, 4, 4, 9], [11, 11, 12], rid="reset", repetition_penalty=1.5, presence_penalty=0.3,
                   frequency_penalty=0.2).create_equivalent_initial_request()
    reset.generated_tokens = [12, 13]
    rows = [
        (_state([3, 4, 4, 9], [11, 11, 12], repetition_penalty=1.5, presence_penalty=0.3, frequency_penalty=0.2),
         [3, 4, 4, 9], [11, 11, 12], (1.5, 0.3, 0.2)),
        (_state([20, 21], [22, 22, 22], presence_penalty=-0.5), [20, 21], [22, 22, 22], (1.0, -0.5, 0.0)),
        (_state([30, 31], [32]), [30, 31], [32], None),
        (_state([40, 41, 40], [], repetition_penalty=0.7), [40, 41, 40], [], (0.7, 0.0, 0.0)),
        (reset, [3, 4, 4, 9], [11, 11, 12, 12, 13], (1.5, 0.3, 0.2)),
    ]
    scores = torch.randn(len(rows) + 1, vocab) * 3                          # a stale row past the requests
    penalties = Penalties()
    arg = penalties.prepare_tensor_args(_rows(*(r[0] for r in rows)))
    assert arg.tolist() == [1, 1, 0, 1, 1]
    ours = ReplyPenalties(penalties)(penalties(scores.clone(), arg), torch.zeros(6, dtype=torch.int32))
    for i, (_, prompt, reply, values) in enumerate(rows):
        expected = scores[i:i + 1].clone()
        if values is not None:
            ids = torch.tensor([prompt + reply])
            expected = RepetitionPenaltyLogitsProcessor(values[0])(ids, expected)
            plain = PresenceFrequencyPenalty(values[1], values[2])
            plain.restart_at(len(prompt))
            expected = plain(ids, expected)
        assert torch.allclose(ours[i:i + 1], expected, atol=1e-6), i
    assert torch.equal(ours[-1], scores[-1])
    assert Penalties()(scores, torch.zeros(6, dtype=torch.int32)) is scores     # never prepared: untouched


def test_a_seeded_row_draws_the_same_whatever_else_shares_the_step():
    """The same seeded request alone (one row) and as the third of four rows, beside rows that change from
    run to run: the same tokens, also across steps where its nucleus is one token (no draw needed) and the
    other rows still sample, or the reverse."""
    torch.manual_seed(2)
    steps = [torch.randn(300) * 2 for _ in range(40)]
    for s in steps[::5]:
        s[17] = 40.0                                                        # a nucleus of one token
    def run(neighbours: int, seed: int = 11) -> list[int]:
        me = _state([1], rid="me", temperature=1.0, top_p=0.9, seed=seed)
        others = [_state([1], rid=f"o{i}", temperature=1.0, top_p=0.9) for i in range(neighbours)]
        draw, out = NucleusDraw(seeds=True), []
        for mine in steps:
            rows = others[:2] + [me] + others[2:]
            arg = draw.prepare_tensor_args(_rows(*rows))
            scores = torch.randn(len(rows), 300) * 2
            scores[rows.index(me)] = mine
            chosen = draw(scores, arg).argmax(-1)
            out.append(int(chosen[rows.index(me)]))
        return out
    alone = run(0)
    assert run(3) == alone and run(3) == alone
    assert run(0, seed=12) != alone
    assert all(tok == 17 for tok in alone[::5])


def test_the_race_follows_the_probabilities():
    generator = torch.Generator().manual_seed(5)
    weights = torch.tensor([0.5, 0.0, 0.3, 0.15, 0.0, 0.05])
    picks = torch.cat([race(weights, generator) for _ in range(40_000)])
    freq = torch.bincount(picks, minlength=6).double() / picks.numel()
    assert freq[1] == 0 and freq[4] == 0
    assert torch.allclose(freq, weights.double(), atol=0.01), freq
