"""Request shapes in the continuous batch (engine/serving/sampling.py): logprobs, JSON schemas and tool calls.

The run's shared tiny demo engine (bf16, warm: a float32 engine of its own cost this module 3 times its
time, mostly in its first steps). Rows sharing a step are counted with hooks on what transformers lays out
and runs per step, never by timing; logprobs are judged against the same model run alone over the same tokens
(teacher forcing), within bf16's rounding.
"""
import contextlib
import json
import threading

import pytest
import torch
from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

from engine.prompting.constrained import JsonConstraint
from engine.prompting.tools import ToolSpec
from engine.serving.batching import ContinuousBatcher
from engine.serving.generation import GenerationParams
from tests.waiting import wait_for

HI = [{"role": "user", "content": "hi"}]
BUSY = GenerationParams(max_new_tokens=2000, min_new_tokens=2000, temperature=1.0, top_p=0.95)   # cancelled
MOOD = {"type": "object", "additionalProperties": False, "required": ["mood", "ok"],
        "properties": {"mood": {"enum": ["happy", "sad"]}, "ok": {"type": "boolean"}}}
DIGITS = {"type": "array", "minItems": 2, "maxItems": 3, "items": {"type": "integer", "minimum": 0, "maximum": 9}}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather of a city",
    "parameters": {"type": "object", "additionalProperties": False, "required": ["city"],
                   "properties": {"city": {"type": "string", "enum": ["Seoul", "Busan"]}}}}}


@pytest.fixture(scope="module")
def engine(tiny_engine):
    if not isinstance(tiny_engine.scheduler, ContinuousBatcher):
        pytest.fail(f"the tiny engine should batch continuously, got {type(tiny_engine.scheduler).__name__}")
    return tiny_engine


@contextlib.contextmanager
def batch_steps(engine, gate: int = 0):
    """Yields a list that gets, per forward of the batch, the kwargs of the requests given a token at that step
    (what transformers laid out for it). With `gate`, the batch's first forward waits until `gate` requests
    were added, so they all reach the following steps together."""
    batcher, model = engine.scheduler, engine.model
    processors, add = batcher._manager.logit_processor, batcher._manager.add_request
    steps, added = [], threading.Semaphore(0)

    def recording(requests_in_batch, arg_storage):
        steps.append([dict(f.state.logit_processor_kwargs) for f in requests_in_batch if f.has_new_token])
        return prepare(requests_in_batch=requests_in_batch, arg_storage=arg_storage)

    def counted_add(*args, **kwargs):
        try:
            return add(*args, **kwargs)
        finally:
            added.release()

    def held(_module, _args, kwargs):
        if "logits_indices" in kwargs and gate and len(steps) == 1:
            for _ in range(gate):
                assert added.acquire(timeout=60), "a request never reached the batch"

    def rows(_module, _args, kwargs, out):     # the rows of logits this forward gave: one per request stepped
        if "logits_indices" in kwargs:
            assert out.logits.shape[1] == len(steps[-1]), (out.logits.shape, steps[-1])

    prepare = processors.prepare_tensor_args
    processors.prepare_tensor_args = recording
    batcher._manager.add_request = counted_add
    hooks = [model.register_forward_pre_hook(held, with_kwargs=True),
             model.register_forward_hook(rows, with_kwargs=True)]
    try:
        yield steps
    finally:
        for hook in hooks:
            hook.remove()
        del processors.prepare_tensor_args, batcher._manager.add_request


def test_logprobs_in_the_batch_are_the_models_own_over_the_same_tokens(engine):
    """A sampled request with logprobs, a repetition and a presence penalty, beside a busy neighbour in every
    step: each reported token (and its 3 alternatives) carries the log-probability of the model run alone over
    the same prompt and reply, as the plain path reports it (after the repetition penalty, before the presence
    penalty and the temperature). bf16: |delta| < 0.02 nats (the batch and the lone forward round differently;
    reporting after the temperature instead was off by 0.32 nats)."""
    params = GenerationParams(max_new_tokens=8, temperature=0.7, top_p=0.95, repetition_penalty=1.3,
                              presence_penalty=0.5, logprobs=3)
    batcher = engine.scheduler
    assert not batcher.needs_plain_path(params)
    wait_for(batcher.idle, "the batcher to go idle", stall=30, poll=0.01)
    cancel = threading.Event()
    with batch_steps(engine) as steps:
        neighbour = threading.Thread(target=lambda: engine.stream(HI, BUSY, cancel).text())
        neighbour.start()
        try:
            wait_for(lambda: len(steps) > 1, "the neighbour decoding", stall=60, poll=0.01)
            stream = engine.stream([{"role": "user", "content": "tell me"}], params)
            stream.text()
        finally:
            cancel.set()
            neighbour.join(120)
    shared = [step for step in steps if len(step) == 2 and any("presence_penalty" in kw for kw in step)]
    reply, reported = stream.stats.token_ids, stream.stats.logprobs
    assert len(shared) >= len(reply) >= 6 and len(reported) == len(reply), (len(shared), reply)

    _, prompt, _ = engine.generator.prepare([{"role": "user", "content": "tell me"}], params, None)
    ids = torch.tensor([prompt + reply[:-1]])
    with torch.inference_mode():
        logits = engine.model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, len(prompt) - 1:].float()
    repetition = RepetitionPenaltyLogitsProcessor(params.repetition_penalty)
    worst = 0.0
    for i, (token, got) in enumerate(zip(reply, reported)):
        expected = repetition(torch.tensor([prompt + reply[:i]]), logits[i:i + 1].clone())[0].log_softmax(-1)
        top = expected.topk(3)
        worst = max(worst, abs(got.logprob - float(expected[token])),
                    *(abs(a.logprob - v) for a, v in zip(got.top, top.values.tolist())))
        assert len(got.top) == 3
    print("largest |delta| in nats:", worst)
    assert worst < 0.02, worst


def test_two_json_schemas_a_tool_call_and_a_free_request_share_one_step(engine):
    """Each row keeps to its own grammar: two schemas (one greedy, one sampled), a forced tool call and an
    unconstrained request, all given a token in the same forwards (told apart by their temperatures)."""
    mood = GenerationParams(max_new_tokens=40, temperature=0.0, constraint=JsonConstraint.from_schema(MOOD))
    digits = GenerationParams(max_new_tokens=40, temperature=0.8, top_p=0.95, seed=11,
                              constraint=JsonConstraint.from_schema(DIGITS))
    tool = GenerationParams(max_new_tokens=60, temperature=0.3, top_p=0.95,
                            tools=ToolSpec.of([WEATHER], "required", parallel=False))
    free = GenerationParams(max_new_tokens=16, min_new_tokens=16, temperature=0.9, top_p=0.95)
    batcher = engine.scheduler
    assert not any(batcher.needs_plain_path(p) for p in (mood, digits, tool, free))
    wait_for(batcher.idle, "the batcher to go idle", stall=30, poll=0.01)
    streams = {name: engine.stream([{"role": "user", "content": f"answer {name}"}], p)
               for name, p in (("mood", mood), ("digits", digits), ("tool", tool), ("free", free))}
    texts: dict[str, str] = {}
    with batch_steps(engine, gate=4) as steps:
        threads = [threading.Thread(target=lambda n=n, s=s: texts.__setitem__(n, s.text())) for n, s in streams.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    temperatures = {0.0, 0.8, 0.3, 0.9}
    assert any({kw["temperature"] for kw in step} == temperatures and len(step) == 4 for step in steps), \
        [sorted(kw["temperature"] for kw in step) for step in steps]

    value = json.loads(texts["mood"])
    assert set(value) == {"mood", "ok"} and value["mood"] in ("happy", "sad") and isinstance(value["ok"], bool)
    value = json.loads(texts["digits"])
    assert isinstance(value, list) and 2 <= len(value) <= 3 and all(isinstance(x, int) and 0 <= x <= 9 for x in value)
    assert streams["mood"].stats.finish_reason == streams["digits"].stats.finish_reason == "stop"
    calls = streams["tool"].stats.tool_calls
    assert calls and all(c.name == "get_weather" and json.loads(c.arguments)["city"] in ("Seoul", "Busan")
                         for c in calls), (calls, texts["tool"])
    assert streams["free"].stats.completion_tokens == 16 and texts["free"]


def test_a_rows_grammar_follows_its_reply_and_ends_it_even_under_a_minimum_length(engine):
    """Without the model: a JSON row's matcher is given the row's reply tokens as the step is laid out, masks
    only its own row, and once its value is complete leaves the end token, even where a minimum length holds
    the end back (a row of nothing but -inf could not be drawn from)."""
    from transformers.generation.continuous_batching.requests import FutureRequestState, RequestState

    from engine.serving.sampling import GrammarRows, HoldEnd, RowExtras

    stops = tuple(engine.codec.stops)
    matcher = engine.generator.grammar.matcher(JsonConstraint.from_schema({"type": "boolean"}))
    reply = engine.codec.tokenizer.convert_tokens_to_ids(["tr", "ue"])     # "true", no leading space

    def request(rid: str, generated: list[int], **kwargs) -> FutureRequestState:
        state = RequestState(rid, [1, 3, 4], max_new_tokens=50, eos_token_id=list(stops), logit_processor_kwargs=kwargs)
        state.generated_tokens = list(generated)
        return FutureRequestState(state, True, {}, 1)

    rows = {"json": RowExtras(matcher=matcher)}
    grammar, hold = GrammarRows(rows, stops), HoldEnd(stops)
    requests = [request("free", [9]), request("json", reply, min_new_tokens=10)]
    scores = torch.randn(2, engine.model.config.vocab_size)
    out = grammar(hold(scores.clone(), hold.prepare_tensor_args(requests)), grammar.prepare_tensor_args(requests))
    assert rows["json"].consumed == len(reply) and not matcher.is_error() and matcher.is_accepting()
    finite = torch.isfinite(out[1]).nonzero().flatten().tolist()
    assert finite and set(finite) <= set(stops), finite
    assert torch.equal(out[0], scores[0])                        # the free row is untouched
