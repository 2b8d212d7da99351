"""A person switches the chat model in the Models tab (issue 25): the progress box says "switching the chat
model…" and what it does, the model banner on top follows the new model without a reload, and the next reply's
provenance names the model that wrote it. On the run's shared app (demo:tiny), switched to a model folder (a
copy of the tiny model, a few seconds to load) and back to the demo for the tests after it."""
from __future__ import annotations

import shutil

from tests.browser.pages import BOT, click_tab, open_app, screenshot, send, set_max_tokens, wait_js

LOG = "() => document.querySelector('#models-switch-log textarea')?.value || ''"
BANNER = "() => document.querySelector('#model-banner')?.innerText || ''"


def test_switching_the_model_in_the_models_tab_moves_the_banner_and_the_next_reply(app_server, new_context,
                                                                                   tmp_path, tiny_model_dir):
    from gradio_client import Client

    folder = tmp_path / "my-model"
    shutil.copytree(tiny_model_dir, folder)
    page = open_app(new_context(), app_server.url)
    assert "demo:tiny" in page.evaluate(BANNER)
    try:
        click_tab(page, "Models")
        page.locator("#models-switch-model input, #models-switch-model textarea").first.fill(str(folder))
        page.click("#models-switch")
        wait_js(page, f"() => ({LOG})().includes('switching the chat model from demo:tiny to {folder}')",
                "the progress box to say the model is being switched", watch="#models-switch-log", stall=30)
        wait_js(page, f"() => ({LOG})().includes('Now serving {folder}')", "the switch to finish",
                watch="#models-switch-log", stall=60)
        log = page.evaluate(LOG)
        assert "unloaded demo:tiny" in log and f"loading the chat model ({folder})" in log, log
        # the banner on top follows at once (no reload), and no longer says "random weights"
        wait_js(page, f"() => ({BANNER})().includes('{folder}')", "the banner to name the new model",
                watch="#model-banner", stall=20)
        assert "noise" not in page.evaluate(BANNER)
        page.locator("#models-switch-log").scroll_into_view_if_needed()
        screenshot(page, "models-switch.png")

        click_tab(page, "Chat")
        set_max_tokens(page, 2)
        send(page, "Hello")
        wait_js(page, """([sel, mark]) => { const b = document.querySelectorAll(sel);
                         return b.length === 1 && b[0].innerText.includes(mark); }""",
                "the reply with its provenance", [BOT, "my-model"], watch=BOT, stall=30)
        assert "demo:tiny" not in page.locator(BOT).inner_text()
    finally:   # the shared app goes back to what the other tests expect
        assert Client(app_server.url, verbose=False).predict("demo", "", api_name="/switch_model")["model"] == \
            "demo:tiny"
