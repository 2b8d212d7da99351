"""The Tuning tab's loss plot names both series, train and eval, in its legend (it once showed only "eval").
The plot is ui.tuning.loss_plot(), updated as the tab's timer does with ui.tuning.plot_frame() of the metrics
rows training has written so far (train losses first, eval losses later), served by Gradio and drawn by
Chromium; no training run is needed for the legend."""
from __future__ import annotations

import gradio as gr
import pytest

from tests.conftest import free_port
from ui.i18n import make_i18n
from ui.tuning import loss_plot, plot_frame

# what tuning writes to metrics.jsonl: a train loss every step, an eval loss every other step
ROWS = [{"step": 1, "loss": 2.4}, {"step": 2, "loss": 2.1}, {"step": 2, "eval_loss": 2.3},
        {"step": 3, "loss": 1.9}, {"step": 4, "loss": 1.7}, {"step": 4, "eval_loss": 2.0}]
LEGEND = "() => [...document.querySelectorAll('#tuning-plot svg .role-legend-label text')].map(e => e.textContent)"


@pytest.fixture(scope="module")
def plot_page():
    with gr.Blocks() as demo:
        plot = loss_plot()
        rows = gr.Number(0, elem_id="rows")
        more = gr.Button("more", elem_id="more")
        more.click(lambda n: (plot_frame(ROWS[: int(n) + 2]), int(n) + 2), rows, [plot, rows])
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, i18n=make_i18n())
    yield f"http://127.0.0.1:{port}"
    demo.close()


def test_loss_plot_legend_names_train_and_eval(plot_page, new_context):
    page = new_context().new_page()
    page.goto(plot_page, wait_until="load")
    for shown in (2, 4, 6):            # train points first, then eval ones arrive, as ticks bring them
        page.click("#more")
        page.wait_for_function(f"() => document.querySelector('#rows input').value === '{shown}'")
    page.wait_for_function("() => document.querySelectorAll('#tuning-plot svg .mark-line path').length >= 2")
    page.wait_for_function(f"() => ({LEGEND})().length >= 2")
    assert sorted(page.evaluate(LEGEND)) == ["eval", "train"]
