"""Streaming over the real tiny model: pieces, cancel, stop strings, trimming, UTF-8 safety, OOM retry."""
import threading
import time

import pytest
import torch

from engine.serving.generation import GenerationParams, trim_history
from engine.errors import GenerationError, PromptTooLong
from engine.prompting.textstream import IncrementalDecoder, StopMatcher

GREEDY = GenerationParams(max_new_tokens=40, min_new_tokens=40, temperature=0.0)
HELLO = [{"role": "user", "content": "Hello"}]


def reference_ids(engine, messages, n):
    """What plain model.generate produces for the same prompt: the stream must match it token for token."""
    from engine.prompting.mistral import encode_chat

    ids = torch.tensor([encode_chat(engine.codec, messages)])
    with torch.inference_mode():
        out = engine.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n,
                                    min_new_tokens=n, do_sample=False, pad_token_id=2, temperature=None,
                                    top_p=None, top_k=None)
    return out[0, ids.shape[1]:].tolist()


def test_stream_yields_the_same_text_as_generate(tiny_engine):
    """The plain path (engine.batch_greedy false, or logprobs, schemas, tools) equals generate token for token."""
    stream = tiny_engine.generator.stream(HELLO, GREEDY)
    pieces = list(stream)
    assert len(pieces) > 5  # it streamed, not one blob
    assert "".join(pieces) == tiny_engine.codec.decode(reference_ids(tiny_engine, HELLO, 40))
    s = stream.stats
    assert s.completion_tokens == 40 and s.finish_reason == "length" and s.prompt_tokens == 4
    assert s.first_token_seconds is not None and s.tokens_per_second > 0


def test_cancel_ends_within_one_token_and_frees_the_slot(tiny_engine):
    cancel = threading.Event()
    stream = tiny_engine.stream(HELLO, GREEDY.with_overrides(max_new_tokens=400, min_new_tokens=400), cancel)
    got = 0
    for _ in stream:
        got += 1
        if got == 3:
            tokens_at_cancel = stream.stats.completion_tokens  # live count
            cancel.set()
    assert stream.stats.finish_reason == "cancelled"
    assert stream.stats.completion_tokens <= tokens_at_cancel + 1
    # every slot is free again: as many streams as slots start at once
    slots = tiny_engine.generator._slots
    assert all(slots.acquire(blocking=False) for _ in range(4))
    for _ in range(4):
        slots.release()


def test_closing_the_stream_stops_generation(tiny_engine):
    stream = tiny_engine.stream(HELLO, GREEDY.with_overrides(max_new_tokens=2000, min_new_tokens=2000))
    next(stream)
    started = time.perf_counter()
    stream.close()  # a client that went away
    assert time.perf_counter() - started < 2.0
    assert stream.stats.finish_reason == "cancelled" and stream.stats.completion_tokens < 100
    assert not [t for t in threading.enumerate() if t.name == "generate"]


def test_stop_string_cuts_the_reply(tiny_engine):
    full = tiny_engine.stream(HELLO, GREEDY).text()
    stop = full[12:16]
    assert stop and full.find(stop) == 12
    stream = tiny_engine.stream(HELLO, GREEDY.with_overrides(stop=[stop]))
    assert stream.text() == full[:12]
    assert stream.stats.finish_reason == "stop" and stream.stats.completion_tokens < 40


def test_history_is_trimmed_oldest_first_and_reported(tiny_engine):
    system = {"role": "system", "content": "Always be brief."}
    turns = []
    for i in range(30):
        turns += [{"role": "user", "content": f"question {i} " * 5}, {"role": "assistant", "content": f"answer {i}"}]
    messages = [system] + turns + [{"role": "user", "content": "last question"}]
    kept, dropped = trim_history(messages, tiny_engine.generator.count_prompt_tokens, max_turns=5,
                                 max_prompt_tokens=10_000)
    assert dropped == 26 and kept[0] == system and kept[-1]["content"] == "last question"
    assert kept[1]["content"].startswith("question 26 ")
    kept, dropped = trim_history(messages, tiny_engine.generator.count_prompt_tokens, max_turns=100,
                                 max_prompt_tokens=120)
    assert kept[0] == system and tiny_engine.generator.count_prompt_tokens(kept) <= 120
    assert dropped > 0 and kept[-1]["content"] == "last question"
    stream = tiny_engine.stream(messages, GREEDY.with_overrides(max_history_turns=3))
    assert stream.stats.dropped_turns == 28 and "oldest turn" in stream.stats.notices[0]
    stream.close()


def test_a_message_longer_than_the_context_is_refused(tiny_engine):
    huge = [{"role": "user", "content": "word " * 5000}]
    with pytest.raises(PromptTooLong, match="at most"):
        tiny_engine.stream(huge, GREEDY)


def test_korean_streams_without_broken_characters(tiny_engine):
    """Korean syllables are byte-fallback tokens in Mistral's vocab; pieces must never end mid-character."""
    text = "안녕하세요, 반갑습니다! 오늘은 뷁 똠방각하 쀍 같은 드문 글자도 있어요. 🇰🇷"
    ids = tiny_engine.codec.encode(text)
    assert len(ids) > len(text) // 2  # many single-byte tokens
    decoder = IncrementalDecoder(tiny_engine.codec.decode)
    pieces = [decoder.push([i]) for i in ids] + [decoder.flush()]
    assert all("\ufffd" not in p for p in pieces)
    assert "".join(pieces) == tiny_engine.codec.decode(ids)
    assert sum(1 for p in pieces if p) > 10


def test_stop_matcher_holds_back_a_partial_stop():
    m = StopMatcher(["</end>"])
    assert m.feed("hello </") == "hello "
    assert m.feed("en") == ""
    assert m.feed("x more") == "</enx more"
    assert m.feed(" a</end> b") == " a" and m.stopped
    assert m.feed("after") == "" and m.flush() == ""


def _inject_oom_once(model, min_length):
    """Fault injection: the next forward pass with a prompt of >= min_length tokens raises CUDA OOM."""
    state = {"armed": True}

    def hook(module, args, kwargs):
        ids = kwargs.get("input_ids")
        if state["armed"] and ids is not None and ids.shape[1] >= min_length:
            state["armed"] = False
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    return model.register_forward_pre_hook(hook, with_kwargs=True)


def test_out_of_memory_in_the_batch_generates_the_reply_alone(tiny_engine):
    """The batch's forward fails with OOM before the first token: the request is generated alone on the plain
    path, and its stats are that reply's (they once came back as 0 tokens)."""
    messages = [{"role": "user", "content": "turn " * 80}]
    handle = _inject_oom_once(tiny_engine.model, min_length=60)
    try:
        stream = tiny_engine.stream(messages, GREEDY)               # greedy requests share the batch
        text = stream.text()
    finally:
        handle.remove()
    assert text and stream.stats.completion_tokens == 40 and stream.stats.finish_reason == "length"
    assert any("ran out of memory in the shared batch" in n for n in stream.stats.notices)


def test_out_of_memory_during_generation_retries_with_shorter_context(tiny_engine):
    messages = []
    for i in range(6):
        messages += [{"role": "user", "content": f"turn {i} " * 10}, {"role": "assistant", "content": "ok"}]
    messages.append({"role": "user", "content": "and now?"})
    handle = _inject_oom_once(tiny_engine.model, min_length=60)
    try:
        stream = tiny_engine.generator.stream(messages, GREEDY)     # the plain path
        text = stream.text()
    finally:
        handle.remove()
    assert text and stream.stats.completion_tokens == 40
    assert any("ran out of memory" in n for n in stream.stats.notices)
    assert stream.stats.dropped_turns > 0
    # the model stays usable
    assert tiny_engine.generator.stream(HELLO, GREEDY).text() == tiny_engine.codec.decode(
        reference_ids(tiny_engine, HELLO, 40))
    assert tiny_engine.stream(HELLO, GREEDY).text()


def test_out_of_memory_twice_is_a_clear_error_and_the_model_stays_usable(tiny_engine):
    def hook(module, args, kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    handle = tiny_engine.model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with pytest.raises(GenerationError, match="ran out of memory again"):
            tiny_engine.stream(HELLO, GREEDY).text()
    finally:
        handle.remove()
    assert len(tiny_engine.stream(HELLO, GREEDY).text()) > 0
