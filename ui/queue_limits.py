"""The Gradio queue runs as many chats at once as the engine serving now: at start, and after each model switch.

engine.max_concurrent ("auto": sized from the loaded model's memory) is resolved per model, so a switch to a
model with a bigger (or smaller) KV cache per token changes how many requests its batch takes; the page's chat
events follow it (ui/gradio_bridge.set_default_concurrency), or the batch would stay sized for the first model.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import gradio as gr

from ui.gradio_bridge import set_default_concurrency

if TYPE_CHECKING:
    from engine.switching import ModelSwitch


def queue_as_engine(blocks: gr.Blocks, models: ModelSwitch, *, max_size: int) -> gr.Blocks:
    """blocks.queue() with the serving engine's slots as the default concurrency, kept equal after a switch."""
    blocks.queue(default_concurrency_limit=models.current.concurrency.slots, max_size=max_size)
    models.follow(lambda engine: set_default_concurrency(blocks, engine.concurrency.slots))
    return blocks
