"""A raw Gradio call with too few values gets a clear refusal naming the endpoint's parameters, not Gradio's
own message (which lists component reprs: "<gradio.components.api_component.Api object at 0x...>")."""
from __future__ import annotations

import json

import httpx

REPRS = ("<gradio.", "object at 0x", "Traceback")


def _error_of(server, endpoint: str, data: list) -> str:
    r = httpx.post(f"{server.url}/gradio_api/call/{endpoint}", json={"data": data}, timeout=30)
    assert r.status_code == 200, r.text
    events = httpx.get(f"{server.url}/gradio_api/call/{endpoint}/{r.json()['event_id']}", timeout=120).text
    assert "event: error" in events, events
    payload = events.split("event: error", 1)[1].split("data:", 1)[1].strip().splitlines()[0]
    return json.loads(payload)["error"]


def test_raw_chat_call_without_its_message_is_refused_clearly(app_server):
    error = _error_of(app_server, "chat", [])
    assert not any(r in error for r in REPRS), error
    assert "The chat endpoint takes 13 values (message, session_id, owner_token, system_prompt, " \
           "max_new_tokens, temperature, adapter, top_p, seed, presence_penalty, frequency_penalty, top_k, " \
           "repetition_penalty); this call sent 0." in error
    assert "chat 엔드포인트는 값 13개" in error


def test_a_raw_call_written_before_the_endpoint_grew_still_works(app_server):
    """Values left off at the end take the parameters' defaults: the 7-value chat call of earlier versions and
    a 5-value one (a short reply asked for: no test waits on the model's token limit) are answered."""
    for data in (["hi", "", "", "", 4, 0, ""], ["hi", "", "", "", 4]):
        r = httpx.post(f"{app_server.url}/gradio_api/call/chat", json={"data": data}, timeout=30)
        events = httpx.get(f"{app_server.url}/gradio_api/call/chat/{r.json()['event_id']}", timeout=120).text
        assert "event: complete" in events, (data, events)


def test_raw_call_with_no_values_names_the_count(app_server):
    error = _error_of(app_server, "rename_session", [])
    assert not any(r in error for r in REPRS), error
    assert "The rename_session endpoint takes" in error and "this call sent 0." in error
