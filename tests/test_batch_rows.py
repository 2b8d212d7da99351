"""Request shapes in the continuous batch (engine/serving/sampling.py): per-row seeds, top_k and penalties
(logprobs, JSON schemas and tools: tests/test_batch_shapes.py).

Each test counts the batch's requests at a step with a recorder on the processor list (what transformers lays
out for a step), never by timing, and judges replies by scoring them with the same model run alone
(teacher-forced logits), not by string equality with another path.
"""
import contextlib
import dataclasses
import threading

import pytest
import torch
from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

from engine.serving.batching import ContinuousBatcher
from engine.serving.generation import GenerationParams
from engine.serving.penalties import PresenceFrequencyPenalty
from tests.waiting import wait_for

HI = [{"role": "user", "content": "hi"}]
SEEDED = GenerationParams(max_new_tokens=12, min_new_tokens=12, temperature=1.0, top_p=0.95, seed=1234)
BUSY = GenerationParams(max_new_tokens=2000, min_new_tokens=2000, temperature=1.0, top_p=0.95)   # cancelled


@pytest.fixture(scope="module")
def batcher(tiny_engine):
    if not isinstance(tiny_engine.scheduler, ContinuousBatcher):
        pytest.fail(f"the tiny engine should batch continuously, got {type(tiny_engine.scheduler).__name__}")
    return tiny_engine.scheduler


@contextlib.contextmanager
def recorded_steps(batcher):
    """Yields a list that gets, per step the batch lays out, [(request_id, has_new_token, kwargs)]."""
    processors = batcher._manager.logit_processor
    original, steps = processors.prepare_tensor_args, []

    def recording(requests_in_batch, arg_storage):
        steps.append([(f.state.request_id, f.has_new_token, dict(f.state.logit_processor_kwargs))
                      for f in requests_in_batch])
        return original(requests_in_batch=requests_in_batch, arg_storage=arg_storage)

    processors.prepare_tensor_args = recording
    try:
        yield steps
    finally:
        del processors.prepare_tensor_args


def decoding(step) -> int:
    return sum(new for _, new, _ in step)


@contextlib.contextmanager
def three_busy_neighbours(tiny_engine, batcher):
    """Three unseeded sampled requests decoding together in the batch until the block ends (then cancelled);
    yields the recorded steps."""
    cancel, threads = threading.Event(), []
    with recorded_steps(batcher) as steps:
        for i in range(3):
            messages = [{"role": "user", "content": f"neighbour {i}"}]
            threads.append(threading.Thread(target=lambda m=messages: tiny_engine.stream(m, BUSY, cancel).text()))
            threads[-1].start()
        try:
            wait_for(lambda: any(decoding(step) == 3 for step in steps), "three requests decoding in one step",
                     stall=120, poll=0.01)
            yield steps
        finally:
            cancel.set()
            for t in threads:
                t.join(120)


def run(tiny_engine, params, messages=HI):
    stream = tiny_engine.stream(messages, params)
    text = stream.text()
    return text, list(stream.stats.token_ids)


def alone_logits(tiny_engine, params, reply: list[int], messages=HI) -> tuple[list[int], torch.Tensor]:
    """The prompt ids, and [len(reply), V] float32 logits for each reply token from one forward of the model
    alone over prompt + reply (teacher forcing)."""
    _, prompt, _ = tiny_engine.generator.prepare(messages, params, None)
    ids = torch.tensor([prompt + reply[:-1]])
    with torch.inference_mode():
        logits = tiny_engine.model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, len(prompt) - 1:]
    return prompt, logits.float()


# -- seeds ------------------------------------------------------------------------------------------------

def test_a_seeded_reply_is_the_same_alone_and_beside_three_others(tiny_engine, batcher):
    assert not batcher.needs_plain_path(SEEDED)
    wait_for(batcher.idle, "the batcher to go idle", stall=30, poll=0.01)
    with recorded_steps(batcher) as steps:
        alone, _ = run(tiny_engine, SEEDED)
    assert alone and steps and all(len(step) == 1 for step in steps)          # it was alone at every step
    with three_busy_neighbours(tiny_engine, batcher) as steps:
        beside, _ = run(tiny_engine, SEEDED)
        mine = [step for step in steps if any(kw.get("seed") == 1234 for _, _, kw in step)]
    shared = [step for step in mine if decoding(step) == 4]
    assert len(shared) >= 6, [decoding(step) for step in mine]                # most of its tokens beside three others
    assert beside == alone
    other, _ = run(tiny_engine, SEEDED.with_overrides(seed=4321))
    assert other != alone


# -- top_k ------------------------------------------------------------------------------------------------

def test_a_hot_top_k_1_request_takes_each_rows_argmax_in_the_batch(tiny_engine, batcher):
    """Temperature 1.5 over the random model's flat distribution would almost never pick the argmax; top_k=1
    leaves nothing else. Each token is checked against the model run alone over the same text: it is the
    argmax or tied with it (bf16 logits tie often)."""
    hot = GenerationParams(max_new_tokens=16, temperature=1.5, top_p=1.0, top_k=1, seed=5)
    assert not batcher.needs_plain_path(hot)
    wait_for(batcher.idle, "the batcher to go idle", stall=30, poll=0.01)
    with three_busy_neighbours(tiny_engine, batcher) as steps:
        _, reply = run(tiny_engine, hot)
        mine = [step for step in steps if any(kw.get("top_k") == 1 for _, _, kw in step)]
    assert reply and any(decoding(step) == 4 for step in mine)
    _, logits = alone_logits(tiny_engine, hot, reply)
    picked = logits.gather(-1, torch.tensor(reply).unsqueeze(-1)).squeeze(-1)
    gaps = logits.max(-1).values - picked
    assert bool((gaps == 0).all()), gaps.tolist()


# -- penalties --------------------------------------------------------------------------------------------

PENALISED = GenerationParams(max_new_tokens=24, temperature=0.0, repetition_penalty=1.8, presence_penalty=0.4,
                             frequency_penalty=0.3)


def penalised_logprobs(prompt: list[int], reply: list[int], logits: torch.Tensor, params) -> torch.Tensor:
    """What the plain path's processors make of each teacher-forced row: transformers' repetition penalty over
    prompt + reply so far, then ours for presence and frequency over the reply (engine/serving/penalties.py)."""
    repetition = RepetitionPenaltyLogitsProcessor(params.repetition_penalty)
    presence = PresenceFrequencyPenalty(params.presence_penalty, params.frequency_penalty)
    presence.restart_at(len(prompt))
    rows = []
    for i in range(len(reply)):
        ids = torch.tensor([prompt + reply[:i]])
        row = repetition(ids, logits[i:i + 1].clone())
        rows.append(presence(ids, row))
    return torch.cat(rows).log_softmax(-1)


def test_a_penalised_greedy_reply_in_the_batch_is_what_the_plain_path_would_choose(tiny_engine, batcher):
    """Greedy with repetition, presence and frequency penalties, beside three sampled requests: each token is
    the top choice of the plain path's penalised scores over the same text, or within 0.05 nats of it."""
    assert not batcher.needs_plain_path(PENALISED)
    wait_for(batcher.idle, "the batcher to go idle", stall=30, poll=0.01)
    replies = []
    with three_busy_neighbours(tiny_engine, batcher) as steps:
        for i in range(3):
            messages = [{"role": "user", "content": f"say something {i}"}]
            replies.append((messages, run(tiny_engine, PENALISED, messages)[1]))
        mine = [step for step in steps if any("repetition_penalty" in kw for _, _, kw in step)]
    assert any(decoding(step) == 4 for step in mine)
    close, total, unpenalised_close = 0, 0, 0
    for messages, reply in replies:
        prompt, logits = alone_logits(tiny_engine, PENALISED, reply, messages)
        scored = penalised_logprobs(prompt, reply, logits, PENALISED)
        gaps = scored.max(-1).values - scored.gather(-1, torch.tensor(reply).unsqueeze(-1)).squeeze(-1)
        close += int((gaps <= 0.05).sum())
        total += len(reply)
        raw = logits.log_softmax(-1)
        unpenalised_close += int((raw.max(-1).values - raw.gather(-1, torch.tensor(reply).unsqueeze(-1)).squeeze(-1)
                                  <= 0.05).sum())
    assert total >= 30 and close / total >= 0.99, (close, total)
    assert unpenalised_close < total, (unpenalised_close, total)     # the penalties changed some choices


# -- what stays on the plain path ---------------------------------------------------------------------------

def test_seeds_and_penalties_stay_on_the_plain_path_where_transformers_batches_asynchronously(
        tiny_engine, batcher, monkeypatch):
    """Their processors (and those of logprobs, JSON schemas and tools) hand data from a step's layout to its
    forward on the batching thread, in order only when batching is synchronous (no asynchronous batching, CUDA
    graph or torch.compile): elsewhere they must not join."""
    from types import SimpleNamespace

    from engine.serving import batching

    sync = SimpleNamespace(use_async_batching=False, use_cuda_graph=(False, False))
    assert batching._synchronous(sync)
    assert not batching._synchronous(SimpleNamespace(use_async_batching=True, use_cuda_graph=(True, True)))
    assert not batching._synchronous(SimpleNamespace(use_async_batching=False, use_cuda_graph=(False, True)))
    assert not batching._synchronous(SimpleNamespace(use_async_batching=False, use_cuda_graph=(False, False),
                                                     decode_compile_config=object()))
    assert batching._synchronous(batcher._manager.continuous_batching_config)     # the CPU's resolved config
    assert "seed" not in batcher.plain_path_reasons and "penalties" not in batcher.plain_path_reasons

    monkeypatch.setattr(batching, "_synchronous", lambda cb_config: False)
    other, _ = batching.build_scheduler(tiny_engine.model, tiny_engine.codec, tiny_engine.generator, slots=2,
                                        headroom=0.05, path="continuous")
    try:
        keys = other._manager.logit_processor.supported_keys
        assert "seed" not in keys and "repetition_penalty" not in keys and "top_k" in keys
        assert other.plain_path_features(SEEDED) == ["seed"] and "asynchronous" in other.plain_path_reasons["seed"]
        assert other.plain_path_features(PENALISED) == ["penalties"]
        assert not other.needs_plain_path(dataclasses.replace(SEEDED, seed=None, top_k=3))
        unseeded = dataclasses.replace(SEEDED, seed=None)
        for feature, params in (("logprobs", unseeded.with_overrides(logprobs=2)),
                                ("response_format", dataclasses.replace(unseeded, constraint=object())),
                                ("tools", dataclasses.replace(unseeded, tools=object()))):
            assert other.plain_path_features(params) == [feature] and "asynchronous" in other.plain_path_reasons[feature]
        kinds = {type(p).__name__ for p in other._manager.logit_processor.logits_processor}
        assert not kinds & {"LogprobRows", "GrammarRows", "Penalties", "ReplyPenalties"}, kinds
    finally:
        other.close()
