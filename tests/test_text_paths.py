"""Text paths stay linear: trimming tokenizes each message once, streaming decodes a window, not the reply.

The work is counted (characters handed to SentencePiece, ids handed to decode), not timed: timings
belong in bench/bench_text.py.
"""
import dataclasses

from engine.serving.generation import GenerationParams, Generator
from engine.prompting.textstream import IncrementalDecoder


class CountingSentencePiece:
    """The real SentencePieceProcessor, with a tally of the characters it was asked to encode."""

    def __init__(self, spm):
        self.spm, self.chars = spm, 0

    def encode(self, text, *args, **kwargs):
        self.chars += len(text)
        return self.spm.encode(text, *args, **kwargs)

    def decode(self, ids):
        return self.spm.decode(ids)


def counting_generator(engine) -> tuple[Generator, CountingSentencePiece]:
    spm = CountingSentencePiece(engine.codec.sentencepiece)
    codec = dataclasses.replace(engine.codec, sentencepiece=spm)
    return Generator(engine.model, codec, max_context=engine.max_context, slots=1), spm


def long_chat(turns: int, chars: int) -> list[dict]:
    messages = [{"role": "system", "content": "Be brief."}]
    for i in range(turns):
        messages += [{"role": "user", "content": f"question {i} " + "x y " * (chars // 4)},
                     {"role": "assistant", "content": f"answer {i} " + "z " * (chars // 2)}]
    return messages + [{"role": "user", "content": "and the last question?"}]


def test_trimming_tokenizes_each_kept_message_once(tiny_engine):
    """20 turns, the budget holds 2: each kept message is tokenized once while trimming, plus the one turn
    that did not fit (not the whole kept conversation again for every dropped turn)."""
    generator, spm = counting_generator(tiny_engine)
    messages = long_chat(20, 400)
    params = GenerationParams(max_new_tokens=tiny_engine.max_context - 1100, temperature=0.0, max_history_turns=100)
    stream = generator.stream(messages, params)
    stream.close()
    dropped = stream.stats.dropped_turns
    assert 10 < dropped < 20
    kept_chars = sum(len(m["content"]) for m in messages) - sum(len(m["content"]) for m in messages[1:1 + 2 * dropped])
    one_more = sum(len(m["content"]) for m in messages[2 * dropped - 1:2 * dropped + 1])
    # trimming: kept once + the turn that did not fit; building the prompt afterwards: kept once more
    assert spm.chars <= 2 * kept_chars + one_more + 64, (spm.chars, kept_chars)


def test_trimming_never_tokenizes_turns_older_than_the_budget(tiny_engine):
    """Huge old turns: only the newest turns are tokenized; the work does not grow with the history."""
    generator, spm = counting_generator(tiny_engine)
    messages = long_chat(20, 20_000)
    budget_chars = 64 * 20  # a 4,096-token context holds far fewer than one 20,000-character turn
    stream = generator.stream(messages[:1] + messages[-3:], GenerationParams(max_new_tokens=4, temperature=0.0))
    stream.close()
    one_turn = spm.chars
    spm.chars = 0
    stream = generator.stream(messages, GenerationParams(max_new_tokens=4, temperature=0.0))
    stream.close()
    assert stream.stats.dropped_turns == 20
    assert spm.chars <= one_turn + budget_chars, (spm.chars, one_turn)


class CountingDecode:
    def __init__(self, decode):
        self.inner, self.ids = decode, 0

    def __call__(self, ids):
        self.ids += len(ids)
        return self.inner(ids)


def test_streaming_decode_work_is_linear_and_the_text_is_exact(tiny_engine):
    """8,000 ids one at a time: the text equals one decode of all ids, and decode saw O(n) ids, not O(n^2)."""
    codec = tiny_engine.codec
    text = ("Hello world, this is a long reply. 안녕하세요, 반갑습니다! 뷁 똠방각하 🇰🇷 emoji 😀 done.\n  "
            "Indented  spaces and [INST] text. ") * 200
    ids = codec.encode(text)[:8000]
    assert len(ids) == 8000
    decode = CountingDecode(codec.decode)
    decoder = IncrementalDecoder(decode)
    pieces = [decoder.push([i]) for i in ids] + [decoder.flush()]
    assert "".join(pieces) == codec.decode(ids)
    assert all("\ufffd" not in p for p in pieces)
    assert decode.ids <= 80 * len(ids), decode.ids  # the old whole-reply decode saw about 32,000,000


def test_decoder_keeps_a_real_replacement_character_and_leading_space(tiny_engine):
    codec = tiny_engine.codec
    ids = codec.encode(" lead" + " word" * 100 + " \ufffd end")
    decoder = IncrementalDecoder(codec.decode)
    out = "".join(decoder.push([i]) for i in ids) + decoder.flush()
    assert out == codec.decode(ids) and "\ufffd end" in out
