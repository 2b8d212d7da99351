"""The page: model banner on top, then the tabs."""
from __future__ import annotations

from typing import Any

import gradio as gr

from ui import chat


def banner_markdown(report: Any) -> str:
    """What the user must see about the loaded model: demo noise, fallback reason, no GPU."""
    lines = [f"**Model / 모델:** `{report.model_id}` · **{report.rung}** on `{report.device}`"]
    if report.demo:
        lines.append("⚠️ **Demo model: random weights, replies are noise.** "
                     "데모 모델(무작위 가중치)이라 답변은 의미 없는 글자입니다.")
    if report.notice:
        lines.append(f"ℹ️ {report.notice}")
    return "\n\n".join(lines)


def build_ui(cfg: Any, engine: Any, store: Any) -> gr.Blocks:
    with gr.Blocks(title="Local Mistral Chat") as blocks:
        gr.Markdown(banner_markdown(engine.report), elem_id="model-banner")
        with gr.Tab("Chat"):
            chat.build(cfg, engine)
    return blocks
