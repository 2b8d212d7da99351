"""The chat list's HTML: one row per chat (title, when it was last used, a search snippet) with rename and
delete actions shown on hover or keyboard focus. ui/assets/chat_list.js turns clicks into Gradio events."""
from __future__ import annotations

import html
import time
from dataclasses import dataclass
from typing import Any

from ui.i18n import say

MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class ChatRow:
    id: str
    title: str
    updated_at: float
    snippet: str = ""


def when(ts: float, now: float, lang: str) -> str:
    """How long ago a chat was last used, as people say it: "just now", "5 min ago", "yesterday", "Nov 3"
    (server's local time: the app runs on the user's machine)."""
    seconds = max(0.0, now - ts)
    if seconds < 60:
        return say(lang, "when_now")
    if seconds < 3600:
        return say(lang, "when_min", n=int(seconds // 60))
    then, today = time.localtime(ts), time.localtime(now)
    days = (time.mktime(today[:3] + (0, 0, 0, 0, 0, -1)) - time.mktime(then[:3] + (0, 0, 0, 0, 0, -1))) / 86400
    days = round(days)
    if days == 0:
        return say(lang, "when_hours", n=int(seconds // 3600))
    if days == 1:
        return say(lang, "when_yesterday")
    if days < 7:
        return say(lang, "when_days", n=days)
    key = "when_date" if then.tm_year == today.tm_year else "when_date_year"
    return say(lang, key, mon=MONTHS_EN[then.tm_mon - 1], month=then.tm_mon, day=then.tm_mday, year=then.tm_year)


def rows_from_summaries(summaries: list[dict[str, Any]]) -> list[ChatRow]:
    return [ChatRow(s["id"], s["title"], s["updated_at"]) for s in summaries]


def rows_from_hits(hits: list[dict[str, Any]]) -> list[ChatRow]:
    return [ChatRow(h["session_id"], h["title"], h["updated_at"], h.get("snippet", "")) for h in hits]


def render(rows: list[ChatRow], current: str, lang: str, empty: str = "", now: float | None = None) -> str:
    """The list as HTML (every text escaped); `empty` is shown when there are no rows (e.g. no search hit)."""
    now = time.time() if now is None else now
    if not rows:
        return f'<p class="chat-empty">{html.escape(empty)}</p>' if empty else '<p class="chat-empty"></p>'
    items = []
    for row in rows:
        title, sid = html.escape(row.title), html.escape(row.id)
        is_current = row.id == current
        marked = ' aria-current="true"' if is_current else ""
        stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(row.updated_at))
        snippet = f'<span class="chat-snippet">{html.escape(row.snippet)}</span>' if row.snippet else ""
        rename = html.escape(say(lang, "row_rename", title=row.title))
        delete = html.escape(say(lang, "row_delete", title=row.title))
        items.append(
            f'<li class="chat-row{" current" if is_current else ""}" data-id="{sid}">'
            f'<button type="button" class="chat-open" data-act="open"{marked}>'
            f'<span class="chat-title">{title}</span>'
            f'<span class="chat-when" title="{stamp}">{html.escape(when(row.updated_at, now, lang))}</span>'
            f"{snippet}</button>"
            f'<span class="chat-actions">'
            f'<button type="button" class="chat-act" data-act="rename" aria-label="{rename}" title="{rename}">✎</button>'
            f'<button type="button" class="chat-act" data-act="delete" aria-label="{delete}" title="{delete}">🗑</button>'
            f"</span></li>")
    return f'<ul class="chat-list" role="list">{"".join(items)}</ul>'
