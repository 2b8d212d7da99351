"""The README's gradio_client examples, run against a real demo server: every named endpoint once."""
import secrets
import wave

import pytest


@pytest.fixture(scope="module")
def client(app_server):
    """On the run's shared default demo server (conftest.app_server): every test here uses its own owner."""
    from gradio_client import Client

    return Client(app_server.url, verbose=False)


def test_chat_streams_the_growing_reply(client):
    job = client.submit("Hello! 안녕하세요?", max_new_tokens=16, api_name="/chat")
    updates = list(job)
    assert updates and updates[-1] == job.result()
    assert all(later.startswith(earlier) for earlier, later in zip(updates, updates[1:]))  # it grows


def test_image_and_speech_endpoints(client, tmp_path):
    from gradio_client import handle_file
    from PIL import Image

    photo = tmp_path / "photo.png"
    Image.new("RGB", (48, 32), (30, 120, 200)).save(photo)
    answer = client.predict(handle_file(str(photo)), "What is in this picture?", api_name="/describe_image")
    assert isinstance(answer, str)
    wav_path = client.predict("안녕하세요. Hello.", "auto", api_name="/speak")
    with wave.open(wav_path) as w:
        assert w.getnframes() > 0
    heard = client.predict(handle_file(wav_path), "", api_name="/transcribe")
    assert set(heard) >= {"text", "language", "no_speech"}


def test_sessions_belong_to_the_owner_token(client):
    me, other = secrets.token_hex(16), secrets.token_hex(16)
    session = client.predict("Trip plans", me, api_name="/new_session")
    sid = session["id"]
    for _ in client.submit("Where should I go?", sid, me, max_new_tokens=8, api_name="/chat"):
        pass
    assert [s["id"] for s in client.predict(me, "", 50, api_name="/list_sessions")] == [sid]
    assert client.predict(other, "", 50, api_name="/list_sessions") == []
    full = client.predict(sid, me, api_name="/get_session")
    assert [m["role"] for m in full["messages"]] == ["user", "assistant"]
    assert client.predict(sid, "여행 계획", me, api_name="/rename_session")["title"] == "여행 계획"
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="no longer exists"):  # another owner cannot read it: the store's refusal
        client.predict(sid, other, api_name="/get_session")
    assert client.predict(sid, me, api_name="/delete_session") == {"deleted": sid}
    assert client.predict(me, "", 50, api_name="/list_sessions") == []
