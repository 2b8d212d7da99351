"""The Tuning tab in a real browser: train a short demo LoRA on the sample, watch the status and the loss
plot until it is done, then pick the adapter in a chat and see it named under the reply."""
from __future__ import annotations

import re

import pytest

from tests.browser import pages
from tests.conftest import module_server
from tests.waiting import wait_for

CONFIG = {"generation": {"max_new_tokens": 12, "temperature": 0.0}, "server": {"max_upload_mb": 1}}
NAME = "browser-lora"


server = module_server("tuning-ui", config=CONFIG, env={"HF_HUB_OFFLINE": "1"})


def status(page) -> str:
    return page.inner_text("#tuning-status")


def test_a_dataset_over_the_upload_limit_is_refused(server, new_context, tmp_path):
    big = tmp_path / "big.jsonl"
    big.write_bytes(b" " * (1024 * 1024 + 1024))               # server.max_upload_mb is 1 here
    page = pages.open_app(new_context(), server.url)
    pages.click_tab(page, "Tuning")
    page.set_input_files("#tuning-file input[type=file]", str(big))
    page.get_by_text("exceed the maximum allowed size").first.wait_for()
    assert page.input_value("#tuning-check textarea") == ""      # nothing was read


def test_train_on_the_sample_then_chat_with_the_adapter(server, new_context):
    page = pages.open_app(new_context(), server.url)
    pages.click_tab(page, "Tuning")
    page.wait_for_selector("#tuning-start")
    assert page.input_value("#tuning-name input") == "my-adapter"       # a free name is suggested
    page.fill("#tuning-name input", NAME)
    page.fill("#tuning-steps input", "12")
    page.click("#tuning-start")

    seen = []

    def finished() -> bool:
        text = status(page)
        if not seen or seen[-1] != text:
            seen.append(text)
        return "Done" in text or "Failed" in text

    # training is slow on a busy machine; the status line moves with each step, so wait while it moves
    wait_for(finished, "training to finish", progress=lambda: len(seen), stall=120, poll=0.3,
             detail=lambda: f"statuses seen: {seen}")
    assert "Done" in seen[-1] and "step 12 / 12" in seen[-1], seen
    assert any(w in s for s in seen[:-1] for w in ("Starting", "Loading", "Training")), seen  # it progressed live
    assert "0 bad line(s)" in page.input_value("#tuning-check textarea")
    # the loss plot drew its lines (train and eval)
    page.wait_for_function("() => document.querySelectorAll('#tuning-plot svg .mark-line path').length >= 2")
    assert page.locator("#tuning-cancel button, button#tuning-cancel").first.is_disabled()
    pages.screenshot(page, "tuning.png", full_page=True)

    pages.click_tab(page, "Chat")
    pages.open_settings(page)
    page.click("#chat-adapter input")
    option = page.get_by_role("option", name=re.compile(re.escape(NAME)))
    option.wait_for()                                                 # the list was read again on opening
    option.click()
    wait_for(lambda: NAME in page.input_value("#chat-adapter input"), "the adapter to be the chat's choice",
             stall=30)
    pages.send(page, "안녕하세요!")
    reply = pages.wait_replies_done(page, 1)[0]
    assert NAME in reply, reply                                       # the provenance line names the adapter
    pages.reload(page)
    pages.open_settings(page)
    assert NAME in page.input_value("#chat-adapter input")            # the chat keeps its adapter
