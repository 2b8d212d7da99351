"""`python app.py --demo` starts, shows the demo banner, and streams a reply over HTTP."""
import httpx
from gradio_client import Client

from tests.conftest import AppServer


def test_demo_app_streams_a_reply(app_server):
    health = httpx.get(app_server.url + "/health").json()
    assert health["model"] == "demo:tiny" and health["demo"] is True
    assert "replies are noise" in health["notice"]
    page = httpx.get(app_server.url + "/").text
    assert "<gradio-app" in page or "gradio" in page.lower()
    client = Client(app_server.url, verbose=False)
    job = client.submit("안녕하세요, 누구세요?", max_new_tokens=16, api_name="/chat")
    updates = list(job)
    assert len(updates) >= 3, updates  # the reply grew piece by piece
    assert all(updates[i + 1].startswith(updates[i]) for i in range(len(updates) - 1))
    assert len(updates[-1]) > 0


def test_configured_model_missing_falls_back_with_a_reason(tmp_path):
    server = AppServer(tmp_path, config={"engine": {"model": str(tmp_path / "no-such-model")}}, args=(),
                       env={"HF_HUB_OFFLINE": "1"})
    server.start()
    try:
        health = httpx.get(server.url + "/health").json()
        assert health["demo"] is True
        assert health["notice"].startswith(f"Could not load {tmp_path / 'no-such-model'}")
    finally:
        server.stop()
