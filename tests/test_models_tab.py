"""The Models tab's plain words (issue 24) and its per-rung table (issue 23): the speed column reads the measured
record (docs/quality.json) and says "not measured" where there is none; a quantized rung that takes turns says
why in plain words; "Estimate GPU memory" knows the default chat and image models with no hub and no cache."""
from __future__ import annotations

import json

from config import AppConfig
from engine.loading.preflight import GiB

DEFAULT_CHAT = AppConfig().engine.model
DEFAULT_IMAGE = AppConfig().engine.vision_model


def test_the_rung_table_shows_measured_speed_or_says_not_measured(tmp_path):
    """docs/quality.json records tokens/s per rung (bench/bench_quality.py); a row without it says "not measured"."""
    from ui.models import quality_markdown

    rows = {line.split("|")[1].strip(): line for line in quality_markdown("demo:smollm2", "en").splitlines()
            if line.startswith("| ")}
    measured = json.loads(open("docs/quality.json", encoding="utf-8").read())["demo:smollm2"]["rows"]
    assert "speed" in rows["rung"]
    for row in measured:
        assert f"{row['tokens_per_second']:.1f} tokens/s" in rows[row["rung"]], rows[row["rung"]]
    unmeasured = tmp_path / "quality.json"
    unmeasured.write_text(json.dumps({"m": {"text": "t", "rows": [
        {"rung": "fp16", "perplexity": 9.0, "weight_bytes": 2 * GiB, "tokens_per_second": 0.0, "tokens": 10}]}}))
    assert "| not measured |" in quality_markdown("m", "en", unmeasured)
    assert "| 측정 안 됨 |" in quality_markdown("m", "ko", unmeasured)


def test_eight_bit_says_why_it_takes_turns_in_plain_words():
    """The measured criterion (engine/serving/batch_criterion.json) has 8-bit taking turns: said as a user would."""
    from ui.models import batching_words

    assert batching_words("queue", 2, "8bit", "en") == (
        "8-bit answers change when several people ask at once, so requests take turns")
    assert "차례대로" in batching_words("queue", 2, "8bit", "ko")
    assert batching_words("continuous", 8, "cpu-bfloat16", "en") == (
        "answered together in one batch, up to 8 at a time")


def test_the_default_chat_and_image_models_are_known_without_the_hub(monkeypatch):
    """Neither model is in this machine's cache and the hub is unreachable: the shipped config files answer
    (the per-card estimate itself: tests/browser/test_browser_models.py)."""
    from ui.models import model_config_and_source

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    chat, source = model_config_and_source(DEFAULT_CHAT)
    assert source == "shipped" and type(chat).__name__ == "MistralConfig" and chat.vocab_size == 32768
    image, source = model_config_and_source(DEFAULT_IMAGE)
    assert source == "shipped" and type(image).__name__ == "LlavaNextConfig"
    assert image.text_config.num_hidden_layers == 32 and image.vision_config.num_hidden_layers == 24
