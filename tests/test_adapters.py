"""engine/adapters.py: names stay inside the folder, half-written adapters are invisible, another
base's adapter is refused with the model still usable, and requests never mix adapters."""
import json
import shutil
import threading
from pathlib import Path

import pytest

from engine.adapters import (AdapterRegistry, adapter_path, base_fingerprint, list_adapters, read_adapter, validate_name)
from engine.errors import AdapterMismatch, AdapterNameError, AdapterNotFound
from engine.chat import ChatEngine
from config import EngineConfig
from engine.loading.demo.chat import demo_chat_model
from engine.serving.generation import ChatStream, GenerationParams, StreamStats
from engine.loading.sources import resolve_source
from tuning.config import TrainConfig
from tuning.output import PublishError, publish_adapter
from tuning.train import train

from tests.waiting import wait_for

PROMPT = [{"role": "user", "content": "Hello!"}]
GREEDY = GenerationParams(max_new_tokens=8, temperature=0)


def gated_run(registry, model, name, body):
    """Run body() where a reply for adapter `name` is generated: inside registry.gated, the path
    ChatEngine.stream takes; returns what body returned."""
    result = []

    def pieces():
        result.append(body())
        yield ""

    registry.gated(model, ChatStream(pieces(), StreamStats()), name).text()
    return result[0]


@pytest.fixture(scope="module")
def adapters(tmp_path_factory):
    """A folder holding one freshly trained adapter, "real" (a few CPU seconds)."""
    tmp = tmp_path_factory.mktemp("adapters")
    data = tmp / "data.jsonl"
    line = {"messages": [{"role": "user", "content": "Hello!"}, {"role": "assistant", "content": "Tuned hello."}]}
    data.write_text((json.dumps(line) + "\n") * 8)
    cfg = TrainConfig(name="real", dataset=str(data), base_model="demo:tiny", adapters_dir=str(tmp / "adapters"),
                      lora_r=4, lora_alpha=8, lora_dropout=0.0, max_length=64, eval_fraction=0.0, max_steps=10,
                      batch_size=4, grad_accum=1, learning_rate=0.02, lr_scheduler="constant", warmup_steps=0,
                      gradient_checkpointing=False, logging_steps=5, save_steps=100)
    train(cfg)
    return Path(cfg.adapters_dir)


@pytest.fixture(scope="module")
def engine(adapters):
    """A running engine whose own registry (engine.adapters) serves the trained adapters folder."""
    engine = ChatEngine.from_source(resolve_source("demo:tiny"), EngineConfig(adapters_dir=str(adapters)))
    yield engine
    engine.close()


def clone(adapters: Path, name: str, **meta_changes) -> Path:
    target = adapters / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(adapters / "real", target)
    meta = json.loads((target / "meta.json").read_text()) | {"name": name} | meta_changes
    (target / "meta.json").write_text(json.dumps(meta))
    return target


@pytest.mark.parametrize("name", ["../x", "/abs", "a/b", "..", ".", ".hidden", "a\\b", "", "x" * 65, "a b",
                                  "-flag", "_x", "a\0b"])
def test_names_that_could_escape_are_refused(tmp_path, name):
    with pytest.raises(AdapterNameError):
        validate_name(name)
    with pytest.raises(AdapterNameError):
        adapter_path(tmp_path, name)


@pytest.mark.parametrize("name", ["my-bot", "봇_v2.1", "Mistral-7B-ko"])
def test_plain_names_including_korean_are_allowed(tmp_path, name):
    assert adapter_path(tmp_path, name) == (tmp_path / name).resolve()


def test_a_symlink_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "adapters").mkdir()
    (tmp_path / "adapters" / "evil").symlink_to(tmp_path)
    with pytest.raises(AdapterNameError, match="outside"):
        adapter_path(tmp_path / "adapters", "evil")


def test_half_written_adapters_are_not_listed(adapters):
    clone(adapters, "complete")
    shutil.copytree(adapters / "real", adapters / ".tmp-0123abcd-partial")        # publish in progress
    no_meta = clone(adapters, "no-meta")
    (no_meta / "meta.json").unlink()                                             # crashed before meta.json
    torn = clone(adapters, "torn-meta")
    (torn / "meta.json").write_text('{"format": 1, "name": "torn-me')             # truncated meta
    no_weights = clone(adapters, "no-weights")
    (no_weights / "adapter_model.safetensors").unlink()
    pickled = clone(adapters, "pickled")
    (pickled / "adapter_model.safetensors").rename(pickled / "adapter_model.bin")
    try:
        assert [a.name for a in list_adapters(adapters)] == ["complete", "real"]
        with pytest.raises(AdapterNotFound, match="meta.json is missing"):
            read_adapter(adapters, "no-meta")
        with pytest.raises(AdapterNotFound, match="pickle"):
            read_adapter(adapters, "pickled")
    finally:
        for name in ("complete", ".tmp-0123abcd-partial", "no-meta", "torn-meta", "no-weights", "pickled"):
            shutil.rmtree(adapters / name)


def test_a_failed_publish_leaves_nothing_listed(adapters, monkeypatch):
    import tuning.output as output

    def boom(folder):
        raise PublishError("disk full")

    monkeypatch.setattr(output, "check_adapter_files", boom)

    class Saver:
        def save_pretrained(self, path, **kw):
            shutil.copy(adapters / "real" / "adapter_model.safetensors", path)
            shutil.copy(adapters / "real" / "adapter_config.json", path)

    meta = json.loads((adapters / "real" / "meta.json").read_text())
    with pytest.raises(PublishError):
        publish_adapter(Saver(), adapters, "new-one", meta, overwrite=False)
    assert [a.name for a in list_adapters(adapters)] == ["real"]
    assert not [p for p in adapters.iterdir() if "new-one" in p.name]


def test_fingerprint_tells_bases_apart(tmp_path):
    tiny = demo_chat_model("tiny")
    assert base_fingerprint(tiny) == base_fingerprint(tiny)
    other_seed = demo_chat_model("tiny", seed=1)      # same architecture and header, other weights
    assert base_fingerprint(other_seed) != base_fingerprint(tiny)
    resaved = tmp_path / "resaved"
    shutil.copytree(tiny, resaved)
    config = json.loads((resaved / "config.json").read_text()) | {"transformers_version": "9.9.9"}
    (resaved / "config.json").write_text(json.dumps(config, indent=4))
    assert base_fingerprint(resaved) == base_fingerprint(tiny)


def test_adapter_for_another_base_is_refused_and_the_model_still_generates(adapters, engine):
    clone(adapters, "foreign", base_model_id="mistralai/Mistral-7B-Instruct-v0.2",
          base_fingerprint="sha256:" + "0" * 64)
    try:
        registry = engine.adapters
        before = engine.stream(PROMPT, GREEDY).text()
        with pytest.raises(AdapterMismatch) as err:
            gated_run(registry, engine.model, "foreign", lambda: pytest.fail("must not run with a foreign adapter"))
        message = str(err.value)
        assert "Mistral-7B-Instruct-v0.2" in message and "demo:tiny" in message
        assert "sha256 0000000000" in message and registry.fingerprint[7:17] in message
        with pytest.raises(AdapterMismatch):
            engine.stream(PROMPT, GREEDY, adapter="foreign")
        assert registry.loaded() == []
        assert engine.stream(PROMPT, GREEDY, adapter=None).text() == before
        marks = {a.name: a.compatible for a in registry.available()}
        assert marks == {"foreign": False, "real": True}
    finally:
        shutil.rmtree(adapters / "foreign")


def test_bad_names_and_missing_adapters_are_refused_by_the_registry(adapters, engine):
    registry = engine.adapters
    for name in ("../real", "/etc", "a/b"):
        with pytest.raises(AdapterNameError):
            gated_run(registry, engine.model, name, lambda: None)
    with pytest.raises(AdapterNotFound):
        gated_run(registry, engine.model, "missing", lambda: None)
    assert engine.stream(PROMPT, GREEDY).text()


def test_requests_with_different_adapters_are_serialised(adapters, engine):
    registry = engine.adapters
    order, inside_a, release_a = [], threading.Event(), threading.Event()

    def inside(label, hold, ready):
        order.append(("in", label))
        if ready:
            ready.set()
        if hold:
            assert hold.wait(10)
        order.append(("out", label))

    def run(name, label, hold=None, ready=None):
        gated_run(registry, engine.model, name, lambda: inside(label, hold, ready))

    a = threading.Thread(target=run, args=("real", "A", release_a, inside_a))
    a.start()
    assert inside_a.wait(20)
    b = threading.Thread(target=run, args=(None, "B"))        # wants the base: must wait for A
    b.start()
    wait_for(lambda: len(registry._waiting) == 1, "B in the registry's waiting list", stall=30)
    c = threading.Thread(target=run, args=("real", "C"))      # same adapter as A, but B asked first
    c.start()
    wait_for(lambda: len(registry._waiting) == 2, "C queued behind B in the registry's waiting list", stall=30)
    assert order == [("in", "A")]
    release_a.set()
    for t in (a, b, c):
        t.join(20)
    assert order == [("in", "A"), ("out", "A"), ("in", "B"), ("out", "B"), ("in", "C"), ("out", "C")]


def test_requests_with_the_same_selection_run_together(adapters, engine):
    registry = engine.adapters
    barrier, errors = threading.Barrier(2, timeout=10), []

    def run(name):
        try:
            gated_run(registry, engine.model, name, barrier.wait)   # both must be inside at once, or this times out
        except threading.BrokenBarrierError as exc:
            errors.append(exc)

    for name in (None, "real"):
        threads = [threading.Thread(target=run, args=(name,)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
    assert errors == []
    registry.unload(engine.model, "real")


def test_retrained_adapter_is_reloaded(adapters, engine):
    registry = engine.adapters
    clone(adapters, "swap")
    try:
        first = engine.stream(PROMPT, GREEDY, adapter="swap").text()
        from safetensors.torch import load_file, save_file

        weights = load_file(adapters / "swap" / "adapter_model.safetensors")
        save_file({k: v * 3 if "lora_B" in k else v for k, v in weights.items()},
                  adapters / "swap" / "adapter_model.safetensors")
        clone_meta = json.loads((adapters / "swap" / "meta.json").read_text()) | {"run_id": "another-run"}
        (adapters / "swap" / "meta.json").write_text(json.dumps(clone_meta))
        second = engine.stream(PROMPT, GREEDY, adapter="swap").text()
        assert registry.loaded() == ["swap"]
        assert second != first
    finally:
        registry.unload(engine.model, "swap")
        shutil.rmtree(adapters / "swap")


def test_switching_works_on_a_peft_wrapped_model_too(adapters):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    folder = demo_chat_model("tiny")
    plain = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    ids = torch.tensor([[1, 3, 1500, 4, 2000]])
    with torch.no_grad():
        reference = plain(input_ids=ids).logits.clone()
    wrapped = get_peft_model(plain, LoraConfig(r=2, target_modules=["q_proj"])).eval()  # its own "default"
    registry = AdapterRegistry(adapters, folder, "demo:tiny")
    with torch.no_grad():
        tuned = gated_run(registry, wrapped, "real", lambda: wrapped(input_ids=ids).logits.clone())
        base = gated_run(registry, wrapped, None, lambda: wrapped(input_ids=ids).logits.clone())
    assert not torch.equal(tuned, reference)
    assert torch.equal(base, reference)
    assert registry.unload(wrapped, "real") and registry.loaded() == []
