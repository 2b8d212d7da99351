"""The session store refuses text it could not write (a lone surrogate) at its boundary, with a clear
message, before anything reaches the disk; the chat stays as it was (issue 13 item 2)."""
from __future__ import annotations

from pathlib import Path

import pytest

from sessions import InvalidSessionData, SessionStore

LONE = "hi \ud800 there"


@pytest.fixture
def store(tmp_path: Path) -> SessionStore:
    return SessionStore(tmp_path / "sessions")


def test_create_refuses_a_title_it_cannot_store(store, tmp_path):
    with pytest.raises(InvalidSessionData, match=r"The title holds a character that cannot be stored as UTF-8 "
                                                 r"\(U\+D800, a lone surrogate\)"):
        store.create("anon:me", LONE)
    assert store.list("anon:me") == []


def test_rename_append_and_settings_refuse_it_and_keep_the_chat(store):
    session = store.create("anon:me", "plans")
    with pytest.raises(InvalidSessionData, match="The title holds .*U\\+D800"):
        store.rename("anon:me", session["id"], LONE)
    with pytest.raises(InvalidSessionData, match="The message holds .*U\\+D800"):
        store.append("anon:me", session["id"], {"role": "user", "content": LONE})
    with pytest.raises(InvalidSessionData, match="Session settings holds .*U\\+DFFF"):
        store.update_settings("anon:me", session["id"], {"system_prompt": "a \udfff"})
    kept = store.get("anon:me", session["id"])
    assert kept["title"] == "plans" and kept["messages"] == [] and kept["version"] == session["version"]
    store.append("anon:me", session["id"], {"role": "user", "content": "안녕 🙂"})  # real text still goes in
    assert store.get("anon:me", session["id"])["messages"][0]["content"] == "안녕 🙂"
