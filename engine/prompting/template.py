"""Conversation -> token ids through the tokenizer's own chat template (the non-Mistral path).

Ids equal `tokenizer.apply_chat_template(messages, add_generation_prompt=True)` for ordinary text. A
message that contains a control token's text (a user typing "<|im_end|>") is rendered with placeholders,
and its text is encoded as text: control tokens come only from the template, never from a message.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

from engine.errors import PromptError

PLACEHOLDER = "\ue000{}\ue001"   # private-use characters no template alters
PLACEHOLDER_RE = re.compile("\ue000(\\d+)\ue001")


def special_texts(tokenizer: Any) -> tuple[str, ...]:
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    texts = {t.content for t in added.values() if getattr(t, "special", False)}
    texts.update(getattr(tokenizer, "all_special_tokens", []) or [])
    return tuple(t for t in texts if t)


def render_ids(codec: Any, messages: Sequence[dict], *, generation_prompt: bool,
               tools: list[dict] | None = None) -> list[int]:
    """Ids of `messages` (already normalised) as the template lays them out. PromptError on a refusal.
    `tools` (OpenAI tool objects) go to the template, which lists them in its own tool format."""

    tok = codec.tokenizer
    specials = special_texts(tok)
    unsafe = any(s in m["content"] for m in messages for s in specials)
    shown = [m | {"content": PLACEHOLDER.format(i)} for i, m in enumerate(messages)] if unsafe else list(messages)
    try:
        text = tok.apply_chat_template(shown, tokenize=False, add_generation_prompt=generation_prompt,
                                       **({"tools": tools} if tools else {}))
    except Exception as exc:  # noqa: BLE001 - jinja2 TemplateError (raise_exception) and template bugs alike
        said = str(exc).strip() or type(exc).__name__
        if messages and messages[0]["role"] == "system":
            raise PromptError(f"this model's chat template does not accept a system prompt (it says: {said}): "
                              "leave the system prompt empty for this model") from None
        raise PromptError(f"this model's chat template refused the conversation: {said}") from None
    if not unsafe:
        return list(tok(text, add_special_tokens=False)["input_ids"])
    ids: list[int] = []
    at = 0
    for match in PLACEHOLDER_RE.finditer(text):
        ids += tok(text[at:match.start()], add_special_tokens=False)["input_ids"] if match.start() > at else []
        ids += codec.encode(messages[int(match.group(1))]["content"])
        at = match.end()
    if at < len(text):
        ids += tok(text[at:], add_special_tokens=False)["input_ids"]
    return ids


def encode_template_chat(codec: Any, msgs: list[dict], *, with_assistant_mask: bool):
    """Generation prompt ids; with `with_assistant_mask`, (ids, mask) with the assistant's own tokens marked.

    The mask comes from rendering growing prefixes: the tokens a reply adds after the template's
    generation prompt are the reply (its text and end token).
    """

    if not with_assistant_mask:
        return render_ids(codec, msgs, generation_prompt=True)
    ends_with_reply = msgs[-1]["role"] == "assistant"
    ids = render_ids(codec, msgs, generation_prompt=not ends_with_reply)
    mask = [False] * len(ids)
    for k, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        before = render_ids(codec, msgs[:k], generation_prompt=True)
        upto = render_ids(codec, msgs[:k + 1], generation_prompt=False)
        if upto[:len(before)] != before or ids[:len(upto)] != upto:
            raise PromptError("this model's chat template does not build a conversation by appending turns, "
                              "so replies cannot be told apart for training")
        for i in range(len(before), len(upto)):
            mask[i] = True
    return ids, mask
