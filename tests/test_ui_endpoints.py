"""Every named Gradio endpoint, called with gradio_client against a real `python app.py --demo`."""
from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import threading

import pytest
from gradio_client import Client, handle_file

from tests.conftest import module_server

CONFIG = {"generation": {"max_new_tokens": 16}, "engine": {"max_concurrent": 1}, "server": {"queue_size": 2}}


server = module_server("endpoints", config=CONFIG)


@pytest.fixture(scope="module")
def client(server):
    return Client(server.url, verbose=False)


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    from PIL import Image

    path = tmp_path_factory.mktemp("img") / "red.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(path)
    return str(path)


def token() -> str:
    return secrets.token_hex(16)


def test_named_endpoints_are_listed(client):
    """Exactly the documented names: a page event left public (a lambda, or a callable component value such as
    the Tuning tab's defaults once were: /suggest, /default_steps) would be callable by anyone."""
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert names == {"/chat", "/describe_image", "/transcribe", "/speak", "/list_sessions", "/new_session",
                     "/get_session", "/rename_session", "/delete_session", "/switch_model"}


def test_chat_streams_the_growing_reply(client):
    updates = list(client.submit("안녕하세요, 누구세요?", api_name="/chat"))
    assert len(updates) >= 3
    assert all(updates[i + 1].startswith(updates[i]) for i in range(len(updates) - 1))


def test_chat_continues_a_session_and_stores_provenance(client):
    owner = token()
    session = client.predict("API chat", owner, api_name="/new_session")
    final = client.predict("First question", session["id"], owner, api_name="/chat")
    assert final
    client.predict("Second question", session_id=session["id"], owner_token=owner, temperature=0.0,
                   api_name="/chat")
    stored = client.predict(session["id"], owner, api_name="/get_session")
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant", "user", "assistant"]
    assert stored["messages"][1]["content"] == final
    prov = stored["messages"][3]["provenance"]
    assert prov["model"] == "demo:tiny" and prov["sampling"]["temperature"] == 0.0
    assert prov["completion_tokens"] > 0 and "owner" not in stored


def test_session_endpoints_list_rename_search_delete(client):
    owner = token()
    first = client.predict("사과 이야기", owner, api_name="/new_session")
    second = client.predict("", owner, api_name="/new_session")
    listed = client.predict(owner, api_name="/list_sessions")
    assert {s["id"] for s in listed} == {first["id"], second["id"]}
    renamed = client.predict(second["id"], "바나나 노트", owner, api_name="/rename_session")
    assert renamed["title"] == "바나나 노트"
    hits = client.predict(owner, "바나나", api_name="/list_sessions")
    assert [h["session_id"] for h in hits] == [second["id"]]
    assert client.predict(first["id"], owner, api_name="/delete_session") == {"deleted": first["id"]}
    assert [s["id"] for s in client.predict(owner_token=owner, api_name="/list_sessions")] == [second["id"]]


def test_one_owner_cannot_touch_anothers_sessions(client):
    alice, mallory = token(), token()
    session = client.predict("alice only", alice, api_name="/new_session")
    assert client.predict(mallory, api_name="/list_sessions") == []
    for call in (lambda: client.predict(session["id"], mallory, api_name="/get_session"),
                 lambda: client.predict(session["id"], "mine now", mallory, api_name="/rename_session"),
                 lambda: client.predict(session["id"], mallory, api_name="/delete_session"),
                 lambda: client.predict("hi", session["id"], mallory, api_name="/chat")):
        with pytest.raises(Exception, match="no longer exists"):
            call()
    assert client.predict(session["id"], alice, api_name="/get_session")["title"] == "alice only"


def test_bad_input_gets_a_clear_error(client):
    with pytest.raises(Exception, match="empty"):
        client.predict("   ", api_name="/chat")
    with pytest.raises(Exception, match="owner_token must be"):
        client.predict("short", api_name="/list_sessions")
    with pytest.raises(Exception, match="need an owner|owner_token"):
        client.predict("hi", "0" * 32, api_name="/chat")


def test_describe_image_streams_an_answer(client, picture):
    updates = list(client.submit(handle_file(picture), "What colour is it?", api_name="/describe_image"))
    assert updates and updates[-1]


def test_describe_image_cannot_read_server_files(server, picture):
    """A real image on the server, outside the upload folder: were it read, the model would describe it.
    Sent as raw HTTP: gradio_client would upload a local path itself, and the server would then see a real upload.
    The defence that holds is Gradio's own upload check (blocks.has_launched = True in app.py): without it,
    Gradio copies the named file into its cache before our handler runs, so ui.endpoints.uploaded then sees
    a cache path and lets it through (seen: the model described the file)."""
    import httpx

    forged = {"path": picture, "meta": {"_type": "gradio.FileData"}, "orig_name": "x.png"}
    r = httpx.post(server.url + "/gradio_api/call/describe_image", json={"data": [forged, "read it"]}, timeout=30)
    assert r.status_code == 200, r.text
    events = httpx.get(server.url + f"/gradio_api/call/describe_image/{r.json()['event_id']}", timeout=120).text
    last = events.strip().split("\n\n")[-1]
    assert last.startswith("event: error"), events[-500:]
    assert re.search(r"because it was not uploaded by a user|Add an image first", last), last


def test_transcribe_and_speak(client, tmp_path):
    espeak = shutil.which("espeak-ng")
    assert espeak, "espeak-ng is missing: run `make system-packages`"
    wav = tmp_path / "hello.wav"
    subprocess.run([espeak, "-v", "en", "-w", str(wav), "Hello, how is the weather today?"], check=True)
    result = client.predict(handle_file(str(wav)), api_name="/transcribe")
    assert set(result) >= {"text", "language", "no_speech", "seconds_audio"}
    assert result["seconds_audio"] > 1.0
    path = client.predict("안녕하세요. 반갑습니다.", "auto", api_name="/speak")
    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b"RIFF" and len(data) > 10_000


def test_a_full_queue_says_so(server):
    """One generation at a time and two waiting: the next callers are told the queue is full."""
    errors, results = [], []

    def call():
        try:
            results.append(Client(server.url, verbose=False).predict("long", max_new_tokens=300, api_name="/chat"))
        except Exception as exc:  # noqa: BLE001 - collected and checked below
            errors.append(str(exc))

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert results, errors
    assert any("queue is full" in e.lower() or "busy" in e.lower() for e in errors), errors
