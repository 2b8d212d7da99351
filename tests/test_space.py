"""Hugging Face Spaces: the ZeroGPU wrappers, the Space profile, and a simulated Space end to end.

The simulated Space is `python app.py` started the way the Spaces runtime starts it (SPACE_ID,
GRADIO_SERVER_NAME=0.0.0.0, secrets in the environment, the pinned `spaces` package installed) and
driven by gradio_client with a login. ZeroGPU itself cannot run here: `spaces` refuses ZeroGPU mode
on a CPU-only torch (test_zerogpu_mode_needs_a_cuda_torch), so off ZeroGPU the package's decorator is
a no-op and these tests check everything that still runs: our wrappers, and that what crosses into a
ZeroGPU worker (pickled by `spaces`) survives pickling.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import wave
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from engine.serving import zerogpu
from config import AppConfig, SpaceConfig
from tests.conftest import ROOT, AppServer
from tests.waiting import combined, file_size, process_work, wait_for

USER, PASSWORD, KEY = "hana", "pw-한글-1234", "space-test-key-0123456789"
SPACE_ENV = {"SPACE_ID": "someone/local-mistral-chat", "GRADIO_SERVER_NAME": "0.0.0.0",
             "APP_USERS": f"{USER}:{PASSWORD}", "APP_API_KEY": KEY, "SPACES_ZERO_GPU": ""}


# -- ZeroGPU wrappers ------------------------------------------------------------------------------

def test_spaces_gpu_is_a_noop_off_zerogpu():
    import spaces

    assert not zerogpu.enabled({})

    def task(x: int) -> int:
        return x + 1

    assert spaces.GPU(task) is task and spaces.GPU(duration=7)(task) is task


def test_wrappers_return_stream_and_keep_error_messages():
    def double(x: int) -> int:
        if x < 0:
            raise ValueError(f"{x} is negative")
        return 2 * x

    def count(n: int):
        yield from range(n)
        raise KeyError("ran out")

    on = zerogpu.on_gpu(double, lambda x: 5)
    assert on(21) == 42 and on.seconds(21) == 5
    with pytest.raises(ValueError, match="-1 is negative"):
        on(-1)
    got = []
    with pytest.raises(KeyError, match="ran out"):
        for item in zerogpu.stream_on_gpu(count, lambda n: 9)(3):
            got.append(item)
    assert got == [0, 1, 2]


def test_gpu_seconds_fit_the_request():
    s = zerogpu.GpuSeconds(base=10, per_token=0.05, most=120)
    assert s.tokens(200) == 20 and s.tokens(100_000) == 120
    assert s.audio(30) == 25 and s.text(500) == 20


@pytest.fixture(scope="module")
def plain_engine(tiny_engine):
    """The tiny engine without a scheduler: the path ZeroGPU uses (each request inside spaces.GPU)."""
    return replace(tiny_engine, scheduler=None, gpu_seconds=zerogpu.GpuSeconds(base=4, per_token=0.5, most=60))


def test_plain_path_streams_through_the_gpu_wrapper(plain_engine):
    from engine.serving.generation import GenerationParams

    params = GenerationParams(max_new_tokens=12, temperature=0.0)
    messages = [{"role": "user", "content": "안녕하세요, Space!"}]
    stream = plain_engine.stream(messages, params)
    text = "".join(stream)
    assert text and stream.stats.completion_tokens > 0 and stream.stats.finish_reason in ("stop", "length")
    assert plain_engine._gpu_pieces.seconds(messages, params, None, None) == 10  # 4 + 0.5 * 12


def test_what_crosses_into_a_zerogpu_worker_pickles(plain_engine):
    """On ZeroGPU `spaces` pickles the decorated call's arguments and every item it yields."""
    from engine.serving.generation import GenerationParams
    from engine.errors import PromptTooLong

    args = ([{"role": "user", "content": "짧게 답해 주세요."}], GenerationParams(max_new_tokens=6), None, None)
    assert pickle.loads(pickle.dumps(args)) == args
    items = list(plain_engine._pieces(*args))
    assert isinstance(items[-1], type(plain_engine.stream(args[0], args[1]).stats))
    back = pickle.loads(pickle.dumps(items))
    assert back[:-1] == items[:-1] and vars(back[-1]) == vars(items[-1])
    from engine.errors import AdapterError, GenerationError, MediaError, ModelLoadError, SpeechError

    for cls in (PromptTooLong, AdapterError, GenerationError, ModelLoadError, MediaError, SpeechError):
        raised = pickle.loads(pickle.dumps(zerogpu.Raised(cls("원인: 9000 tokens"))))
        assert type(raised.error) is cls and str(raised.error) == "원인: 9000 tokens"


def test_speech_asks_zerogpu_for_time_by_audio_and_text_length():
    import numpy as np

    from engine.media.speech import SpeechToText, Voice

    stt, voice = SpeechToText(None, None, None), Voice(None, None, None, "ko")
    assert stt._gpu_transcribe.seconds([np.zeros(16000 * 20), np.zeros(16000 * 10)], "ko", 100) == 25
    assert voice._gpu_synthesize.seconds("가" * 500) == 20


def test_engine_imports_no_gradio_off_zerogpu():
    """engine/ must not import gradio (DESIGN.md); `spaces` imports it only in ZeroGPU mode."""
    code = ("import sys; from engine.serving import zerogpu; import engine.chat, engine.media.vision, engine.media.speech; "
            "zerogpu.on_gpu(len, lambda x: 1); import spaces; print('gradio' in sys.modules)")
    env = os.environ | {"PYTHONPATH": str(ROOT), "SPACES_ZERO_GPU": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.skipif(__import__("torch").version.cuda is not None, reason="only a CPU-only torch refuses")
def test_zerogpu_mode_needs_a_cuda_torch():
    """How far the package goes here: in ZeroGPU mode `import spaces` reads torch.version.cuda and fails."""
    env = os.environ | {"SPACES_ZERO_GPU": "true", "SPACES_ZERO_DEVICE_API_URL": "http://127.0.0.1:9"}
    out = subprocess.run([sys.executable, "-c", "import spaces"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode != 0 and "version.cuda" in out.stderr


# -- Space profile ---------------------------------------------------------------------------------

def test_profile_only_on_a_space_and_picks_model_storage_and_missing_secrets(tmp_path):
    import space_profile

    cfg = AppConfig(space=SpaceConfig(storage_dir=str(tmp_path), cpu_model="demo:tiny", gpu_model="org/big"))
    assert space_profile.detect(cfg, {}) is None
    assert space_profile.apply(cfg, None) is cfg
    cpu = space_profile.detect(cfg, {"SPACE_ID": "a/b", "APP_USERS": "u:p"}, cuda=lambda: False)
    assert (cpu.hardware, cpu.storage, cpu.missing) == ("cpu", tmp_path, ("APP_API_KEY",))
    applied = space_profile.apply(cfg, cpu)
    assert applied.engine.model == "demo:tiny"
    assert applied.sessions.path == str(tmp_path / "sessions")
    assert applied.engine.adapters_dir == str(tmp_path / "adapters")
    zero = space_profile.detect(replace(cfg, space=replace(cfg.space, storage_dir=str(tmp_path / "none"))),
                                {"SPACE_ID": "a/b", "SPACES_ZERO_GPU": "true", "APP_USERS": "u:p", "APP_API_KEY": "k"},
                                cuda=lambda: pytest.fail("ZeroGPU is known from its flag"))
    assert (zero.hardware, zero.storage, zero.locked) == ("zerogpu", None, False)
    on_gpu = space_profile.apply(cfg, zero)
    assert on_gpu.engine.model == "org/big" and on_gpu.sessions.path == cfg.sessions.path


# -- a simulated Space -----------------------------------------------------------------------------

def shown_markdown(config: dict) -> str:
    """The values of the page's Markdown components (i18n keys appear as their translation metadata);
    not the i18n table, which lists every key whether it is shown or not."""
    return "\n".join(str(c["props"].get("value")) for c in config["components"] if c.get("type") == "markdown")


def space_server(tmp: Path, storage: Path | None, env: dict) -> AppServer:
    config = {"space": {"storage_dir": str(storage or tmp / "no-storage"), "cpu_model": "demo:tiny"},
              "engine": {"max_concurrent": 2}}
    return AppServer(tmp, config, args=(), env=env)


def test_space_with_storage_chat_image_voice_and_sessions_across_a_restart(tmp_path):
    from gradio_client import Client, handle_file
    from PIL import Image

    storage = tmp_path / "data"
    storage.mkdir()
    server = space_server(tmp_path, storage, SPACE_ENV).start()
    try:
        health = httpx.get(server.url + "/health", timeout=30).json()
        assert health["model"] == "demo:tiny" and "Could not load" not in health["notice"]  # space.cpu_model
        assert httpx.get(server.url + "/v1/models", timeout=30).status_code == 401  # the key is required
        assert httpx.get(server.url + "/config", timeout=30).status_code == 401  # the page needs the login
        client = Client(server.url, auth=(USER, PASSWORD), verbose=False)
        sid = client.predict("Space trip", "", api_name="/new_session")["id"]
        updates = list(client.submit("Hello from a Space! 안녕?", sid, "", max_new_tokens=8, api_name="/chat"))
        assert updates and all(b.startswith(a) for a, b in zip(updates, updates[1:]))
        photo = tmp_path / "photo.png"
        Image.new("RGB", (40, 30), (200, 60, 30)).save(photo)
        assert isinstance(client.predict(handle_file(str(photo)), "What is this?", api_name="/describe_image"), str)
        wav_path = client.predict("안녕하세요. Hello.", "auto", api_name="/speak")
        with wave.open(wav_path) as w:
            assert w.getnframes() > 0
        assert set(client.predict(handle_file(wav_path), "", api_name="/transcribe")) >= {"text", "no_speech"}
        assert [s["id"] for s in client.predict("", "", 50, api_name="/list_sessions")] == [sid]
        login = httpx.post(server.url + "/login", data={"username": USER, "password": PASSWORD}, timeout=30)
        page = shown_markdown(httpx.get(server.url + "/config", cookies=login.cookies, timeout=30).json())
        assert "space.no_storage" not in page  # storage is there: no warning
    finally:
        server.stop()
    assert (storage / "sessions").is_dir()
    again = space_server(tmp_path, storage, SPACE_ENV).start()
    try:
        client = Client(again.url, auth=(USER, PASSWORD), verbose=False)
        assert [s["id"] for s in client.predict("", "", 50, api_name="/list_sessions")] == [sid]
        roles = [m["role"] for m in client.predict(sid, "", api_name="/get_session")["messages"]]
        assert roles == ["user", "assistant"]
    finally:
        again.stop()


def test_space_without_storage_says_chats_are_lost(tmp_path):
    server = space_server(tmp_path, None, SPACE_ENV).start()
    try:
        login = httpx.post(server.url + "/login", data={"username": USER, "password": PASSWORD}, timeout=30)
        assert login.status_code == 200
        page = shown_markdown(httpx.get(server.url + "/config", cookies=login.cookies, timeout=30).json())
        assert '"key": "space.no_storage"' in page
        assert "no persistent storage" in server.log()
    finally:
        server.stop()


@pytest.mark.parametrize("secrets, missing", [
    ({"APP_USERS": "", "APP_API_KEY": ""}, ["APP_USERS", "APP_API_KEY"]),
    ({"APP_USERS": "hana-forgot-the-colon"}, ["APP_USERS"]),
], ids=["missing", "malformed"])
def test_space_without_secrets_starts_locked_and_names_them(tmp_path, secrets, missing):
    env = SPACE_ENV | secrets
    server = space_server(tmp_path, None, env)
    # not server.start(): the locked app answers /health with 503, so wait for its page instead
    port_env = os.environ | {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"} | env
    log = open(server.log_path, "ab")
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--config", str(server.config_path),
                             "--port", str(server.port)], cwd=tmp_path, env=port_env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        def up() -> bool:
            assert proc.poll() is None, f"the locked app exited:\n{server.log()}"
            try:
                return httpx.get(server.url + "/", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, "the locked page", progress=combined(file_size(server.log_path), process_work(proc.pid)),
                 stall=120, poll=0.5, detail=server.log)
        health = httpx.get(server.url + "/health", timeout=10)
        assert health.status_code == 503
        assert health.json()["missing_secrets"] == missing
        config = httpx.get(server.url + "/config", timeout=10)
        page = shown_markdown(config.json())
        assert "\n".join(f"- `{name}`" for name in missing) in page and '"key": "locked.intro"' in page
        assert "forgot-the-colon" not in config.text + health.text  # a secret's value is never shown
        assert httpx.post(server.url + "/v1/chat/completions", json={}, timeout=10).status_code == 404
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


def test_zerogpu_start_up_runs_the_hook_spaces_puts_on_launch():
    """app.py mounts Gradio and never calls launch, so it runs the task `spaces` hooks onto gr.Blocks.launch
    (spaces.zero.gradio.one_launch, the real one) by hand: once, with its arguments, launch restored."""
    import gradio as gr
    from spaces.zero import gradio as zero_gradio

    import app

    original, calls = gr.Blocks.launch, []
    try:
        zero_gradio.one_launch(lambda *a, **k: calls.append((a, k)), "pack", report=True)
        assert gr.Blocks.launch is not original
        app.start_zerogpu()
        assert calls == [(("pack",), {"report": True})] and gr.Blocks.launch is original
    finally:
        gr.Blocks.launch = original
