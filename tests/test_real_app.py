"""The app on real weights (`--demo` with the offline SmolLM2-135M-Instruct): /v1, gradio_client and the page give
real text, and say plainly that this is a small offline model, not the configured one."""
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from openai import OpenAI

from tests.conftest import module_server

CONFIG = {"engine": {"demo_size": "smollm2", "max_concurrent": 2},
          "generation": {"temperature": 0.0, "max_new_tokens": 24}}
QUESTION = "What is the capital of France?"


server = module_server("real-app", config=CONFIG)


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


# ------------------------------------------------------------------------------------------ the README's examples
README = Path(__file__).resolve().parents[1] / "README.md"
README_URL = "http://127.0.0.1:7860"


def readme_examples() -> list[tuple[str, str]]:
    """(language, code) of each README block that talks to a running app: every ```python block and every ```bash
    block calling the app's address (not the set-up commands)."""
    blocks = re.findall(r"^```(python|bash)\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)
    return [(lang, code) for lang, code in blocks if lang == "python" or f"curl -s {README_URL}" in code]


def test_the_readme_finds_its_examples():
    kinds = [lang for lang, _ in readme_examples()]
    assert kinds.count("python") >= 2 and kinds.count("bash") >= 1, kinds


@pytest.mark.parametrize("index", range(len(readme_examples())))
def test_each_readme_example_runs_unchanged_against_the_demo_app(server, tmp_path, index):
    """Each example as a user pastes it (only the address is this test's), in an empty folder: it exits 0, every
    line of its output ends (a streamed reply is followed by a newline), and no error body or traceback shows."""
    lang, code = readme_examples()[index]
    code = code.replace(README_URL, server.url)
    command = [sys.executable, "-c", code] if lang == "python" else ["bash", "-c", code]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=os.environ | {"PYTHONPATH": ""})
    assert done.returncode == 0, f"{lang} example {index} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr and not re.search(r'"error":\s*\{', done.stdout), done.stdout[-2000:]
    if lang == "python":
        glued = re.findall(r'[^\s]\{"(?:name|id|object)"', done.stdout)
        assert not glued, f"output glued onto a line that did not end: {glued}"
