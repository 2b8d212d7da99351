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


def test_raw_chat_call_with_one_value_is_refused_clearly(app_server):
    error = _error_of(app_server, "chat", ["hi"])
    assert not any(r in error for r in REPRS), error
    assert "The chat endpoint takes 7 values (message, session_id, owner_token, system_prompt, " \
           "max_new_tokens, temperature, adapter); this call sent 1." in error
    assert "chat 엔드포인트는 값 7개" in error
    # the server answers the next, complete call at once
    r = httpx.post(f"{app_server.url}/gradio_api/call/chat",
                   json={"data": ["hi", "", "", "", 4, 0, ""]}, timeout=30)
    events = httpx.get(f"{app_server.url}/gradio_api/call/chat/{r.json()['event_id']}", timeout=120).text
    assert "event: complete" in events, events


def test_raw_call_with_no_values_names_the_count(app_server):
    error = _error_of(app_server, "rename_session", [])
    assert not any(r in error for r in REPRS), error
    assert "The rename_session endpoint takes" in error and "this call sent 0." in error
