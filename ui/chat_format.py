"""Pure helpers between stored sessions, the engine and the Chatbot: no Gradio events, easy to test."""
from __future__ import annotations

import html
from typing import Any, Callable, Sequence

# A chat's own settings, in the order the Settings panel shows them; the adapter is stored beside them.
SETTING_KEYS = ("system_prompt", "temperature", "max_new_tokens", "top_p", "history_turns", "seed",
                "presence_penalty", "frequency_penalty", "top_k", "repetition_penalty")
STORED_KEYS = (*SETTING_KEYS, "adapter")
TEXT_KEYS = ("system_prompt", "adapter")
COUNT_KEYS = ("max_new_tokens", "history_turns")       # whole numbers from 1


def message_text(content: Any) -> str:
    """Gradio 6 hands content as a list of parts; the engine and the store take plain text."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        if content.get("type", "text") == "text" and "text" in content:
            return str(content["text"])
        return ""
    if isinstance(content, (list, tuple)):
        return "".join(message_text(p) for p in content)
    return ""


def engine_messages(messages: Sequence[dict], system_prompt: str = "") -> list[dict]:
    """Stored messages -> alternating user/assistant text for the engine.

    Consecutive messages of one role are joined (a user message whose reply failed before it
    started is followed by the next one), so the engine always gets a valid conversation.
    """
    out: list[dict] = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    for m in messages:
        role = m.get("role")
        if role not in ("user", "assistant"):
            continue
        text = m.get("content", "")
        if role == "user" and not text.strip():
            text = "(image)" if m.get("attachments") else "…"
        if out and out[-1]["role"] == role:
            out[-1] = {"role": role, "content": (out[-1]["content"] + "\n\n" + text).strip("\n")}
        elif role == "assistant" and (not out or out[-1]["role"] == "system"):
            continue  # a conversation starts with the user
        else:
            out.append({"role": role, "content": text})
    return out


def turns_in(messages: Sequence[dict]) -> int:
    """User turns in an engine conversation (each with the reply that followed it)."""
    return sum(1 for m in messages if m.get("role") == "user")


def last_user_index(messages: Sequence[dict]) -> int | None:
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "user":
            return i
    return None


def continuable(messages: Sequence[dict]) -> bool:
    """The chat ends with a whole reply cut at the token limit, to a message without an image (Continue
    goes on with it: the image model cannot continue a reply)."""
    index = last_user_index(messages)
    if index is None or index != len(messages) - 2 or messages[-1].get("role") != "assistant":
        return False
    reply = messages[-1]
    return (reply.get("status", "complete") == "complete" and not messages[index].get("attachments")
            and (reply.get("provenance") or {}).get("finish_reason") == "length")


def visible_messages(messages: Sequence[dict]) -> list[tuple[int, dict]]:
    """(stored index, message) for what the Chatbot shows: user and assistant messages."""
    return [(i, m) for i, m in enumerate(messages) if m.get("role") in ("user", "assistant")]


def provenance_line(prov: dict | None, status: str, words: Callable[..., str]) -> str:
    """The small line under a reply: model · rung · adapter · tokens/s (and stopped, error or cut at the limit)."""
    if not prov:
        return ""
    parts = [str(prov.get("model", "?")), str(prov.get("rung", "?")),
             str(prov.get("adapter") or words("no_adapter"))]
    turns = prov.get("history_turns")
    if isinstance(turns, int) and not isinstance(turns, bool):
        parts.append(words("turns_sent", n=turns))
    tps = prov.get("tokens_per_second")
    if isinstance(tps, (int, float)) and tps > 0:
        parts.append(f"{tps:.1f} tok/s")
    if status in ("stopped", "error"):
        parts.append(("⏹ " if status == "stopped" else "⚠️ ") + words(status))
    elif prov.get("finish_reason") == "length":     # it ends mid-sentence: say why, and where to allow more
        parts.append("✂️ " + words("cut_at_limit"))
    return "<sub>" + html.escape(" · ".join(parts)) + "</sub>"


def reply_content(text: str, prov: dict | None, status: str, words: Callable[..., str]) -> str:
    line = provenance_line(prov, status, words)
    body = text if text.strip() else ("…" if not line else "")
    return f"{body}\n\n{line}" if line else body


def display_messages(messages: Sequence[dict], image_view: Callable[[str], str | None],
                     words: Callable[..., str]) -> list[dict]:
    """Stored messages -> Chatbot messages (content as a list of parts; images as file parts)."""
    shown = []
    for _, m in visible_messages(messages):
        if m["role"] == "user":
            parts: list[Any] = []
            for ref in m.get("attachments", []):
                path = image_view(ref)
                if path:
                    parts.append({"path": path, "alt_text": "image"})
            if m.get("content"):
                parts.append(m["content"])
            shown.append({"role": "user", "content": parts or [""]})
        else:
            shown.append({"role": "assistant",
                          "content": reply_content(m.get("content", ""), m.get("provenance"),
                                                   m.get("status", "complete"), words)})
    return shown


def settings_from(values: dict | None, defaults: dict) -> dict:
    """Merge a session's stored settings over the defaults, keeping only known keys with sane types (ranges are
    the engine's to check, at the one door). A seed given as null means no seed: it may be cleared."""
    merged = dict(defaults)
    for key in STORED_KEYS:
        value = (values or {}).get(key)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if key == "seed" and key in (values or {}) and (value is None or (number and float(value).is_integer())):
            merged[key] = None if value is None else int(value)
        elif value is None:
            continue
        elif key in TEXT_KEYS and isinstance(value, str):
            merged[key] = value
        elif key in COUNT_KEYS and number and value >= 1:
            merged[key] = int(value)
        elif key not in TEXT_KEYS + COUNT_KEYS + ("seed",) and number:
            merged[key] = float(value)
    return merged


def short_title(text: str, limit: int = 48) -> str:
    """A title from the first message: one line, at most `limit` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
