"""engine.max_concurrent "auto" (the default): requests batched together sized from the KV budget left after
the weights, on real model configs; the resolved number and why reach /health and the Models tab."""
from __future__ import annotations

import httpx
import pytest
from transformers import AutoConfig, MistralConfig

from engine.loading.demo.chat import demo_chat_model
from engine.loading.preflight import AUTO_SLOTS_CAP, size_concurrency
from engine.serving.remote import remote_concurrency
from ui.models import concurrency_line

MiB, GiB = 1024 ** 2, 1024 ** 3
# Mistral-7B-Instruct-v0.3's config.json numbers (32 layers, 8 KV heads of 128): 128 KiB of fp16 KV per token.
MISTRAL_7B = MistralConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                           num_key_value_heads=8, head_dim=128, max_position_embeddings=32768, vocab_size=32768)


def test_mistral_7b_on_a_consumer_card_gets_what_its_kv_budget_holds():
    # 4096 tokens x 128 KiB = 512 MiB per request: 3 GiB holds 6, one byte less holds 5
    six = size_concurrency(MISTRAL_7B, context_tokens=4096, kv_budget_bytes=3 * GiB, where="GPU after the weights")
    assert six.slots == 6 and six.auto and six.kv_bytes_per_token == 128 * 1024
    assert six.why == "auto: 6 from 3.2 GB KV budget (GPU after the weights), 128 KiB/token, context 4096"
    assert size_concurrency(MISTRAL_7B, context_tokens=4096, kv_budget_bytes=3 * GiB - 1).slots == 5
    # a shorter context fits proportionally more; fp32 KV (4 bytes) half as many
    assert size_concurrency(MISTRAL_7B, context_tokens=1024, kv_budget_bytes=3 * GiB).slots == 24
    assert size_concurrency(MISTRAL_7B, context_tokens=4096, kv_budget_bytes=3 * GiB, dtype_bytes=4).slots == 3


@pytest.mark.parametrize("size, per_token", [("tiny", 256), ("bench", 8192)])
def test_demo_models_size_from_their_own_config(size, per_token):
    """tiny: 2 layers x 2 KV heads x 16 dims x K,V x bf16 = 256 B; bench: 8 x 4 x 64 x 2 x 2 = 8 KiB."""
    config = AutoConfig.from_pretrained(demo_chat_model(size))
    per_request = per_token * 4096
    assert size_concurrency(config, context_tokens=4096, kv_budget_bytes=5 * per_request).slots == 5
    assert size_concurrency(config, context_tokens=4096, kv_budget_bytes=5 * per_request - 1).slots == 4
    assert size_concurrency(config, context_tokens=4096, kv_budget_bytes=10 ** 12).slots == AUTO_SLOTS_CAP
    assert size_concurrency(config, context_tokens=4096, kv_budget_bytes=0).slots == 1   # never below one


def test_remote_auto_is_a_fixed_number_and_a_set_number_is_kept():
    assert remote_concurrency("auto").slots == AUTO_SLOTS_CAP and remote_concurrency("auto").auto
    assert remote_concurrency(3).slots == 3 and not remote_concurrency(3).auto


def test_models_tab_says_the_number_and_why_in_english_and_korean():
    auto = size_concurrency(MISTRAL_7B, context_tokens=4096, kv_budget_bytes=3 * GiB)
    assert concurrency_line(auto, "en") == ("Chats generated at once: **6**, sized from memory (auto): 3.2 GB for "
                                            "the KV cache, 128 KiB per token, 4096 tokens of context each")
    assert concurrency_line(auto, "ko").startswith("동시에 생성하는 대화: **6**개, 메모리에 맞춰 자동 결정(auto)")
    assert "원격" in concurrency_line(remote_concurrency("auto"), "ko")


def test_health_reports_the_resolved_number_and_the_scheduler_uses_it(app_server):
    """The run's shared default app: no engine.max_concurrent, so the default (auto)."""
    body = httpx.get(app_server.url + "/health", timeout=10).json()
    c = body["concurrency"]
    assert c["setting"] == "auto"
    assert c["kv_bytes_per_token"] == 256 and c["context_tokens"] == 4096     # demo:tiny, engine.max_context
    assert c["slots"] == max(1, min(AUTO_SLOTS_CAP, c["kv_budget_bytes"] // (256 * 4096)))
    assert c["why"].startswith(f"auto: {c['slots']} from ") and "KiB/token, context 4096" in c["why"]
    assert body["queue"]["slots"] == c["slots"]          # the scheduler batches exactly that many
