"""POST /v1/completions (OpenAI's legacy endpoint) on the real app server with the real `openai` client: text,
list and token-id prompts, n, stop, seed, streaming, logprobs in OpenAI's legacy shape, echo with the prompt's
logprobs (the log-likelihood evaluation harnesses read) equal to a teacher-forced pass of the same model, and the
refusals, each with its status, code and param. Key and admission: the real app, in process, over the tiny engine."""
import threading

import pytest
import torch
from fastapi.testclient import TestClient
from openai import BadRequestError, OpenAI

KEY = "test-key-completions"


@pytest.fixture(scope="module")
def client(app_server):
    return OpenAI(base_url=app_server.url + "/v1", api_key="unused-on-loopback", max_retries=0)


def model_id(client) -> str:
    return client.models.list().data[0].id


def teacher_forced(model, ids: list[int]) -> torch.Tensor:
    """log_softmax of the model's logits over `ids` in one plain forward: row i scores token i + 1."""
    with torch.inference_mode():
        return torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)


def test_echo_logprobs_are_the_models_teacher_forced_logprobs(client, tiny_engine):
    """lm-evaluation-harness's log-likelihood request: echo, max_tokens 0, logprobs; token-id and text prompts."""
    ids = [1, 851, 1049, 12, 9000, 31000, 77, 4242]
    out = client.completions.create(model=model_id(client), prompt=ids, max_tokens=0, echo=True, logprobs=3)
    (choice,) = out.choices
    lp = choice.logprobs
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None and len(lp.tokens) == len(ids)
    expected = teacher_forced(tiny_engine.model, ids)
    for i in range(1, len(ids)):
        assert lp.token_logprobs[i] == pytest.approx(float(expected[i - 1, ids[i]]), abs=2e-3)
        values, top = torch.topk(expected[i - 1], 3)
        shown = sorted(lp.top_logprobs[i].values(), reverse=True)
        assert shown[:3] == pytest.approx(values.tolist(), abs=2e-3)       # the 3 best, and the token itself
        assert lp.top_logprobs[i][lp.tokens[i]] == pytest.approx(lp.token_logprobs[i])
    assert choice.text == tiny_engine.codec.decode(ids) and choice.finish_reason == "length"
    assert out.usage.prompt_tokens == len(ids) and out.usage.completion_tokens == 0
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(len(ids))]

    # lm-evaluation-harness's local-completions asks exactly this (token-id prompts, one generated token it drops)
    # and reads sum(token_logprobs[ctxlen:-1]) and whether each equals max(top_logprobs[i].values())
    other = [1, 5000, 6000, 7000]
    out = client.completions.create(model=model_id(client), prompt=[ids, other], max_tokens=1, temperature=0,
                                    logprobs=1, echo=True, seed=1234)
    for choice, prompt in zip(sorted(out.choices, key=lambda c: c.index), [ids, other]):
        lp, scored = choice.logprobs, teacher_forced(tiny_engine.model, prompt)
        assert len(lp.token_logprobs) == len(prompt) + 1 and lp.token_logprobs[0] is None
        assert lp.token_logprobs[1:-1] == pytest.approx([float(scored[i - 1, prompt[i]])
                                                         for i in range(1, len(prompt))], abs=2e-3)
        greedy = [tok == max(top.values()) for tok, top in zip(lp.token_logprobs[1:-1], lp.top_logprobs[1:-1])]
        assert greedy == [prompt[i] == int(scored[i - 1].argmax()) for i in range(1, len(prompt))]
        assert lp.token_logprobs[-1] == max(lp.top_logprobs[-1].values())      # the generated token: greedy

    text = "The capital of France is"
    out = client.completions.create(model=model_id(client), prompt=text, max_tokens=0, echo=True, logprobs=1)
    lp = out.choices[0].logprobs
    ids = tiny_engine.codec.encode(text)           # no chat template; this tokenizer adds no <s> of its own
    assert out.choices[0].text == text and len(lp.tokens) == len(ids) and lp.token_logprobs[0] is None
    expected = teacher_forced(tiny_engine.model, ids)
    assert lp.token_logprobs[1:] == pytest.approx([float(expected[i - 1, ids[i]]) for i in range(1, len(ids))],
                                                  abs=2e-3)


def test_text_and_list_prompts_n_and_generated_logprobs(client):
    m = model_id(client)
    out = client.completions.create(model=m, prompt="Once upon a time", max_tokens=4, temperature=0)
    assert out.object == "text_completion" and len(out.choices) == 1 and out.choices[0].text
    assert out.usage.completion_tokens == 4 and out.choices[0].finish_reason == "length"

    out = client.completions.create(model=m, prompt=["Hello", "Bye now"], max_tokens=2, n=2, echo=True,
                                    temperature=1.0, seed=11)
    assert [c.index for c in out.choices] == [0, 1, 2, 3]
    assert [c.text[:len(p)] for c, p in zip(out.choices, ["Hello", "Hello", "Bye now", "Bye now"])] == \
        ["Hello", "Hello", "Bye now", "Bye now"]
    assert out.choices[0].text != out.choices[1].text     # choice i draws with seed + i
    assert out.usage.completion_tokens == 8

    out = client.completions.create(model=m, prompt="Once upon a time", max_tokens=4, temperature=0, logprobs=2)
    lp = out.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 4
    assert "".join(lp.tokens) == out.choices[0].text and out.choices[0].text.startswith(" ")  # prompt + text reads
    for token, logprob, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert top[token] == logprob and logprob == pytest.approx(max(top.values()))   # greedy: the argmax
        assert 2 <= len(top) <= 3


def test_seed_reproduces_and_stop_cuts(client):
    m = model_id(client)
    ask = dict(model=m, prompt="Tell me", max_tokens=6, temperature=1.0, seed=1234)
    first, again = client.completions.create(**ask), client.completions.create(**ask)
    assert first.choices[0].text == again.choices[0].text
    other = client.completions.create(**(ask | {"seed": 99}))
    assert other.choices[0].text != first.choices[0].text

    text = first.choices[0].text
    stop = next(ch for ch in text[1:] if not ch.isspace())
    cut = client.completions.create(**ask, stop=[stop])
    assert cut.choices[0].text == text[:text.index(stop)] and cut.choices[0].finish_reason == "stop"


def test_stream_gives_the_same_text_with_echo_logprobs_and_usage(client):
    m = model_id(client)
    whole = client.completions.create(model=m, prompt="Hello there", max_tokens=5, temperature=0, echo=True,
                                      logprobs=1)
    chunks = list(client.completions.create(model=m, prompt="Hello there", max_tokens=5, temperature=0, echo=True,
                                            logprobs=1, stream=True, stream_options={"include_usage": True}))
    texts = [c.choices[0].text for c in chunks if c.choices]
    assert texts[0] == "Hello there" and "".join(texts) == whole.choices[0].text
    tokens = [t for c in chunks if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.tokens]
    offsets = [o for c in chunks if c.choices and c.choices[0].logprobs for o in c.choices[0].logprobs.text_offset]
    assert tokens == whole.choices[0].logprobs.tokens and offsets == whole.choices[0].logprobs.text_offset
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5


@pytest.mark.parametrize("kwargs,param,code", [
    ({"prompt": "hi", "max_tokens": -1}, "max_tokens", None),
    ({"prompt": "hi", "logprobs": 21}, "logprobs", None),
    ({"prompt": ""}, "prompt", "invalid_parameter"),
    ({"prompt": ["fine", ""]}, "prompt.1", "invalid_parameter"),
    ({"prompt": [[5, 6], [7, 10 ** 6]]}, "prompt.1", "invalid_parameter"),
    ({"prompt": [1] * 5000}, "prompt", "context_length_exceeded"),
    ({"prompt": [5] * 10, "max_tokens": 4090}, "max_tokens", "context_length_exceeded"),
    ({"prompt": "hi", "temperature": 3}, "temperature", None),
    ({"prompt": "hi", "suffix": "end"}, "suffix", "unsupported_parameter"),
    ({"prompt": "hi", "best_of": 3}, "best_of", "unsupported_parameter"),
    ({"prompt": "hi", "extra_body": {"guided_regex": "a+"}}, "guided_regex", "unsupported_parameter"),
])
def test_refusals_name_the_parameter(client, kwargs, param, code):
    with pytest.raises(BadRequestError) as info:
        client.completions.create(model=model_id(client), **kwargs)
    assert info.value.status_code == 400
    error = info.value.body
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error"), error


def test_stream_options_without_stream_is_refused_by_name(client):
    """include_usage asked of a reply that is not streamed would be silently ignored: refused, naming the field."""
    with pytest.raises(BadRequestError) as info:
        client.completions.create(model=model_id(client), prompt="hi", max_tokens=1,
                                  stream_options={"include_usage": True})
    error = info.value.body
    assert info.value.status_code == 400 and error["param"] == "stream_options", error
    assert error["message"] == "stream_options needs stream set to true", error


def test_key_and_admission_as_for_chat(tiny_engine):
    """The same guard and queue as /v1/chat/completions: 401 without the key, 503 with Retry-After when full
    (scoring the prompt and generating alike), and nothing held afterwards."""
    from api.auth import KeyPolicy
    from api.routes import build_api
    from config import AppConfig

    policy = KeyPolicy(key=KEY, public=True, why="test", env_name="APP_API_KEY")
    app = TestClient(build_api(AppConfig(), tiny_engine, policy=policy), client=("10.0.0.7", 5000))
    body = {"model": tiny_engine.model_id, "prompt": "hi", "max_tokens": 1}
    refused = app.post("/v1/completions", json=body)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    past_the_key = app.post("/v1/completions", json=body | {"prompt": ""}, headers={"Authorization": f"Bearer {KEY}"})
    assert past_the_key.status_code == 400 and past_the_key.json()["error"]["param"] == "prompt"

    slots, held = tiny_engine.scheduler.slots, threading.Event()
    waiting, taken = slots.max_waiting, 0
    try:
        slots.max_waiting = 0
        while slots.stats("x").active < slots.slots:
            assert slots.acquire(held)
            taken += 1
        for extra in ({}, {"echo": True, "logprobs": 1, "max_tokens": 0}):
            busy = app.post("/v1/completions", json=body | extra, headers={"Authorization": f"Bearer {KEY}"})
            assert busy.status_code == 503 and busy.json()["error"]["code"] == "server_busy", busy.text
            assert busy.headers["retry-after"]
    finally:
        slots.max_waiting = waiting
        for _ in range(taken):
            slots.release()
    assert slots.stats("x").active == 0

