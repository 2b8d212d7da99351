"""The Models tab in a browser (issue 24): plain words first (model, precision, where it runs, memory, several
people at once), the engine's own account folded in a closed <details>, the demo notice once on the whole page
(the banner's), and "Estimate GPU memory" answering for the pre-filled chat model and the image model with no hub:
one row per card with the rung it would load at."""
from __future__ import annotations

from config import AppConfig
from tests.browser.pages import click_tab, open_app

REPORT = "() => document.querySelector('#models-report')?.innerText || ''"
TABLE = "() => document.querySelector('#models-estimate-table')?.innerText || ''"


def per_card(table: str) -> dict[str, str]:
    """'8 GB card' -> the rung it loads as (the table's last column)."""
    rows = [line.split("\t") for line in table.splitlines() if "GB card" in line]
    return {cells[0].strip(): cells[-1].strip() for cells in rows}


def test_models_tab_leads_with_plain_words_and_estimates_offline(app_server, new_context):
    page = open_app(new_context(), app_server.url)
    click_tab(page, "Models")
    page.wait_for_function(f"() => ({REPORT})().includes('demo:tiny')")
    lines = [line.strip() for line in page.inner_text("#models-report").splitlines() if line.strip()]
    assert [line.split(":")[0] for line in lines[:5]] == [
        "Model", "Precision", "Runs on", "Memory", "Several people at once"], lines
    assert "demo:tiny" in lines[0] and "cpu-bfloat16" in lines[1] and "CPU" in lines[2]
    # the engine's account (the preflight's numbers, the scheduler) is there, folded
    details = page.locator("#models-report details")
    assert details.count() == 1 and details.get_attribute("open") is None
    assert "serving:" not in page.inner_text("#models-report")
    details.locator("summary").click()
    page.wait_for_function(f"() => ({REPORT})().includes('serving:')")
    # the demo notice: once on the whole page (the banner on top), not again in the tab
    assert page.inner_text("body").count("replies are noise") == 1
    # the pre-filled model (engine.model) is estimated offline: its architecture ships with the app
    assert page.input_value("#models-estimate-model input") == AppConfig().engine.model
    page.click("#models-estimate")
    page.wait_for_function(f"() => ({TABLE})().includes('loads as')")
    assert per_card(page.inner_text("#models-estimate-table")) == {
        "8 GB card": "4bit", "12 GB card": "8bit", "16 GB card": "8bit", "24 GB card": "fp16"}
    page.click("#models-estimate-vision")
    page.wait_for_function(f"() => ({TABLE})().includes('llava-v1.6-mistral-7b-hf') && ({TABLE})().includes('loads as')")
    assert set(per_card(page.inner_text("#models-estimate-table"))) == {"8 GB card", "12 GB card", "16 GB card",
                                                                         "24 GB card"}
