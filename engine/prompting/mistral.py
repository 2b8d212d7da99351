"""Conversation -> token ids in Mistral's instruct format, equal to mistral-common's v3 encoding.

Models on the chat-template path (engine/prompting/codec.py) get their ids from engine/prompting/template.py instead;
the checks on roles and order below hold for both.

Text is always encoded as text: a user typing "[INST]" or "</s>" gets those characters, never
the control tokens. Control tokens are placed only here, by id.
"""
from __future__ import annotations

from typing import Sequence

from engine.prompting.codec import MISTRAL, TextCodec
from engine.prompting.template import encode_template_chat
from engine.errors import PromptError

ROLES = ("system", "user", "assistant")


def check_message(i: int, message: dict, roles: Sequence[str], content_default: str | None = None) -> tuple[str, str]:
    """(role, content) of message i, or PromptError naming it: a known role, text content that UTF-8 can encode.
    `content_default` stands in for a missing content (a tool-calling assistant turn has none)."""
    role, content = message.get("role"), message.get("content")
    if content is None:
        content = content_default
    if role not in roles:
        raise PromptError(f"message {i}: role {role!r} is not one of {', '.join(roles)}")
    if not isinstance(content, str):
        raise PromptError(f"message {i}: content must be text")
    try:
        content.encode("utf-8")  # a lone surrogate (\ud800) would fail deep in the tokenizer instead
    except UnicodeEncodeError as exc:
        raise PromptError(f"message {i}: the text holds a character that cannot be encoded as UTF-8 "
                          f"(U+{ord(content[exc.start]):04X}, a lone surrogate)") from None
    return role, content


def normalize_messages(messages: Sequence[dict]) -> list[dict]:
    """Check roles and order; return [{"role", "content"}] with system messages first.

    Allowed: any system messages, then user/assistant alternating, starting and ending with user.
    """
    if not messages:
        raise PromptError("the conversation is empty")
    system, turns = [], []
    for i, m in enumerate(messages):
        role, content = check_message(i, m, ROLES)
        if role == "system":
            if turns:
                raise PromptError(f"message {i}: a system message must come before the conversation")
            if content.strip():
                system.append(content)
            continue
        if not content.strip() and role == "user":
            raise PromptError(f"message {i}: the user message is empty")
        expected = "user" if len(turns) % 2 == 0 else "assistant"
        if role != expected:
            raise PromptError(f"message {i}: expected the {expected} turn here, got {role}")
        turns.append({"role": role, "content": content})
    if not turns or turns[-1]["role"] != "user":
        raise PromptError("the conversation must end with a user message")
    if system:
        return [{"role": "system", "content": "\n\n".join(system)}] + turns
    return turns


def encode_chat(codec: TextCodec, messages: Sequence[dict], *, with_assistant_mask: bool = False):
    """Token ids for a conversation ending with a user turn (a generation prompt).

    With `with_assistant_mask`, the conversation may also end with an assistant turn (training) and
    the result is (ids, mask), mask[i] True for tokens the assistant wrote (its text and </s>).
    As in mistral-common v3: system text goes before the last user message, assistant text is
    right-stripped of spaces.
    """
    if with_assistant_mask and messages and messages[-1].get("role") == "assistant":
        msgs = normalize_messages(list(messages[:-1]))
        msgs.append({"role": "assistant", "content": messages[-1].get("content", "")})
    else:
        msgs = normalize_messages(messages)
    if codec.path != MISTRAL:
        return encode_template_chat(codec, msgs, with_assistant_mask=with_assistant_mask)
    system = msgs[0]["content"] if msgs[0]["role"] == "system" else None
    turns = msgs[1:] if system is not None else msgs
    last_user = max(i for i, m in enumerate(turns) if m["role"] == "user")
    ids, mask = [codec.bos], [False]
    for i, m in enumerate(turns):
        if m["role"] == "user":
            text = f"{system}\n\n{m['content']}" if (system and i == last_user) else m["content"]
            piece, is_reply = [codec.inst] + codec.encode(text) + [codec.inst_end], False
        else:
            piece, is_reply = codec.encode(m["content"].rstrip(" ")) + [codec.eos], True
        ids += piece
        mask += [is_reply] * len(piece)
    return (ids, mask) if with_assistant_mask else ids
