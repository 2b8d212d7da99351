"""History trimming on a chat-template model: a bounded number of counts, and a cancel (the client left,
or Stop) stops it before the next count.

On the real SmolLM2 tokenizer (a chat template, 8,192 tokens of context) every count renders the template
over the kept turns, so a trim that counted once per turn was quadratic: 999 short turns took 4.0 s.
Counts are counted here, not timed (timings belong in bench/bench_text.py).
"""
from __future__ import annotations

import math
import threading

import pytest
from transformers import AutoTokenizer

from engine.prompting.codec import TextCodec
from engine.serving.generation import PromptCounter, TrimCancelled, trim_history
from engine.loading.sources import resolve_source

TURNS = 999
BUDGET = 8192 - 64


@pytest.fixture(scope="module")
def codec() -> TextCodec:
    folder = resolve_source("demo:smollm2").folder
    return TextCodec.load(folder, AutoTokenizer.from_pretrained(str(folder)))


def long_chat(turns: int = TURNS) -> list[dict]:
    messages = []
    for i in range(turns - 1):
        messages += [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}]
    return messages + [{"role": "user", "content": "and the last question?"}]


def test_trim_keeps_the_most_turns_that_fit_in_a_logarithmic_number_of_counts(codec):
    counter = PromptCounter(codec)
    kept, dropped = trim_history(long_chat(), counter, max_turns=10 ** 6, max_prompt_tokens=BUDGET)
    assert 0 < dropped < TURNS - 1
    assert counter(kept) <= BUDGET                                   # what is kept fits ...
    one_more = long_chat()[2 * dropped - 2:]
    assert counter(one_more) > BUDGET                                 # ... and one turn more would not
    # galloping then bisecting: about 2 log2(n) counts (a walk back counted once per kept turn: hundreds)
    assert counter.calls - 2 <= 2 * math.ceil(math.log2(TURNS)) + 1, counter.calls


def test_a_cancel_stops_the_trim_before_its_next_count(codec):
    cancel = threading.Event()
    counter = PromptCounter(codec)

    def count_then_leave(messages):
        n = counter(messages)
        if counter.calls == 2:
            cancel.set()    # the client leaves while the second count is running
        return n

    with pytest.raises(TrimCancelled):
        trim_history(long_chat(), count_then_leave, max_turns=10 ** 6, max_prompt_tokens=BUDGET, cancel=cancel)
    assert counter.calls == 2
