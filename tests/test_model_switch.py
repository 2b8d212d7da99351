"""Switching the chat model while the app runs (engine/switching.py), on real models through the real engine:
the tiny demo Mistral and the real SmolLM2 (its packaged .gguf file, as a user would name it).

A reply in flight finishes on the model it started on, with that model's provenance; a request that comes
during the switch is refused with "switching" (503, Retry-After); the old model is gone (weak references dead,
RSS back near where it was, allocated CUDA memory too where there is a card) before the new one loads; a load
that fails leaves the previous model serving and says why in one line; the page's queue concurrency and the
Tuning tab's plan follow the model serving (one real load, SmolLM2, and no reply longer than a token on it:
its 8-token "Paris" took most of this file's time; tests/test_real_chat.py checks its answers). Over HTTP (the
run's shared app, switched and switched back): the switch_model endpoint, /health and /v1/models follow, /v1
answers 503 with Retry-After during the switch. Beyond this machine without a login the switch is refused unless a
script sends the key.
"""
from __future__ import annotations

import json
import shutil
import threading
import weakref

import httpx
import psutil
import pytest
import torch

from config import AppConfig, EngineConfig
from engine.chat import ChatEngine
from engine.errors import AdapterMismatch
from engine.loading.demo.gguf import offline_gguf
from engine.loading.sources import resolve_source
from engine.requests import ChatService, Sampling
from engine.switching import ModelSwitch, ModelSwitching, SwitchFailed
from tests.waiting import wait_for

HELLO = [{"role": "user", "content": "Hello"}]
CAPITAL = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = Sampling(max_new_tokens=8, temperature=0.0)
KEY = "switch-test-key-0123456789"


class Watch:
    """The switch's progress lines, and at the line that starts a load: is the old model still alive, and how
    much memory does the process (and the card) hold at that moment."""

    def __init__(self, old_model: torch.nn.Module):
        self.old = weakref.ref(old_model)
        self.lines: list[str] = []
        self.at_load: dict | None = None

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        if line.startswith("loading the chat model") and self.at_load is None:
            self.at_load = {"old_alive": self.old() is not None, "rss": rss(),
                            "gpu": torch.cuda.memory_allocated() if torch.cuda.is_available() else 0}


def rss() -> int:
    return psutil.Process().memory_info().rss


def switch_in_thread(models: ModelSwitch, target: str, watch: Watch) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def run() -> None:
        try:
            out["report"] = models.switch(target, say=watch)
        except Exception as exc:  # noqa: BLE001 - the test asserts on it
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def adapter_for(adapters_dir, name: str, base_folder) -> None:
    """A complete adapter folder whose meta.json says it was made on `base_folder`'s weights (its fingerprint)."""
    from engine.adapters import REQUIRED_META, base_fingerprint

    folder = adapters_dir / name
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(b"")
    (folder / "adapter_config.json").write_text("{}")
    meta = dict.fromkeys(REQUIRED_META, 0) | {"format": 1, "name": name, "base_model_id": "demo:tiny",
                                               "base_fingerprint": base_fingerprint(base_folder), "run_id": "r1"}
    (folder / "meta.json").write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def door(tmp_path_factory, tiny_model_dir):
    """The one door into chat over a ModelSwitch, as app.py builds it, starting on the tiny demo model, with an
    adapter made for that model. kv_headroom 0.02: every paged KV cache small (SmolLM2's 3 or 4 slots instead of
    31 in 2.8 GB), and engine.max_concurrent "auto" tells the two models apart (tiny: 32, SmolLM2: fewer)."""
    adapters = tmp_path_factory.mktemp("switch-adapters")
    adapter_for(adapters, "for-tiny", tiny_model_dir)
    cfg = EngineConfig(demo_size="tiny", adapters_dir=str(adapters), kv_headroom=0.02)
    door = ChatService.from_config(AppConfig(), ModelSwitch(ChatEngine.from_source(resolve_source("demo:tiny"), cfg),
                                                            cfg), None)
    yield door
    door.engine.close()


def page_queue(models: ModelSwitch):
    """A page queued as app.py queues it (ui/queue_limits.py): a chat event in the chat tab's concurrency group,
    the Models tab's switch with its own limit of 1; both event queues made, as a first click makes them."""
    import gradio as gr

    from ui.chat import GENERATE
    from ui.gradio_bridge import queue_of
    from ui.queue_limits import queue_as_engine

    with gr.Blocks() as blocks:
        box = gr.Textbox()
        box.submit(lambda text: text, box, box, concurrency_id=GENERATE["concurrency_id"])
        box.change(lambda text: text, box, box, concurrency_id="models", concurrency_limit=1)
    queue_as_engine(blocks, models, max_size=8)
    for fn in blocks.fns.values():
        queue_of(blocks).create_event_queue_for_fn(fn)     # what Queue.push does at an event's first call
    return blocks


def test_a_switch_lets_the_reply_in_flight_finish_refuses_newcomers_frees_the_old_model_and_resizes(door, tmp_path):
    """tiny -> SmolLM2 (the one real load) -> tiny: the reply in flight, the refusal, the old model gone before
    the new one loads, provenance, adapters, the page's concurrency and the Tuning tab's plan follow; SmolLM2's
    memory comes back."""
    from types import SimpleNamespace

    from sessions import SessionStore
    from ui.chat import GENERATE
    from ui.gradio_bridge import concurrency_limit
    from ui.services import Services
    from ui.tuning import CONFIGS, TuningHandlers

    models = door.models
    gpu_baseline = torch.cuda.memory_allocated() if torch.cuda.is_available() else 0
    watch = Watch(models.current.model)
    assert [(a.name, a.compatible) for a in models.current.adapters.available()] == [("for-tiny", True)]
    blocks = page_queue(models)
    tuning = TuningHandlers(SimpleNamespace(services=Services(AppConfig(), models, SessionStore(tmp_path / "s"))))
    tiny_slots = models.current.concurrency.slots
    assert concurrency_limit(blocks, GENERATE["concurrency_id"]) == tiny_slots == 32
    assert (tuning.plan.base_model, tuning.plan.config_path("lora")) == ("demo:tiny", CONFIGS / "demo-lora.json")

    # A reply starts on the tiny model and stays open while the switch to SmolLM2 (its .gguf file) begins.
    reply = door.open_chat(door.request(HELLO, GREEDY))
    pieces = iter(reply.stream)
    first = next(pieces)
    gguf = str(offline_gguf())
    thread, out = switch_in_thread(models, gguf, watch)
    wait_for(lambda: any(line.startswith("waiting for 1 reply") for line in watch.lines),
             "the switch to wait for the reply in flight", stall=60)
    with pytest.raises(ModelSwitching) as refused:        # a newcomer is told, before any model work
        door.request(HELLO, GREEDY)
    assert refused.value.status == 503 and refused.value.code == "model_switching"
    assert refused.value.retry_after >= 5 and refused.value.values["model"] == offline_gguf().name
    assert watch.at_load is None and watch.old() is not None      # nothing unloaded while the reply runs
    text = first + "".join(pieces)
    assert reply.model == "demo:tiny" and reply.stream.stats.completion_tokens == GREEDY.max_new_tokens and text
    thread.join(120)
    assert "error" not in out, out.get("error")
    assert watch.at_load == {**watch.at_load, "old_alive": False}, watch.lines   # gone before the new one loads
    assert out["report"].model_id == gguf and models.current.report.model_id == gguf
    answer = door.open_chat(door.request(CAPITAL, Sampling(max_new_tokens=1, temperature=0.0)))
    assert answer.stream.text() and answer.model == gguf        # the next reply names the model that wrote it
    # The tiny model's adapter is shown as unusable on SmolLM2, and a request for it is refused, not applied.
    assert [(a.name, a.compatible) for a in models.current.adapters.available()] == [("for-tiny", False)]
    with pytest.raises(AdapterMismatch):
        door.request(CAPITAL, GREEDY, adapter="for-tiny")
    # Sized from the new model: as many chats at once as SmolLM2's KV cache holds, and LoRA on SmolLM2.
    big_slots = models.current.concurrency.slots
    assert big_slots < tiny_slots and concurrency_limit(blocks, GENERATE["concurrency_id"]) == big_slots
    assert concurrency_limit(blocks, "models") == 1                       # a limit of its own stays
    assert (tuning.plan.base_model, tuning.plan.config_path("lora")) == (gguf, CONFIGS / "lora.json")

    # Back to the tiny model: SmolLM2's memory comes back before the tiny model loads.
    before_big = watch.at_load["rss"]
    big = Watch(models.current.model)
    loaded_big = rss()
    report = models.switch("demo", say=big)             # "demo" is engine.demo_size's model, as --demo loads
    assert report.model_id == "demo:tiny" and big.at_load["old_alive"] is False, big.lines
    took = loaded_big - before_big
    assert took > 150 * 2**20, (before_big, loaded_big)      # SmolLM2 in bf16 is about 270 MB of weights
    # What stays is what a process keeps once it has served a model (about 90 MB measured here after another
    # SmolLM2 round trip in the same run); SmolLM2's weights alone (270 MB) are far more than this bound.
    assert big.at_load["rss"] - before_big < 0.4 * took, (before_big, loaded_big, big.at_load)
    if torch.cuda.is_available():
        assert big.at_load["gpu"] - gpu_baseline < 64 * 2**20, (gpu_baseline, big.at_load)
    assert any(line.startswith("unloaded ") and " MiB" in line for line in big.lines), big.lines
    assert concurrency_limit(blocks, GENERATE["concurrency_id"]) == tiny_slots
    assert tuning.plan.base_model == "demo:tiny"


def test_a_failed_load_leaves_the_previous_model_serving_and_says_why(door, tmp_path, monkeypatch, tiny_model_dir):
    models = door.models
    tiny = models.current
    assert tiny.report.model_id == "demo:tiny"
    not_a_model = tmp_path / "notes"
    not_a_model.mkdir()
    (not_a_model / "readme.txt").write_text("not a model")
    broken = tmp_path / "model.gguf"
    broken.write_bytes(b"\x00" * 4096)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    refusals = {
        str(not_a_model): f"could not load {not_a_model}: no config.json in {not_a_model}; demo:tiny is still serving",
        str(broken): f"could not load {broken}: model.gguf is not a GGUF file (it does not start with the GGUF magic "
                     "bytes); demo:tiny is still serving",
        "nobody/no-such-model": "could not load nobody/no-such-model: nobody/no-such-model is not in the local cache "
                                "and the Hugging Face hub cannot be reached from this machine: set engine.model in "
                                "config.json to a local folder with the model, or connect and restart; demo:tiny is "
                                "still serving",
    }
    for target, line in refusals.items():
        with pytest.raises(SwitchFailed) as failed:
            models.switch(target)
        assert str(failed.value) == line
        assert models.current is tiny              # never unloaded: the files were refused first
    # Weights that break only while loading: the tiny model was unloaded by then, and is loaded again.
    corrupt = tmp_path / "corrupt"
    shutil.copytree(tiny_model_dir, corrupt)
    for weights in corrupt.glob("*.safetensors"):
        weights.write_bytes(weights.read_bytes()[:200])
    del tiny
    with pytest.raises(SwitchFailed) as failed:
        models.switch(str(corrupt))
    assert str(failed.value).startswith(f"could not load {corrupt}: ") and \
        str(failed.value).endswith("; demo:tiny is still serving") and "\n" not in str(failed.value)
    reply = door.open_chat(door.request(HELLO, GREEDY))
    assert reply.model == "demo:tiny" and reply.stream.text()


def test_a_reply_that_outlasts_the_wait_keeps_the_model_and_says_so_in_the_users_language(door, tiny_model_dir,
                                                                                            monkeypatch):
    """The switch waits engine.drain for replies in flight; past it nothing is unloaded and the page says why in
    one sentence of its language (no English phrase inside the Korean one)."""
    from ui.errors import engine_message

    models = door.models
    tiny = models.current
    monkeypatch.setattr(models, "drain_s", 1.0)
    reply = door.open_chat(door.request(HELLO, Sampling(max_new_tokens=64, temperature=0.0)))
    pieces = iter(reply.stream)
    next(pieces)
    with pytest.raises(SwitchFailed) as failed:
        models.switch(str(tiny_model_dir))
    assert models.current is tiny and reply.model == "demo:tiny"
    assert engine_message(failed.value, "en") == \
        f"{tiny_model_dir.name} was not loaded: 1 reply(s) were still being written after 1 s. demo:tiny is still serving."
    assert engine_message(failed.value, "ko") == (f"{tiny_model_dir.name}을(를) 불러오지 않았습니다: 1초가 지나도 답변 1개를 "
                                                  "아직 쓰는 중이었습니다. demo:tiny 모델이 계속 답합니다.")
    assert "".join(pieces) is not None and reply.stream.stats.completion_tokens > 1     # the reply ends as it would
    assert door.open_chat(door.request(HELLO, GREEDY)).stream.text()                   # and newcomers are served


# ------------------------------------------------------------------------------------------------ over HTTP
def chat(url: str) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", timeout=60,
                      json={"model": "local-chat", "max_tokens": 2, "messages": HELLO})


def test_switch_model_endpoint_health_and_models_follow_and_v1_is_told_to_retry(app_server, tmp_path,
                                                                                  tiny_model_dir):
    """On the run's shared app (loopback, demo:tiny), switched to a model folder at 4bit and back to the demo."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    url = app_server.url
    other = tmp_path / "my-model"
    shutil.copytree(tiny_model_dir, other)
    client = Client(url, verbose=False)
    try:
        job = client.submit(str(other), "4bit", api_name="/switch_model")
        refused = None
        while refused is None and not job.done():
            answer = chat(url)
            if answer.status_code == 503:
                refused = answer
        assert refused is not None, "no request arrived during the switch"
        assert refused.json()["error"]["code"] == "model_switching" and int(refused.headers["Retry-After"]) >= 5
        result = job.result()
        assert result["model"] == str(other) and result["rung"] == "4bit"
        assert any(line.startswith("unloaded demo:tiny") for line in result["lines"]), result["lines"]
        health = httpx.get(url + "/health").json()
        assert (health["model"], health["rung"], health["switching"]) == (str(other), "4bit", None)
        assert [m["id"] for m in httpx.get(url + "/v1/models").json()["data"]] == [str(other), "local-chat"]
        assert chat(url).json()["model"] == str(other)

        with pytest.raises(AppError) as failed:       # a folder that is not a model: the switched model stays
            client.predict(str(tmp_path), "", api_name="/switch_model")
        assert str(failed.value) == (f"Could not load {tmp_path.name}: no config.json in the file. my-model is "
                                     "still serving.")
        assert httpx.get(url + "/health").json()["model"] == str(other)
    finally:   # the shared app goes back to what the other tests expect
        assert client.predict("demo", "", api_name="/switch_model")["model"] == "demo:tiny"
    assert [m["id"] for m in httpx.get(url + "/v1/models").json()["data"]] == ["demo:tiny", "local-chat"]


def test_beyond_this_machine_switching_needs_a_login_or_the_key(tiny_engine, tmp_path):
    """Reachable beyond this machine without a login (Services.public): the page and a keyless script are refused
    with the settings sentence; a script sending the API key may switch (ui/models.py may_change)."""
    from types import SimpleNamespace

    import gradio as gr
    from starlette.requests import Request

    from sessions import SessionStore
    from ui.models import SwitchEndpoint, may_change
    from ui.services import Services

    services = Services(AppConfig(), tiny_engine, SessionStore(tmp_path / "sessions"), public=True, api_key=KEY)

    def request(authorization: str | None) -> gr.Request:
        headers = [(b"authorization", authorization.encode())] if authorization is not None else []
        return gr.Request(request=Request({"type": "http", "method": "POST", "path": "/", "headers": headers}))

    for header in (None, "Bearer wrong-key", f"Basic {KEY}", "Bearer "):
        with pytest.raises(gr.Error) as refused:
            # a target that would be refused anyway, so a regression here cannot unload the run's tiny engine
            SwitchEndpoint(SimpleNamespace(services=services)).switch_model("/no/such/model", "", request(header))
        assert refused.value.message == ("This server is reachable beyond this machine without a login, so its "
                                         "settings and models cannot be changed here: configure a login "
                                         "(server.auth_file or APP_USERS).")
    assert services.engine is tiny_engine                  # nothing was switched
    may_change(services, request(f"Bearer {KEY}"))          # the key holder passes (the switch itself is above)
    services.public = False
    may_change(services, request(None))                     # on this machine only: no key needed, as for settings
