"""ModelManager: lazy loads, LRU eviction of idle models under a budget, out-of-memory retry, real frees."""
from __future__ import annotations

import threading
import time

import psutil
import pytest
import torch

from engine.manager import ModelManager, estimate_bytes, object_bytes
from engine.errors import ModelUnavailable

MB = 1024 ** 2


class Fake:
    """A stand-in for a loaded engine: says its size, records that it was closed."""

    def __init__(self, name: str, size: int):
        self.name, self.size, self.closed = name, size, False

    def memory_bytes(self) -> int:
        return self.size

    def close(self) -> None:
        self.closed = True


class Loader:
    """Counts calls; raises `fail` (an exception or a list of them, one per call) before succeeding."""

    def __init__(self, name: str, size: int = 100, fail=None, delay: float = 0.0):
        self.name, self.size, self.calls, self.delay = name, size, 0, delay
        self.fail = list(fail) if isinstance(fail, list) else ([fail] if fail else [])
        self.made: list[Fake] = []

    def __call__(self):
        self.calls += 1
        time.sleep(self.delay)
        if self.fail:
            raise self.fail.pop(0)
        obj = Fake(self.name, self.size)
        self.made.append(obj)
        return obj


def manager_with(budget: int, *names: str, size: int = 100) -> tuple[ModelManager, dict[str, Loader]]:
    m = ModelManager(budget_bytes=budget)
    loaders = {n: Loader(n, size) for n in names}
    for n, loader in loaders.items():
        m.register(n, loader, size)
    return m, loaders


def loaded(m: ModelManager) -> set[str]:
    return {row["name"] for row in m.state() if row["loaded"]}


def test_lazy_load_once(tmp_path):
    m, loaders = manager_with(10_000, "a")
    assert loaded(m) == set() and loaders["a"].calls == 0
    with m.use("a") as a1:
        assert a1.name == "a"
    with m.use("a") as a2:
        assert a2 is a1
    assert loaders["a"].calls == 1 and loaded(m) == {"a"}


def test_unknown_name():
    m = ModelManager(budget_bytes=100)
    with pytest.raises(KeyError, match="no model named 'nope'"):
        with m.use("nope"):
            pass


def test_least_recently_used_idle_model_goes_first():
    m, loaders = manager_with(300, "a", "b", "c", "d", "e")
    for n in ("a", "b", "c", "a"):          # a used again last: b is now the least recent
        with m.use(n):
            pass
    assert loaded(m) == {"a", "b", "c"} and m.used_bytes() == 300
    with m.use("d"):
        pass
    assert loaded(m) == {"a", "c", "d"}
    assert loaders["b"].made[0].closed
    with m.use("e"):
        pass
    assert loaded(m) == {"a", "d", "e"}      # c was next in line
    assert [e for e in m.events() if e.startswith("unloaded")] == [
        "unloaded b (0 MiB): room for d", "unloaded c (0 MiB): room for e"]


def test_a_model_in_use_is_never_evicted():
    m, loaders = manager_with(200, "a", "b", "c")
    with m.use("a"):
        with m.use("b"):
            pass                              # b idle, a busy
        with m.use("c"):
            assert loaded(m) == {"a", "c"}     # b went, although a is older
            assert not loaders["a"].made[0].closed
    assert loaders["b"].made[0].closed


def test_busy_models_stay_even_when_the_load_runs_out_of_memory():
    m, loaders = manager_with(200, "a", "b")
    m.register("c", Loader("c", fail=[torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")]), 100)
    with m.use("a"), m.use("b"):
        with pytest.raises(ModelUnavailable, match="busy"):
            with m.use("c"):
                pass
        assert loaded(m) == {"a", "b"}
    row = next(r for r in m.state() if r["name"] == "c")
    assert not row["loaded"] and not row["loading"] and "out of memory" in row["error"]


def test_out_of_memory_at_load_evicts_and_retries():
    m, loaders = manager_with(10_000, "a", "b")      # plenty of budget: only the real failure evicts
    flaky = Loader("c", fail=[torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")])
    m.register("c", flaky, 100)
    for n in ("a", "b"):
        with m.use(n):
            pass
    with m.use("c") as c:
        assert c.name == "c"
    assert flaky.calls == 2
    assert loaded(m) == {"b", "c"}                   # a, the least recently used, made room
    assert loaders["a"].made[0].closed
    assert any("c: out of memory while loading" in e for e in m.events())
    assert any(e.startswith("unloaded a") and "ran out of memory" in e for e in m.events())


def test_repeated_out_of_memory_evicts_one_model_per_retry():
    m, loaders = manager_with(10_000, "a", "b")
    oom = [torch.OutOfMemoryError("out of memory"), RuntimeError("CUDA error: out of memory")]
    m.register("c", Loader("c", fail=oom), 100)
    for n in ("a", "b"):
        with m.use(n):
            pass
    with m.use("c"):
        pass
    assert loaded(m) == {"c"}


def test_out_of_memory_with_nothing_to_evict_then_recovers():
    m = ModelManager(budget_bytes=10_000)
    loader = Loader("x", fail=[MemoryError("can't allocate memory")])
    m.register("x", loader, 100)
    with pytest.raises(ModelUnavailable, match="does not fit") as info:
        with m.use("x"):
            pass
    assert isinstance(info.value.__cause__, MemoryError)
    assert loaded(m) == set()
    with m.use("x") as x:                            # nothing was left held: the next try works
        assert x.name == "x"


def test_other_errors_propagate_without_evicting():
    m, loaders = manager_with(10_000, "a")
    m.register("bad", Loader("bad", fail=[FileNotFoundError("no config.json in /models/bad")]), 100)
    with m.use("a"):
        pass
    with pytest.raises(FileNotFoundError):
        with m.use("bad"):
            pass
    assert loaded(m) == {"a"}
    assert "FileNotFoundError" in next(r for r in m.state() if r["name"] == "bad")["error"]


def test_registered_loaded_model_without_loader_stays():
    m, loaders = manager_with(250, "a", "b")
    chat = Fake("chat", 100)
    m.register_loaded("chat", chat, 100)
    with m.use("a"):
        pass
    with m.use("b"):
        pass
    assert loaded(m) == {"chat", "b"}                # a went; chat, the oldest, is pinned
    assert not m.unload("chat") and not chat.closed
    assert m.unload("b") and loaded(m) == {"chat"}
    with m.use("chat") as c:
        assert c is chat


def test_register_loaded_with_loader_can_come_back():
    m = ModelManager(budget_bytes=150)
    reload = Loader("chat")
    m.register_loaded("chat", Fake("chat", 100), loader=reload)
    m.register("a", Loader("a"), 100)
    with m.use("a"):
        pass
    assert loaded(m) == {"a"}
    with m.use("chat"):
        pass
    assert reload.calls == 1 and loaded(m) == {"chat"}


def test_duplicate_names_refused():
    m, _ = manager_with(100, "a")
    with pytest.raises(ValueError, match="already registered"):
        m.register("a", Loader("a"), 1)


def test_loader_is_told_the_room_left():
    m = ModelManager(budget_bytes=1000)
    seen = []
    m.register("a", Loader("a", 300), 300)
    m.register("b", lambda room: seen.append(room) or Fake("b", 10), 10)
    with m.use("a"):
        pass
    with m.use("b"):
        pass
    assert seen == [700]


def test_free_memory_budget_evicts_when_short():
    free = {"bytes": 1000}
    m = ModelManager(free_bytes=lambda: free["bytes"], headroom=0.0)
    m.register("a", Loader("a", 600), 600)
    m.register("b", Loader("b", 600), 600)
    with m.use("a"):
        pass
    free["bytes"] = 400                              # a now holds the memory
    with m.use("b"):
        pass
    assert loaded(m) == {"b"}
    assert m.budget()["mode"] in ("available RAM", "free GPU memory")


def test_state_for_health_and_models_tab():
    m, _ = manager_with(1000, "a", "b")
    with m.use("a"):
        rows = {r["name"]: r for r in m.state()}
        assert rows["a"]["in_use"] and rows["a"]["users"] == 1 and rows["a"]["loaded"]
        assert rows["b"]["loaded"] is False and rows["b"]["last_used"] is None
    row = next(r for r in m.state() if r["name"] == "a")
    assert not row["in_use"] and row["bytes"] == 100 and row["last_used"] <= time.time()
    assert set(row) >= {"name", "loaded", "bytes", "last_used", "in_use", "report", "estimate_bytes", "error"}
    assert m.budget() == {"mode": "engine.max_gpu_memory", "budget_bytes": 1000, "used_bytes": 100,
                          "room_bytes": 900}


def test_concurrent_users_share_one_load():
    m = ModelManager(budget_bytes=10_000)
    slow = Loader("a", delay=0.3)
    m.register("a", slow, 100)
    got, errors = [], []

    def worker():
        try:
            with m.use("a") as obj:
                got.append(obj)
                time.sleep(0.05)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and slow.calls == 1 and len({id(o) for o in got}) == 1
    assert next(r for r in m.state() if r["name"] == "a")["users"] == 0


UNLOAD_PROBE = """
import gc, json, weakref, psutil, torch
from engine.manager import ModelManager, object_bytes
MB = 1024 ** 2

class Big(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.full((4096, 4096), 0.5))   # 64 MiB, every page touched

m = ModelManager(budget_bytes=1024 * MB)
m.register("big", Big, 64 * MB)
proc = psutil.Process()
gc.collect()
before = proc.memory_info().rss
with m.use("big") as model:
    ref = weakref.ref(model)
    size = object_bytes(model)
    del model
during = proc.memory_info().rss
used_loaded = m.used_bytes()
unloaded = m.unload("big")
after = proc.memory_info().rss
print(json.dumps({"size": size, "before": before, "during": during, "after": after, "used_loaded": used_loaded,
                  "used_after": m.used_bytes(), "unloaded": unloaded, "alive": ref() is not None}))
"""


def test_unloading_really_frees_memory():
    """In a fresh process, so the RSS readings see only this model (the test process's heap is busy)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", UNLOAD_PROBE], capture_output=True, text=True, timeout=120,
                         cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["size"] == 64 * MB and r["used_loaded"] == 64 * MB
    assert r["during"] - r["before"] > 48 * MB
    assert r["unloaded"] and not r["alive"]          # no reference left anywhere
    assert r["during"] - r["after"] > 48 * MB, r
    assert r["used_after"] == 0


def test_estimates():
    assert estimate_bytes("openai/whisper-small") > 900 * MB
    assert estimate_bytes("someone/unknown-model") == 2 * 1024 ** 3


# -- the real tiny models under one budget --------------------------------------------------------------

def test_real_models_take_turns_under_a_tiny_budget(tmp_path):
    import numpy as np
    from PIL import Image

    from config import EngineConfig
    from engine.serving.generation import GenerationParams
    from engine.manager import register_media_models
    from tests.media_fixtures import wav_bytes, tone

    cfg = EngineConfig(max_context=512, demo_speech="tiny")
    m = ModelManager(budget_bytes=1)                 # nothing fits beside anything: every load evicts
    register_media_models(m, cfg, demo=True)
    with m.use("vision") as vision:
        answer = vision.ask(Image.new("RGB", (48, 48), "white"), "What is it?",
                            GenerationParams(max_new_tokens=4, min_new_tokens=4, temperature=0))
        assert answer.text() and answer.stats.completion_tokens == 4
        with m.use("tts-en") as voice:              # vision is busy: it must stay
            assert voice.speak("Hello.").seconds > 0
        assert loaded(m) == {"vision", "tts-en"}
    with m.use("stt") as stt:
        result = stt.transcribe(wav_bytes(tone(1.0, 22050, 200.0, 0.3), 22050), max_new_tokens=4)
        assert result.resampled
    assert loaded(m) == {"stt"}                      # vision and tts-en were idle: both went
    rows = {r["name"]: r for r in m.state()}
    assert rows["vision"]["evictions"] == 1 and rows["stt"]["report"].startswith("demo:whisper-tiny")
    assert rows["stt"]["demo"] and "random weights" in rows["stt"]["notice"]


def test_real_model_load_out_of_memory_is_retried():
    from config import EngineConfig
    from engine.media.speech import Voice

    cfg = EngineConfig(demo_speech="tiny")
    calls = []

    def flaky_voice():
        calls.append(1)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")
        return Voice.load(cfg, "en", demo=True)

    m = ModelManager(budget_bytes=1024 * MB)
    m.register("tts-ko", lambda: Voice.load(cfg, "ko", demo=True), 10 * MB)
    m.register("tts-en", flaky_voice, 10 * MB)
    with m.use("tts-ko"):
        pass
    with m.use("tts-en") as voice:
        assert voice.speak("Hi there.").seconds > 0
    assert len(calls) == 2 and loaded(m) == {"tts-en"}


def test_precision_ladder_exhausted_counts_as_out_of_memory():
    from engine.errors import ModelLoadError

    m, loaders = manager_with(10_000, "a")
    m.register("v", Loader("v", fail=[ModelLoadError("v could not be loaded at any precision (fp16: out of memory)")]),
               100)
    with m.use("a"):
        pass
    with m.use("v"):
        pass
    assert loaded(m) == {"v"}
