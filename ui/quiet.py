"""Gradio's queue, quiet when no one is using it.

With no event queued, Gradio 6's scheduler loop sleeps 1 ms between looks and its progress loop 10 ms:
about 1,100 wake-ups a second on the event loop, measured as most of the 0.04-0.075 core an idle app
burned (py-spy: the main thread in EpollSelector.select). Longer sleeps cost a new event at most
`QUEUE_POLL_SECONDS` before it starts, small next to a model's first token.
"""
from __future__ import annotations

import gradio as gr

from ui.gradio_bridge import queue_of

QUEUE_POLL_SECONDS = 0.02
PROGRESS_POLL_SECONDS = 0.1


def quiet_queue(blocks: gr.Blocks) -> gr.Blocks:
    """Call after `blocks.queue(...)`, which builds a fresh queue with Gradio's defaults."""
    queue = queue_of(blocks)
    queue.sleep_when_free = max(queue.sleep_when_free, QUEUE_POLL_SECONDS)
    queue.progress_update_sleep_when_free = max(queue.progress_update_sleep_when_free, PROGRESS_POLL_SECONDS)
    return blocks
