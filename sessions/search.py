"""Case-insensitive search over titles and message text, Korean included.

Text is NFC-normalised before str.casefold, so Hangul typed as composed
syllables matches Hangul stored as separate jamo (macOS file names, some
IMEs), and 'STRASSE' matches 'straße'.

Only what a chat shows is searched: the versions shown (session["messages"]), never the versions that
Retry and Edit keep hidden (sessions/versions.py). A hit opens the chat, and the words found must be there
to see; a word only in a hidden version is found again once ‹ n/m › shows that version.
"""

from __future__ import annotations

import bisect
import unicodedata
from typing import Any

from .errors import InvalidSessionData
from .model import SearchHit, Session

MAX_QUERY_CHARS = 1000
SNIPPET_BEFORE = 40
SNIPPET_AFTER = 80


def fold(text: str) -> str:
    return unicodedata.normalize("NFC", text).casefold()


def prepare_query(query: Any) -> str:
    """Validate and fold a query once, before scanning sessions."""
    if not isinstance(query, str):
        raise InvalidSessionData(f"A search query must be text, got {type(query).__name__}.")
    folded = fold(query.strip())
    if not folded:
        raise InvalidSessionData("A search query must not be empty.")
    if len(folded) > MAX_QUERY_CHARS:
        raise InvalidSessionData(f"A search query may have at most {MAX_QUERY_CHARS} characters.")
    return folded


def locate(text: str, folded_query: str) -> tuple[str, int, int] | None:
    """Find the query in `text`; returns (NFC text, start, end) in that text's indices."""
    nfc = unicodedata.normalize("NFC", text)
    folded = nfc.casefold()
    pos = folded.find(folded_query)
    if pos < 0:
        return None
    end = pos + len(folded_query)
    if len(folded) == len(nfc):
        return nfc, pos, end
    # casefold changed lengths (e.g. 'ß' -> 'ss'): map folded offsets back per character.
    starts, acc = [], 0
    for char in nfc:
        starts.append(acc)
        acc += len(char.casefold())
    first = bisect.bisect_right(starts, pos) - 1
    last = bisect.bisect_right(starts, end - 1) - 1
    return nfc, first, last + 1


def make_snippet(text: str, start: int, end: int) -> str:
    """A short one-line excerpt around the match, with ellipses where cut."""
    left = max(0, start - SNIPPET_BEFORE)
    right = min(len(text), end + SNIPPET_AFTER)
    excerpt = " ".join(text[left:right].split())
    return ("…" if left > 0 else "") + excerpt + ("…" if right < len(text) else "")


def search_session(session: Session, folded_query: str) -> SearchHit | None:
    """One hit per matching session: the first matching message of the versions shown, else the title."""
    for index, message in enumerate(session["messages"]):
        found = locate(message["content"], folded_query)
        if found:
            return _hit(session, make_snippet(*found), index)
    found = locate(session["title"], folded_query)
    if found:
        return _hit(session, make_snippet(*found), None)
    return None


def _hit(session: Session, snippet: str, message_index: int | None) -> SearchHit:
    return {
        "session_id": session["id"],
        "title": session["title"],
        "snippet": snippet,
        "updated_at": session["updated_at"],
        "message_index": message_index,
    }
