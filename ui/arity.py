"""gr.Blocks whose refusal of a call with too few values is a clear message, not Gradio's own.

Gradio's message for a raw call (POST /gradio_api/call/chat with data ["hi"]) lists its components'
Python reprs ("<gradio.components.api_component.Api object at 0x...>"); this names the endpoint's
parameters and the count instead, in English and Korean (the call carries no request to pick one).
"""
from __future__ import annotations

import inspect
from typing import Any

import gradio as gr

from ui.i18n import LANGS, say


def parameter_names(block_fn: Any) -> list[str]:
    """The handler's parameters that are inputs (gr.Request and friends are not sent by the caller)."""
    try:
        params = list(inspect.signature(block_fn.fn).parameters.values())
    except (TypeError, ValueError):
        return []
    names = [p.name for p in params if p.name != "request" and "gradio" not in str(p.annotation).lower()
             and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return names if len(names) == len(block_fn.inputs) else []


def too_few_message(block_fn: Any, got: int) -> str:
    needed = len(block_fn.inputs)
    endpoint = block_fn.api_name or block_fn.name or "this"
    names = ", ".join(parameter_names(block_fn)) or "see /gradio_api/info"
    return "\n".join(say(lang, "too_few_values", endpoint=endpoint, needed=needed, names=names, got=got)
                     for lang in LANGS)


class Blocks(gr.Blocks):
    def validate_inputs(self, block_fn: Any, inputs: list[Any]) -> None:
        if len(inputs) < len(block_fn.inputs):
            raise gr.Error(too_few_message(block_fn, len(inputs)))
        super().validate_inputs(block_fn, inputs)
