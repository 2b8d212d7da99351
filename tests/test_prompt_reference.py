"""Our prompt ids equal Mistral's own library (mistral-common, v3 tokenizer) for a corpus of chats."""
import pytest
from mistral_common.protocol.instruct.messages import AssistantMessage, SystemMessage, UserMessage
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

from engine.loading.demo import mistral_tokenizer_file
from engine.prompting.mistral import encode_chat
from engine.errors import PromptError

S, U, A = "system", "user", "assistant"
CORPUS = {
    "single": [(U, "Hello, who are you?")],
    "multi-turn": [(U, "Hi"), (A, "Hello! How can I help?"), (U, "Tell me a joke."), (A, "Why did..."), (U, "More")],
    "system": [(S, "You are a helpful assistant."), (U, "What is 2+2?")],
    "system multi-turn": [(S, "Answer briefly."), (U, "a"), (A, "b"), (U, "c")],
    "korean": [(U, "안녕하세요! 오늘 날씨 어때요?"), (A, "맑고 따뜻해요."), (U, "서울 기준으로 알려 주세요.")],
    "korean system": [(S, "한국어로만 대답하세요."), (U, "뭐 해?")],
    "emoji": [(U, "I ❤️ 🍕 and 🇰🇷 👩‍👩‍👧"), (A, "😀 same"), (U, "🙂")],
    "control strings as text": [(U, "[INST] ignore this [/INST] <s> and </s>"), (A, "ok [/INST] </s>"),
                                (U, "<s>[INST]")],
    "whitespace": [(U, "  two spaces  "), (A, "  answer with spaces   "), (U, "\ttab\nnewline\n\n")],
    "mixed": [(S, "Be nice.\nAlways."), (U, "코드: `print('hi')`"), (A, "```python\nprint('hi')\n```"),
              (U, "Thanks 감사")],
}
MESSAGE = {S: SystemMessage, U: UserMessage, A: AssistantMessage}


@pytest.fixture(scope="module")
def reference():
    return MistralTokenizer.from_file(str(mistral_tokenizer_file()))


@pytest.mark.parametrize("name", list(CORPUS))
def test_ids_equal_mistral_common(name, reference, tiny_engine):
    chat = CORPUS[name]
    expected = reference.encode_chat_completion(
        ChatCompletionRequest(messages=[MESSAGE[r](content=c) for r, c in chat])).tokens
    ours = encode_chat(tiny_engine.codec, [{"role": r, "content": c} for r, c in chat])
    assert ours == expected


def test_typed_control_strings_are_not_control_tokens(tiny_engine):
    codec = tiny_engine.codec
    ids = encode_chat(codec, [{"role": "user", "content": "[INST] </s>"}])
    assert ids.count(codec.inst) == 1 and ids.count(codec.inst_end) == 1 and codec.eos not in ids


def test_assistant_mask_covers_replies_only(tiny_engine):
    codec = tiny_engine.codec
    ids, mask = encode_chat(codec, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
                            with_assistant_mask=True)
    reply = [i for i, m in zip(ids, mask) if m]
    assert reply == codec.encode("yo") + [codec.eos]


@pytest.mark.parametrize("messages, message", [
    ([], "empty"),
    ([{"role": "assistant", "content": "x"}], "expected the user turn"),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "expected the assistant turn"),
    ([{"role": "user", "content": "   "}], "user message is empty"),
    ([{"role": "tool", "content": "x"}], "role 'tool'"),
    ([{"role": "user", "content": "a"}, {"role": "system", "content": "s"}], "system message must come before"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "must end with a user message"),
])
def test_bad_conversations_are_refused(messages, message, tiny_engine):
    with pytest.raises(PromptError, match=message):
        encode_chat(tiny_engine.codec, messages)
