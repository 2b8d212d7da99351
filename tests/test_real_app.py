"""The app on real weights (`--demo` with the offline SmolLM2-135M-Instruct): /v1, gradio_client and the page give
real text, and say plainly that this is a small offline model, not the configured one."""
import httpx
import pytest
from gradio_client import Client
from openai import OpenAI

from tests.conftest import AppServer

CONFIG = {"engine": {"demo_size": "smollm2", "max_concurrent": 2},
          "generation": {"temperature": 0.0, "max_new_tokens": 24}}
QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = AppServer(tmp_path_factory.mktemp("real-app"), config=CONFIG).start()
    yield srv
    srv.stop()


def test_health_and_models_name_the_prompt_path(server):
    health = httpx.get(server.url + "/health").json()
    assert health["model"] == "demo:smollm2" and health["demo"] is True and health["random_weights"] is False
    assert health["prompt_path"] == "chat_template"
    assert "Small offline model" in health["notice"] and "noise" not in health["notice"]
    models = httpx.get(server.url + "/v1/models").json()["data"]
    assert models[0]["id"] == "demo:smollm2" and models[0]["prompt_path"] == "chat_template"


def test_openai_client_gets_a_real_answer(server):
    client = OpenAI(base_url=server.url + "/v1", api_key="unused-on-loopback", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="local-chat", temperature=0, max_tokens=24, messages=[{"role": "user", "content": QUESTION}])
    reply = raw.parse()
    assert "Paris" in reply.choices[0].message.content and reply.choices[0].finish_reason == "stop"
    assert raw.headers["X-Demo-Model"] == "small offline model, not the configured one"
    stream = client.chat.completions.create(model="local-chat", temperature=0, max_tokens=24, stream=True,
                                            messages=[{"role": "user", "content": QUESTION}])
    assert "Paris" in "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def test_min_tokens_holds_the_reply_past_its_end_of_sequence(server):
    """vLLM's min_tokens: the greedy answer ends on its own before 24 tokens; asked for at least 24, it goes on."""
    client = OpenAI(base_url=server.url + "/v1", api_key="unused-on-loopback", max_retries=0)
    ask = {"model": "local-chat", "temperature": 0, "max_tokens": 24,
           "messages": [{"role": "user", "content": QUESTION}]}
    short = client.chat.completions.create(**ask)
    assert short.choices[0].finish_reason == "stop" and short.usage.completion_tokens < 24
    held = client.chat.completions.create(**ask, extra_body={"min_tokens": 24})
    assert held.choices[0].finish_reason == "length" and held.usage.completion_tokens == 24
    assert held.choices[0].message.content.startswith(short.choices[0].message.content.rstrip())
    chunks = list(client.chat.completions.create(**ask, extra_body={"min_tokens": 24}, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[-1].usage.completion_tokens == 24
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == held.choices[0].message.content


def test_gradio_chat_endpoint_streams_a_real_answer(server):
    job = Client(server.url, verbose=False).submit(QUESTION, api_name="/chat")
    updates = list(job)
    assert "Paris" in job.result(), updates


def test_page_says_small_offline_model_in_both_languages(server):
    config = httpx.get(server.url + "/config").text
    assert "Small offline model" in config and "not the configured" in config
    assert "오프라인 모델" in config and "replies are noise" not in config
