"""Pure helpers between stored sessions, the engine and the Chatbot: no Gradio events, easy to test."""
from __future__ import annotations

import hashlib
import html
import json
from typing import Any, Callable, Sequence

from engine.media.documents import Document
from ui.documents import document_line, is_card_ref, is_document_ref, read_card_file

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


def engine_messages(messages: Sequence[dict], system_prompt: str = "",
                    read_card: Callable[[str], Document | None] | None = None) -> list[dict]:
    """Stored messages -> alternating user/assistant text for the engine.

    Consecutive messages of one role are joined (a user message whose reply failed before it
    started is followed by the next one), so the engine always gets a valid conversation. A user
    message's documents (`read_card`: ref -> its stored Document) come before its text, as sent.
    """
    out: list[dict] = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    for m in messages:
        role = m.get("role")
        if role not in ("user", "assistant"):
            continue
        text = m.get("content", "")
        refs = m.get("attachments") or []
        docs = [d for d in map(read_card, filter(is_card_ref, refs)) if d is not None] if read_card and role == "user" \
            else []
        if docs:
            text = "\n\n".join([d.prompt() for d in docs] + ([text] if text.strip() else []))
        elif role == "user" and not text.strip():
            text = "(image)" if refs else "…"
        if out and out[-1]["role"] == role:
            out[-1] = {"role": role, "content": (out[-1]["content"] + "\n\n" + text).strip("\n")}
        elif role == "assistant" and (not out or out[-1]["role"] == "system"):
            continue  # a conversation starts with the user
        else:
            out.append({"role": role, "content": text})
    return out


def context_sha256(history: Sequence[dict]) -> str:
    """A fingerprint of the conversation a reply was asked with (kept in its provenance): with versions of
    messages, it says which branch the reply answers. sha256 of the engine messages as compact UTF-8 JSON."""
    text = json.dumps([{"role": m["role"], "content": m["content"]} for m in history], ensure_ascii=False,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


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
    images = [ref for ref in messages[index].get("attachments", []) if not is_document_ref(ref)]
    return (reply.get("status", "complete") == "complete" and not images
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


def version_nav(index: int, message: dict, words: Callable[..., str], edit: bool = False) -> str:
    """‹ n/m › for the fork at stored message `index` ('' without one). The Chatbot's sanitizer keeps buttons and
    classes but no data- or aria- attributes, so the target travels in class names (ver-at-I ver-to-N, read by
    ui/assets/versions.js) and the accessible names in visually hidden text. `edit`: the versions of the user
    message above (Edit forks there), drawn under its reply, marked ✎."""
    versions = message.get("versions")
    if not versions:
        return ""
    total, shown = len(versions) + 1, int(message.get("shown", 0))

    def button(to: int, mark: str, key: str) -> str:
        off = " ver-off" if not 0 <= to < total else ""
        return (f'<button type="button" class="ver-nav ver-at-{index} ver-to-{max(0, min(to, total - 1))} '
                f'ver-id-{html.escape(str(message.get("id", "")))}{off}">'
                f'<span class="sr-only">{html.escape(words(key))}</span>{mark}</button>')

    label = html.escape(words("version_label", n=shown + 1, m=total))
    what = f'<span class="ver-what">✎ <span class="sr-only">{html.escape(words("version_question"))}</span></span>' \
        if edit else ""
    return (f'<span class="versions ver-of-{index}">{what}{button(shown - 1, "‹", "version_prev")}'
            f'<span class="ver-count"><span class="sr-only">{label}</span><span aria-hidden="true">'
            f'{shown + 1}/{total}</span></span>{button(shown + 1, "›", "version_next")}</span>')


def reply_content(text: str, prov: dict | None, status: str, words: Callable[..., str], nav: str = "") -> str:
    line = provenance_line(prov, status, words)
    body = text if text.strip() else ("…" if not (line or nav) else "")
    tail = " ".join(part for part in (nav, line) if part)
    return f"{body}\n\n{tail}" if tail else body


def display_messages(messages: Sequence[dict], image_view: Callable[[str], str | None],
                     words: Callable[..., str]) -> list[dict]:
    """Stored messages -> Chatbot messages (content as a list of parts; images as file parts). A reply shows the
    ‹ n/m › of its own versions (Retry) and of the user message it answers (Edit): a user bubble cannot hold the
    control, since the Chatbot's own edit would then put it in the edit box."""
    shown = []
    for i, m in visible_messages(messages):
        if m["role"] == "user":
            parts: list[Any] = []
            for ref in m.get("attachments", []):
                if is_document_ref(ref) and not is_card_ref(ref):
                    continue            # a document's file: its card says what it is
                path = image_view(ref)
                doc = read_card_file(path) if path and is_card_ref(ref) else None
                if doc is not None:     # a document: its name, token count and what was left out
                    parts.append(document_line(doc, words))
                elif path and not is_card_ref(ref):
                    parts.append({"path": path, "alt_text": "image"})
            if m.get("content"):
                parts.append(m["content"])
            shown.append({"role": "user", "content": parts or [""]})
        else:
            asked = version_nav(i - 1, messages[i - 1], words, edit=True) \
                if i and messages[i - 1].get("role") == "user" else ""
            nav = " ".join(part for part in (asked, version_nav(i, m, words)) if part)
            shown.append({"role": "assistant",
                          "content": reply_content(m.get("content", ""), m.get("provenance"),
                                                   m.get("status", "complete"), words, nav)})
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
