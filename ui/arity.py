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


def trailing_defaults(block_fn: Any, missing: int) -> list[Any] | None:
    """The defaults of the handler's last `missing` input parameters, or None when one of them has none: a raw
    call written before an endpoint gained an optional parameter keeps working."""
    try:
        params = [p for p in inspect.signature(block_fn.fn).parameters.values() if p.name in parameter_names(block_fn)]
    except (TypeError, ValueError):
        return None
    tail = params[len(params) - missing:] if 0 < missing <= len(params) else []
    if not tail or any(p.default is inspect.Parameter.empty for p in tail):
        return None
    return [p.default for p in tail]


class Blocks(gr.Blocks):
    def validate_inputs(self, block_fn: Any, inputs: list[Any]) -> None:
        missing = len(block_fn.inputs) - len(inputs)
        if missing > 0:
            defaults = trailing_defaults(block_fn, missing)
            if defaults is None:
                raise gr.Error(too_few_message(block_fn, len(inputs)))
            inputs.extend(defaults)      # the same list Gradio goes on to process
        super().validate_inputs(block_fn, inputs)
