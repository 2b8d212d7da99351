"""Whether a bitsandbytes model joins the continuous batch is the measured decision of
bench/quantized_batching.py (engine/serving/batch_criterion.json, issue 23), read by `unsupported_reason`.

Real 8-bit and 4-bit loads of the tiny demo model on the CPU, through the engine's loader."""
import json
import threading
from pathlib import Path

import pytest

from engine.serving import batch_criterion
from engine.serving.batching import ContinuousBatcher, build_scheduler, choose_path, unsupported_reason
from engine.serving.generation import GenerationParams

COMMITTED = batch_criterion.CRITERION_FILE


def load(folder: Path, precision: str):
    from transformers import AutoModelForCausalLM

    from engine.loading.loader import LoadPlan, load_pretrained

    model, report = load_pretrained(AutoModelForCausalLM, folder, "demo:tiny", LoadPlan(precision=precision))
    assert report.rung == precision, report.summary()
    return model


@pytest.fixture(scope="module")
def eight_bit(tiny_model_dir):
    return load(tiny_model_dir, "8bit")


@pytest.fixture(scope="module")
def four_bit(tiny_model_dir):
    return load(tiny_model_dir, "4bit")


def decision_file(tmp_path: Path, monkeypatch, batches: dict[str, bool]) -> Path:
    """The committed figures with `batches` set per rung ("8-bit", "4-bit"), as the file the engine reads."""
    data = json.loads(COMMITTED.read_text(encoding="utf-8"))
    for rung, verdict in batches.items():
        data["rungs"][rung]["batches"] = verdict
    path = tmp_path / "batch_criterion.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    monkeypatch.setattr(batch_criterion, "CRITERION_FILE", path)
    return path


def test_the_measured_8bit_decision_keeps_the_queue_and_says_why(eight_bit):
    row = json.loads(COMMITTED.read_text(encoding="utf-8"))["rungs"]["8-bit"]
    assert row["batches"] is False          # measured: batching moves 8-bit answers almost as far as quantization
    reason = unsupported_reason(eight_bit)
    assert reason and "8-bit answers change when several people ask at once" in reason
    assert f"{row['greedy_within']:.1%}" in reason and "requests take turns" in reason
    assert choose_path(eight_bit) == ("queue", reason)


def test_a_4bit_model_batches_when_the_file_says_so_and_queues_when_not(four_bit, tmp_path, monkeypatch):
    decision_file(tmp_path, monkeypatch, {"4-bit": True})
    assert unsupported_reason(four_bit) is None
    assert choose_path(four_bit)[0] == "continuous"
    decision_file(tmp_path, monkeypatch, {"4-bit": False})
    reason = unsupported_reason(four_bit)
    assert reason and "4-bit answers change when several people ask at once" in reason


def test_without_a_measurement_quantized_models_take_turns(four_bit, eight_bit, tmp_path, monkeypatch):
    monkeypatch.setattr(batch_criterion, "CRITERION_FILE", tmp_path / "missing.json")
    for model in (four_bit, eight_bit):
        path, why = choose_path(model)
        assert path == "queue" and "has not been measured" in why and "requests take turns" in why
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    monkeypatch.setattr(batch_criterion, "CRITERION_FILE", tmp_path / "broken.json")
    assert choose_path(four_bit)[0] == "queue"


def test_the_models_table_tells_measured_from_not_measured(tmp_path, monkeypatch):
    """rung_batches is the structured decision: True, False (measured to change answers) or None (not measured),
    and it follows the file when the bench rewrites it."""
    from engine.serving.batch_criterion import rung_batches

    assert rung_batches("cpu-bfloat16") is True and rung_batches("fp16") is True
    path = decision_file(tmp_path, monkeypatch, {"4-bit": True, "8-bit": False})
    assert (rung_batches("4bit"), rung_batches("4bit-offload"), rung_batches("8bit")) == (True, True, False)
    decision_file(tmp_path, monkeypatch, {"4-bit": False, "8-bit": True})     # the bench rewrote it
    assert (rung_batches("4bit"), rung_batches("8bit")) == (False, True)
    path.write_text("{not json", encoding="utf-8")
    assert (rung_batches("4bit"), rung_batches("8bit")) == (None, None)
    monkeypatch.setattr(batch_criterion, "CRITERION_FILE", tmp_path / "missing.json")
    assert rung_batches("8bit") is None and rung_batches("bf16") is True


def test_a_4bit_model_takes_the_continuous_path_and_two_requests_share_a_step(four_bit, tiny_model_dir, tmp_path,
                                                                                 monkeypatch):
    from transformers import AutoTokenizer

    from engine.prompting.codec import TextCodec
    from engine.serving.generation import Generator

    decision_file(tmp_path, monkeypatch, {"4-bit": True})
    codec = TextCodec.load(tiny_model_dir, AutoTokenizer.from_pretrained(str(tiny_model_dir)))
    generator = Generator(four_bit, codec, max_context=256, slots=2)
    sched, why = build_scheduler(four_bit, codec, generator, slots=2, headroom=0.05)
    rows, added = [], threading.Semaphore(0)

    def both_added(_module, _args, kwargs):      # the batch's first step waits until both requests are queued
        if "logits_indices" in kwargs and not rows:
            for _ in range(2):
                assert added.acquire(timeout=30), "a request never reached the batch"

    def count_rows(_module, _args, kwargs, out):   # requests given a token at this step
        if "logits_indices" in kwargs:
            rows.append(int(out.logits.shape[1]))

    hooks = [four_bit.register_forward_pre_hook(both_added, with_kwargs=True),
             four_bit.register_forward_hook(count_rows, with_kwargs=True)]
    try:
        assert isinstance(sched, ContinuousBatcher), why
        add = sched._manager.add_request

        def counted_add(*args, **kwargs):
            try:
                return add(*args, **kwargs)
            finally:
                added.release()

        monkeypatch.setattr(sched._manager, "add_request", counted_add)
        params = GenerationParams(max_new_tokens=6, min_new_tokens=6, temperature=0.0)
        texts = {}

        def ask(i: int) -> None:
            texts[i] = sched.stream([{"role": "user", "content": f"hello {i}"}], params).text()

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert len(texts) == 2 and all(texts.values())
        assert max(rows) == 2, rows          # both requests were given a token in the same forward
    finally:
        for hook in hooks:
            hook.remove()
        sched.close()
