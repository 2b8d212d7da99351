"""Continue (issue 24): a reply cut at the token limit goes on from where it stopped, through the one door.

The request carries the reply so far (`reply_prefix`); generation puts its ids after the generation prompt,
trimming counts them, and where the model cannot go on from them (a remote server, the image model, tools or
a JSON format) the door refuses, naming reply_prefix. Real tiny engine (cpu bf16), no mocks.
"""
from __future__ import annotations

import pytest
import torch

from config import AppConfig, EngineConfig
from engine.chat import ChatEngine
from engine.errors import PromptTooLong, RequestError
from engine.prompting.constrained import JsonConstraint
from engine.prompting.mistral import encode_chat
from engine.prompting.tools import ToolSpec
from engine.requests import ChatService, Sampling
from engine.serving.generation import GenerationParams
from tests.conftest import free_port

HI = [{"role": "user", "content": "Say something about the sea."}]
NEAR_TIE = 0.05     # nats: a token this close to the model's top choice may swap with it under other rounding


@pytest.fixture(scope="module")
def door(tiny_engine) -> ChatService:
    return ChatService.from_config(AppConfig(), tiny_engine, None)


def greedy(n: int) -> Sampling:
    return Sampling(temperature=0.0, max_new_tokens=n, min_new_tokens=n)


def test_a_continuation_prompt_is_the_generation_prompt_then_the_replys_ids(tiny_engine, door):
    codec = tiny_engine.generator.codec
    prefix = "The sea is wide and"
    request = door.request(HI, greedy(3), reply_prefix=prefix)
    assert request.params.reply_prefix == prefix
    _kept, prompt, _stats = tiny_engine.generator.prepare(list(request.messages), request.params, None)
    assert prompt == encode_chat(codec, HI) + codec.encode(prefix)
    reply = door.open_chat(request)
    reply.stream.text()
    assert reply.stream.stats.prompt_tokens == len(encode_chat(codec, HI)) + len(codec.encode(prefix))
    assert reply.stream.stats.completion_tokens == 3


def teacher_forced_margins(model, context: list[int], tokens: list[int]) -> list[float]:
    """For each of `tokens` fed after `context`: how many nats below the model's top choice it was."""
    ids = torch.tensor([context + tokens])
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0].float()
    steps = torch.log_softmax(logits[len(context) - 1: len(context) - 1 + len(tokens)], dim=-1)
    return [float(step.max() - step[t]) for step, t in zip(steps, tokens)]


def test_greedy_continuing_the_first_half_of_a_greedy_reply_reproduces_the_second_half(tiny_engine, door):
    """Greedy 8 tokens; then greedy 4 more from the first 4 as the reply so far. Token by token the continuation
    is the original's tokens 5..8, except where the original token was a near tie (within NEAR_TIE nats of the
    top choice, teacher-forced after the continuation's prompt): there either may win, and past it they may
    differ. Not asked bitwise: the batch computes a longer prompt in other steps than the first reply's."""
    codec = tiny_engine.generator.codec
    first = door.open_chat(door.request(HI, greedy(8)))
    text = first.stream.text()
    original = list(first.stream.stats.token_ids)
    assert len(original) == 8 and first.stream.stats.finish_reason == "length"
    prefix = codec.decode(original[:4])
    assert codec.encode(prefix) == original[:4], "the first half must read back as the same ids"
    cont = door.open_chat(door.request(HI, greedy(4), reply_prefix=prefix))
    more = cont.stream.text()
    continued = list(cont.stream.stats.token_ids)
    margins = teacher_forced_margins(tiny_engine.model, encode_chat(codec, HI) + original[:4], original[4:])
    clear = 0           # positions, up to the first near tie, where the original's token is the clear top choice
    for got, want, margin in zip(continued, original[4:], margins):
        if margin <= NEAR_TIE and got != want:
            break       # a near tie went the other way: what follows continues another text
        assert got == want, (continued, original, margins)
        clear += 1
    share = sum(g == w for g, w in zip(continued, original[4:])) / 4
    assert share >= clear / 4 and clear >= 1, (continued, original, margins)
    assert cont.stream.stats.prompt_tokens == len(encode_chat(codec, HI)) + 4
    if continued == original[4:]:
        assert prefix + more == text, "the continuation's text joins the reply so far as one text (its space kept)"


def test_a_long_reply_so_far_counts_against_the_context(tiny_engine):
    """The prefix's ids take room in the prompt: trimming counts them, so a reply so far that, with the reply
    length, overflows the model's context is refused naming reply_prefix (the same request without it fits)."""
    door = ChatService(tiny_engine, None, GenerationParams(max_new_tokens=8), max_message_chars=10**6,
                       max_upload_bytes=2**20)
    context = tiny_engine.generator.max_context
    prefix = "wave " * context
    assert len(tiny_engine.generator.codec.encode(prefix)) >= context - 64
    asked = Sampling(temperature=0.0, max_new_tokens=64)
    with pytest.raises(PromptTooLong) as caught:
        door.open_chat(door.request(HI, asked, reply_prefix=prefix))
    assert caught.value.param == "reply_prefix" and caught.value.status == 400
    door.open_chat(door.request(HI, asked)).stream.close()
    # a history trimmed to make room for the reply so far: the oldest turns go, the last message stays
    third = context // 3
    history = [{"role": "user", "content": "tell " * third}, {"role": "assistant", "content": "sea " * third}, *HI]
    half = "wave " * (context // 2)
    request = door.request(history, Sampling(temperature=0.0, max_new_tokens=8), reply_prefix=half)
    kept, prompt, stats = tiny_engine.generator.prepare(list(request.messages), request.params, None)
    assert stats.dropped_turns == 1 and kept[-1] == HI[0]
    assert len(prompt) + 8 <= context


def test_where_a_continuation_cannot_work_the_door_says_so_naming_reply_prefix(door, tmp_path):
    from PIL import Image

    path = tmp_path / "red.png"
    Image.new("RGB", (8, 8), "red").save(path)
    weather = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    for kwargs in ({"image": str(path)}, {"tools": ToolSpec.of([weather], "auto")},
                   {"constraint": JsonConstraint.from_schema(None)}):
        with pytest.raises(RequestError) as caught:
            door.request(HI, reply_prefix="The sea", **kwargs)
        assert caught.value.param == "reply_prefix" and caught.value.status == 400, kwargs
    with pytest.raises(RequestError) as caught:
        door.request(HI, reply_prefix="x" * (door.limits.max_message_chars + 1))
    assert caught.value.param == "reply_prefix"
    remote = ChatEngine.load(EngineConfig(backend="openai", remote_base_url=f"http://127.0.0.1:{free_port()}/v1",
                                          remote_model="m"))
    try:
        with pytest.raises(RequestError) as caught:
            ChatService.from_config(AppConfig(), remote, None).request(HI, reply_prefix="The sea")
        assert caught.value.param == "reply_prefix" and "remote" in str(caught.value)
    finally:
        remote.close()
